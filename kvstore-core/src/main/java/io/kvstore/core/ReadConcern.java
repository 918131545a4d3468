package io.kvstore.core;

/**
 * How many replicas of a key a read consults.
 *
 * <p>With full replication (the default) every node holds every key, and {@link #ONE} reads this
 * node. In partitioned mode (a replication factor below the node count) a key lives on its owners:
 * {@link #ONE} reads this node if it owns the key, else one owner; {@link #QUORUM} reads a majority of
 * the owners and returns the highest version, repairing owners that answered with an older one.
 */
public enum ReadConcern {
  /** One replica: this node when it holds the key, else one of its owners. */
  ONE,
  /** A majority of the key's replicas; the highest version wins, stale replicas are repaired. */
  QUORUM;

  /**
   * Replicas that must answer, this node included when it is one.
   *
   * @param replicas replicas of the key (at least 1)
   * @return answers needed
   */
  public int requiredReplies(int replicas) {
    if (replicas < 1) {
      throw new IllegalArgumentException("replicas must be >= 1, was " + replicas);
    }
    return this == ONE ? 1 : replicas / 2 + 1;
  }
}
