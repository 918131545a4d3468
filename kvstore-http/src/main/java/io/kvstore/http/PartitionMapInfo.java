package io.kvstore.http;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * What {@code /v1/cluster} shows of a node's partition map (docs/HTTP.md). kvstore-http does not
 * depend on kvstore-cluster, so the embedder supplies it through
 * {@link KvHttpServer.Builder#partitionMap}; the standalone server builds it from the node's
 * {@code ClusterNode} ({@code partitionMapVersion()}, {@code replicationFactor()},
 * {@code partitionCounts()}).
 *
 * @param version the map version: equal on every node that computed the same map
 * @param replicationFactor owners per partition in the map
 * @param partitionsByNode partitions each node of the map owns, by node id (copied, order kept)
 */
public record PartitionMapInfo(long version, int replicationFactor,
    Map<String, Integer> partitionsByNode) {
  /**
   * Checks and copies.
   *
   * @param version the map version
   * @param replicationFactor owners per partition, at least 1
   * @param partitionsByNode partitions per node
   */
  public PartitionMapInfo {
    if (replicationFactor < 1) {
      throw new IllegalArgumentException("replicationFactor must be at least 1, was "
          + replicationFactor);
    }
    partitionsByNode = Collections.unmodifiableMap(new LinkedHashMap<>(
        Objects.requireNonNull(partitionsByNode, "partitionsByNode")));
  }

  /** The version as {@code /v1/cluster} shows it: 16 hex digits (a JSON number would lose bits). */
  String versionText() {
    return String.format("%016x", version);
  }
}
