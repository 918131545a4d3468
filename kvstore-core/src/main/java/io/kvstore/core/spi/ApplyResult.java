package io.kvstore.core.spi;

/** What {@link ReplicaStore#apply(Mutation)} did with a mutation. */
public enum ApplyResult {
  /** The mutation was newer than what the store held and is now visible. */
  APPLIED,
  /**
   * The store already held this entry, a newer version, or a different entry of the same version that
   * wins the tie-break of {@link ReplicaStore#apply(Mutation)}; nothing changed (duplicates land here).
   */
  IGNORED,
  /** Refused: the writer's clock is further ahead of this node's than {@code maxClockDrift}. */
  REFUSED_CLOCK_DRIFT,
  /** Refused: the key or value breaks this store's limits. */
  REFUSED_INVALID,
  /** Refused: the store is read-only after a failed write or sync of its data directory. */
  REFUSED_READ_ONLY;

  /**
   * Whether the store holds this version or a newer one after the call (an acknowledgement may be
   * sent). After a tie-break the store may hold a different entry of this version, which every other
   * replica also ends up keeping.
   *
   * @return true for {@link #APPLIED} and {@link #IGNORED}
   */
  public boolean isHeld() {
    return this == APPLIED || this == IGNORED;
  }
}
