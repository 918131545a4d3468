package io.kvstore.core.spi;

import io.kvstore.core.ChangeEvent;
import io.kvstore.core.Durability;
import io.kvstore.core.StorageException;
import io.kvstore.core.Version;

import java.util.BitSet;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;

/**
 * The side of a store that its {@link Replicator} sees: apply other nodes' mutations and read what
 * anti-entropy needs.
 *
 * <p>Every method is thread-safe and may be called from any thread, concurrently with local reads and
 * writes. {@link #apply(Mutation)} does not block (except that listeners registered without an executor
 * run on the calling thread). The scan methods walk the whole store: O(entries), without locking it.
 */
public interface ReplicaStore {
  /**
   * The node id this store stamps its writes with.
   *
   * @return the node id
   */
  String nodeId();

  /**
   * Applies another node's mutation with the last-writer-wins merge, as one atomic step per key.
   * Idempotent: applying it again, or applying older mutations later, changes nothing. Listeners see an
   * applied change once, with {@link ChangeEvent.Origin#REMOTE}. Never throws for a bad mutation: it
   * refuses it and counts it.
   *
   * <p>The higher {@link Version} wins. Two different entries of one version (possible only when a
   * node restarted empty under its old id reuses a timestamp, see {@link KeyVersion}) are ordered by
   * a fixed rule, so every replica keeps the same one whatever the order of delivery:
   * <ol>
   *   <li>a delete beats everything else;
   *   <li>then the later expiry wins, no expiry counting as the latest;
   *   <li>then the higher {@link Digest#valueHash(byte[]) value hash}, compared unsigned (an expired
   *       put keeps the hash of the value it dropped);
   *   <li>then a put's {@link Mutation#expired expired} form beats the put itself (what the
   *       maintenance sweep makes of it);
   *   <li>then the value bytes, compared unsigned lexicographically
   *       ({@link java.util.Arrays#compareUnsigned(byte[], byte[])}).
   * </ol>
   * Only identical entries compare equal, so the merge stays commutative, associative and idempotent;
   * an identical entry is a duplicate and is {@link ApplyResult#IGNORED}. Because the value hash
   * decides before the expired flag, a put beats another put exactly when its expired form beats the
   * other's expired form: the winner does not depend on which replica's sweep ran first.
   *
   * @param mutation the mutation
   * @return what happened; {@link ApplyResult#isHeld()} tells whether an acknowledgement is due
   */
  ApplyResult apply(Mutation mutation);

  /**
   * Completes when every mutation this store applied before the call is durable per its
   * {@link Durability} (for a memory-only store, or INTERVAL and NONE, at once). A replicator sends
   * the acknowledgement of a {@link #apply applied} or held mutation only after this completes, so a
   * QUORUM write under {@link Durability#SYNC} is on disk on a quorum. It fails with a
   * {@link StorageException} if the store turned read-only: then nothing may be acknowledged. It
   * never blocks; its completion runs on a storage thread, so dependent actions must not block either.
   *
   * @return the barrier
   */
  default CompletionStage<Void> whenDurable() {
    return CompletableFuture.completedFuture(null);
  }

  /**
   * A snapshot of the anti-entropy digest, maintained in O(1) per change by a store with a replicator
   * (a standalone store keeps none and computes it here, in O(entries), hashing every value).
   *
   * @return the digest
   */
  Digest digest();

  /**
   * The keys, versions and content fingerprints of the entries (live, deleted or expired) in the given
   * buckets: what anti-entropy compares ({@link AntiEntropy#compare}).
   *
   * @param buckets bucket indexes of {@link #digest()}
   * @return one entry per key held in those buckets, in no particular order
   */
  List<KeyVersion> keyVersions(BitSet buckets);

  /**
   * The current mutations (value or tombstone, with version and expiry) of the given keys; keys this
   * store does not hold are skipped.
   *
   * @param keys the keys
   * @return their mutations, ready to send
   */
  List<Mutation> mutations(Collection<String> keys);

  /**
   * The current mutation (value or tombstone, with version and expiry) of one key: what a replicator
   * sends for a key whose newest version a peer should get.
   *
   * @param key the key
   * @return its mutation, or null when this store does not hold the key
   */
  default Mutation mutation(String key) {
    List<Mutation> one = mutations(List.of(key));
    return one.isEmpty() ? null : one.get(0);
  }

