package io.kvstore.core;

import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.ApplyResult;
import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** {@link StoreStats} counts each kind of operation exactly. */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class StoreStatsTest {

  /**
   * The sweep skips its walk only while nothing can expire or be purged: a TTL put, alone in the
   * store (no tombstones), or a remote one, or a TTL given to a key by an overwrite, still expires;
   * a TTL removed by an overwrite leaves nothing to sweep.
   */
  @Test
  void maintenance_expiresEveryTtlEntry_whenThereAreNoTombstones() {
    ManualClock clock = new ManualClock();
    try (DefaultKvStore s = (DefaultKvStore) Stores.builder("n1", clock)
        .tombstoneGrace(Duration.ofSeconds(10)).build()) {
      s.put("plain", "1");
      assertThat(s.runMaintenance()).isZero();
      s.put("ttl", "1".getBytes(), WriteOptions.defaults().withTtl(Duration.ofSeconds(1)));
      s.put("later", "1");
      s.put("later", "2".getBytes(), WriteOptions.defaults().withTtl(Duration.ofSeconds(1)));
      s.put("cleared", "1".getBytes(), WriteOptions.defaults().withTtl(Duration.ofSeconds(1)));
      s.put("cleared", "2");
      assertThat(s.apply(Mutation.put("remote", "x".getBytes(),
          Version.of(ManualClock.T0 - 10, 0, "peer"), ManualClock.T0 + 1_000)))
          .isEqualTo(ApplyResult.APPLIED);
      assertThat(s.stats().tombstones()).isZero();

      clock.advance(1_001);
      s.runMaintenance();
      // ttl, later and remote expired (tombstones now); plain and cleared stay live.
      assertThat(s.stats().tombstones()).isEqualTo(3);
      assertThat(s.stats().liveEntries()).isEqualTo(2);
      clock.advance(10_000);
      assertThat(s.runMaintenance()).as("purged after the grace").isEqualTo(3);
      assertThat(s.getString("cleared")).contains("2");
    }
  }

  @Test
  void stats_countGetsPutsDeletesConditionsRemoteAppliesAndEntries() {
    ManualClock clock = new ManualClock();
    try (DefaultKvStore s = (DefaultKvStore) Stores.builder("n1", clock)
        .tombstoneGrace(Duration.ofSeconds(10)).maxClockDrift(Duration.ofSeconds(1)).build()) {
      assertThat(s.stats()).isEqualTo(new StoreStats(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));

      Version a = s.put("a", "1");                                    // puts 1
      s.put("b", "2".getBytes(), WriteOptions.defaults());            // puts 2
      s.putIfAbsent("c", "3".getBytes());                             // puts 3
      s.putIfAbsent("c", "x".getBytes());                             // conditionFailures 1
      s.putIfVersion("a", "1b".getBytes(), a);                        // puts 4
      s.putIfVersion("a", "stale".getBytes(), a);                     // conditionFailures 2
      s.get("a");                                                     // gets 1
      s.getString("b");                                               // gets 2
      s.getVersioned("c");                                            // gets 3
      s.get("missing");                                               // gets 4
      s.scan("", 10);                                                 // not a get
      s.delete("b");                                                  // deletes 1
      s.delete("never-there");                                        // deletes 2 (a tombstone)
      s.deleteIfVersion("a", a);                                      // conditionFailures 3

      Version r1 = Version.of(ManualClock.T0 - 10, 0, "peer");
      Version r2 = Version.of(ManualClock.T0 + 100, 0, "peer");
      assertThat(s.apply(Mutation.put("r", "x".getBytes(), r1, 0))).isEqualTo(ApplyResult.APPLIED);
      assertThat(s.apply(Mutation.put("r", "x".getBytes(), r1, 0))).isEqualTo(ApplyResult.IGNORED);
      assertThat(s.apply(Mutation.put("a", "old".getBytes(), r1, 0)))
          .isEqualTo(ApplyResult.IGNORED);
      assertThat(s.apply(Mutation.delete("c", r2))).isEqualTo(ApplyResult.APPLIED);
      assertThat(s.apply(Mutation.put("z", "x".getBytes(),
          Version.of(ManualClock.T0 + 5_000, 0, "peer"), 0)))
          .isEqualTo(ApplyResult.REFUSED_CLOCK_DRIFT);
      assertThat(s.apply(Mutation.put("bad\n", "x".getBytes(), r1, 0)))
          .isEqualTo(ApplyResult.REFUSED_INVALID);

      // Live: a, r. Tombstones: b, never-there, c.
      assertThat(s.stats()).isEqualTo(new StoreStats(4, 4, 2, 3, 2, 2, 1, 1, 2, 3, 0));
      assertThat(s.size()).isEqualTo(2);

      // The tombstones of b and never-there were written at T0 (c's remote delete at T0+100).
      clock.advance(10_000);
      assertThat(s.runMaintenance()).isEqualTo(2);
      assertThat(s.stats()).isEqualTo(new StoreStats(4, 4, 2, 3, 2, 2, 1, 1, 2, 1, 2));
      clock.advance(100);
      assertThat(s.runMaintenance()).isEqualTo(1);
      assertThat(s.stats().tombstones()).isZero();
      assertThat(s.stats().purged()).isEqualTo(3);
    }
  }

  @Test
  void stats_areASnapshot() {
    try (KvStore s = Stores.open("n1", new ManualClock())) {
      StoreStats before = s.stats();
      s.put("k", "v");
      assertThat(before.puts()).isZero();
      assertThat(s.stats().puts()).isEqualTo(1);
    }
  }
}
