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
 *
 * <p>A durable store gives the clock a {@link #limit persisted reservation}: a timestamp above it is
 * returned only after a higher reservation is on disk ({@link Reserver}), so after a restart the clock
 * resumes above anything it may have issued. The check is one volatile read; the background refresh
 * keeps the limit ahead, so writers rarely reach it.
 */
final class Hlc {
  private final InstantSource clock;
  private final AtomicLong last = new AtomicLong();
  private volatile long limit = Long.MAX_VALUE;
  private Reserver reserver;

  /** Persists a reservation of at least the given timestamp and returns the one persisted. */
  @FunctionalInterface
  interface Reserver {
    long reserve(long timestamp);
  }

  Hlc(InstantSource clock) {
    this.clock = clock;
  }

  /** Starts enforcing a persisted reservation; called before the first {@link #now()}. */
  void reservation(long persisted, Reserver reserver) {
    this.reserver = reserver;
    this.limit = persisted;
  }

  /** A higher reservation was persisted in the background. */
  void extendLimit(long persisted) {
    synchronized (this) {
      if (persisted > limit) {
        limit = persisted;
      }
    }
  }

  /** Blocks until the reservation covers {@code t}; throws what the reserver throws. */
  private long reserved(long t) {
    synchronized (this) {
      if (t > limit) {
        limit = reserver.reserve(t);
      }
    }
    return t;
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
      return t > limit ? reserved(t) : t;
    }
    while (true) {
      long cur = last.get();
      if (cur >= wall) {
        t = last.incrementAndGet(); // another thread moved it up first: still unique, >= wall
        return t > limit ? reserved(t) : t;
      }
      if (last.compareAndSet(cur, wall)) {
        return wall > limit ? reserved(wall) : wall;
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
