package io.kvstore.cluster;

import java.util.BitSet;
import java.util.Collection;
import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;
import java.util.Set;

/**
 * Partitioned mode: the partitions this node owns but has not yet pulled from its peers (its
 * <em>pending</em> partitions), and from which peers each is still to be pulled.
 *
 * <p>A partition becomes pending when this node gains it (it owns it under the new placement and
 * did not under the one before), and every owned partition is pending when the node enters
 * partitioned mode (it may have started empty). It is to be pulled from every live peer at that
 * moment, owner or not: the old owners hold its data, and so may a node a stale coordinator wrote
 * to. A pull round with a peer that ends with nothing more to move clears the partitions it covered
 * for that peer; a peer that is no longer live is dropped (it cannot be pulled; whatever it holds
 * reaches the owners by its own handoff if it comes back). A partition is pending while some peer
 * still has it to pull; a pending owner receives new writes at once but neither serves reads of the
 * partition nor decides conditional writes on it (see {@link PartitionRouter}).
 *
 * <p>Confined to the control thread; {@link #pending()} returns a copy for publishing.
 */
final class PendingPulls {
  private final Map<String, BitSet> toPull = new HashMap<>();

  /**
   * Marks partitions pending, to be pulled from each of {@code sources}.
   *
   * @param gained the partitions this node now owns and must pull
   * @param sources peer node ids (never this node)
   */
  void add(BitSet gained, Collection<String> sources) {
    if (gained.isEmpty()) {
      return;
    }
    for (String s : sources) {
      toPull.computeIfAbsent(s, k -> new BitSet(Placement.PARTITIONS)).or(gained);
    }
  }

  /** Keeps only partitions this node still owns (a partition lost again needs no pull). */
  void retainOwned(BitSet owned) {
    for (Iterator<BitSet> it = toPull.values().iterator(); it.hasNext(); ) {
      BitSet b = it.next();
      b.and(owned);
      if (b.isEmpty()) {
        it.remove();
      }
    }
  }

  /** Drops the peers that are not live any more. */
  void retainPeers(Set<String> live) {
    toPull.keySet().retainAll(live);
  }

  /** The partitions still to pull from {@code peer}: a copy, empty if none. */
  BitSet from(String peer) {
    BitSet b = toPull.get(peer);
    return b == null ? new BitSet(Placement.PARTITIONS) : (BitSet) b.clone();
  }

  /** A pull round with {@code peer} covering {@code partitions} ended with nothing more to move. */
  void pulled(String peer, BitSet partitions) {
    BitSet b = toPull.get(peer);
    if (b != null) {
      b.andNot(partitions);
      if (b.isEmpty()) {
        toPull.remove(peer);
      }
    }
  }

  /** Whether any partition is still to be pulled from {@code peer}. */
  boolean hasWork(String peer) {
    return toPull.containsKey(peer);
  }

  /** The pending partitions: those some peer still has to be pulled from. A fresh copy. */
  BitSet pending() {
    BitSet out = new BitSet(Placement.PARTITIONS);
    for (BitSet b : toPull.values()) {
      out.or(b);
    }
    return out;
  }

  /** Forgets everything (full replication: nothing is pending). */
  void clear() {
    toPull.clear();
  }

  @Override
  public String toString() {
    return "PendingPulls{" + pending().cardinality() + " pending, from " + toPull.keySet() + "}";
  }
}
