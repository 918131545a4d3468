package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import io.kvstore.core.Durability;
import io.kvstore.core.KvStore;
import io.kvstore.core.StorageStatus;
import io.kvstore.core.Version;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteOptions;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** Nodes with data directories: the whole cluster stops and comes back with its data. */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class DurableClusterTest {
  @TempDir
  Path tmp;

  @Test
  void when_wholeClusterRestarts_then_everyQuorumWriteUnderSyncIsOnEveryNodeAtOnce() {
    int keys = 300;
    List<Version> versions = new ArrayList<>();
    try (TestCluster cluster = TestCluster.startEach("durable", "d", 3, b -> b,
        id -> b -> b.store(s -> s.dataDir(tmp.resolve(id)).durability(Durability.SYNC)))) {
      KvStore d1 = cluster.node("d1").store();
      List<CompletableFuture<Version>> writes = new ArrayList<>();
      for (int i = 0; i < keys; i++) {
        writes.add(d1.putAsync("k" + i, ("v" + i).getBytes(StandardCharsets.UTF_8),
            WriteOptions.concern(WriteConcern.QUORUM)));
      }
      writes.forEach(f -> versions.add(f.join()));
      d1.delete("k0", WriteOptions.concern(WriteConcern.QUORUM));
      StorageStatus st = d1.storage();
      assertThat(st.isDurable()).isTrue();
      assertThat(st.durability()).isEqualTo(Durability.SYNC);
      assertThat(st.syncs()).isPositive();
    }
    // Every node is back with the data before it even talks to the others.
    TestCluster again = new TestCluster("durable", b -> b);
    try (again) {
      for (String id : List.of("d1", "d2", "d3")) {
        TestCluster.Node n = again.startNode(id,
            b -> b.store(s -> s.dataDir(tmp.resolve(id)).durability(Durability.SYNC)));
        assertThat(n.store().getString("k0")).as("deleted on %s", id).isEmpty();
        // d1 holds every write; a QUORUM write is on at least one of d2, d3 as well.
        if (id.equals("d1")) {
          for (int i = 1; i < keys; i++) {
            assertThat(n.store().getVersioned("k" + i).orElseThrow().version())
                .isEqualTo(versions.get(i));
          }
        }
      }
      for (int i = 1; i < keys; i++) {
        String key = "k" + i;
        long holders = again.nodes().stream()
            .filter(n -> n.store().getString(key).isPresent()).count();
        assertThat(holders).as("replicas of %s after the restart", key).isGreaterThanOrEqualTo(2);
      }
    }
  }
}
