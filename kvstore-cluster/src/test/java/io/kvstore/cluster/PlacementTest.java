package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.kvstore.core.spi.Digest;
import io.kvstore.core.testing.Seeds;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.stream.LongStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Placement properties over seeded random clusters (3 to 16 nodes with random ids, rf 1 to 5):
 * balance, movement on a join and a leave, determinism, and full replication when rf ≥ N. Replay one
 * case with {@code -Dkvstore.seed=N}.
 */
@Timeout(60)
class PlacementTest {
  /**
   * Replicas moved by a join or leave, as a multiple of the minimum. The target was 1.1x;
   * with loads bounded to a few percent of rf/N, 300 seeds (3-16 nodes) reached 1.25x at rf 3,
   * 1.31x at rf 2 and 1.49x at rf 1 (-Dkvstore.seeds=300; docs/CLUSTER.md).
   */
  private static double maxMovement(int rf) {
    return rf == 1 ? 1.6 : 1.35;
  }

  static LongStream seeds() {
    return Seeds.seeds(14_000, 40);
  }

  /** A random cluster: node ids of the shapes users give (names, host:port, uuids). */
  private static List<String> nodes(Random r, int n) {
    Set<String> ids = new HashSet<>();
    while (ids.size() < n) {
      ids.add(switch (r.nextInt(3)) {
        case 0 -> "node-" + r.nextInt(1000);
        case 1 -> "10.0." + r.nextInt(256) + "." + r.nextInt(256) + ":7100";
        default -> new java.util.UUID(r.nextLong(), r.nextLong()).toString();
      });
    }
    return new ArrayList<>(ids);
  }

  /** Replicas that are on a node in {@code after} but were not on it in {@code before}. */
  private static int replicasMoved(Placement before, Placement after) {
    int moved = 0;
    for (int p = 0; p < Placement.PARTITIONS; p++) {
      Set<String> was = new HashSet<>(before.owners(p));
      for (String o : after.owners(p)) {
        moved += was.contains(o) ? 0 : 1;
      }
    }
    return moved;
  }

  @ParameterizedTest(name = "seed={0}")
  @MethodSource("seeds")
  void everyNode_ownsRfOverNOfThePartitions_within10Percent(long seed) {
    Random r = new Random(seed);
    int n = 3 + r.nextInt(14);
    int rf = 1 + r.nextInt(Math.min(5, n - 1));
    Placement map = Placement.of(nodes(r, n), rf);
    double expected = (double) rf * Placement.PARTITIONS / n;
    System.out.printf("%s: %d nodes, rf %d: loads %d..%d, share %.1f%n", Seeds.describe(seed), n, rf,
        map.nodes().stream().mapToInt(map::partitionCount).min().orElseThrow(),
        map.nodes().stream().mapToInt(map::partitionCount).max().orElseThrow(), expected);
    for (String node : map.nodes()) {
      assertThat((double) map.partitionCount(node)).as("%s: %s of %d nodes, rf %d",
          Seeds.describe(seed), node, n, rf).isBetween(expected * 0.9, expected * 1.1);
    }
    for (int p = 0; p < Placement.PARTITIONS; p++) {
      List<String> owners = map.owners(p);
      if (owners.size() != rf || new HashSet<>(owners).size() != rf
          || !map.nodes().containsAll(owners)) {
        assertThat(owners).as("%s: partition %d", Seeds.describe(seed), p)
            .hasSize(rf).doesNotHaveDuplicates().isSubsetOf(map.nodes());
      }
    }
  }

  /**
   * A join must give the new node its share; every other move is overhead. The minimum is the new
   * node's share (rf * P / (N + 1)). Plain HRW moves exactly the new node's own (random) load;
   * bounded loads buy balance with extra moves (see {@link Placement}): the worst of these seeds is
   * printed, and it must stay under {@link #maxMovement}.
   */
  @ParameterizedTest(name = "seed={0}")
  @MethodSource("seeds")
  void aJoin_movesLittleMoreThanTheNewNodesShare(long seed) {
    Random r = new Random(seed);
    int n = 3 + r.nextInt(14);
    int rf = 1 + r.nextInt(Math.min(5, n - 1));
    List<String> nodes = nodes(r, n + 1);
    String joiner = nodes.remove(n);
    Placement before = Placement.of(nodes, rf);
    List<String> grown = new ArrayList<>(nodes);
    grown.add(joiner);
    Placement after = Placement.of(grown, rf);
    double minimum = (double) rf * Placement.PARTITIONS / (n + 1);
    System.out.printf("%s: join %d -> %d nodes, rf %d: %.3fx the minimum%n", Seeds.describe(seed),
        n, n + 1, rf, replicasMoved(before, after) / minimum);
    assertThat(replicasMoved(before, after) / minimum)
        .as("%s: %d -> %d nodes, rf %d", Seeds.describe(seed), n, n + 1, rf)
        .isLessThanOrEqualTo(maxMovement(rf));
    assertThat(after.partitionCount(joiner)).isPositive();
  }

