package io.kvstore.core;

import java.util.BitSet;
import java.util.Collection;
import java.util.List;

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
   * @param mutation the mutation
   * @return what happened; {@link ApplyResult#isHeld()} tells whether an acknowledgement is due
   */
  ApplyResult apply(Mutation mutation);

  /**
   * A snapshot of the anti-entropy digest, maintained in O(1) per change by a store with a replicator
   * (a standalone store keeps none and computes it here, in O(entries)).
   *
   * @return the digest
   */
  Digest digest();

  /**
   * The keys and versions (live, deleted or expired) in the given buckets.
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
}
