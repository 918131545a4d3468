package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.kvstore.core.KvStore;
import io.kvstore.core.StoreClosedException;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteOptions;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Starting, running alone, failing to start, and closing. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class LifecycleTest {
  private static KvClusterBuilder builder(String id) {
    return KvCluster.builder().nodeId(id).clusterName("lifecycle").host(TestCluster.HOST)
        .membershipPort(0).dataPort(0);
  }

  @Test
  void singleNodeWithoutSeeds_isReadyAtOnce_andEveryConcernIsMetAlone() {
    try (KvStore store = builder("solo").store(b -> b.maxValueBytes(1000)).build()) {
      assertThat(store.cluster().isReady()).isTrue();
      assertThat(store.cluster().members()).hasSize(1);
      assertThat(store.config().nodeId()).isEqualTo("solo");
      assertThat(store.config().maxValueBytes()).isEqualTo(1000);
      store.put("k", "v".getBytes(StandardCharsets.UTF_8), WriteOptions.concern(WriteConcern.ALL));
      assertThat(store.getString("k")).hasValue("v");
    }
  }

  @Test
  void busyDataPort_failsTheBuildNamingThePort() throws IOException {
    try (ServerSocket busy = new ServerSocket(0, 1, InetAddress.getByName(TestCluster.HOST))) {
      int port = busy.getLocalPort();
      assertThatThrownBy(() -> builder("busy-data").dataPort(port).build())
          .isInstanceOf(IllegalStateException.class)
          .hasMessageContaining("data plane").hasMessageContaining(String.valueOf(port));
    }
  }

  @Test
  void busyMembershipPort_failsTheBuild_andReleasesTheDataPort() throws IOException {
    int dataPort;
    try (ServerSocket probe = new ServerSocket(0, 1, InetAddress.getByName(TestCluster.HOST))) {
      dataPort = probe.getLocalPort();
    }
    try (ServerSocket busy = new ServerSocket(0, 1, InetAddress.getByName(TestCluster.HOST))) {
      int port = busy.getLocalPort();
      assertThatThrownBy(() -> builder("busy-membership").membershipPort(port).dataPort(dataPort)
          .build())
          .isInstanceOf(IllegalStateException.class).hasMessageContaining("membership");
    }
    // The failed start released what it had bound.
    try (KvStore store = builder("retry").dataPort(dataPort).build()) {
      assertThat(KvCluster.node(store).orElseThrow().dataAddress()).endsWith(":" + dataPort);
    }
  }

  @Test
  void aReplicatorServesOneStore() {
    ClusterReplicator replicator = builder("once").buildClusterReplicator();
    try (KvStore first = KvStore.builder().nodeId("once").replicator(replicator).build()) {
      assertThatThrownBy(() -> KvStore.builder().nodeId("once").replicator(replicator).build())
          .isInstanceOf(IllegalStateException.class).hasMessageContaining("already started");
      assertThat(first.cluster().isReady()).isTrue();
    }
  }

  @Test
  void close_isIdempotent_andLaterWritesFail() {
    KvStore store = builder("closer").build();
    ClusterReplicator replicator = java.util.Objects.requireNonNull(ClusterReplicator.owning(store.cluster()));
    store.close();
    store.close();
    replicator.close();
    assertThatThrownBy(() -> store.put("k", "v")).isInstanceOf(StoreClosedException.class);
  }
}
