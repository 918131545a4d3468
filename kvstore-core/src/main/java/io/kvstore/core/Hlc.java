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

  /**
   * {@code max(previous + 1, wall)}. Within a millisecond that is one atomic increment (a single
   * {@code lock xadd} that cannot fail, where a compare-and-set loop would retry under contention
   * from other writer threads); only the first call after the wall clock passed the last timestamp
   * moves it up with a compare-and-set, and the increment it took first is skipped, never reused.
   */
  long now() {
    long wall = Version.pack(clock.millis(), 0);
    long t = last.incrementAndGet();
    if (t >= wall) {
      return t;
    }
    while (true) {
      long cur = last.get();
      if (cur >= wall) {
        return last.incrementAndGet(); // another thread moved it up first: still unique, >= wall
      }
      if (last.compareAndSet(cur, wall)) {
        return wall;
      }
    }
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
