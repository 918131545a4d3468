package io.kvstore.core;

import java.time.Duration;
import java.util.Objects;

/**
 * Options of one write: write concern, its timeout, a time to live, and a condition. Immutable; each
 * {@code with…}/{@code if…} method returns a new instance.
 *
 * <pre>{@code
 * store.put("session:42", bytes, WriteOptions.defaults().withTtl(Duration.ofMinutes(30)));
 * store.put("config", bytes, WriteOptions.concern(WriteConcern.QUORUM).ifVersion(seen));
 * }</pre>
 *
 * <p>Conditions are checked atomically against this node's copy of the key. Across nodes they are not
 * linearizable: two nodes may each accept a conditional write, and last-writer-wins then keeps one.
 */
public final class WriteOptions {
  private static final WriteOptions DEFAULTS = new WriteOptions(null, null, null, false, null);

  /** A condition on the key's current state. */
  enum Condition { NONE, IF_ABSENT, IF_VERSION }

  private final WriteConcern concern;
  private final Duration timeout;
  private final Duration ttl;
  private final boolean ifAbsent;
  private final Version ifVersion;

  private WriteOptions(WriteConcern concern, Duration timeout, Duration ttl, boolean ifAbsent,
      Version ifVersion) {
    this.concern = concern;
    this.timeout = timeout;
    this.ttl = ttl;
    this.ifAbsent = ifAbsent;
    this.ifVersion = ifVersion;
  }

  /**
   * The store's defaults: its default write concern and timeout, no TTL, no condition.
   *
   * @return the default options
   */
  public static WriteOptions defaults() {
    return DEFAULTS;
  }

  /**
   * Defaults with a write concern.
   *
   * @param concern the write concern
   * @return new options
   */
  public static WriteOptions concern(WriteConcern concern) {
    return DEFAULTS.withConcern(concern);
  }

  /**
   * With a write concern.
   *
   * @param concern how many replicas must hold the write
   * @return new options
   */
  public WriteOptions withConcern(WriteConcern concern) {
    return new WriteOptions(Objects.requireNonNull(concern, "concern"), timeout, ttl, ifAbsent,
        ifVersion);
  }

  /**
   * With a timeout for the write concern.
   *
   * @param timeout how long to wait for acknowledgements; positive
   * @return new options
   */
  public WriteOptions withTimeout(Duration timeout) {
    if (timeout == null || timeout.isNegative() || timeout.isZero()) {
      throw new IllegalArgumentException("timeout must be positive, was " + timeout);
    }
    KvStoreConfig.requireMillis("timeout", timeout);
    return new WriteOptions(concern, timeout, ttl, ifAbsent, ifVersion);
  }

  /**
   * With a time to live: the value reads as absent once it has passed. Ignored by deletes.
   *
   * @param ttl positive, at least one millisecond
   * @return new options
   */
  public WriteOptions withTtl(Duration ttl) {
    if (ttl == null || ttl.compareTo(Duration.ofMillis(1)) < 0) {
      throw new IllegalArgumentException("ttl must be at least 1 ms, was " + ttl);
    }
    KvStoreConfig.requireMillis("ttl", ttl);
    return new WriteOptions(concern, timeout, ttl, ifAbsent, ifVersion);
  }

  /**
   * Write only if the key has no live value on this node; otherwise the write fails with
   * {@link ConditionFailedException}.
   *
   * @return new options
   */
  public WriteOptions ifAbsent() {
    return new WriteOptions(concern, timeout, ttl, true, null);
  }

  /**
   * Write only if the key's live value on this node has exactly this version (optimistic
   * concurrency); otherwise the write fails with {@link ConditionFailedException}.
   *
   * @param expected the version read earlier
   * @return new options
   */
  public WriteOptions ifVersion(Version expected) {
    return new WriteOptions(concern, timeout, ttl, false, Objects.requireNonNull(expected, "expected"));
  }

  /**
   * The write concern, or null for the store's default.
   *
   * @return the concern or null
   */
  public WriteConcern concern() {
    return concern;
  }

  /**
   * The timeout, or null for the store's default.
   *
   * @return the timeout or null
   */
  public Duration timeout() {
    return timeout;
  }

  /**
   * The time to live, or null for none.
   *
   * @return the ttl or null
   */
  public Duration ttl() {
    return ttl;
  }

  /**
   * Whether the write requires the key to be absent.
   *
   * @return true for create-only writes
   */
  public boolean isIfAbsent() {
    return ifAbsent;
  }

  /**
   * The version the write requires, or null.
   *
   * @return the expected version or null
   */
  public Version expectedVersion() {
    return ifVersion;
  }

  Condition condition() {
    return ifAbsent ? Condition.IF_ABSENT : ifVersion != null ? Condition.IF_VERSION : Condition.NONE;
  }

  @Override
  public String toString() {
    return "WriteOptions{concern=" + concern + ", timeout=" + timeout + ", ttl=" + ttl
        + (ifAbsent ? ", ifAbsent" : "") + (ifVersion != null ? ", ifVersion=" + ifVersion : "") + "}";
  }
}
