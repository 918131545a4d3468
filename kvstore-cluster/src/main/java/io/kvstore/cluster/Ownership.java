package io.kvstore.cluster;

import java.util.BitSet;
import java.util.Collections;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;

/**
 * One node's view of a partitioned {@link Placement}, as its replication engine uses it: which
 * partitions it owns, which nodes share at least one partition with it, and the bucket masks of an
 * anti-entropy round. Immutable; the engine swaps it whole on {@link ReplicationEngine#setPlacement}.
 *
 * <p>Digest buckets nest in partitions: a key's bucket at {@code B >= }{@value Placement#PARTITIONS}
 * buckets (a power of two) is bits 40.. of its key hash masked to {@code B - 1}, its partition the
 * same bits masked to {@code 1023}, so bucket {@code b} holds only keys of partition
 * {@code b & 1023} ({@link #partitionOfBucket}).
 */
final class Ownership {
  static final int PARTITION_MASK = Placement.PARTITIONS - 1;

  final Placement placement;
  final String self;
  private final BitSet mine = new BitSet(Placement.PARTITIONS);
  private final Set<String> coOwners;

  Ownership(Placement placement, String self) {
    this.placement = Objects.requireNonNull(placement, "placement");
    this.self = Objects.requireNonNull(self, "self");
    Set<String> co = new TreeSet<>();
    for (int p : placement.partitionsOf(self)) {
      mine.set(p);
      co.addAll(placement.owners(p));
    }
    co.remove(self);
    this.coOwners = Collections.unmodifiableSet(co);
  }

  /** The partition a digest bucket belongs to (bucket counts of at least 1024 only). */
  static int partitionOfBucket(int bucket) {
    return bucket & PARTITION_MASK;
  }

  /** Whether this node owns a partition. */
  boolean ownsPartition(int partition) {
    return mine.get(partition);
  }

  /** The partitions this node owns: a fresh copy. */
  BitSet owned() {
    return (BitSet) mine.clone();
  }

  /** Whether this node owns the key's partition. */
  boolean ownsKey(String key) {
    return mine.get(Placement.partitionOf(key));
  }

  /** Whether {@code node} owns the key's partition, in this node's view. */
  boolean ownsKey(String node, String key) {
    return placement.owns(node, Placement.partitionOf(key));
  }

  /** The nodes (never this one) that own at least one partition this node owns. */
  Set<String> coOwners() {
    return coOwners;
  }

  /** The owners of a key's partition, in this node's view, heaviest first. */
  List<String> ownersOf(String key) {
    return placement.ownersOf(key);
  }

  /** The partitions {@code node} owns, as a set. */
  BitSet partitionsOf(String node) {
    BitSet out = new BitSet(Placement.PARTITIONS);
    for (int p : placement.partitionsOf(node)) {
      out.set(p);
    }
    return out;
  }

  /**
   * The buckets an ordinary round (not a pull, see {@link #pullMask}) this node starts with
   * {@code peer} compares: those of partitions both own (pushed and pulled), except those the peer
   * is pulling itself; and, for a handoff, the non-empty buckets of partitions the peer owns and
   * this node does not (pushed only), except those the peer is pulling itself.
   *
   * @param peer the peer's node id
   * @param myBuckets this node's digest
   * @param handoff whether to include the handoff buckets
   * @param peerPulls the partitions the peer reported pending (it pulls them from every live peer,
   *     this one included, so pushing them would only send their data twice; a handoff of them waits,
   *     see {@link #defersHandoff}); maybe empty
   */
  BitSet initiatorMask(String peer, long[] myBuckets, boolean handoff, BitSet peerPulls) {
    BitSet theirs = partitionsOf(peer);
    BitSet mask = new BitSet(myBuckets.length);
    for (int b = 0; b < myBuckets.length; b++) {
      int p = partitionOfBucket(b);
      if (theirs.get(p) && !peerPulls.get(p)
          && (mine.get(p) || (handoff && myBuckets[b] != 0))) {
        mask.set(b);
      }
    }
    return mask;
  }

  /**
   * The buckets of a pull round: those of the pulled partitions this node owns, nothing else. A
   * pending owner's rounds compare only what it pulls, so each is short (the co-owned partitions,
   * whose digests always differ under writes, would make every round list up to its budget and a
   * pull of a few partitions from six peers take six such rounds); the rest waits until it pulled
   * everything.
   */
  BitSet pullMask(int bucketCount, BitSet pull) {
    BitSet mask = new BitSet(bucketCount);
    for (int b = 0; b < bucketCount; b++) {
      int p = partitionOfBucket(b);
      if (pull.get(p) && mine.get(p)) {
        mask.set(b);
      }
    }
    return mask;
  }

  /**
   * Whether a handoff round with {@code peer} leaves out data it should hand over because the peer
   * pulls those partitions itself ({@link #initiatorMask}): then the handoff is not done, and a
   * later round, once the peer pulled them, compares them (moving only what its pull missed).
   */
  boolean defersHandoff(String peer, long[] myBuckets, BitSet peerPulls) {
    if (peerPulls.isEmpty()) {
      return false;
    }
    BitSet theirs = partitionsOf(peer);
    for (int b = 0; b < myBuckets.length; b++) {
      int p = partitionOfBucket(b);
      if (myBuckets[b] != 0 && peerPulls.get(p) && theirs.get(p) && !mine.get(p)) {
        return true;
      }
    }
    return false;
  }

  /**
   * The buckets this node answers for in a round {@code peer} started: of partitions this node owns,
   * those the peer owns too (in this node's view) and those the peer holds data in although it does
   * not own them (its handoff; a bucket's hash is 0 exactly when it holds nothing, up to a 2^-64
   * collision); plus every bucket of the partitions the peer asked to pull (answering a pull only
   * lists keys, whoever owns them).
   *
   * @param peer the initiator's node id
   * @param theirBuckets the initiator's digest
   * @param pull the partitions the peer pulls in this round, or null
   */
  BitSet responderMask(String peer, long[] theirBuckets, BitSet pull) {
    BitSet theirs = partitionsOf(peer);
    BitSet mask = new BitSet(theirBuckets.length);
    for (int b = 0; b < theirBuckets.length; b++) {
      int p = partitionOfBucket(b);
      if ((pull != null && pull.get(p))
          || (mine.get(p) && (theirs.get(p) || theirBuckets[b] != 0))) {
        mask.set(b);
      }
    }
    return mask;
  }

  @Override
  public String toString() {
    return "Ownership{" + self + " owns " + mine.cardinality() + " of " + Placement.PARTITIONS
        + " partitions, " + coOwners.size() + " co-owners, " + placement + "}";
  }
}
