package io.kvstore.core;

import java.time.Duration;
import java.time.Instant;
import java.time.InstantSource;
import java.util.concurrent.atomic.AtomicLong;

/** A time source the test moves by hand, forwards or backwards. Thread-safe. */
final class ManualClock implements InstantSource {
  /** 2023-11-14T22:13:20Z: a realistic epoch-millis value for tests that pin time. */
  static final long T0 = 1_700_000_000_000L;

  private final AtomicLong millis;

  ManualClock(long startMillis) {
    this.millis = new AtomicLong(startMillis);
  }

  ManualClock() {
    this(T0);
  }

  @Override
  public long millis() {
    return millis.get();
  }

  @Override
  public Instant instant() {
    return Instant.ofEpochMilli(millis.get());
  }

  void set(long epochMillis) {
    millis.set(epochMillis);
  }

  void advance(long deltaMillis) {
    millis.addAndGet(deltaMillis);
  }

  void advance(Duration delta) {
    advance(delta.toMillis());
  }
}
