package io.kvstore.core;

/**
 * Too few replicas acknowledged a write within its timeout.
 *
 * <p>The write is not rolled back: it is applied on this node and on the replicas that acknowledged,
 * and anti-entropy may still spread it to all. Retrying the same write is safe (it makes a new version
 * of the same value); a retry after a concurrent write by someone else may overwrite theirs.
 */
public final class WriteConcernException extends KvStoreException {
  private static final long serialVersionUID = 1L;

  /** The concern asked for. */
  private final WriteConcern concern;
  /** Replicas needed, this node included. */
  private final int required;
  /** Replicas that acknowledged in time, this node included. */
  private final int acknowledged;

  /**
   * The write concern was not met.
   *
   * @param concern the concern asked for
   * @param required replicas needed, this node included
   * @param acknowledged replicas that held the write in time, this node included
   * @param detail why, for the message (for example the timeout)
   */
  public WriteConcernException(WriteConcern concern, int required, int acknowledged, String detail) {
    super(concern + " needs " + required + " replica(s), " + acknowledged + " acknowledged"
        + (detail == null || detail.isEmpty() ? "" : " (" + detail + ")")
        + "; the write is applied on this node and may still spread to the others");
    this.concern = concern;
    this.required = required;
    this.acknowledged = acknowledged;
  }

  /**
   * The concern asked for.
   *
   * @return the write concern
   */
  public WriteConcern concern() {
    return concern;
  }

  /**
   * Replicas needed.
   *
   * @return the number, this node included
   */
  public int required() {
    return required;
  }

  /**
   * Replicas that acknowledged in time.
   *
   * @return the number, this node included
   */
  public int acknowledged() {
    return acknowledged;
  }
}
