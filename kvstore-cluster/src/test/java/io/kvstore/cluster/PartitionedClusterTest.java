package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.kvstore.core.KvStore;
import io.kvstore.core.ReadConcern;
import io.kvstore.core.ReadOptions;
import io.kvstore.core.ReplicaViews;
import io.kvstore.core.Versioned;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteOptions;
import io.kvstore.core.spi.Digest;
import io.kvstore.core.spi.ReplicaStore;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Partitioned mode end to end on four real nodes (Netty data plane, ScaleCube membership), rf 2:
 * writes through any node land on exactly their two owners and nowhere else, every key reads the
 * same through every node, conditional writes and deletes through non-owners are decided by the
 * owners, a scan through any node pages over the whole cluster, and a cluster-wide listener sees
 * every change once.
 */
@Timeout(value = 90, unit = TimeUnit.SECONDS)
class PartitionedClusterTest {
  private static final WriteOptions QUORUM = WriteOptions.concern(WriteConcern.QUORUM)
      .withTimeout(Duration.ofSeconds(10));

  @Test
  void keysLiveOnTheirOwnersOnly_andReadTheSameThroughEveryNode() {
    try (TestCluster cluster = TestCluster.start("partitioned", "q", 4,
        b -> b.replicationFactor(2))) {
      List<KvStore> stores = cluster.nodes().stream().map(TestCluster.Node::store).toList();
      long full = Placement.of(List.of("q1", "q2", "q3", "q4"), 2).fingerprint();
      await().atMost(Duration.ofSeconds(15)).until(() -> stores.stream().allMatch(s ->
          KvCluster.node(s).orElseThrow().partitionMapVersion() == full));
      Placement placement = Placement.of(List.of("q1", "q2", "q3", "q4"), 2);

      // A cluster-wide listener on q1 sees every key once; its local listener only q1's own keys.
      java.util.Map<String, List<String>> clusterEvents = new java.util.concurrent.ConcurrentHashMap<>();
      List<String> localEvents = new java.util.concurrent.CopyOnWriteArrayList<>();
      java.util.concurrent.ExecutorService events = java.util.concurrent.Executors
          .newSingleThreadExecutor();
      io.kvstore.core.Registration watch = stores.get(0).addClusterListener("item:",
          e -> clusterEvents.computeIfAbsent(e.key(), k -> new java.util.concurrent
              .CopyOnWriteArrayList<>()).add(e.valueAsString().orElse("-")), events);
      stores.get(0).addListener("item:", e -> localEvents.add(e.key()));
      await().atMost(Duration.ofSeconds(10)).until(() -> cluster.nodes().stream()
          .allMatch(n -> n.store().cluster().isReady()));

      TreeSet<String> keys = new TreeSet<>();
      for (int i = 0; i < 200; i++) {
        String key = "item:" + (10_000 + i);
        stores.get(i % 4).put(key, ("v" + i).getBytes(StandardCharsets.UTF_8), QUORUM);
        keys.add(key);
      }
      // Every key on exactly its two owners, no copy anywhere else.
      await().atMost(Duration.ofSeconds(20)).untilAsserted(() -> {
        for (TestCluster.Node n : cluster.nodes()) {
          ReplicaStore replica = ReplicaViews.of(n.store());
          BitSet all = new BitSet();
          all.set(0, replica.digest().bucketCount());
          List<String> held = replica.keyVersions(all).stream().map(kv -> kv.key()).toList();
          List<String> expected = new ArrayList<>();
          for (String k : keys) {
            if (placement.ownersOf(k).contains(n.id())) {
              expected.add(k);
            }
          }
          assertThat(held).as("keys held by %s", n.id()).containsExactlyInAnyOrderElementsOf(expected);
        }
      });
      await().atMost(Duration.ofSeconds(10)).untilAsserted(() ->
          assertThat(clusterEvents.keySet()).containsExactlyInAnyOrderElementsOf(keys));
      for (int i = 0; i < 200; i++) {
        assertThat(clusterEvents.get("item:" + (10_000 + i))).as("events of item:%d", 10_000 + i)
            .containsExactly("v" + i);
      }
      assertThat(localEvents).as("q1's own keys only").isNotEmpty().allSatisfy(k ->
          assertThat(placement.ownersOf(k)).contains("q1"));
      watch.close();
      events.shutdown();
      for (KvStore s : stores) {
        for (String k : List.of(keys.first(), "item:10077", keys.last())) {
          assertThat(s.getString(k)).as(k).isPresent();
          assertThat(s.getVersioned(k, ReadOptions.concern(ReadConcern.QUORUM)))
              .map(Versioned::valueAsString).isEqualTo(s.getString(k));
        }
      }

      // A scan through any node sees the whole cluster, page by page.
      List<String> scanned = new ArrayList<>();
      String after = null;
      while (true) {
        List<Versioned> page = stores.get(2).scan("item:", after, 30);
        if (page.isEmpty()) {
          break;
        }
        page.forEach(v -> scanned.add(v.key()));
        after = page.get(page.size() - 1).key();
      }
      assertThat(scanned).containsExactlyElementsOf(keys);

      // Conditions and deletes through a non-owner are decided by the owners.
      String key = keys.first();
      KvStore nonOwner = stores.stream().filter(s -> !placement.ownersOf(key)
          .contains(KvCluster.node(s).orElseThrow().nodeId())).findFirst().orElseThrow();
      assertThat(nonOwner.putIfAbsent(key, "again".getBytes(StandardCharsets.UTF_8))).isFalse();
      assertThat(nonOwner.delete(key, QUORUM)).isTrue();
      for (KvStore s : stores) {
        assertThat(s.getVersioned(key, ReadOptions.concern(ReadConcern.QUORUM))).isEmpty();
      }
      assertThat(Digest.bucketOf(key, 1024)).isEqualTo(Placement.partitionOf(key));
    }
  }

