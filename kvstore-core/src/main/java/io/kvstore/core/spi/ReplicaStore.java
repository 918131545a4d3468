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
   * Runs a write that a node which does not own the key forwarded here ({@link Router#forward}) as
   * this store's own local write: stamped, checked, applied, replicated at the request's concern. It
   * is never forwarded again, whatever this node's own view of the placement.
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
}
