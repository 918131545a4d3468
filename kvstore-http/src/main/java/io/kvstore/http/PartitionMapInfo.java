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
 * {@code partitionCounts()}, {@code pendingPartitionsByNode()}, {@code shutdownBlocker()}).
 *
 * @param version the map version: equal on every node that computed the same map
 * @param replicationFactor owners per partition in the map
 * @param partitionsByNode partitions each node of the map owns, by node id (copied, order kept)
 * @param pendingByNode partitions each node still pulls (a pending owner), as far as this node
 *     knows: itself and the peers that reported it (copied)
 * @param safeToShutdown whether this node may be stopped now without losing data or making it
 *     unavailable ({@code ClusterNode.isSafeToShutdown()}); null when unknown
 * @param shutdownBlocker why not, when {@code safeToShutdown} is false; else null
 */
public record PartitionMapInfo(long version, int replicationFactor,
    Map<String, Integer> partitionsByNode, Map<String, Integer> pendingByNode,
    Boolean safeToShutdown, String shutdownBlocker) {
  /**
   * A map with nothing known about pending partitions or shutdown safety (shown as unknown).
   *
   * @param version the map version
   * @param replicationFactor owners per partition
   * @param partitionsByNode partitions per node
   */
  public PartitionMapInfo(long version, int replicationFactor,
      Map<String, Integer> partitionsByNode) {
    this(version, replicationFactor, partitionsByNode, Map.of(), null, null);
  }

  /**
   * Checks and copies.
   *
   * @param version the map version
   * @param replicationFactor owners per partition, at least 1
   * @param partitionsByNode partitions per node
   * @param pendingByNode pending partitions per node
   * @param safeToShutdown whether this node may be stopped, null when unknown
   * @param shutdownBlocker why not, or null
   */
  public PartitionMapInfo {
    if (replicationFactor < 1) {
      throw new IllegalArgumentException("replicationFactor must be at least 1, was "
          + replicationFactor);
    }
    partitionsByNode = Collections.unmodifiableMap(new LinkedHashMap<>(
        Objects.requireNonNull(partitionsByNode, "partitionsByNode")));
    pendingByNode = Collections.unmodifiableMap(new LinkedHashMap<>(
        Objects.requireNonNull(pendingByNode, "pendingByNode")));
  }

  /** The version as {@code /v1/cluster} shows it: 16 hex digits (a JSON number would lose bits). */
  String versionText() {
    return String.format("%016x", version);
  }
}
