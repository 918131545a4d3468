package io.kvstore.core;

import static org.assertj.core.api.Assertions.assertThat;

import io.kvstore.core.spi.KeyVersion;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.ReplicaStore;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * An eviction of every key races with writes to a seeded half of them (newer remote puts and
 * deletes, local puts, and the evicted version itself handed back): afterwards each key holds exactly
 * its newer write, or the handed-back entry if that applied after the eviction, or nothing; the
 * digest and counts
 * match what is held; and a durable store, with snapshots taken during the race, recovers exactly
 * that. Seeds as in {@link Seeds}: the test name shows each one, a failure names it and the flag that
 * replays it ({@code -Dkvstore.seed=N}).
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class EvictConcurrencyTest {
  private static final int KEYS = 1_000;
  private static final int BUCKETS = 64;

  @TempDir
  Path tmp;

  private final ExecutorService pool = Executors.newFixedThreadPool(3);

  @AfterEach
  void shutdown() {
    pool.shutdownNow();
  }

  @ParameterizedTest(name = Seeds.NAME)
  @MethodSource("io.kvstore.core.Seeds#someSeeds")
  void evictRacingNewerWrites_keepsExactlyTheNewerWrites_inMemory(long seed) {
    Seeds.run(seed, r -> race(seed, r, false));
  }

  @ParameterizedTest(name = Seeds.NAME)
  @MethodSource("io.kvstore.core.Seeds#someSeeds")
  void evictRacingNewerWritesAndSnapshots_recoversExactlyWhatWasHeld(long seed) {
    Seeds.run(seed, r -> race(seed, r, true));
  }

  private DefaultKvStore open(ManualClock clock, Path dir) {
    KvStoreBuilder b = Stores.builder("self", clock).digestBuckets(BUCKETS)
        .replicator(config -> new Stores.Unwired(new Member("self", null, null, Member.Status.ALIVE)));
    if (dir != null) {
      b.dataDir(dir).durability(Durability.INTERVAL)
          .storageInternals(32 << 10, 32 << 10, 2_000, FileIo.DEFAULT);
    }
    return (DefaultKvStore) b.build();
  }

  private void race(long seed, SplittableRandom r, boolean durable) {
    ManualClock clock = new ManualClock();
    Path dir = durable ? tmp.resolve("s" + Long.toHexString(seed)) : null;
    TreeMap<String, Mutation> held;
    try (DefaultKvStore s = open(clock, dir)) {
      ReplicaStore replica = ReplicaViews.of(s);
      List<KeyVersion> handedOff = new ArrayList<>();
      List<Mutation> initial = new ArrayList<>();
      List<Integer> rewritten = new ArrayList<>();
      for (int i = 0; i < KEYS; i++) {
        Mutation m = Mutation.put("k" + i, ("v" + i).getBytes(StandardCharsets.UTF_8),
            Version.of(ManualClock.T0 - 10, i, "peer-0"), 0);
        replica.apply(m);
        initial.add(m);
        handedOff.add(KeyVersion.of(m));
        if (r.nextBoolean()) {
          rewritten.add(i);
        }
      }
      Collections.shuffle(handedOff, new java.util.Random(r.nextLong()));
      Collections.shuffle(rewritten, new java.util.Random(r.nextLong()));
      long writerSeed = r.nextLong();
      CountDownLatch start = new CountDownLatch(1);
      AtomicBoolean racing = new AtomicBoolean(true);

      Future<Long> evicted = pool.submit(() -> {
        SplittableRandom er = new SplittableRandom(seed ^ 0x5eedL);
        start.await();
        long n = 0;
        for (int at = 0; at < handedOff.size(); ) {
          int batch = 1 + er.nextInt(64);
          n += replica.evict(handedOff.subList(at, Math.min(handedOff.size(), at + batch)));
          at += batch;
        }
        return n;
      });
      Future<TreeMap<String, Mutation>> written = pool.submit(() -> {
        SplittableRandom wr = new SplittableRandom(writerSeed);
        TreeMap<String, Mutation> out = new TreeMap<>();
        start.await();
        for (int i : rewritten) {
          String key = "k" + i;
          switch (wr.nextInt(4)) {
            case 0 -> {
              Mutation m = Mutation.put(key, ("new" + i).getBytes(StandardCharsets.UTF_8),
                  Version.of(ManualClock.T0 - 5, i, "peer-1"), 0);
              replica.apply(m);
              out.put(key, m);
            }
            case 1 -> {
              Mutation m = Mutation.delete(key, Version.of(ManualClock.T0 - 5, i, "peer-1"));
              replica.apply(m);
              out.put(key, m);
            }
            case 2 -> {
              // The same version handed back: applies only once the eviction removed the key,
              // and then stays (the eviction is done with this key).
              Mutation m = initial.get(i);
              if (replica.apply(m) == io.kvstore.core.spi.ApplyResult.APPLIED) {
                out.put(key, m);
              }
            }
            default -> {
              s.put(key, "local" + i);
              out.put(key, replica.mutation(key)); // nothing else writes this key now
            }
          }
        }
        return out;
      });
      Future<?> snapshots = pool.submit(() -> {
        start.await();
        for (int i = 0; durable && racing.get() && i < 20; i++) {
          s.storageForTest().snapshot();
        }
        return null;
      });
      start.countDown();
      TreeMap<String, Mutation> expected = get(written);
      long n = get(evicted);
      racing.set(false);
      get(snapshots);

      held = Stores.rawState(replica);
      assertThat(held).as(Seeds.describe(seed, "what each key holds after the race"))
          .isEqualTo(expected);
      assertThat(n).as(Seeds.describe(seed, "evicted: every key not rewritten, and those "
          + "rewritten only after their eviction")).isBetween((long) KEYS - rewritten.size(),
          (long) KEYS);
      long handedBack = expected.entrySet().stream()
          .filter(e -> e.getValue().equals(initial.get(Integer.parseInt(e.getKey().substring(1)))))
          .count();
      assertThat(n).as(Seeds.describe(seed, "each handback that applied came after an eviction"))
          .isGreaterThanOrEqualTo(KEYS - rewritten.size() + handedBack);
      assertThat(replica.digest()).as(Seeds.describe(seed, "digest"))
          .isEqualTo(Stores.digestOf(held.values(), BUCKETS));
      long tombstones = held.values().stream().filter(Mutation::isDelete).count();
      assertThat(s.stats().tombstones()).as(Seeds.describe(seed, "tombstones"))
          .isEqualTo(tombstones);
      assertThat(s.size()).as(Seeds.describe(seed, "size")).isEqualTo(held.size() - tombstones);
    }
    if (!durable) {
      return;
    }
    try (DefaultKvStore again = open(clock, dir)) {
      ReplicaStore replica = ReplicaViews.of(again);
      assertThat(Stores.rawState(replica)).as(Seeds.describe(seed, "recovered state"))
          .isEqualTo(held);
      assertThat(replica.digest()).as(Seeds.describe(seed, "recovered digest"))
          .isEqualTo(Stores.digestOf(held.values(), BUCKETS));
    }
    deleteQuietly(dir);
  }

  private static <T> T get(Future<T> f) {
    try {
      return f.get(60, TimeUnit.SECONDS);
    } catch (Exception e) {
      throw new AssertionError("a racing thread failed: " + e, e);
    }
  }

  private static void deleteQuietly(Path dir) {
    try (var files = Files.walk(dir)) {
      files.sorted(Collections.reverseOrder()).forEach(p -> p.toFile().delete());
    } catch (java.io.IOException e) {
      // the @TempDir removes it at the end
    }
  }
}
