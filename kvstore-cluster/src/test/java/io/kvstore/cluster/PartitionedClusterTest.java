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
 * owners, and a scan through any node pages over the whole cluster.
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
}
