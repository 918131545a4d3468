package io.kvstore.core;

import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.ApplyResult;
import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The hybrid logical clock stays monotonic and bounded while the wall clock jumps back and forth and
 * remote timestamps are observed; through the store, a remote write from a clock too far ahead is
 * refused without touching the store or the clock.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class HlcPropertyTest {

  @ParameterizedTest(name = Seeds.NAME)
  @MethodSource("io.kvstore.core.Seeds#seeds")
  void now_isStrictlyIncreasing_neverBehindTheWallClock_andBoundedByWhatItHasSeen(long seed) {
    Seeds.run(seed, r -> {
      ManualClock clock = new ManualClock();
      Hlc hlc = new Hlc(clock);
      long driftMillis = 1 + r.nextInt(120_000);
      long maxWallSeen = Long.MIN_VALUE;
      long maxObserved = Long.MIN_VALUE;
      long nowCalls = 0;
      long previous = Long.MIN_VALUE;
      List<String> history = new ArrayList<>();
      for (int step = 0; step < 400; step++) {
        int action = r.nextInt(10);
        if (action < 3) {
          // The wall clock jumps: mostly small steps, sometimes far back (NTP step) or forward.
          long jump = switch (r.nextInt(4)) {
            case 0 -> -r.nextInt(10_000);
            case 1 -> r.nextInt(10_000);
            default -> r.nextInt(3) - 1;
          };
          clock.advance(jump);
          history.add("wall " + jump);
        } else if (action < 5) {
          // A remote timestamp the store would accept: at most driftMillis ahead of the wall clock.
          long physical = clock.millis() - r.nextInt(30_000) + r.nextLong(driftMillis + 1);
          int logical = r.nextInt(4) == 0 ? Version.MAX_LOGICAL - r.nextInt(3)
              : r.nextInt(Version.MAX_LOGICAL + 1);
          long remote = Version.pack(physical, logical);
          hlc.observe(remote);
          maxObserved = Math.max(maxObserved, remote);
          history.add("observe " + physical + "." + logical);
        } else {
          long wall = clock.millis();
          long t = hlc.now();
          nowCalls++;
          maxWallSeen = Math.max(maxWallSeen, wall);
          String ctx = Seeds.describe(seed, "now()=%d.%d at wall %d after %s",
              Version.physicalOf(t), t & Version.MAX_LOGICAL, wall, history);
          assertThat(t).as(ctx).isGreaterThan(previous);
          assertThat(t).as(ctx).isGreaterThanOrEqualTo(Version.pack(wall, 0));
          long bound = Math.max(Version.pack(maxWallSeen, 0), maxObserved);
          // Each call moves at most one logical tick past everything seen before it.
          assertThat(t).as(ctx).isLessThanOrEqualTo(bound + nowCalls);
          // With fewer than 2^16 calls, that carry reaches at most the next millisecond.
          assertThat(Version.physicalOf(t)).as(ctx)
              .isLessThanOrEqualTo(Version.physicalOf(bound) + 1);
          assertThat(hlc.current()).as(ctx).isEqualTo(t);
          previous = t;
          history.add("now " + Version.physicalOf(t) + "." + (t & Version.MAX_LOGICAL));
        }
        if (history.size() > 30) {
          history.remove(0);
        }
      }
    });
  }

  @Test
  void concurrentCallers_getUniqueTimestamps_increasingPerThread_neverBehindTheWallClock()
      throws Exception {
    // Threads race on the clock while one of them also moves the wall clock forward, so calls hit
    // both the increment path and the move-up path, concurrently. (Backward steps: the test above.)
    ManualClock clock = new ManualClock();
    Hlc hlc = new Hlc(clock);
    int threads = 4;
    int calls = 50_000;
    long[][] seen = new long[threads][calls];
    long[][] wallBefore = new long[threads][calls];
    CyclicBarrier start = new CyclicBarrier(threads);
    List<Thread> workers = new ArrayList<>();
    List<Throwable> failures = java.util.Collections.synchronizedList(new ArrayList<>());
    for (int w = 0; w < threads; w++) {
      int id = w;
      Thread t = new Thread(() -> {
        try {
          start.await();
          for (int i = 0; i < calls; i++) {
            if (id == 0 && i % 50 == 0) {
              clock.advance(1);
            }
            wallBefore[id][i] = clock.millis();
            seen[id][i] = hlc.now();
          }
        } catch (Throwable e) {
          failures.add(e);
        }
      }, "hlc-test-" + w);
      workers.add(t);
      t.start();
    }
    for (Thread t : workers) {
      t.join();
    }
    assertThat(failures).isEmpty();
    Set<Long> all = new HashSet<>();
    for (int w = 0; w < threads; w++) {
      for (int i = 0; i < calls; i++) {
        long t = seen[w][i];
        assertThat(all.add(t)).as("timestamp %d issued twice (thread %d, call %d)", t, w, i)
            .isTrue();
        if (i > 0) {
          assertThat(t).as("thread %d call %d", w, i).isGreaterThan(seen[w][i - 1]);
        }
        assertThat(t).as("thread %d call %d behind the wall clock read before it", w, i)
            .isGreaterThanOrEqualTo(Version.pack(wallBefore[w][i], 0));
      }
    }
  }

  @ParameterizedTest(name = Seeds.NAME)
  @MethodSource("io.kvstore.core.Seeds#seeds")
  void remoteWriteFurtherAheadThanMaxClockDrift_isRefusedCountedAndChangesNothing(long seed) {
    Seeds.run(seed, r -> {
      ManualClock clock = new ManualClock(ManualClock.T0 + r.nextInt(1_000_000));
      long drift = 1 + r.nextInt(120_000);
      try (DefaultKvStore s = (DefaultKvStore) Stores.builder("self", clock)
          .maxClockDrift(Duration.ofMillis(drift)).build()) {
        Version local = s.put("k", "local");
        long hlcBefore = s.hlcCurrent();
        Stores.View viewBefore = Stores.view(s);
        long wall = clock.millis();

        // Too far ahead: by at least one millisecond beyond the drift.
        long ahead = drift + 1 + r.nextInt(1_000_000);
        Version future = Version.of(wall + ahead, r.nextInt(Version.MAX_LOGICAL + 1), "skewed");
        Mutation m = r.nextBoolean() ? Mutation.put("k", "remote".getBytes(), future, 0)
            : Mutation.delete("k", future);
        String ctx = Seeds.describe(seed, "drift %d ms, remote %s at wall %d", drift, m, wall);
        assertThat(s.apply(m)).as(ctx).isEqualTo(ApplyResult.REFUSED_CLOCK_DRIFT);
        assertThat(s.stats().refusedClockDrift()).as(ctx).isEqualTo(1);
        assertThat(s.stats().remoteApplied()).as(ctx).isZero();
        assertThat(s.hlcCurrent()).as(ctx).isEqualTo(hlcBefore);
        assertThat(Stores.view(s)).as(ctx).isEqualTo(viewBefore);
        assertThat(s.getString("k")).as(ctx).contains("local");
        Version next = s.put("other", "x");
        assertThat(next.physicalMillis()).as(ctx).isEqualTo(wall);
        assertThat(next).as(ctx).isGreaterThan(local);

        // Exactly at the drift: accepted, observed, and later local writes order after it.
        Version edge = Version.of(wall + drift, r.nextInt(Version.MAX_LOGICAL), "skewed");
        String edgeCtx = Seeds.describe(seed, "drift %d ms, remote %s at wall %d", drift, edge, wall);
        assertThat(s.apply(Mutation.put("k", "edge".getBytes(), edge, 0))).as(edgeCtx)
            .isEqualTo(ApplyResult.APPLIED);
        assertThat(s.getString("k")).as(edgeCtx).contains("edge");
        assertThat(s.hlcCurrent()).as(edgeCtx).isGreaterThanOrEqualTo(edge.timestamp());
        // Any later local write, of any key, orders after what the clock observed.
        Version after = s.put(r.nextBoolean() ? "k" : "another", "after");
        assertThat(after).as(edgeCtx).isGreaterThan(edge);
        assertThat(after.physicalMillis()).as(edgeCtx).isEqualTo(wall + drift);
        assertThat(s.stats().refusedClockDrift()).as(edgeCtx).isEqualTo(1);
      }
    });
  }
}
