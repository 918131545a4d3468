package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.kvstore.core.KvStore;
import io.kvstore.core.MembershipEvent;
import io.kvstore.core.ReadConcern;
import io.kvstore.core.ReadOptions;
import io.kvstore.core.ReplicaViews;
import io.kvstore.core.Versioned;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteOptions;
import io.kvstore.core.spi.ReplicaStore;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The graceful leave of a partitioned-mode node (rf 2) on real nodes: {@code close()} first waits,
 * at most {@code leaveTimeout}, while a connected co-owner still pulls a partition both own, and
 * only then announces the leave; it does not wait for a co-owner that is gone. See docs/CLUSTER.md,
 * "Rebalancing", "Graceful leave".
 *
 * <p>The setup makes the wait observable: three loaded nodes, anti-entropy throttled to its minimum
 * (128 KiB/s, in frames of 8 KiB), a fourth node joins and pulls what it gains for several
 * seconds; a node that shares
 * partitions with the joiner closes meanwhile. Deterministic keys and values, no seed.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class GracefulLeaveTest {
  private static final WriteOptions QUORUM = WriteOptions.concern(WriteConcern.QUORUM)
      .withTimeout(Duration.ofSeconds(10));
  private static final Duration LEAVE_TIMEOUT = Duration.ofSeconds(30);
  private static final int KEYS = 2000;
  private static final byte[] PADDING = new byte[1000];

  static {
    Arrays.fill(PADDING, (byte) 'x');
  }

  /**
   * l1 and the joiner l4 share partitions that l4 is still pulling when l1 closes. l1's leave must
   * not be announced before l4 holds every key of those partitions, and close() must return once
   * that is so, well before the leave timeout. QUORUM writers through the other nodes run during the
   * leave: none of their writes fails, and every acknowledged write is readable at QUORUM through
   * every remaining node afterwards.
   */
  @Test
  void aLeavingNode_waitsUntilACoOwnerHasPulledTheirSharedPartitions_andLosesNoQuorumWrite()
      throws Exception {
    try (TestCluster cluster = TestCluster.start("leave-wait", "l", 3, GracefulLeaveTest::slow)) {
      Map<String, String> written = load(cluster);
      TestCluster.Node joiner = cluster.startNode("l4", cluster.node("l1").membershipAddress());
      Placement four = Placement.of(List.of("l1", "l2", "l3", "l4"), 2);
      awaitMap(cluster, four);
      List<String> shared = written.keySet().stream()
          .filter(k -> four.ownersOf(k).containsAll(List.of("l1", "l4"))).toList();
      ReplicaStore l4 = ReplicaViews.of(joiner.store());
      List<String> missingAtStart = missing(l4, shared);
      assertThat(missingAtStart).as("keys of partitions l1 and l4 share that l4 has yet to pull "
          + "when l1 closes (of %d); the throttle must make the pull last", shared.size())
          .hasSizeGreaterThan(shared.size() / 4);

      // What l4 holds of the shared partitions at the moment it learns that l1 leaves.
      AtomicReference<List<String>> missingAtLeave = new AtomicReference<>();
      joiner.store().cluster().addListener(e -> {
        if (e.member().nodeId().equals("l1") && e.type() == MembershipEvent.Type.LEAVING) {
          missingAtLeave.compareAndSet(null, missing(l4, shared));
        }
      });
      Writers writers = Writers.start(List.of(cluster.node("l2").store(),
          cluster.node("l3").store(), joiner.store()));
      long started = System.nanoTime();
      cluster.stop(cluster.node("l1"));
      long closeMillis = (System.nanoTime() - started) / 1_000_000;
      int acknowledgedAtClose = writers.acknowledged.size();
      await().atMost(Duration.ofSeconds(10)) // the writers run on across the map change as well
          .until(() -> writers.acknowledged.size() >= acknowledgedAtClose + 30);
      writers.stop();
      org.slf4j.LoggerFactory.getLogger(GracefulLeaveTest.class).info("close() took {} ms; {} "
          + "QUORUM writes acknowledged, {} failed: {}", closeMillis, writers.acknowledged.size(),
          writers.failures.size(), writers.failures);

      await().atMost(Duration.ofSeconds(10)).until(() -> missingAtLeave.get() != null);
      assertThat(missingAtLeave.get()).as("keys l4 did not hold yet when l1's leave arrived "
          + "(close took %d ms; %d were missing at its start)", closeMillis, missingAtStart.size())
          .isEmpty();
      assertThat(closeMillis).as("close() ends when the pull is done, not at the leave timeout")
          .isLessThan(LEAVE_TIMEOUT.toMillis() - 5_000);
      // No write fails: from the start of its close() l1 refuses new forwarded writes (their
      // coordinators write through the next owner) and its leave waits for those it runs; a write
      // a coordinator sent l1 as a co-owner and that l1 had not acknowledged when its leave arrived
      // goes to the key's new owner (PartitionRoutingTest pins both rules). Before, this allowed 6
      // (a forward with an unknown outcome, or a QUORUM that counted l1 out); and before forwarded
      // writes ran during the wait at all, thousands failed with "the store of node 'l1' is closed".
      assertThat(writers.failures).as("QUORUM writes that failed during the leave (of %d)",
          writers.acknowledged.size() + writers.failures.size()).isEmpty();
      assertThat(writers.acknowledged).hasSizeGreaterThan(10);

      Placement three = Placement.of(List.of("l2", "l3", "l4"), 2);
      awaitMap(cluster, three);
      written.putAll(writers.acknowledged);
      assertEveryKeyReadable(cluster, written, ReadConcern.QUORUM);
    }
  }

  /**
   * The joiner, still pulling partitions it shares with g1, crashes; g1 then closes. Waiting for g4
   * cannot help (it is not connected), so close() does not wait for the leave timeout. Nor need it
   * wait until the failure detector removes g4: another co-owner of g1's partitions that gained some
   * in g4's join pulls them from every live peer, g4 included, until g4 is no longer live, but its
   * STATUS says once it no longer pulls from g1 (PartitionedEngineTest pins that; here the leave did
   * not wait for the removal before either). So: close() ends at most shortly after g4's removal,
   * and the survivors still serve every key written at QUORUM.
   */
  @Test
  void aLeavingNode_doesNotWaitForACoOwnerThatIsGone() throws Exception {
    try (TestCluster cluster = TestCluster.start("leave-gone", "g", 3, GracefulLeaveTest::slow)) {
      Map<String, String> written = load(cluster);
      AtomicLong g4RemovedAt = new AtomicLong();
      cluster.node("g1").store().cluster().addListener(e -> {
        if (e.member().nodeId().equals("g4") && e.type() == MembershipEvent.Type.REMOVED) {
          g4RemovedAt.compareAndSet(0, System.nanoTime());
        }
      });
      // Its own leave, cut off, cannot spread: do not let its close wait 30 s for it.
      TestCluster.Node joiner = cluster.startNode("g4", b -> b.leaveTimeout(Duration.ofSeconds(1)),
          cluster.node("g1").membershipAddress());
      Placement four = Placement.of(List.of("g1", "g2", "g3", "g4"), 2);
      awaitMap(cluster, four);
      List<String> shared = written.keySet().stream()
          .filter(k -> four.ownersOf(k).containsAll(List.of("g1", "g4"))).toList();
      assertThat(missing(ReplicaViews.of(joiner.store()), shared))
          .as("keys g4 has yet to pull when it crashes").isNotEmpty();
      // A crash: cut off for good, then stopped (its leave never arrives; the cut is not healed,
      // or ScaleCube, still stopping in the background, would announce the leave after all).
      cluster.network.partition(List.of("g4"), List.of("g1", "g2", "g3"));
      cluster.stop(joiner);

      long started = System.nanoTime();
      cluster.stop(cluster.node("g1"));
      long ended = System.nanoTime();
      long afterRemoval = (ended - Math.max(started, g4RemovedAt.get() == 0 ? ended
          : g4RemovedAt.get())) / 1_000_000;
      assertThat((ended - started) / 1_000_000).as("close() with the co-owner gone")
          .isLessThan(LEAVE_TIMEOUT.toMillis() / 2);
      assertThat(afterRemoval).as("ms close() took after g4 was removed (or after it started)")
          .isLessThan(3_000);

      // g4 stays in the map until the removal delay (so QUORUM of its partitions cannot be met);
      // every key still has a live owner among g2, g3 that serves it at ONE.
      assertEveryKeyReadable(cluster, written, ReadConcern.ONE);
    }
  }

  private static KvClusterBuilder slow(KvClusterBuilder b) {
    return b.replicationFactor(2)
        .antiEntropyInterval(Duration.ofMillis(200))
        .antiEntropyBytesPerSecond(128 * 1024)
        .maxBatchBytes(8 * 1024) // small pull answers, so the throttle paces the pull throughout
        .leaveTimeout(LEAVE_TIMEOUT);
  }

  /** Writes {@value #KEYS} keys of about 1 kB at QUORUM through every node, once all agree. */
  private static Map<String, String> load(TestCluster cluster) {
    List<String> ids = new ArrayList<>(cluster.ids());
    awaitMap(cluster, Placement.of(ids, 2));
    Map<String, String> written = new ConcurrentHashMap<>();
    List<TestCluster.Node> nodes = cluster.nodes();
    for (int i = 0; i < KEYS; i++) {
      String key = "leave:" + i;
      String value = "v" + i + ":" + new String(PADDING, StandardCharsets.US_ASCII);
      nodes.get(i % nodes.size()).store().put(key, value.getBytes(StandardCharsets.UTF_8), QUORUM);
      written.put(key, value);
    }
    return written;
  }

  /** Waits until every running node computes {@code expected} (a joiner: until it is in the map,
   * not until it pulled). */
  private static void awaitMap(TestCluster cluster, Placement expected) {
    await().atMost(Duration.ofSeconds(20)).until(() -> cluster.nodes().stream().allMatch(n ->
        KvCluster.node(n.store()).orElseThrow().partitionMapVersion() == expected.fingerprint()));
  }

  private static List<String> missing(ReplicaStore replica, List<String> keys) {
    return keys.stream().filter(k -> replica.mutation(k) == null).toList();
  }

  private static void assertEveryKeyReadable(TestCluster cluster, Map<String, String> written,
      ReadConcern concern) {
    await().atMost(Duration.ofSeconds(60)).until(() -> cluster.nodes().stream().allMatch(n ->
        KvCluster.node(n.store()).orElseThrow().pendingPartitions() == 0));
    ReadOptions options = ReadOptions.concern(concern);
    List<String> wrong = new ArrayList<>();
    for (Map.Entry<String, String> e : written.entrySet()) {
      for (TestCluster.Node n : cluster.nodes()) {
        Optional<String> got = n.store().getVersioned(e.getKey(), options)
            .map(Versioned::valueAsString);
        if (!got.equals(Optional.of(e.getValue()))) {
          wrong.add(e.getKey() + " through " + n.id() + ": " + got.map(v -> v.substring(0,
              Math.min(12, v.length()))));
        }
      }
    }
    assertThat(wrong).as("acknowledged QUORUM writes not read back at %s (of %d keys)", concern,
        written.size()).isEmpty();
  }

  /** One QUORUM writer per store, each writing its own new keys; records what was acknowledged. */
  private static final class Writers {
    final Map<String, String> acknowledged = new ConcurrentHashMap<>();
    final List<String> failures = new CopyOnWriteArrayList<>();
    private final AtomicBoolean stop = new AtomicBoolean();
    private final List<Thread> threads = new ArrayList<>();

    static Writers start(List<KvStore> stores) {
      Writers w = new Writers();
      for (int s = 0; s < stores.size(); s++) {
        KvStore store = stores.get(s);
        String prefix = "during:" + s + ":";
        Thread t = new Thread(() -> {
          for (int i = 0; !w.stop.get(); i++) {
            String key = prefix + i;
            String value = "w" + i;
            try {
              store.put(key, value.getBytes(StandardCharsets.UTF_8), QUORUM);
              w.acknowledged.put(key, value);
            } catch (RuntimeException ex) {
              w.failures.add(key + ": " + ex);
            }
          }
        }, "leave-writer-" + s);
        t.start();
        w.threads.add(t);
      }
      return w;
    }

    void stop() throws InterruptedException {
      stop.set(true);
      for (Thread t : threads) {
        t.join(15_000);
      }
    }
  }
}
