package io.kvstore.core;

import io.kvstore.core.spi.Mutation;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** Prefix scans: order, prefix, paging with {@code startAfter}, limits, and what they leave out. */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class ScanTest {
  private final ManualClock clock = new ManualClock();
  private final DefaultKvStore store = (DefaultKvStore) Stores.builder("n1", clock)
      .maxScanLimit(50).build();

  @AfterEach
  void close() {
    store.close();
  }

  private static List<String> keys(List<Versioned> entries) {
    return entries.stream().map(Versioned::key).toList();
  }

  @Test
  void scan_returnsLiveEntriesWithThePrefix_inAscendingKeyOrder() {
    for (String k : List.of("user:3", "user:1", "order:1", "user:10", "user:2", "use", "user")) {
      store.put(k, "v-" + k);
    }
    List<Versioned> users = store.scan("user:", 50);
    assertThat(keys(users)).containsExactly("user:1", "user:10", "user:2", "user:3");
    assertThat(users.get(0).valueAsString()).isEqualTo("v-user:1");
    assertThat(users.get(0).version()).isEqualTo(store.getVersioned("user:1").orElseThrow()
        .version());
    assertThat(keys(store.scan("", 50)))
        .containsExactly("order:1", "use", "user", "user:1", "user:10", "user:2", "user:3");
    assertThat(store.scan("nothing", 50)).isEmpty();
  }

  @Test
  void scan_excludesTombstonesAndExpiredValues() {
    store.put("a", "1");
    store.put("b", "2");
    store.put("c", "3".getBytes(), WriteOptions.defaults().withTtl(Duration.ofMillis(5)));
    store.apply(Mutation.delete("d", Version.of(ManualClock.T0 - 1, 0, "peer")));
    store.delete("b");
    clock.advance(5);
    assertThat(keys(store.scan("", 50))).containsExactly("a");
  }

  @Test
  void scan_limit_returnsTheSmallestKeys() {
    for (int i = 0; i < 20; i++) {
      store.put(String.format("k%02d", 19 - i), "v");
    }
    assertThat(keys(store.scan("k", 3))).containsExactly("k00", "k01", "k02");
    assertThat(store.scan("k", 1)).hasSize(1);
    assertThat(store.scan("k", 50)).hasSize(20);
  }

  @Test
  void scan_startAfter_isExclusive_andNeedNotBeAHeldKey() {
    for (String k : List.of("a", "b", "c", "d")) {
      store.put(k, k);
    }
    assertThat(keys(store.scan("", "b", 50))).containsExactly("c", "d");
    assertThat(keys(store.scan("", "bb", 50))).containsExactly("c", "d");
    assertThat(keys(store.scan("", null, 50))).containsExactly("a", "b", "c", "d");
    assertThat(store.scan("", "d", 50)).isEmpty();
  }

  @Test
  void scan_limitOutOfBounds_isRejectedNamingTheBound() {
    assertThatThrownBy(() -> store.scan("", 0)).isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("limit").hasMessageContaining("50").hasMessageContaining("was 0");
    assertThatThrownBy(() -> store.scan("", 51)).isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("limit").hasMessageContaining("was 51");
    assertThatThrownBy(() -> store.scan("", -1)).isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> store.scan(null, 10)).isInstanceOf(NullPointerException.class)
        .hasMessageContaining("prefix");
  }

  @ParameterizedTest(name = Seeds.NAME)
  @MethodSource("io.kvstore.core.Seeds#someSeeds")
  void pagingWithStartAfter_visitsEveryLiveKeyWithThePrefixOnceInOrder(long seed) {
    Seeds.run(seed, r -> {
      TreeMap<String, String> live = new TreeMap<>();
      List<String> alphabet = List.of("a", "b", "ab", "é", "z", "/", "😀");
      int n = r.nextInt(120);
      for (int i = 0; i < n; i++) {
        String k = Seeds.pick(r, alphabet) + Seeds.pick(r, alphabet) + r.nextInt(10);
        if (r.nextInt(5) == 0) {
          store.delete(k);
          live.remove(k);
        } else {
          store.put(k, "v" + i);
          live.put(k, "v" + i);
        }
      }
      String prefix = r.nextBoolean() ? "" : Seeds.pick(r, alphabet);
      int limit = 1 + r.nextInt(50);
      List<String> seen = new ArrayList<>();
      String after = null;
      for (int page = 0; page <= n + 1; page++) {
        List<Versioned> entries = store.scan(prefix, after, limit);
        assertThat(entries.size()).as(Seeds.describe(seed, "page %d size", page))
            .isLessThanOrEqualTo(limit);
        entries.forEach(e -> seen.add(e.key() + "=" + e.valueAsString()));
        if (entries.size() < limit) {
          break;
        }
        after = entries.get(entries.size() - 1).key();
      }
      List<String> expected = new ArrayList<>();
      for (Map.Entry<String, String> e : live.entrySet()) {
        if (e.getKey().startsWith(prefix)) {
          expected.add(e.getKey() + "=" + e.getValue());
        }
      }
      assertThat(seen).as(Seeds.describe(seed, "prefix '%s', limit %d", prefix, limit))
          .isEqualTo(expected);
    });
  }
}
