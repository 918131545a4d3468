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
 * <p><b>Streaming:</b> a partition that this node held nothing of when it became pending is
 * <em>streamed</em>: the peer of a pull round sends its entries at once instead of listing its keys
 * for a compare and a pull (see {@link AntiEntropyRound}), which is what a joining node needs, and
 * moves each entry once. It is asked of every source until a completed round delivered entries of
 * the partition (a peer that holds none of it, such as a non-owner, streams nothing and does not
 * count: this node's first maps may come from a partial view, so it cannot tell the old owners in
 * advance); the remaining sources are then pulled the ordinary way (their differences only): every
 * live peer is still pulled, for the writes a stale coordinator sent elsewhere. A partition this
 * node already held data of (a restart with its data, a partition handed back) is never streamed:
 * it moves only what differs.
 *
 * <p>Confined to the control thread; {@link #pending()} returns a copy for publishing.
 */
final class PendingPulls {
  private final Map<String, BitSet> toPull = new HashMap<>();
  /** Per peer, the pending partitions to stream from it (a subset of its {@link #toPull}). */
  private final Map<String, BitSet> toStream = new HashMap<>();

  /**
   * Marks partitions pending, to be pulled from each of {@code sources}, and those of {@code empty}
   * (this node holds nothing of them) to be streamed.
   *
   * @param gained the partitions this node now owns and must pull
   * @param sources peer node ids (never this node)
   * @param empty the partitions this node holds no entry of
   */
  void add(BitSet gained, Collection<String> sources, BitSet empty) {
    if (gained.isEmpty()) {
      return;
    }
    BitSet streamable = (BitSet) gained.clone();
    streamable.and(empty);
    for (String s : sources) {
      toPull.computeIfAbsent(s, k -> new BitSet(Placement.PARTITIONS)).or(gained);
      if (!streamable.isEmpty()) {
        toStream.computeIfAbsent(s, k -> new BitSet(Placement.PARTITIONS)).or(streamable);
      }
    }
  }

  /** Keeps only partitions this node still owns (a partition lost again needs no pull). */
  void retainOwned(BitSet owned) {
    retain(toPull, owned);
    retain(toStream, owned);
  }

  private static void retain(Map<String, BitSet> m, BitSet owned) {
    for (Iterator<BitSet> it = m.values().iterator(); it.hasNext(); ) {
      BitSet b = it.next();
      b.and(owned);
      if (b.isEmpty()) {
        it.remove();
      }
    }
  }

  /**
   * Drops the peers that are not live any more. A partition that was to stream from a dropped peer
   * is pulled from the others the ordinary way.
   */
  void retainPeers(Set<String> live) {
    toPull.keySet().retainAll(live);
    toStream.keySet().retainAll(live);
  }

  /** The partitions to stream from {@code peer} (a subset of {@link #from}): a copy, maybe empty. */
  BitSet streamFrom(String peer) {
    BitSet b = toStream.get(peer);
    return b == null ? new BitSet(Placement.PARTITIONS) : (BitSet) b.clone();
  }

  /** The partitions still to pull from {@code peer}: a copy, empty if none. */
  BitSet from(String peer) {
    BitSet b = toPull.get(peer);
    return b == null ? new BitSet(Placement.PARTITIONS) : (BitSet) b.clone();
  }

  /**
   * A pull round with {@code peer} covering {@code partitions} ended with nothing more to move, and
   * delivered entries of {@code streamed} by stream: those are streamed for good (the other
   * sources are pulled the ordinary way).
   */
  void pulled(String peer, BitSet partitions, BitSet streamed) {
    BitSet b = toPull.get(peer);
    if (b != null) {
      b.andNot(partitions);
      if (b.isEmpty()) {
        toPull.remove(peer);
      }
    }
    BitSet st = toStream.get(peer);
    if (st != null) {
      st.andNot(partitions);
      if (st.isEmpty()) {
        toStream.remove(peer);
      }
    }
    BitSet done = (BitSet) streamed.clone();
    done.and(partitions);
    if (!done.isEmpty()) {
      retain(toStream, complement(done)); // the other sources: differences only
    }
  }

  private static BitSet complement(BitSet b) {
    BitSet c = new BitSet(Placement.PARTITIONS);
    c.set(0, Placement.PARTITIONS);
    c.andNot(b);
    return c;
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
    toStream.clear();
  }

  @Override
  public String toString() {
    return "PendingPulls{" + pending().cardinality() + " pending, from " + toPull.keySet() + "}";
  }
}
