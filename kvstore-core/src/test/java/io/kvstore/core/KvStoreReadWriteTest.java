package io.kvstore.core;

import io.kvstore.core.spi.Mutation;
import static java.nio.charset.StandardCharsets.UTF_8;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.time.Instant;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The public read and write API of a single store: values, versions, conditions, TTL, copying. */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class KvStoreReadWriteTest {
  private final ManualClock clock = new ManualClock();
  private final DefaultKvStore store = Stores.open("n1", clock);

  @AfterEach
  void close() {
    store.close();
  }

  private static byte[] bytes(String s) {
    return s.getBytes(UTF_8);
  }

  @Test
  void get_ofAbsentKey_isEmpty() {
    assertThat(store.get("missing")).isEmpty();
    assertThat(store.getString("missing")).isEmpty();
    assertThat(store.getVersioned("missing")).isEmpty();
  }

  @Test
  void putThenGet_returnsValueWithTheWritesVersion() {
    Version v = store.put("k", bytes("v1"));
    assertThat(store.get("k")).hasValueSatisfying(b -> assertThat(b).isEqualTo(bytes("v1")));
    Versioned got = store.getVersioned("k").orElseThrow();
    assertThat(got.key()).isEqualTo("k");
    assertThat(got.version()).isEqualTo(v);
    assertThat(got.value()).isEqualTo(bytes("v1"));
    assertThat(got.valueAsString()).isEqualTo("v1");
    assertThat(got.valueLength()).isEqualTo(2);
    assertThat(got.expiresAt()).isEmpty();
    assertThat(v.nodeId()).isEqualTo("n1");
    assertThat(v.physicalMillis()).isEqualTo(ManualClock.T0);
  }

  @Test
  void putString_storesUtf8_andGetStringDecodesIt() {
    store.put("k", "grüße 😀");
    assertThat(store.getString("k")).contains("grüße 😀");
    assertThat(store.get("k")).hasValueSatisfying(b -> assertThat(b).isEqualTo(bytes("grüße 😀")));
    assertThat(store.getVersioned("k").orElseThrow().valueAsString()).isEqualTo("grüße 😀");
  }

  @Test
  void emptyValue_isStoredAndReadAsPresent() {
    store.put("k", new byte[0]);
    assertThat(store.get("k")).hasValueSatisfying(b -> assertThat(b).isEmpty());
    assertThat(store.size()).isEqualTo(1);
  }

  @Test
  void overwrite_replacesValue_withAStrictlyNewerVersion_evenWhenTheClockStandsStill() {
    Version v1 = store.put("k", "a");
    Version v2 = store.put("k", "b");
    assertThat(v2).isGreaterThan(v1);
    assertThat(v2.isNewerThan(v1)).isTrue();
    assertThat(store.getString("k")).contains("b");
    assertThat(store.size()).isEqualTo(1);
  }

  @Test
  void put_whenTheWallClockStepsBack_stillMakesANewerVersion() {
    Version v1 = store.put("k", "a");
    clock.advance(-60_000);
    Version v2 = store.put("k", "b");
    assertThat(v2).isGreaterThan(v1);
    assertThat(store.getString("k")).contains("b");
  }

  @Test
  void valueArrays_areCopiedInAndOut() {
    byte[] in = bytes("abc");
    store.put("k", in);
    in[0] = 'X';
    assertThat(store.getString("k")).contains("abc");

    byte[] out = store.get("k").orElseThrow();
    out[0] = 'Y';
    assertThat(store.getString("k")).contains("abc");

    Versioned versioned = store.getVersioned("k").orElseThrow();
    versioned.value()[0] = 'Z';
    assertThat(versioned.valueAsString()).isEqualTo("abc");
    store.scan("", 10).get(0).value()[0] = 'W';
    assertThat(store.getString("k")).contains("abc");

    byte[] async = bytes("def");
    CompletableFuture<Version> f = store.putAsync("k2", async, WriteOptions.defaults());
    async[0] = 'X';
    assertThat(f).isCompleted();
    assertThat(store.getString("k2")).contains("def");
  }

  @Test
  void delete_ofLiveKey_returnsTrue_andTheKeyReadsAbsent() {
    store.put("k", "v");
    assertThat(store.delete("k")).isTrue();
    assertThat(store.get("k")).isEmpty();
    assertThat(store.getVersioned("k")).isEmpty();
    assertThat(store.size()).isZero();
    assertThat(store.stats().tombstones()).isEqualTo(1);
  }

  @Test
  void delete_ofAbsentKey_returnsFalse_butStillWritesATombstone() {
    assertThat(store.delete("never")).isFalse();
    assertThat(Stores.heldVersions(store.replicaView())).containsKey("never");
    assertThat(store.stats().tombstones()).isEqualTo(1);
    assertThat(store.delete("never")).isFalse();
  }

  @Test
  void putAfterDelete_makesTheKeyLiveAgain() {
    store.put("k", "a");
    store.delete("k");
    Version v = store.put("k", "b");
    assertThat(store.getVersioned("k").orElseThrow().version()).isEqualTo(v);
    assertThat(store.size()).isEqualTo(1);
    assertThat(store.stats().tombstones()).isZero();
  }

  @Test
  void deleteAsync_completesWithWhetherAValueWasLive() throws Exception {
    store.put("k", "v");
    assertThat(store.deleteAsync("k", WriteOptions.defaults()).get(5, TimeUnit.SECONDS)).isTrue();
    assertThat(store.deleteAsync("k", WriteOptions.defaults()).get(5, TimeUnit.SECONDS)).isFalse();
  }

  @Test
  void putAsync_completesWithTheVersionThatGetReturns() throws Exception {
    Version v = store.putAsync("k", bytes("v"), WriteOptions.concern(WriteConcern.ALL))
        .get(5, TimeUnit.SECONDS);
    assertThat(store.getVersioned("k").orElseThrow().version()).isEqualTo(v);
  }

  // ---- conditions ---------------------------------------------------------------------------

  @Test
  void putIfAbsent_storesOnlyWhenNoLiveValue() {
    assertThat(store.putIfAbsent("k", bytes("first"))).isTrue();
    assertThat(store.putIfAbsent("k", bytes("second"))).isFalse();
    assertThat(store.getString("k")).contains("first");
    store.delete("k");
    assertThat(store.putIfAbsent("k", bytes("third"))).isTrue();
    assertThat(store.getString("k")).contains("third");
  }

  @Test
  void putIfAbsent_succeedsOverAnExpiredValue() {
    store.put("k", bytes("old"), WriteOptions.defaults().withTtl(Duration.ofMillis(10)));
    clock.advance(10);
    assertThat(store.putIfAbsent("k", bytes("new"))).isTrue();
    assertThat(store.getString("k")).contains("new");
  }

  @Test
  void ifAbsent_onPresentKey_failsWithTheCurrentVersion_andWritesNothing() {
    Version v = store.put("k", "v");
    assertThatThrownBy(() -> store.put("k", bytes("x"), WriteOptions.defaults().ifAbsent()))
        .isInstanceOfSatisfying(ConditionFailedException.class, e -> {
          assertThat(e.current()).contains(v);
          assertThat(e.getMessage()).contains("'k'").contains(v.toString());
        });
    assertThat(store.getVersioned("k").orElseThrow().version()).isEqualTo(v);
    assertThat(store.stats().conditionFailures()).isEqualTo(1);
    assertThat(store.stats().puts()).isEqualTo(1);
  }

  @Test
  void putIfVersion_storesOnlyWhenTheVersionMatches() {
    Version v1 = store.put("k", "a");
    Version v2 = store.put("k", "b");
    assertThat(store.putIfVersion("k", bytes("stale"), v1)).isFalse();
    assertThat(store.getString("k")).contains("b");
    assertThat(store.putIfVersion("k", bytes("c"), v2)).isTrue();
    assertThat(store.getString("k")).contains("c");
    assertThat(store.putIfVersion("absent", bytes("x"), v2)).isFalse();
    assertThat(store.get("absent")).isEmpty();
  }

  @Test
  void ifVersion_withAStaleVersion_failsWithTheCurrentVersion() {
    Version v1 = store.put("k", "a");
    Version v2 = store.put("k", "b");
    CompletableFuture<Version> f = store.putAsync("k", bytes("c"),
        WriteOptions.defaults().ifVersion(v1));
    assertThat(f).isCompletedExceptionally();
    assertThatThrownBy(f::get).isInstanceOf(ExecutionException.class)
        .cause().isInstanceOfSatisfying(ConditionFailedException.class,
            e -> assertThat(e.current()).contains(v2));
    assertThatThrownBy(() -> store.put("k", bytes("c"), WriteOptions.defaults().ifVersion(v1)))
        .isInstanceOfSatisfying(ConditionFailedException.class,
            e -> assertThat(e.current()).contains(v2));
    assertThat(store.getString("k")).contains("b");
  }

  @Test
  void ifVersion_onDeletedKey_failsWithNoCurrentVersion() {
    Version v = store.put("k", "a");
    store.delete("k");
    assertThatThrownBy(() -> store.put("k", bytes("c"), WriteOptions.defaults().ifVersion(v)))
        .isInstanceOfSatisfying(ConditionFailedException.class,
            e -> assertThat(e.current()).isEmpty());
    assertThat(store.get("k")).isEmpty();
  }

  @Test
  void deleteIfVersion_deletesOnlyWhenTheVersionMatches() {
    Version v1 = store.put("k", "a");
    Version v2 = store.put("k", "b");
    assertThat(store.deleteIfVersion("k", v1)).isFalse();
    assertThat(store.getString("k")).contains("b");
    assertThat(store.deleteIfVersion("k", v2)).isTrue();
    assertThat(store.get("k")).isEmpty();
    assertThat(store.deleteIfVersion("k", v2)).isFalse();
    assertThat(store.stats().deletes()).isEqualTo(1);
    assertThat(store.stats().conditionFailures()).isEqualTo(2);
  }

  @Test
  void deleteWithIfVersion_onMismatch_failsWithTheCurrentVersion() {
    Version v1 = store.put("k", "a");
    Version v2 = store.put("k", "b");
    assertThatThrownBy(() -> store.delete("k", WriteOptions.defaults().ifVersion(v1)))
        .isInstanceOfSatisfying(ConditionFailedException.class,
            e -> assertThat(e.current()).contains(v2));
    assertThat(store.getString("k")).contains("b");
  }

  @Test
  void ifVersion_withTheVersionOfARemoteWrite_succeeds() {
    Version remote = Version.of(ManualClock.T0 - 5, 0, "peer");
    store.apply(Mutation.put("k", bytes("r"), remote, 0));
    assertThat(store.putIfVersion("k", bytes("mine"), remote)).isTrue();
    assertThat(store.getString("k")).contains("mine");
  }

  // ---- TTL ----------------------------------------------------------------------------------

  @Test
  void ttl_valueReadsUntilExpiry_andAbsentFromTheExpiryMillisecondOn() {
    Version v = store.put("k", bytes("v"), WriteOptions.defaults().withTtl(Duration.ofSeconds(2)));
    assertThat(store.getVersioned("k").orElseThrow().expiresAt())
        .contains(Instant.ofEpochMilli(ManualClock.T0 + 2_000));
    clock.advance(1_999);
    assertThat(store.getString("k")).contains("v");
    clock.advance(1);
    assertThat(store.get("k")).isEmpty();
    assertThat(store.getVersioned("k")).isEmpty();
    assertThat(store.scan("", 10)).isEmpty();
    // The entry is still held (as a dead value) until a sweep, under the put's version.
    assertThat(Stores.heldVersions(store.replicaView())).containsEntry("k", v);
  }

  @Test
  void ttl_isMeasuredFromTheWritesTimestamp() {
    store.put("k", bytes("v"), WriteOptions.defaults().withTtl(Duration.ofMillis(1)));
    assertThat(store.getString("k")).contains("v");
    clock.advance(1);
    assertThat(store.getString("k")).isEmpty();
  }

  @Test
  void overwriteWithoutTtl_removesTheExpiry() {
    store.put("k", bytes("v"), WriteOptions.defaults().withTtl(Duration.ofMillis(100)));
    store.put("k", "forever");
    clock.advance(Duration.ofDays(30));
    assertThat(store.getString("k")).contains("forever");
    assertThat(store.getVersioned("k").orElseThrow().expiresAt()).isEmpty();
  }

  @Test
  void delete_ofExpiredValue_returnsFalse() {
    store.put("k", bytes("v"), WriteOptions.defaults().withTtl(Duration.ofMillis(100)));
    clock.advance(100);
    assertThat(store.delete("k")).isFalse();
  }

  @Test
  void delete_ignoresTheTtlOption() {
    store.put("k", "v");
    assertThat(store.delete("k", WriteOptions.defaults().withTtl(Duration.ofMillis(5)))).isTrue();
    assertThat(store.get("k")).isEmpty();
    Mutation tombstone = Stores.rawState(store.replicaView()).get("k");
    assertThat(tombstone.isDelete()).isTrue();
    assertThat(tombstone.expiresAtMillis()).isZero();
  }

  // ---- write options ------------------------------------------------------------------------

  @Test
  void writeOptions_rejectBadTtlAndTimeout_withTheValue() {
    WriteOptions d = WriteOptions.defaults();
    assertThatThrownBy(() -> d.withTtl(Duration.ZERO)).isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("ttl").hasMessageContaining("PT0S");
    assertThatThrownBy(() -> d.withTtl(Duration.ofNanos(999_999)))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("ttl");
    assertThatThrownBy(() -> d.withTtl(null)).isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> d.withTimeout(Duration.ofSeconds(-1)))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("timeout")
        .hasMessageContaining("PT-1S");
    assertThatThrownBy(() -> d.withTimeout(Duration.ZERO))
        .isInstanceOf(IllegalArgumentException.class);
  }

  @Test
  void writeOptions_areImmutable_andCarryWhatWasSet() {
    WriteOptions d = WriteOptions.defaults();
    Version v = Version.of(1, 0, "n");
    WriteOptions o = d.withConcern(WriteConcern.QUORUM).withTimeout(Duration.ofSeconds(3))
        .withTtl(Duration.ofMinutes(1)).ifVersion(v);
    assertThat(d.concern()).isNull();
    assertThat(d.timeout()).isNull();
    assertThat(d.ttl()).isNull();
    assertThat(d.isIfAbsent()).isFalse();
    assertThat(d.expectedVersion()).isNull();
    assertThat(o.concern()).isEqualTo(WriteConcern.QUORUM);
    assertThat(o.timeout()).isEqualTo(Duration.ofSeconds(3));
    assertThat(o.ttl()).isEqualTo(Duration.ofMinutes(1));
    assertThat(o.expectedVersion()).isEqualTo(v);
    assertThat(WriteOptions.concern(WriteConcern.ALL).concern()).isEqualTo(WriteConcern.ALL);
    assertThat(d.ifAbsent().isIfAbsent()).isTrue();
  }
}
