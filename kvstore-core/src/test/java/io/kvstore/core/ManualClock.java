package io.kvstore.core;

import java.time.Instant;

/**
 * The test-jar's {@link io.kvstore.core.testing.ManualClock} with the shorthands core's own tests use:
 * a fixed start {@link #T0}, and moves in plain milliseconds, backwards too.
 */
final class ManualClock extends io.kvstore.core.testing.ManualClock {
  /** 2023-11-14T22:13:20Z: a realistic epoch-millis value for tests that pin time. */
  static final long T0 = 1_700_000_000_000L;

  ManualClock(long startMillis) {
    super(Instant.ofEpochMilli(startMillis));
  }

  ManualClock() {
    this(T0);
  }

  void set(long epochMillis) {
    setMillis(epochMillis);
  }

  /** Moves the clock by {@code deltaMillis}, which may be negative (an NTP step back). */
  void advance(long deltaMillis) {
    shiftMillis(deltaMillis);
  }
}
