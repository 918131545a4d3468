package io.kvstore.core.spi;

import io.kvstore.core.ReadConcern;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;

/**
 * Where keys live, for a {@link Replicator} that partitions them (a replication factor below the node
 * count): a store asks {@link #isLocal} before every read and write of a key; a key it does not own
 * is never written or read locally, but forwarded to an owner ({@link #forward}) or read from the
 * owners ({@link #read}). A replicator without one ({@link Replicator#router()} null) holds every key
 * on every node.
 *
 * <p>All methods are called on the caller's thread and must not block; failures go into the futures.
 */
public interface Router {
  /**
   * Whether this node owns the key under the current placement: writes of it are applied here first
   * and reads at {@link ReadConcern#ONE} are served from here. Cheap; called on every operation.
   *
   * @param key the key
   * @return true if this node is one of the key's owners
   */
  boolean isLocal(String key);

  /**
   * Whether a read at {@link ReadConcern#ONE} of the key, and a conditional write of it, may be
   * decided on this node's own copy: it owns the key and holds all of its partition's data. A new
   * owner still pulling a partition it just gained (a <em>pending</em> owner) takes writes of it at
   * once but sends those reads and conditional writes to another owner. Defaults to
   * {@link #isLocal}.
   *
   * @param key the key
   * @return whether this node's copy is authoritative for reads
   */
  default boolean isReadLocal(String key) {
    return isLocal(key);
  }

  /**
   * Hands a write of a key this node does not own to one of its owners, which runs it as its own
   * local write and replicates it; the owner never forwards it again.
   *
   * @param request the validated write
   * @return completes with the owner's result, or fails with what the owner's write failed with
   *     (a {@link io.kvstore.core.ConditionFailedException}, a
   *     {@link io.kvstore.core.WriteConcernException}, ...), or with a
   *     {@link io.kvstore.core.WriteConcernException} when no owner answers in time
   */
  CompletableFuture<WriteResult> forward(WriteRequest request);

  /**
   * Reads a key from its owners (this node among them if it owns the key): at
   * {@link ReadConcern#ONE} one owner, at {@link ReadConcern#QUORUM} a majority of them; the highest
   * version wins and owners that answered with an older one are repaired.
   *
   * @param key the key
   * @param concern how many owners must answer
   * @param timeout how long to wait for them
   * @return the newest mutation (value, tombstone or expired put), or null when no owner that
   *     answered holds the key
   */
  CompletableFuture<Mutation> read(String key, ReadConcern concern, Duration timeout);

  /**
   * Whether keys are split among nodes (partitioned mode): then a store's own map holds only part of
   * them and a scan must ask the cluster ({@link #scan}).
   *
   * @return true in partitioned mode
   */
  default boolean isPartitioned() {
    return false;
  }

  /**
   * A scan over the whole cluster (partitioned mode): the first {@code limit} live entries, in
   * ascending key order, whose keys start with {@code prefix} and sort after {@code startAfter},
   * gathered from every reachable node, the highest version of each key kept.
   *
   * @param prefix the prefix, "" for all keys
   * @param startAfter exclusive lower bound, or null
   * @param limit at most this many (already validated)
   * @param timeout how long to wait for the nodes
   * @return completes with the live mutations in key order, at most {@code limit}
   */
  default CompletableFuture<java.util.List<Mutation>> scan(String prefix, String startAfter,
      int limit, Duration timeout) {
    return CompletableFuture.failedFuture(new UnsupportedOperationException("no cluster scan"));
  }

  /**
   * Subscribes to changes of keys starting with {@code prefix} that other nodes apply and this one
   * does not (partitioned mode: keys it does not own), for a cluster-wide listener. The sink may be
   * called with the same change more than once (several owners apply it), on any thread; the store
   * filters duplicates. The default, for a router under which every node applies every change,
   * delivers nothing.
   *
   * @param prefix the key prefix, empty for all
   * @param sink receives the owners' mutations
   * @return the registration; close it to stop
   */
  default io.kvstore.core.Registration subscribe(String prefix,
      java.util.function.Consumer<Mutation> sink) {
    return () -> { };
  }
}
