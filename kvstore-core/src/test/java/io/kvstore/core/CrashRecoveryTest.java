package io.kvstore.core;

import io.kvstore.core.spi.Mutation;
import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.time.InstantSource;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Crash points, seeded: a store writes through a {@link FaultyFileIo}, is crashed at a random moment
 * (a kill -9, or a power loss that drops, tears and reorders what was not synced) and recovered.
 * Checked after each crash: recovery succeeds; every write acknowledged under SYNC is there (or a
 * newer one of its key); under INTERVAL the same holds for a process crash (nothing written to the
 * OS is lost); nothing recovered was never written; the clock resumes above every timestamp issued
 * before the crash. Tiny segments and compaction thresholds make rolls and snapshots happen mid-run.
 *
 * <p>Replay one case with {@code -Dkvstore.seed=N}; more with {@code -Dkvstore.seeds=K}.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class CrashRecoveryTest {
  private static final int KEYS = 16;

  static Stream<Long> seeds() {
    return Seeds.someSeeds().limit(Integer.getInteger("kvstore.seeds", 30));
  }

  private record Op(String key, Version version, String value, CompletableFuture<?> ack) {}

  @ParameterizedTest(name = Seeds.NAME)
  @MethodSource("seeds")
  void crashAtARandomPoint_recoversEveryAcknowledgedWriteAndNothingElse(long seed,
      @TempDir Path tmp) throws Exception {
    Seeds.run(seed, r -> {
      try {
        crashOnce(r, tmp.resolve("data"));
      } catch (Exception e) {
        throw new RuntimeException(e);
      }
    });
  }

  /**
   * The loop must be able to fail: with SYNC writes acknowledged after their memory copy but before
   * their force (a deliberately broken variant), some seed of the same loop loses an acknowledged
   * write at a power loss. Stops at the first such seed and prints it (seed -3059399710457120792,
   * the 8th of the default list, when this was written: a SYNC power loss whose one dropped page held
   * an acknowledged write).
   */
  @org.junit.jupiter.api.Test
  void ackingSyncBeforeTheForce_isCaughtByTheSeededLoop(@TempDir Path tmp) throws Exception {
    LogStorage.ackSyncBeforeForceForTest = true;
    Long caught = null;
    int tried = 0;
    try {
      for (long seed : seeds().toList()) {
        tried++;
        try {
          crashOnce(new SplittableRandom(seed), tmp.resolve("data-" + tried));
        } catch (AssertionError e) {
          assertThat(e.getMessage()).contains("acknowledged");
          caught = seed;
          System.out.printf("broken variant (SYNC acked before its force) caught by seed %d, the "
              + "%d. seed tried: %s%n", seed, tried, e.getMessage().lines().findFirst().orElse(""));
          break;
        }
      }
    } finally {
      LogStorage.ackSyncBeforeForceForTest = false;
    }
    assertThat(caught).as("no seed of %d caught SYNC writes acknowledged before their force", tried)
        .isNotNull();
  }

  private void crashOnce(SplittableRandom r, Path dir) throws Exception {
    Durability durability = r.nextBoolean() ? Durability.SYNC : Durability.INTERVAL;
    boolean powerLoss = r.nextBoolean();
    FaultyFileIo io = new FaultyFileIo(r.nextLong());
    DefaultKvStore store = open(dir, durability, io);
    AtomicReference<Version> lastEvent = new AtomicReference<>();
    store.addListener("", e -> lastEvent.set(e.version()));
    List<Op> ops = new ArrayList<>();
    int crashAt = 10 + r.nextInt(300);
    for (int i = 0; i < crashAt; i++) {
      String key = "k" + r.nextInt(KEYS);
      int what = r.nextInt(10);
      CompletableFuture<?> f;
      String value = null;
      if (what < 2) {
        f = store.deleteAsync(key, WriteOptions.defaults());
      } else {
        value = "v" + i;
        WriteOptions o = what == 2 ? WriteOptions.defaults().withTtl(Duration.ofHours(1))
            : WriteOptions.defaults();
        f = store.putAsync(key, value.getBytes(StandardCharsets.UTF_8), o);
      }
      ops.add(new Op(key, lastEvent.get(), value, f));
      if (r.nextInt(50) == 0) {
        store.storageForTest().snapshot();
      }
      if (r.nextInt(4) == 0) {
        f.handle((v, e) -> null).get(10, TimeUnit.SECONDS); // let the sync thread get ahead
      }
    }
    io.crash();
    long hlcBefore = store.hlcCurrent();
    store.crashForTest();
    if (powerLoss) {
      io.losePower();
    }
    String what = durability + (powerLoss ? ", power loss" : ", process crash") + " after "
        + crashAt + " writes (" + io.droppedOps() + " unsynced operations dropped, "
        + io.tornOps() + " torn; mapped pages: " + io.droppedPages() + " dropped, "
        + io.keptPages() + " kept)";

    try (DefaultKvStore recovered = open(dir, durability, FileIo.DEFAULT)) {
      Map<String, List<Op>> byKey = new HashMap<>();
      for (Op op : ops) {
        byKey.computeIfAbsent(op.key(), k -> new ArrayList<>()).add(op);
      }
      for (Mutation m : recovered.mutations(byKey.keySet())) {
        Op source = byKey.get(m.key()).stream().filter(op -> op.version().equals(m.version()))
            .findFirst().orElse(null);
        assertThat(source).as("%s: recovered %s was never written", what, m).isNotNull();
        String value = m.valueUnsafe() == null ? null
            : new String(m.valueUnsafe(), StandardCharsets.UTF_8);
        assertThat(value).as("%s: value of %s", what, m).isEqualTo(source.value());
      }
      boolean mustKeepAcked = durability == Durability.SYNC || !powerLoss;
      if (mustKeepAcked) {
        Map<String, Version> held = new HashMap<>();
        for (Mutation m : recovered.mutations(byKey.keySet())) {
          held.put(m.key(), m.version());
        }
        for (Op op : ops) {
          if (op.ack().isDone() && !op.ack().isCompletedExceptionally()) {
            assertThat(held.get(op.key())).as("%s: acknowledged %s of %s lost", what,
                op.version(), op.key()).isNotNull();
            assertThat(held.get(op.key()).compareTo(op.version())).as(
                "%s: acknowledged %s of %s lost (holds %s)", what, op.version(), op.key(),
                held.get(op.key())).isGreaterThanOrEqualTo(0);
          }
        }
      }
      Version next = recovered.put("probe", "after");
      assertThat(next.timestamp()).as("%s: the clock went back", what).isGreaterThan(hlcBefore);
    }
  }

  private static DefaultKvStore open(Path dir, Durability durability, FileIo io) {
    return (DefaultKvStore) Stores.builder("n1", InstantSource.system()).dataDir(dir)
        .durability(durability).syncInterval(Duration.ofMillis(20))
        .storageInternals(2048, 4096, 2000, io).build();
  }
}