  /**
   * Drops entries this node holds for partitions it no longer owns, once the engine has handed them
   * to their new owners: a local, silent removal, not a delete.
   *
   * <p>Each listed key is removed only if its current entry (value, tombstone or expired put) is
   * exactly the listed one: the same {@link KeyVersion#version() version} and the same
   * {@link KeyVersion#fingerprint() fingerprint} (a put and its expired form count as the same entry).
   * The check and the removal are one atomic step per key, so a write that arrived since the engine
   * read the entry (a newer version, or a different entry of the same version) is kept, whatever the
   * interleaving; keys not held are skipped. Nothing else happens: no tombstone, no
   * {@link ChangeEvent} to listeners, nothing replicated; the digest, the counts and the scans are as
   * if the store had never held the key. An evicted key can come back later like any key this store
   * never had (a mutation or a repair applies on an absent key), which is what a handback of the
   * partition needs.
   *
   * <p>With a data directory each removal is logged, so a restart does not bring the entry back; a
   * snapshot simply leaves evicted keys out. The eviction record itself is best effort: it is not
   * synced before this returns (not even under {@link Durability#SYNC}), and a store that turned
   * read-only still evicts in memory. If the record is lost (a power loss, a crash after a storage
   * failure), the entry comes back after the restart as data of a partition this node does not own;
   * the engine hands it off and evicts it again, which last-writer-wins makes harmless: every copy it
   * reaches already has that version or a newer one.
   *
   * <p>Thread-safe; does not block on disk; O(entries listed). A closed store evicts nothing. The
   * default implementation, for stores that cannot evict, removes nothing and returns 0.
   *
   * @param entries the keys and the exact entries to drop (as {@link #keyVersions} lists them, or
   *     {@link KeyVersion#of(Mutation)} of the mutations handed off)
   * @return how many keys were removed
   */
  default long evict(Collection<KeyVersion> entries) {
    return 0;
  }

  /**
   * Runs a write that a node which does not own the key forwarded here ({@link Router#forward}) as
   * this store's own local write: stamped, checked, applied, replicated at the request's concern. It
   * is never forwarded again, whatever this node's own view of the placement.
   *
   * <p>Runs until {@link Replicator#close()} has returned, even after the user closed the store: a
   * graceful leave waits for its peers inside {@code close()}, and the node is still an owner of its
   * keys meanwhile. After that it fails with {@link io.kvstore.core.StoreClosedException}.
   *
   * @param request the write
   * @return completes with the result, or fails with the exception the local write failed with
   */
  default java.util.concurrent.CompletableFuture<WriteResult> write(WriteRequest request) {
    return java.util.concurrent.CompletableFuture.failedFuture(
        new UnsupportedOperationException("this replica store runs no forwarded writes"));
  }

  /**
   * This store's own part of a cluster scan: its first {@code limit} live entries, in ascending key
   * order, whose keys start with {@code prefix} and sort after {@code startAfter}.
   *
   * @param prefix the prefix, "" for all keys
   * @param startAfter exclusive lower bound, or null
   * @param limit at most this many, at least 1
   * @return live mutations in key order
   */
  default List<Mutation> scanLocal(String prefix, String startAfter, int limit) {
    throw new UnsupportedOperationException("this replica store cannot scan");
  }

  /**
   * Listens to this store's own changes of keys starting with {@code prefix}, as
   * {@link io.kvstore.core.KvStore#addListener(String, io.kvstore.core.ChangeListener,
   * java.util.concurrent.Executor)} does: the replicator uses it to serve another node's
   * cluster-wide subscription.
   *
   * @param prefix the key prefix, empty for all
   * @param listener the listener
   * @param executor where it runs
   * @return the registration; close it to stop
   * @throws UnsupportedOperationException if this store cannot be listened to
   */
  default io.kvstore.core.Registration listen(String prefix, io.kvstore.core.ChangeListener listener,
      java.util.concurrent.Executor executor) {
    throw new UnsupportedOperationException("this replica store cannot be listened to");
  }
}
