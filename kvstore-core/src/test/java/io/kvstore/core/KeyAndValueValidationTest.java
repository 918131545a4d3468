package io.kvstore.core;

import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.Digest;
import io.kvstore.core.spi.ApplyResult;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.function.ThrowingConsumer;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Keys and values are validated at every entry point: a bad one gets an
 * {@link IllegalArgumentException} that says what is wrong (the limit and the actual size for sizes),
 * and nothing is stored, counted or announced. Remote mutations are refused the same way.
 */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class KeyAndValueValidationTest {
  private static final int MAX_KEY = 16;
  private static final int MAX_VALUE = 64;

  private final ManualClock clock = new ManualClock();
  private final DefaultKvStore store = (DefaultKvStore) Stores.builder("n1", clock)
      .maxKeyBytes(MAX_KEY).maxValueBytes(MAX_VALUE).build();
  private final List<ChangeEvent> events = new ArrayList<>();

  KeyAndValueValidationTest() {
    store.addListener("", events::add);
  }

  @AfterEach
  void close() {
    store.close();
  }

  /** Bad keys and a fragment the message must contain. */
  static Stream<Arguments> badKeys() {
    return Stream.of(
        Arguments.of("empty", "", "empty"),
        Arguments.of("17 ASCII bytes", "a".repeat(17), "17 bytes"),
        Arguments.of("9 two-byte chars = 18 bytes", "é".repeat(9), "18 bytes"),
        Arguments.of("6 three-byte chars = 18 bytes", "€".repeat(6), "18 bytes"),
        Arguments.of("5 four-byte chars = 20 bytes in 10 chars", "😀".repeat(5), "20 bytes"),
        Arguments.of("15 ASCII + one 2-byte = 17 bytes", "a".repeat(15) + "é", "17 bytes"),
        Arguments.of("NUL", "a\u0000b", "control"),
        Arguments.of("newline", "a\nb", "control"),
        Arguments.of("tab", "\t", "control"),
        Arguments.of("unit separator", "\u001f", "control"),
        Arguments.of("DEL", "a\u007f", "control"),
        Arguments.of("C1 control U+0085", "a\u0085", "control"),
        Arguments.of("C1 control U+009F", "\u009f", "control"),
        Arguments.of("lone high surrogate at end", "ab\uD83D", "surrogate"),
        Arguments.of("lone high surrogate in middle", "a\uD83Db", "surrogate"),
        Arguments.of("lone low surrogate", "a\uDE00b", "surrogate"),
        Arguments.of("reversed pair", "\uDE00\uD83D", "surrogate"));
  }

  private void assertNothingChanged(StoreStats before, Digest digestBefore) {
    StoreStats after = store.stats();
    assertThat(after.puts()).isEqualTo(before.puts());
    assertThat(after.deletes()).isEqualTo(before.deletes());
    assertThat(after.liveEntries()).isEqualTo(before.liveEntries());
    assertThat(after.tombstones()).isEqualTo(before.tombstones());
    assertThat(after.remoteApplied()).isZero();
    assertThat(store.size()).isEqualTo(before.liveEntries());
    assertThat(store.digest()).isEqualTo(digestBefore);
    assertThat(Stores.heldVersions(store.replicaView())).containsOnlyKeys("existing");
    assertThat(events).hasSize(1); // just the setup put
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("badKeys")
  void badKey_isRejectedByEveryEntryPoint_andNothingChanges(String what, String key,
      String messagePart) {
    Version someVersion = store.put("existing", "v");
    StoreStats before = store.stats();
    Digest digestBefore = store.digest();
    byte[] value = {1};
    List<ThrowingConsumer<String>> calls = List.of(
        k -> store.put(k, value),
        k -> store.put(k, "v"),
        k -> store.put(k, value, WriteOptions.defaults()),
        k -> store.putAsync(k, value, WriteOptions.defaults()),
        k -> store.putIfAbsent(k, value),
        k -> store.putIfVersion(k, value, someVersion),
        k -> store.delete(k),
        k -> store.deleteAsync(k, WriteOptions.defaults()),
        k -> store.deleteIfVersion(k, someVersion),
        k -> store.get(k),
        k -> store.getString(k),
        k -> store.getVersioned(k));
    for (int i = 0; i < calls.size(); i++) {
      ThrowingConsumer<String> call = calls.get(i);
      assertThatThrownBy(() -> call.accept(key)).as("%s, entry point #%d", what, i)
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessageContaining(messagePart);
    }
    assertNothingChanged(before, digestBefore);
    assertThat(store.stats().gets()).as("rejected reads are not counted").isEqualTo(before.gets());
    assertThat(store.stats().conditionFailures()).isZero();
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("badKeys")
  void badKey_inARemoteMutation_isRefusedCountedAndNothingChanges(String what, String key,
      String ignored) {
    store.put("existing", "v");
    StoreStats before = store.stats();
    Digest digestBefore = store.digest();
    long hlcBefore = store.hlcCurrent();
    Version v = Version.of(ManualClock.T0 + 1, 5, "peer");
    assertThat(store.apply(Mutation.put(key, new byte[] {1}, v, 0))).as(what)
        .isEqualTo(ApplyResult.REFUSED_INVALID);
    assertThat(store.apply(Mutation.delete(key, v))).as(what)
        .isEqualTo(ApplyResult.REFUSED_INVALID);
    assertThat(store.stats().refusedInvalid()).isEqualTo(2);
    assertThat(store.stats().remoteIgnored()).isZero();
    assertThat(store.hlcCurrent()).isEqualTo(hlcBefore);
    assertNothingChanged(before, digestBefore);
  }

  @Test
  void keysExactlyAtTheLimit_areAccepted() {
    List<String> atLimit = List.of("a".repeat(16), "é".repeat(8), "€".repeat(5) + "a",
        "😀".repeat(4), "a".repeat(12) + "😀", "\u00a0ok\u2028ok" + "x".repeat(7));
    for (int i = 0; i < atLimit.size(); i++) {
      String k = atLimit.get(i);
      assertThat(k.getBytes(StandardCharsets.UTF_8).length).as(k).isLessThanOrEqualTo(MAX_KEY);
      store.put(k, k);
      assertThat(store.getString(k)).as(k).contains(k);
      Version v = Version.of(ManualClock.T0 + 10 * (i + 1), 0, "peer");
      assertThat(store.apply(Mutation.put(k, new byte[] {2}, v, 0))).as(k)
          .isEqualTo(ApplyResult.APPLIED);
    }
    assertThat(store.size()).isEqualTo(atLimit.size());
  }

  @Test
  void tooLongKey_messageNamesTheLimitAndTheUtf8Size() {
    assertThatThrownBy(() -> store.put("é".repeat(9), "v"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("18 bytes").hasMessageContaining("16").hasMessageContaining("maxKeyBytes");
    // Long in chars as well as in bytes: the size is still reported in UTF-8 bytes.
    assertThatThrownBy(() -> store.put("€".repeat(20), "v"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("60 bytes").hasMessageContaining("16");
  }

  @Test
  void nullKey_isRejected() {
    assertThatThrownBy(() -> store.put(null, "v")).isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("null");
    assertThatThrownBy(() -> store.get(null)).isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> store.delete(null)).isInstanceOf(IllegalArgumentException.class);
  }

  @Test
  void valueOverTheLimit_isRejectedNamingLimitAndSize_andNothingIsStored() {
    store.put("existing", "v");
    StoreStats before = store.stats();
    Digest digestBefore = store.digest();
    byte[] big = new byte[MAX_VALUE + 1];
    List<ThrowingConsumer<String>> calls = List.of(
        k -> store.put(k, big),
        k -> store.put(k, new String(big, StandardCharsets.ISO_8859_1)),
        k -> store.putAsync(k, big, WriteOptions.defaults()),
        k -> store.putIfAbsent(k, big),
        k -> store.putIfVersion(k, big, Version.of(1, 0, "n1")));
    for (String key : List.of("existing", "new")) {
      for (ThrowingConsumer<String> call : calls) {
        assertThatThrownBy(() -> call.accept(key)).isInstanceOf(IllegalArgumentException.class)
            .hasMessageContaining("65 bytes").hasMessageContaining("64")
            .hasMessageContaining("maxValueBytes");
      }
    }
    assertThat(store.getString("existing")).contains("v");
    assertNothingChanged(before, digestBefore);
    assertThat(store.stats().conditionFailures()).isZero();
  }

  @Test
  void multibyteStringValue_isMeasuredInUtf8Bytes() {
    assertThatThrownBy(() -> store.put("k", "é".repeat(33)))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("66 bytes");
    store.put("k", "é".repeat(32));
    assertThat(store.getString("k")).contains("é".repeat(32));
  }

  @Test
  void valueExactlyAtTheLimit_isAccepted() {
    store.put("k", new byte[MAX_VALUE]);
    assertThat(store.get("k")).hasValueSatisfying(b -> assertThat(b).hasSize(MAX_VALUE));
  }

  @Test
  void nullValue_isRejected_pointingToDelete() {
    assertThatThrownBy(() -> store.put("k", (byte[]) null))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("delete");
    assertThat(store.size()).isZero();
  }

  @Test
  void remoteValueOverTheLimit_isRefusedCountedAndNothingChanges() {
    store.put("existing", "v");
    StoreStats before = store.stats();
    Digest digestBefore = store.digest();
    Version newer = Version.of(ManualClock.T0 + 1, 0, "peer");
    assertThat(store.apply(Mutation.put("existing", new byte[MAX_VALUE + 1], newer, 0)))
        .isEqualTo(ApplyResult.REFUSED_INVALID);
    assertThat(store.apply(Mutation.put("new", new byte[MAX_VALUE + 1], newer, 0)))
        .isEqualTo(ApplyResult.REFUSED_INVALID);
    assertThat(store.stats().refusedInvalid()).isEqualTo(2);
    assertThat(store.getString("existing")).contains("v");
    assertNothingChanged(before, digestBefore);
    assertThat(store.apply(Mutation.put("new", new byte[MAX_VALUE], newer, 0)))
        .isEqualTo(ApplyResult.APPLIED);
  }
}
