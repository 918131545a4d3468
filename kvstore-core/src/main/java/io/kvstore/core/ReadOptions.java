package io.kvstore.core;

import java.time.Duration;
import java.util.Objects;

/**
 * Options of one read: its {@link ReadConcern} and how long a read that has to ask other nodes may
 * take. Immutable; start from {@link #defaults()} or {@link #concern(ReadConcern)}.
 */
public final class ReadOptions {
  private static final ReadOptions DEFAULTS = new ReadOptions(ReadConcern.ONE, null);

  private final ReadConcern concern;
  private final Duration timeout;

  private ReadOptions(ReadConcern concern, Duration timeout) {
    this.concern = concern;
    this.timeout = timeout;
  }

  /**
   * {@link ReadConcern#ONE}, the store's {@link KvStoreConfig#writeTimeout() request timeout}.
   *
   * @return the defaults
   */
  public static ReadOptions defaults() {
    return DEFAULTS;
  }

  /**
   * The defaults with another concern.
   *
   * @param concern the concern
   * @return the options
   */
  public static ReadOptions concern(ReadConcern concern) {
    return DEFAULTS.withConcern(concern);
  }

  /**
   * A copy with another concern.
   *
   * @param concern the concern
   * @return the options
   */
  public ReadOptions withConcern(ReadConcern concern) {
    return new ReadOptions(Objects.requireNonNull(concern, "concern"), timeout);
  }

  /**
   * A copy with a timeout for reads that ask other nodes (a local read never waits).
   *
   * @param timeout positive, whole milliseconds
   * @return the options
   */
  public ReadOptions withTimeout(Duration timeout) {
    if (timeout == null || timeout.isNegative() || timeout.isZero()) {
      throw new IllegalArgumentException("timeout must be positive, was " + timeout);
    }
    KvStoreConfig.requireMillis("timeout", timeout);
    return new ReadOptions(concern, timeout);
  }

  /**
   * The concern.
   *
   * @return never null
   */
  public ReadConcern concern() {
    return concern;
  }

  /**
   * The timeout.
   *
   * @return the timeout, or null for the store's write timeout
   */
  public Duration timeout() {
    return timeout;
  }

  @Override
  public String toString() {
    return "ReadOptions{" + concern + (timeout != null ? ", timeout=" + timeout : "") + "}";
  }
}
