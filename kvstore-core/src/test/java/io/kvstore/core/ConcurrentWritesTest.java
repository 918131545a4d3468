package io.kvstore.core;

import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.ApplyResult;
import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Many threads put and delete the same few keys on one store while others apply remote mutations of
 * those keys. Afterwards every count is exact.
 *
 * <p>How the assertions can be exact: a listener without executor runs on the thread that applied the
 * change, before the write call returns, so a writer learns its own delete's version from the event
 * it just caused (a thread-local). Every applied change of a key has a higher version than the one
 * it replaced, so sorting a key's events by version gives the order in which they were applied; a
 * delete must then report "was live" exactly when the change before it was a put.
 */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class ConcurrentWritesTest {
  private static final int LOCAL_THREADS = 6;
  private static final int REMOTE_THREADS = 2;
  private static final int OPS = 2_000;
  private static final List<String> KEYS = List.of("k0", "k1", "k2", "k3");

  private final ExecutorService pool = Executors.newFixedThreadPool(LOCAL_THREADS + REMOTE_THREADS);

  @AfterEach
  void shutdown() {
    pool.shutdownNow();
  }

  private record LocalOp(String key, boolean isPut, Version version, String value, boolean wasLive) {}

  private record RemoteOp(Mutation mutation, ApplyResult result) {}

  @Test
  void concurrentPutsDeletesAndRemoteApplies_leaveExactVersionsDigestCountersAndEvents()
      throws Exception {
    long seed = Long.getLong("kvstore.seed", 42L);
    ManualClock clock = new ManualClock();
    try (DefaultKvStore store = Stores.open("self", clock, 16)) {
      ConcurrentLinkedQueue<ChangeEvent> events = new ConcurrentLinkedQueue<>();
      ThreadLocal<ChangeEvent> lastOnThisThread = new ThreadLocal<>();
      store.addListener("", e -> {
        events.add(e);
        lastOnThisThread.set(e);
      });
      CountDownLatch start = new CountDownLatch(1);
      List<Future<List<LocalOp>>> locals = new ArrayList<>();
      List<Future<List<RemoteOp>>> remotes = new ArrayList<>();
      for (int t = 0; t < LOCAL_THREADS; t++) {
        int thread = t;
        locals.add(pool.submit(() -> {
          SplittableRandom r = new SplittableRandom(seed + thread);
          List<LocalOp> ops = new ArrayList<>(OPS);
          start.await();
          for (int i = 0; i < OPS; i++) {
            String key = Seeds.pick(r, KEYS);
            if (i % 64 == 0) {
              clock.advance(1);
            }
            if (r.nextInt(10) < 6) {
              String value = "t" + thread + "-" + i;
              Version v = store.put(key, value);
              ChangeEvent e = lastOnThisThread.get();
              if (e == null || !e.version().equals(v)) {
                throw new AssertionError("put of " + key + " returned " + v
                    + " but this thread's last event was " + e);
              }
              ops.add(new LocalOp(key, true, v, value, true));
            } else {
              lastOnThisThread.remove();
              boolean wasLive = store.delete(key);
              ChangeEvent e = lastOnThisThread.get();
              if (e == null || e.type() != ChangeEvent.Type.DELETE || !e.key().equals(key)) {
                throw new AssertionError("delete of " + key + " fired no event on its thread: " + e);
              }
              ops.add(new LocalOp(key, false, e.version(), null, wasLive));
            }
          }
          return ops;
        }));
      }
      for (int t = 0; t < REMOTE_THREADS; t++) {
        int thread = t;
        remotes.add(pool.submit(() -> {
          SplittableRandom r = new SplittableRandom(seed * 31 + thread);
          String node = "peer-" + thread;
          List<RemoteOp> ops = new ArrayList<>(OPS);
          start.await();
          for (int i = 0; i < OPS; i++) {
            String key = Seeds.pick(r, KEYS);
            // Unique per thread (the logical part is the counter), near the local clock.
            Version v = Version.of(clock.millis() - 3 + r.nextInt(7), i, node);
            Mutation m = r.nextInt(10) < 6
                ? Mutation.put(key, (node + "-" + i).getBytes(), v, 0)
                : Mutation.delete(key, v);
            ops.add(new RemoteOp(m, store.apply(m)));
          }
          return ops;
        }));
      }
      start.countDown();
      List<LocalOp> localOps = new ArrayList<>();
      for (Future<List<LocalOp>> f : locals) {
        localOps.addAll(f.get(20, TimeUnit.SECONDS));
      }
      List<RemoteOp> remoteOps = new ArrayList<>();
      for (Future<List<RemoteOp>> f : remotes) {
        remoteOps.addAll(f.get(20, TimeUnit.SECONDS));
      }
      String ctx = "seed " + seed + " (replay: -Dkvstore.seed=" + seed + ")";

      // Every change was seen exactly once: the events are exactly the successful changes.
      List<ChangeEvent> all = new ArrayList<>(events);
      Set<Version> eventVersions = all.stream().map(ChangeEvent::version)
          .collect(Collectors.toSet());
      assertThat(eventVersions).as(ctx + ": no version announced twice").hasSize(all.size());
      Map<Version, String> expectedEvents = new HashMap<>();
      for (LocalOp op : localOps) {
        String prev = expectedEvents.put(op.version(),
            (op.isPut() ? "PUT " : "DELETE ") + op.key() + " LOCAL");
        assertThat(prev).as(ctx + ": two local writes got version " + op.version()).isNull();
      }
      long applied = 0;
      long ignored = 0;
      for (RemoteOp op : remoteOps) {
        assertThat(op.result()).as(ctx).isIn(ApplyResult.APPLIED, ApplyResult.IGNORED);
        if (op.result() == ApplyResult.APPLIED) {
          applied++;
          Mutation m = op.mutation();
          expectedEvents.put(m.version(),
              (m.isDelete() ? "DELETE " : "PUT ") + m.key() + " REMOTE");
        } else {
          ignored++;
        }
      }
      Map<Version, String> actualEvents = new HashMap<>();
      all.forEach(e -> actualEvents.put(e.version(), e.type() + " " + e.key() + " " + e.origin()));
      assertThat(actualEvents).as(ctx + ": events vs successful changes").isEqualTo(expectedEvents);
      assertThat(applied).as(ctx + ": some remote writes won").isPositive();
      assertThat(ignored).as(ctx + ": some remote writes lost").isPositive();

      // Per key: events in version order are the order of application.
      Map<String, List<ChangeEvent>> byKey = all.stream().collect(Collectors.groupingBy(
          ChangeEvent::key, TreeMap::new, Collectors.toList()));
      byKey.values().forEach(l -> l.sort(Comparator.comparing(ChangeEvent::version)));
      Map<Version, Boolean> liveBefore = new HashMap<>();
      byKey.values().forEach(l -> {
        boolean live = false;
        for (ChangeEvent e : l) {
          liveBefore.put(e.version(), live);
          live = e.type() == ChangeEvent.Type.PUT;
        }
      });
      for (LocalOp op : localOps) {
        if (!op.isPut()) {
          assertThat(op.wasLive()).as(ctx + ": delete of " + op.key() + " at " + op.version()
              + " reported whether a value was live").isEqualTo(liveBefore.get(op.version()));
        }
      }

      // The final state: per key the highest version anyone made, with its value.
      TreeMap<String, Version> held = Stores.heldVersions(store.replicaView());
      Map<Version, String> localPutValues = new HashMap<>();
      localOps.stream().filter(LocalOp::isPut).forEach(op -> localPutValues.put(op.version(),
          op.value()));
      long live = 0;
      long tombstones = 0;
      for (Map.Entry<String, List<ChangeEvent>> e : byKey.entrySet()) {
        ChangeEvent last = e.getValue().get(e.getValue().size() - 1);
        String key = e.getKey();
        assertThat(held.get(key)).as(ctx + ": held version of " + key).isEqualTo(last.version());
        if (last.type() == ChangeEvent.Type.PUT) {
          live++;
          Versioned v = store.getVersioned(key).orElseThrow();
          assertThat(v.version()).as(ctx).isEqualTo(last.version());
          String expectedValue = last.origin() == ChangeEvent.Origin.LOCAL
              ? localPutValues.get(last.version())
              : last.version().nodeId() + "-" + last.version().logical();
          assertThat(v.valueAsString()).as(ctx + ": value of " + key).isEqualTo(expectedValue);
        } else {
          tombstones++;
          assertThat(store.get(key)).as(ctx + ": " + key + " ends deleted").isEmpty();
        }
      }
      assertThat(held.keySet()).as(ctx).isEqualTo(byKey.keySet());
      for (RemoteOp op : remoteOps) {
        if (op.result() == ApplyResult.IGNORED) {
          assertThat(op.mutation().version()).as(ctx + ": ignored " + op.mutation())
              .isLessThan(held.get(op.mutation().key()));
        }
      }

      // The digest and the counters agree with a recount.
      assertThat(store.digest()).as(ctx)
          .isEqualTo(Stores.digestOf(Stores.rawState(store.replicaView()).values(), 16));
      StoreStats stats = store.stats();
      assertThat(store.size()).as(ctx).isEqualTo(live);
      assertThat(stats.liveEntries()).as(ctx).isEqualTo(live);
      assertThat(stats.tombstones()).as(ctx).isEqualTo(tombstones);
      assertThat(stats.puts()).as(ctx).isEqualTo(localOps.stream().filter(LocalOp::isPut).count());
      assertThat(stats.deletes()).as(ctx)
          .isEqualTo(localOps.stream().filter(op -> !op.isPut()).count());
      assertThat(stats.remoteApplied()).as(ctx).isEqualTo(applied);
      assertThat(stats.remoteIgnored()).as(ctx).isEqualTo(ignored);
      assertThat(stats.refusedClockDrift() + stats.refusedInvalid()).as(ctx).isZero();
      assertThat(localOps).as(ctx).hasSize(LOCAL_THREADS * OPS);
      assertThat(new HashSet<>(localOps.stream().map(LocalOp::version).toList())).as(ctx)
          .hasSize(LOCAL_THREADS * OPS);
    }
  }
}
