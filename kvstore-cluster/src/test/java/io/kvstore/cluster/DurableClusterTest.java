package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.kvstore.core.spi.ApplyResult;
import io.kvstore.core.ClusterView;
import io.kvstore.core.spi.Digest;
import io.kvstore.core.Durability;
import io.kvstore.core.spi.KeyVersion;
import io.kvstore.core.KvStore;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.ReplicaStore;
import io.kvstore.core.spi.Replicator;
import io.kvstore.core.StorageException;
import io.kvstore.core.StorageStatus;
import io.kvstore.core.Version;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteConcernException;
import io.kvstore.core.WriteOptions;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Nodes with data directories: a replica acknowledges only what is durable, and the whole cluster
 * stops and comes back with its data.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class DurableClusterTest {
  @TempDir
  Path tmp;

  /** A replica store whose durability the test decides: {@code whenDurable()} returns the gate. */
  private static final class GatedStore implements ReplicaStore {
    private final ReplicaStore delegate;
    volatile CompletableFuture<Void> gate = new CompletableFuture<>();

    GatedStore(ReplicaStore delegate) {
      this.delegate = delegate;
    }

    @Override
    public String nodeId() {
      return delegate.nodeId();
    }

    @Override
    public ApplyResult apply(Mutation mutation) {
      return delegate.apply(mutation);
    }

    @Override
    public CompletionStage<Void> whenDurable() {
      return gate;
    }

    @Override
    public Digest digest() {
      return delegate.digest();
    }

    @Override
    public List<KeyVersion> keyVersions(BitSet buckets) {
      return delegate.keyVersions(buckets);
    }

    @Override
    public List<Mutation> mutations(Collection<String> keys) {
      return delegate.mutations(keys);
    }
  }

  /**
   * Regression of issue 12: the data plane acknowledged a batch right after {@code apply}, before the
   * replica's sync, so a QUORUM write could be acknowledged by a replica that then lost it.
   */
  @Test
  void when_replicaIsNotYetDurable_then_quorumWaitsForIt_andAFailedSyncAcksNothing()
      throws Exception {
    try (TestCluster cluster = TestCluster.start("gated", "g", 1)) {
      ClusterReplicator inner = KvCluster.builder().nodeId("g2").clusterName("gated")
          .host(TestCluster.HOST).membershipPort(0).dataPort(0)
          .seeds(cluster.node("g1").membershipAddress()).buildClusterReplicator();
      AtomicReference<GatedStore> gated = new AtomicReference<>();
      Replicator wrapper = new Replicator() {
        @Override
        public void start(ReplicaStore store) {
          gated.set(new GatedStore(store));
          inner.start(gated.get());
        }

        @Override
        public CompletableFuture<Void> replicate(Mutation m, WriteConcern c, Duration t) {
          return inner.replicate(m, c, t);
        }

        @Override
        public ClusterView clusterView() {
          return inner.clusterView();
        }

        @Override
        public void close() {
          inner.close();
        }
      };
      try (KvStore g2 = KvStore.builder().nodeId("g2").replicator(wrapper).build()) {
        KvStore g1 = cluster.node("g1").store();
        await().atMost(Duration.ofSeconds(30)).until(() -> g1.cluster().members().size() == 2
            && inner.stats().connectedPeers() == 1);
        WriteOptions quorum = WriteOptions.concern(WriteConcern.QUORUM)
            .withTimeout(Duration.ofSeconds(20));
        CompletableFuture<Version> write = g1.putAsync("k", new byte[] {1}, quorum);
        await().atMost(Duration.ofSeconds(10)).until(() -> g2.getString("k").isPresent());
        // Applied on g2 but not durable there: the write must still wait.
        await().during(Duration.ofMillis(500)).atMost(Duration.ofSeconds(2))
            .until(() -> !write.isDone());
        gated.get().gate.complete(null);
        assertThat(write.get(10, TimeUnit.SECONDS)).isNotNull();

        gated.get().gate = new CompletableFuture<>();
        CompletableFuture<Version> second = g1.putAsync("k2", new byte[] {2},
            WriteOptions.concern(WriteConcern.QUORUM).withTimeout(Duration.ofSeconds(3)));
        await().atMost(Duration.ofSeconds(10)).until(() -> g2.getString("k2").isPresent());
        gated.get().gate.completeExceptionally(new StorageException("injected: sync failed"));
        assertThatThrownBy(() -> second.get(10, TimeUnit.SECONDS))
            .hasCauseInstanceOf(WriteConcernException.class);
      }
    }
  }

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
