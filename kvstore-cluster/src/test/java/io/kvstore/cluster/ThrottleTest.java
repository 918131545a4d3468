package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The anti-entropy byte rate: the bucket's arithmetic, and a catch-up in the simulation. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ThrottleTest {

  @Test
  void reserve_letsOneSecondOfBurstThrough_thenSpacesTransfersToTheRate() {
    AtomicLong now = new AtomicLong(TimeUnit.SECONDS.toNanos(100));
    Throttle t = new Throttle(1_000_000, now::get);
    // Idle since creation: up to one second's worth goes at once.
    assertThat(t.reserve(500_000)).isZero();
    assertThat(t.reserve(500_000)).isZero();
    // The next 250 kB must wait a quarter of a second.
    assertThat(t.reserve(250_000)).isBetween(250L, 251L);
    now.addAndGet(TimeUnit.MILLISECONDS.toNanos(250));
    assertThat(t.reserve(100_000)).isBetween(100L, 101L);
    // A long idle period earns no more than one second of credit.
    now.addAndGet(TimeUnit.SECONDS.toNanos(60));
    assertThat(t.reserve(1_000_000)).isZero();
    assertThat(t.reserve(1_000)).isPositive();
  }

  @Test
  void noLimit_neverWaits() {
    Throttle t = new Throttle(0, System::nanoTime);
    assertThat(t.reserve(Long.MAX_VALUE / 2)).isZero();
  }

  /**
   * A node restarted empty catches up about 260 kB from its peer: at 64 KiB/s it cannot take less
   * than (260 kB - one second of burst) / 64 KiB/s, about 3 s of virtual time; without a limit it
   * takes a fraction of a second.
   */
  @Test
  void aCatchUp_movesNoFasterThanAntiEntropyBytesPerSecond() {
    long limited = catchUpMillis(64 * 1024);
    long unlimited = catchUpMillis(0);
    assertThat(unlimited).as("unlimited catch-up").isLessThan(1_000);
    assertThat(limited).as("catch-up at 64 KiB/s").isGreaterThanOrEqualTo(2_500)
        .isLessThan(20_000);
  }

  private static long catchUpMillis(long bytesPerSecond) {
    ReplicationEngine.Settings settings = new ReplicationEngine.Settings(4 * 1024 * 1024, 16 * 1024,
        Duration.ofMillis(100), Duration.ofSeconds(5), bytesPerSecond);
    try (SimNetwork net = new SimNetwork(7, settings, ReplicationEngine.Bug.NONE, b -> b)) {
      SimNetwork.SimNode one = net.addNode("n1", 0);
      byte[] value = new byte[100];
      for (int i = 0; i < 2_000; i++) {
        one.store.put("key-" + i, value);
      }
      long start = net.clock.now();
      SimNetwork.SimNode two = net.addNode("n2", 0);
      assertThat(net.clock.runUntil(() -> two.store.size() == 2_000, 60_000))
          .as("n2 caught up within a minute of virtual time").isTrue();
      return net.clock.now() - start;
    }
  }
}
