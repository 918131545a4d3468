package io.kvstore.cluster;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * What a user of a clustered store may see and do of its node beyond the {@link io.kvstore.core.KvStore}
 * API: its addresses, its replication counters, its settings and keyring rotation. Obtain it with
 * {@link KvCluster#node(io.kvstore.core.KvStore)}. Readiness and membership are on the store's own
 * {@link io.kvstore.core.KvStore#cluster() cluster view}.
 *
 * <p>A narrow handle over the node's replicator, which stays internal: nothing here starts, stops or
 * feeds replication (the store does that). Thread-safe; every method is cheap and does not block.
 */
public final class ClusterNode {
  private final ClusterReplicator replicator;

  ClusterNode(ClusterReplicator replicator) {
    this.replicator = Objects.requireNonNull(replicator, "replicator");
  }

  /**
   * This node's id.
   *
   * @return the node id
   */
  public String nodeId() {
    return replicator.config().nodeId();
  }

  /**
   * {@code host:port} of this node's membership endpoint, with the port actually bound. Give it to
   * other nodes as a seed.
   *
   * @return the advertised membership address
   */
  public String membershipAddress() {
    return replicator.membershipAddress();
  }

  /**
   * {@code host:port} of this node's data plane, with the port actually bound.
   *
   * @return the advertised data-plane address
   */
  public String dataAddress() {
    return replicator.dataAddress();
  }

  /**
   * A snapshot of this node's replication counters.
   *
   * @return the counters
   */
  public ReplicationStats stats() {
    return replicator.stats();
  }

  /**
   * The settings this node runs with.
   *
   * @return the config
   */
  public KvClusterConfig config() {
    return replicator.config();
  }

  /**
   * The keyring this node currently authenticates with, null for an open cluster.
   *
   * @return the current keyring, or null
   */
  public ClusterKeyring keyring() {
    return replicator.keyring();
  }

  /**
   * Replaces this node's keyring while it runs, for rotating the cluster secret without downtime
   * (see {@link ClusterKeyring}). Takes effect at once: new membership messages and connections use
   * the new primary key; messages and frames authenticated with a key no longer in the keyring are
   * refused, which closes the data-plane connections that used it (they reconnect with the current
   * key and resend what was not acknowledged).
   *
   * @param newKeyring the new keyring
   * @throws IllegalStateException if this node was started without a keyring (an open node cannot
   *     become authenticated while it runs: restart it with one)
   */
  public void updateKeyring(ClusterKeyring newKeyring) {
    replicator.updateKeyring(newKeyring);
  }

  /**
   * How many of the {@code 1024} partitions this node owns in its current partition map: all of them
   * under full replication (no replication factor, or one at or above the number of nodes), about
   * {@code 1024 × rf / N} in partitioned mode. See docs/CLUSTER.md, "Partitioned mode".
   *
   * @return 1 to 1024
   */
  public int partitionCount() {
    return replicator.placement().partitionCount(nodeId());
  }

  /**
   * How many partitions each node of this node's partition map owns, by node id in ascending
   * order. The map is computed over the placement node set, which keeps a node removed without a
   * graceful leave until the removal delay has passed, so it may list a node that
   * {@link io.kvstore.core.ClusterView#members()} no longer shows.
   *
   * @return node id to partition count, unmodifiable
   */
  public Map<String, Integer> partitionCounts() {
    Placement p = replicator.placement();
    Map<String, Integer> out = new LinkedHashMap<>();
    for (String n : p.nodes()) {
      out.put(n, p.partitionCount(n));
    }
    return Collections.unmodifiableMap(out);
  }

  /**
   * The version of this node's partition map: a hash of the placement node set and the replication
   * factor, so every node that agrees on them shows the same value, and a change of the set changes
   * it. Compare it across nodes to see that they agree; it is not ordered (a set that returns to an
   * earlier value returns to the earlier version).
   *
   * @return the map version
   */
  public long partitionMapVersion() {
    return replicator.placement().fingerprint();
  }

  /**
   * Owners per partition in this node's current map: the configured replication factor capped at
   * the size of the placement node set, which is that size under full replication (the configured
   * value is {@link KvClusterConfig#replicationFactor()}).
   *
   * @return at least 1
   */
  public int replicationFactor() {
    return replicator.placement().replicationFactor();
  }

  /**
   * How many of the partitions this node owns it is still pulling from its peers (it gained them in
   * a map change, or it just started): it takes writes of them but sends their reads at ONE and
   * their conditional writes to other owners until the pull is done. 0 under full replication. See
   * docs/CLUSTER.md, "Rebalancing".
   *
   * @return 0 to {@link #partitionCount()}
   */
  public int pendingPartitions() {
    return replicator.pendingPartitions();
  }

  /**
   * Pending partitions per node: this node's, and each connected peer's as it last reported it.
   *
   * @return node id to its pending partition count, in node id order, unmodifiable
   */
  public Map<String, Integer> pendingPartitionsByNode() {
    return Collections.unmodifiableMap(replicator.pendingByNode());
  }

  /**
   * Whether stopping this node now (a crash, a restart, a scale-down) keeps every key available
   * and loses no acknowledged write: this node pulls nothing, its writes to peers are acknowledged,
   * data it holds for partitions it no longer owns is handed off, and every other owner of each of
   * its partitions is connected, uses the same partition map and is not pulling that partition.
   * Under full replication: another node is connected and the fan-out is acknowledged. For a rolling
   * restart, wait for this on the next node before stopping it. See {@link #shutdownBlocker()}.
   *
   * @return true when the node may be stopped
   */
  public boolean isSafeToShutdown() {
    return replicator.shutdownBlocker() == null;
  }

  /**
   * What makes {@link #isSafeToShutdown()} false right now, for an operator or a log line.
   *
   * @return the first reason found, or empty when it is safe
   */
  public java.util.Optional<String> shutdownBlocker() {
    return java.util.Optional.ofNullable(replicator.shutdownBlocker());
  }

  /**
   * The node ids owning {@code key}'s partition in this node's current partition map, in preference
   * order (the first is the partition's preferred coordinator, and the first reachable one is where
   * this node forwards a write or a read at {@code ONE} of a key it does not own). This node serves
   * the key itself exactly when it is in the list.
   *
   * <p>In partitioned mode the list has {@link #replicationFactor()} entries. Under full replication
   * (no replication factor, or one at or above the node count) every node of the map owns every
   * partition, so the list is every node of the map, ordered by the same rendezvous weights; it
   * always contains this node. The map is computed over the placement node set, which keeps a node
   * removed without a graceful leave until the removal delay has passed, so the list may name a node
   * that {@link io.kvstore.core.ClusterView#members()} no longer shows (see
   * {@link #partitionCounts()}). The key is not validated: any string has a partition.
   *
   * @param key the key
   * @return its owners, at least one, unmodifiable
   */
  public List<String> ownersOf(String key) {
    Objects.requireNonNull(key, "key");
    return replicator.placement().ownersOf(key);
  }

  @Override
  public String toString() {
    return "ClusterNode[" + nodeId() + ", membership " + membershipAddress() + ", data "
        + dataAddress() + "]";
  }
}
