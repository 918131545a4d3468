package io.kvstore.core;

import java.time.InstantSource;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Hybrid logical clock, packed in one long (physical millis in the upper 48 bits, a logical counter in
 * the lower 16), lock-free.
 *
 * <p>{@link #now()} returns strictly increasing timestamps, never behind the wall clock, even when the
 * wall clock steps back (the logical part counts on; if it overflows it carries into the physical part,
 * so the clock runs at most a few milliseconds ahead under extreme load). {@link #observe(long)} moves
 * the clock up to a remote timestamp so later local writes order after it; callers refuse remote
 * timestamps further ahead than the allowed drift before observing them, which keeps the clock within
 * that drift of real time.
 */
final class Hlc {
  private final InstantSource clock;
  private final AtomicLong last = new AtomicLong();

  Hlc(InstantSource clock) {
    this.clock = clock;
  }

  long now() {
    long wall = Version.pack(clock.millis(), 0);
    return last.accumulateAndGet(wall, (prev, w) -> Math.max(prev + 1, w));
  }

  void observe(long remote) {
    if (remote > last.get()) {
      last.accumulateAndGet(remote, Math::max);
    }
  }

  long wallMillis() {
    return clock.millis();
  }

  long current() {
    return last.get();
  }
}
