package io.kvstore.cluster;

import io.kvstore.core.ReplicaViews;
import io.kvstore.core.KvStore;
import io.kvstore.core.spi.ReplicaStore;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.awaitility.Awaitility;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The figure for docs/BENCHMARKS.md: three nodes in one JVM, a partition {1} | {2, 3} during which
 * each side writes 50,000 keys the other lacks (100,000 divergent keys, 100-byte values), then the
 * heal: time until membership re-merges, and from then until every replica's digest is identical.
 * Runs only with the chaos profile:
 * {@code ./mvnw -B -pl kvstore-cluster -am verify -Pchaos -Dtest=PartitionHealMeasurement
 * -Dsurefire.failIfNoSpecifiedTests=false}; the figures are logged and asserted against the targets.
 */
@Tag("chaos")
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class PartitionHealMeasurement {
  private static final Logger log = LoggerFactory.getLogger(PartitionHealMeasurement.class);
  private static final int KEYS_PER_SIDE = 50_000;

  @Test
  void partitionWith100kDivergentKeys_healsToIdenticalReplicasWithinFiveSecondsOfRemerge() {
    try (TestCluster cluster = TestCluster.start("heal", "h", 3)) {
      List<String> ids = List.copyOf(cluster.ids());
      cluster.network.partition(List.of(ids.get(0)), List.of(ids.get(1), ids.get(2)));
      Awaitility.await().atMost(Duration.ofSeconds(30)).until(() ->
          cluster.node(ids.get(0)).store().cluster().members().size() == 1);
      byte[] value = new byte[100];
      KvStore alone = cluster.node(ids.get(0)).store();
      KvStore pair = cluster.node(ids.get(1)).store();
      for (int i = 0; i < KEYS_PER_SIDE; i++) {
        value[0] = (byte) i;
        alone.put("left:" + i, value);
        pair.put("right:" + i, value);
      }
      long heal = System.nanoTime();
      cluster.network.heal();
      cluster.awaitFullMembership(Duration.ofSeconds(60));
      long remerged = System.nanoTime();
      Awaitility.await().atMost(Duration.ofSeconds(120)).pollInterval(Duration.ofMillis(50))
          .until(() -> {
            var first = ReplicaViews.of(alone).digest();
            return cluster.nodes().stream()
                .allMatch(n -> ReplicaViews.of(n.store()).digest().equals(first));
          });
      long identical = System.nanoTime();
      long remergeMs = (remerged - heal) / 1_000_000;
      long convergeMs = (identical - remerged) / 1_000_000;
      log.info("partition heal with {} divergent keys: membership re-merged {} ms after the heal, "
          + "replicas identical {} ms after that (load {})", 2 * KEYS_PER_SIDE, remergeMs,
          convergeMs, loadAverage());
      for (TestCluster.Node n : cluster.nodes()) {
        if (n.store().size() != 2L * KEYS_PER_SIDE) {
          throw new AssertionError(n.id() + " holds " + n.store().size() + " keys");
        }
      }
      if (convergeMs > 5_000) {
        throw new AssertionError("replicas identical only " + convergeMs
            + " ms after membership re-merged; target 5,000 ms");
      }
    }
  }

  private static String loadAverage() {
    try {
      return new String(java.nio.file.Files.readAllBytes(java.nio.file.Path.of("/proc/loadavg")),
          StandardCharsets.US_ASCII).trim();
    } catch (java.io.IOException e) {
      return "unknown";
    }
  }
}
