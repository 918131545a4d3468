package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.kvstore.core.MembershipEvent;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The placement node set on a real 4-node cluster (rf 2, removal delay 2 s): every node agrees on
 * the partition map version; a graceful leave changes it at once (well before ScaleCube's REMOVED);
 * a crash changes it only once the removal delay has passed after the node was removed.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class PlacementNodesClusterTest {
  private static final Logger log = LoggerFactory.getLogger(PlacementNodesClusterTest.class);
  private static final Duration DELAY = Duration.ofSeconds(2);

  private static long versionOf(String... nodes) {
    return Placement.of(Set.of(nodes), 2).fingerprint();
  }

  private static void assertAllAt(TestCluster cluster, long version) {
    for (TestCluster.Node n : cluster.nodes()) {
      assertThat(KvCluster.node(n.store()).orElseThrow().partitionMapVersion())
          .as("map version on %s", n.id()).isEqualTo(version);
    }
  }

  @Test
  void gracefulLeave_changesEveryMapAtOnce_andACrash_onlyAfterTheRemovalDelay()
      throws InterruptedException {
    try (TestCluster cluster = TestCluster.start("nodeset", "p", 4,
        b -> b.replicationFactor(2).removalDelay(DELAY))) {
      await().atMost(Duration.ofSeconds(10))
          .untilAsserted(() -> assertAllAt(cluster, versionOf("p1", "p2", "p3", "p4")));
      ClusterNode p1 = KvCluster.node(cluster.node("p1").store()).orElseThrow();
      assertThat(p1.replicationFactor()).isEqualTo(2);
      Map<String, Integer> counts = p1.partitionCounts();
      assertThat(counts.keySet()).containsExactly("p1", "p2", "p3", "p4");
      assertThat(counts.values().stream().mapToInt(Integer::intValue).sum())
          .isEqualTo(2 * Placement.PARTITIONS);
      assertThat(p1.partitionCount()).isEqualTo(counts.get("p1")).isBetween(480, 544);

      // Graceful leave: LEAVING arrives within a gossip round or two; REMOVED takes the suspicion
      // timeout (seconds), so a map that waited for REMOVED plus the delay would miss this budget.
      // close() blocks up to leaveTimeout (2 s here) while the leave spreads: run it aside and time
      // the maps from its start.
      AtomicLong removedAt = new AtomicLong();
      long stopped = System.nanoTime();
      TestCluster.Node p4 = cluster.node("p4");
      Thread closer = new Thread(() -> cluster.stop(p4), "stop-p4");
      closer.start();
      await().atMost(Duration.ofSeconds(3)).untilAsserted(() -> {
        for (String id : List.of("p1", "p2", "p3")) {
          assertThat(KvCluster.node(cluster.node(id).store()).orElseThrow().partitionMapVersion())
              .as("map version on %s", id).isEqualTo(versionOf("p1", "p2", "p3"));
        }
      });
      log.info("graceful leave reached every map after {} ms", (System.nanoTime() - stopped)
          / 1_000_000);
      closer.join(10_000);
      assertThat(p1.partitionCounts()).doesNotContainKey("p4");

      // Crash: p3 is REMOVED by the failure detector but keeps its partitions for the delay.
      cluster.node("p1").store().cluster().addListener(e -> {
        if (e.type() == MembershipEvent.Type.REMOVED && e.member().nodeId().equals("p3")) {
          removedAt.compareAndSet(0, System.nanoTime());
        }
      });
      // A stop without a leave: cut p3 off for good, then close it, so its leave never arrives
      // (TestCluster.crash heals at once, and ScaleCube's leave, finishing in the background, then
      // often still gets through: a graceful leave in disguise).
      // (p4 too: its ScaleCube may still be finishing its own leave and would relay the gossip.)
      cluster.network.partition(List.of("p3"), List.of("p1", "p2", "p4"));
      cluster.stop(cluster.node("p3"));
      await().atMost(Duration.ofSeconds(15)).until(() -> removedAt.get() != 0);
      assertThat(cluster.node("p1").memberIds()).doesNotContain("p3");
      long threeNodes = versionOf("p1", "p2", "p3");
      // Within the delay nothing moves, though the member list no longer shows p3.
      await().pollDelay(Duration.ofMillis(1_200)).atMost(Duration.ofSeconds(2))
          .untilAsserted(() -> assertAllAt(cluster, threeNodes));
      assertThat(p1.partitionCounts()).containsKey("p3");
      await().atMost(Duration.ofSeconds(5))
          .untilAsserted(() -> assertAllAt(cluster, versionOf("p1", "p2")));
      long afterRemoval = (System.nanoTime() - removedAt.get()) / 1_000_000;
      log.info("crash reached the maps {} ms after REMOVED (delay {})", afterRemoval, DELAY);
      assertThat(afterRemoval).isGreaterThanOrEqualTo(DELAY.toMillis() - 300);
      assertThat(p1.partitionCount()).isEqualTo(Placement.PARTITIONS);
      assertThat(p1.partitionCounts()).containsOnlyKeys(List.of("p1", "p2"));
    }
  }
}