  /**
   * A fifth node joins a loaded four-node cluster (rf 2). A reader keeps reading every key at ONE
   * through every node, the joiner included once it has seen the whole cluster: no read misses a key
   * or returns a wrong value while the joiner pulls what it gains (a pending owner sends those reads
   * to the old owners). Afterwards nothing is pending, the joiner pulled data, every node says it
   * may be stopped, and the old owners evicted what moved (each key on exactly its two owners).
   */
  @Test
  void aJoiningNode_pullsWhatItGains_whileReadsThroughEveryNodeStayCorrect() throws Exception {
    try (TestCluster cluster = TestCluster.start("partitioned-join", "j", 4,
        b -> b.replicationFactor(2).antiEntropyInterval(Duration.ofMillis(200)))) {
      List<String> four = List.of("j1", "j2", "j3", "j4");
      long fourMap = Placement.of(four, 2).fingerprint();
      List<KvStore> stores = new java.util.concurrent.CopyOnWriteArrayList<>(
          cluster.nodes().stream().map(TestCluster.Node::store).toList());
      await().atMost(Duration.ofSeconds(15)).until(() -> stores.stream().allMatch(s -> {
        ClusterNode n = KvCluster.node(s).orElseThrow();
        return n.partitionMapVersion() == fourMap && n.pendingPartitions() == 0
            && n.isSafeToShutdown();
      }));
      java.util.Map<String, String> written = new java.util.TreeMap<>();
      for (int i = 0; i < 400; i++) {
        String key = "join:" + i;
        stores.get(i % 4).put(key, ("v" + i).getBytes(StandardCharsets.UTF_8), QUORUM);
        written.put(key, "v" + i);
      }

      java.util.concurrent.atomic.AtomicBoolean stop = new java.util.concurrent.atomic.AtomicBoolean();
      java.util.concurrent.atomic.AtomicLong reads = new java.util.concurrent.atomic.AtomicLong();
      List<String> wrong = new java.util.concurrent.CopyOnWriteArrayList<>();
      Thread reader = new Thread(() -> {
        while (!stop.get() && wrong.size() < 20) {
          for (java.util.Map.Entry<String, String> e : written.entrySet()) {
            KvStore s = stores.get((int) (reads.getAndIncrement() % stores.size()));
            try {
              java.util.Optional<String> got = s.getString(e.getKey());
              if (!got.equals(java.util.Optional.of(e.getValue()))) {
                wrong.add(KvCluster.node(s).orElseThrow().nodeId() + " read " + e.getKey()
                    + " as " + got);
              }
            } catch (RuntimeException ex) {
              wrong.add(KvCluster.node(s).orElseThrow().nodeId() + " failed to read " + e.getKey()
                  + ": " + ex.getMessage());
            }
          }
        }
      }, "join-reader");
      reader.start();
      try {
        TestCluster.Node joiner = cluster.startNode("j5",
            cluster.node("j1").membershipAddress());
        long fiveMap = Placement.of(List.of("j1", "j2", "j3", "j4", "j5"), 2).fingerprint();
        ClusterNode j5 = KvCluster.node(joiner.store()).orElseThrow();
        await().atMost(Duration.ofSeconds(20)).until(() -> j5.partitionMapVersion() == fiveMap
            && joiner.store().cluster().isReady());
        stores.add(joiner.store()); // reads through the joiner too, from the moment it is ready
        await().atMost(Duration.ofSeconds(30)).until(() -> stores.stream().allMatch(s -> {
          ClusterNode n = KvCluster.node(s).orElseThrow();
          return n.partitionMapVersion() == fiveMap && n.pendingPartitions() == 0
              && n.isSafeToShutdown();
        }));
        long target = reads.get() + 2L * written.size() * stores.size();
        await().atMost(Duration.ofSeconds(30)).until(() -> reads.get() >= target
            || !wrong.isEmpty());
        assertThat(j5.partitionCount()).isBetween(300, 520);
        assertThat(joiner.stats().antiEntropyKeysPulled()).as("keys the joiner pulled").isPositive();
        assertThat(j5.pendingPartitionsByNode()).containsOnlyKeys("j1", "j2", "j3", "j4", "j5")
            .allSatisfy((node, pending) -> assertThat(pending).isZero());
        // The old owners evict what moved: every key ends on exactly its two owners in the new map.
        Placement five = Placement.of(List.of("j1", "j2", "j3", "j4", "j5"), 2);
        await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> {
          for (TestCluster.Node n : cluster.nodes()) {
            ReplicaStore replica = ReplicaViews.of(n.store());
            BitSet all = new BitSet();
            all.set(0, replica.digest().bucketCount());
            List<String> held = replica.keyVersions(all).stream().map(kv -> kv.key()).toList();
            List<String> expected = written.keySet().stream()
                .filter(k -> five.ownersOf(k).contains(n.id())).toList();
            assertThat(held).as("keys held by %s", n.id())
                .containsExactlyInAnyOrderElementsOf(expected);
          }
        });
        long evicted = cluster.nodes().stream().mapToLong(n -> n.stats().keysEvicted()).sum();
        assertThat(evicted).as("keys evicted by the old owners").isPositive();
      } finally {
        stop.set(true);
        reader.join(10_000);
      }
      assertThat(wrong).as("reads that missed or were wrong (%d reads)", reads.get()).isEmpty();
    }
  }

  /**
   * At rf 1 a leave cannot hand data over (each partition has no other owner, and peers drop the
   * link on LEAVING), so a node holding data is never safe to stop, and says why; a node holding
   * none is. Two nodes, rf 1: both safe while empty; after one write only the key's owner is not.
   */
  @Test
  void atReplicationFactorOne_aNodeHoldingData_isNeverSafeToShutdown() {
    try (TestCluster cluster = TestCluster.start("partitioned-rf1", "r", 2,
        b -> b.replicationFactor(1).antiEntropyInterval(Duration.ofMillis(200)))) {
      long map = Placement.of(List.of("r1", "r2"), 1).fingerprint();
      List<ClusterNode> nodes = cluster.nodes().stream()
          .map(n -> KvCluster.node(n.store()).orElseThrow()).toList();
      await().atMost(Duration.ofSeconds(15)).until(() -> nodes.stream().allMatch(n ->
          n.partitionMapVersion() == map && n.pendingPartitions() == 0 && n.isSafeToShutdown()));
      assertThat(nodes).allSatisfy(n -> assertThat(n.shutdownBlocker()).isEmpty());

      String key = "rf1:key";
      cluster.node("r1").store().put(key, "v".getBytes(StandardCharsets.UTF_8), QUORUM);
      ClusterNode owner = nodes.stream().filter(n -> n.ownersOf(key).contains(n.nodeId()))
          .findFirst().orElseThrow();
      ClusterNode other = nodes.stream().filter(n -> n != owner).findFirst().orElseThrow();
      assertThat(owner.ownersOf(key)).containsExactly(owner.nodeId());
      assertThat(owner.isSafeToShutdown()).as("the owner of the only copy").isFalse();
      assertThat(owner.shutdownBlocker()).get().asString()
          .contains("replication factor 1", "partition " + Placement.partitionOf(key));
      // Steady: the non-owner forwarded or never held the key, so it stays safe; the owner never is.
      await().during(Duration.ofSeconds(1)).atMost(Duration.ofSeconds(5)).until(() ->
          other.isSafeToShutdown() && !owner.isSafeToShutdown());
      assertThat(other.shutdownBlocker()).isEmpty();

      // A delete leaves a tombstone, which is data too: losing it would lose the delete.
      cluster.node("r2").store().delete(key, QUORUM);
      assertThat(owner.isSafeToShutdown()).as("the owner of the only tombstone").isFalse();
    }
  }
}
