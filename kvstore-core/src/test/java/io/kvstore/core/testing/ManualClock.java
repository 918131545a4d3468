package io.kvstore.core.testing;

import java.time.Duration;
import java.time.Instant;
import java.time.InstantSource;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A clock that moves only when told to: inject it with {@code KvStoreBuilder.clock(...)} so versions,
 * TTLs and purging are driven by the test, never by the wall clock. Thread-safe.
 *
 * <p>It may be set backwards ({@link #setMillis(long)}) to simulate an NTP step; the store's hybrid
 * logical clock must stay monotonic through that.
 */
public class ManualClock implements InstantSource {
  private final AtomicLong millis;

  /**
   * A clock showing {@code start}.
   *
   * @param start the initial instant
   */
  public ManualClock(Instant start) {
    this.millis = new AtomicLong(Objects.requireNonNull(start, "start").toEpochMilli());
  }

  @Override
  public long millis() {
    return millis.get();
  }

  @Override
  public Instant instant() {
    return Instant.ofEpochMilli(millis.get());
  }

  /**
   * Moves the clock forward.
   *
   * @param duration how far; not negative
   * @return the new time in epoch millis
   */
  public long advance(Duration duration) {
    Objects.requireNonNull(duration, "duration");
    if (duration.isNegative()) {
      throw new IllegalArgumentException("a clock advances by a non-negative duration, was " + duration
          + "; use setMillis to step it back");
    }
    return millis.addAndGet(duration.toMillis());
  }

  /**
   * Sets the clock, forwards or backwards.
   *
   * @param epochMillis the new time, not negative
   */
  public void setMillis(long epochMillis) {
    if (epochMillis < 0) {
      throw new IllegalArgumentException("epoch millis must be >= 0, was " + epochMillis);
    }
    millis.set(epochMillis);
  }

  /**
   * Steps the clock atomically by {@code deltaMillis}, forwards or backwards (an NTP step).
   *
   * @param deltaMillis how far; negative moves it back
   * @return the new time in epoch millis
   */
  public long shiftMillis(long deltaMillis) {
    return millis.addAndGet(deltaMillis);
  }

  @Override
  public String toString() {
    return "ManualClock{" + instant() + "}";
  }
}
