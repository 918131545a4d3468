package io.kvstore.cluster;

import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;

/** Logs a warning at most once per interval, so a misbehaving peer cannot flood the log. */
final class RateLimitedLog {
  private static final long INTERVAL_NANOS = 10_000_000_000L;

  private final Logger log;
  private final AtomicLong last = new AtomicLong(System.nanoTime() - INTERVAL_NANOS);

  RateLimitedLog(Logger log) {
    this.log = log;
  }

  void warn(String format, Object... args) {
    long now = System.nanoTime();
    long prev = last.get();
    if (now - prev >= INTERVAL_NANOS && last.compareAndSet(prev, now)) {
      log.warn(format + " (logged at most every 10 s; see ReplicationStats)", args);
    } else if (log.isDebugEnabled()) {
      log.debug(format, args);
    }
  }
}
