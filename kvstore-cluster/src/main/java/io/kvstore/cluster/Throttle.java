package io.kvstore.cluster;

import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;

/**
 * A byte-rate limit for anti-entropy transfers (a token bucket that never blocks): each transfer
 * reserves its bytes and is told how long to wait before the next one, so the average rate stays
 * at most {@code bytesPerSecond} with bursts of up to one second's worth. One per engine, shared by
 * its rounds. Thread-safe.
 */
final class Throttle {
  private final long bytesPerSecond;
  private final LongSupplier nanoTime;
  private long nextFreeNanos;

  /**
   * @param bytesPerSecond the rate, 0 for none
   * @param nanoTime a monotonic clock (virtual in the simulation)
   */
  Throttle(long bytesPerSecond, LongSupplier nanoTime) {
    this.bytesPerSecond = bytesPerSecond;
    this.nanoTime = nanoTime;
    this.nextFreeNanos = nanoTime.getAsLong() - TimeUnit.SECONDS.toNanos(1); // a full bucket
  }

  /**
   * Reserves {@code bytes} just sent or received.
   *
   * @return how many milliseconds to wait before the next transfer (0: go on)
   */
  synchronized long reserve(long bytes) {
    if (bytesPerSecond <= 0 || bytes <= 0) {
      return 0;
    }
    long now = nanoTime.getAsLong();
    long burst = TimeUnit.SECONDS.toNanos(1);
    if (nextFreeNanos < now - burst) {
      nextFreeNanos = now - burst; // idle time builds up at most one second of credit
    }
    nextFreeNanos += (long) (bytes * 1e9 / bytesPerSecond);
    long wait = nextFreeNanos - now;
    return wait <= 0 ? 0 : TimeUnit.NANOSECONDS.toMillis(wait) + 1;
  }

  long bytesPerSecond() {
    return bytesPerSecond;
  }
}
