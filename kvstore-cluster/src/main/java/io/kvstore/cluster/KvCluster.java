package io.kvstore.cluster;

import io.kvstore.core.KvStore;
import java.util.Objects;
import java.util.Optional;

/**
 * Entry point of kvstore-cluster: a {@link KvStore} whose writes reach every node of a cluster.
 *
 * <pre>{@code
 * KvStore store = KvCluster.builder()
 *     .nodeId("n1")
 *     .host("10.0.0.5")
 *     .membershipPort(7946)
 *     .dataPort(7947)
 *     .seeds("10.0.0.6:7946", "10.0.0.7:7946")
 *     .clusterName("orders")
 *     .store(b -> b.maxValueBytes(64 * 1024))
 *     .build();
 * }</pre>
 *
 * <p>See {@link ClusterNode} for what a node shows beyond the store, the package documentation for
 * what replication does, and {@link KvClusterConfig} for every
 * setting and its default.
 */
public final class KvCluster {
  private KvCluster() {}

  /**
   * A builder with documented defaults.
   *
   * @return a new builder
   */
  public static KvClusterBuilder builder() {
    return new KvClusterBuilder();
  }

  /**
   * The cluster node of a store built by {@link KvClusterBuilder#build()}: its addresses, counters,
   * settings and keyring rotation.
   *
   * @param store the store
   * @return its node, or empty for a standalone store or one replicated by something else
   */
  public static Optional<ClusterNode> node(KvStore store) {
    Objects.requireNonNull(store, "store");
    ClusterReplicator r = ClusterReplicator.owning(store.cluster());
    return r == null ? Optional.empty() : Optional.of(r.handle());
  }

  /**
   * The replication counters of a clustered store.
   *
   * @param store the store
   * @return a snapshot, or empty when the store is not replicated by kvstore-cluster
   */
  public static Optional<ReplicationStats> stats(KvStore store) {
    return node(store).map(ClusterNode::stats);
  }
}