  @ParameterizedTest(name = "seed={0}")
  @MethodSource("seeds")
  void aLeave_movesLittleMoreThanTheLeaversShare(long seed) {
    Random r = new Random(seed);
    int n = 4 + r.nextInt(13);
    int rf = 1 + r.nextInt(Math.min(5, n - 2));
    List<String> nodes = nodes(r, n);
    Placement before = Placement.of(nodes, rf);
    String leaver = nodes.get(r.nextInt(n));
    List<String> shrunk = new ArrayList<>(nodes);
    shrunk.remove(leaver);
    Placement after = Placement.of(shrunk, rf);
    int minimum = before.partitionCount(leaver);
    System.out.printf("%s: leave %d -> %d nodes, rf %d: %.3fx the minimum%n", Seeds.describe(seed),
        n, n - 1, rf, (double) replicasMoved(before, after) / minimum);
    assertThat((double) replicasMoved(before, after) / minimum)
        .as("%s: %d -> %d nodes, rf %d", Seeds.describe(seed), n, n - 1, rf)
        .isLessThanOrEqualTo(maxMovement(rf));
    for (int p = 0; p < Placement.PARTITIONS; p++) {
      if (after.owners(p).contains(leaver)) {
        assertThat(after.owners(p)).as("%s: partition %d", Seeds.describe(seed), p)
            .doesNotContain(leaver);
      }
    }
  }

  @ParameterizedTest(name = "seed={0}")
  @MethodSource("seeds")
  void everyNode_computesTheSameMap_whateverOrderItLearnedTheMembersIn(long seed) {
    Random r = new Random(seed);
    List<String> nodes = nodes(r, 3 + r.nextInt(14));
    int rf = 1 + r.nextInt(4);
    Placement a = Placement.of(nodes, rf);
    List<String> shuffled = new ArrayList<>(nodes);
    Collections.shuffle(shuffled, r);
    shuffled.add(shuffled.get(0)); // a duplicate changes nothing
    Placement b = Placement.of(shuffled, rf);
    assertThat(b.fingerprint()).as(Seeds.describe(seed)).isEqualTo(a.fingerprint());
    for (int p = 0; p < Placement.PARTITIONS; p++) {
      if (!b.owners(p).equals(a.owners(p))) {
        assertThat(b.owners(p)).as("%s: partition %d", Seeds.describe(seed), p)
            .containsExactlyElementsOf(a.owners(p));
      }
    }
  }

  @Test
  void theMap_isPinned_soAChangeOfTheHashOrTheAllocationIsNoticed() {
    // Nodes of different versions must compute the same map: a change of the weights or the
    // allocation order is a protocol change (bump the data-plane protocol version with it).
    Placement map = Placement.of(List.of("node-1", "node-2", "node-3", "node-4", "node-5",
        "node-6"), 3);
    assertThat(map.owners(0)).containsExactly("node-2", "node-6", "node-1");
    assertThat(map.owners(1023)).containsExactly("node-4", "node-5", "node-6");
    assertThat(Long.toHexString(map.fingerprint())).isEqualTo("6fa72ca880dadf1f");
  }

  @Test
  void rfAtLeastTheNodeCount_isFullReplication() {
    Placement map = Placement.of(List.of("a", "b", "c"), 5);
    assertThat(map.isFullReplication()).isTrue();
    assertThat(map.replicationFactor()).isEqualTo(3);
    for (int p = 0; p < Placement.PARTITIONS; p++) {
      assertThat(map.owners(p)).containsExactlyInAnyOrder("a", "b", "c");
    }
    assertThat(Placement.of(List.of("a", "b", "c", "d"), 3).isFullReplication()).isFalse();
  }

  @Test
  void aKeysPartition_isItsDigestBucket_atThePartitionCount() {
    for (String key : List.of("a", "user/42", "ключ", "x".repeat(1000))) {
      assertThat(Placement.partitionOf(key)).isEqualTo(Digest.bucketOf(key, Placement.PARTITIONS));
      // A digest with more buckets splits along partition lines.
      assertThat(Digest.bucketOf(key, 4096) % Placement.PARTITIONS)
          .isEqualTo(Placement.partitionOf(key));
    }
  }

  @Test
  void noNodes_orRfBelowOne_isRefused() {
    assertThatThrownBy(() -> Placement.of(List.of(), 3))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("at least one node");
    assertThatThrownBy(() -> Placement.of(List.of("a"), 0))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("replicationFactor");
  }
}
