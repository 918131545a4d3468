package io.kvstore.core;

/**
 * How many replicas (this node included) must hold a write before the write's future completes.
 *
 * <p>A durability promise, not linearizability: concurrent writers of one key still resolve by
 * last-writer-wins, and a write that times out is not rolled back (it is applied locally and may
 * still spread).
 */
public enum WriteConcern {
  /** Complete once the write is applied on this node. */
  ONE,
  /** Complete once a majority of the cluster's members hold the write. */
  QUORUM,
  /** Complete once every member of the cluster holds the write. */
  ALL;

  /**
   * Replicas needed, this node included.
   *
   * @param clusterSize members of the cluster, this node included (at least 1)
   * @return acknowledgements needed
   */
  public int requiredAcks(int clusterSize) {
    if (clusterSize < 1) {
      throw new IllegalArgumentException("cluster size must be >= 1, was " + clusterSize);
    }
    return switch (this) {
      case ONE -> 1;
      case QUORUM -> clusterSize / 2 + 1;
      case ALL -> clusterSize;
    };
  }
}
