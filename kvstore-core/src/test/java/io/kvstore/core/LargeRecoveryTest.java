package io.kvstore.core;

import io.kvstore.core.spi.Digest;
import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A restart with many keys recovers exactly the state before: same size, same digest (key, version and
 * content of every entry), from a snapshot and the log written after it. 200,000 keys in the default
 * build (a few seconds); the 1,000,000 with {@code -Dkvstore.durable.keys=1000000} (about
 * 15 s on the shared 2-core machine).
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class LargeRecoveryTest {
  private static final int KEYS = Integer.getInteger("kvstore.durable.keys", 200_000);

  @Test
  void restartWithManyKeys_recoversTheSameState(@TempDir Path tmp) {
    ManualClock clock = new ManualClock();
    Digest before;
    long size;
    byte[] value = new byte[100];
    try (DefaultKvStore s = (DefaultKvStore) Stores.builder("n1", clock).dataDir(tmp)
        .durability(Durability.NONE).build()) {
      for (int i = 0; i < KEYS; i++) {
        value[0] = (byte) i;
        s.put("key-" + i, value, WriteOptions.defaults());
        if (i == KEYS * 6 / 10) {
          s.storageForTest().snapshot();
        }
      }
      for (int i = 0; i < KEYS; i += 97) {
        s.delete("key-" + i);
      }
      before = s.digest();
      size = s.size();
    }
    // The map is sized from the snapshot before the replay (600k of the keys are in it).
    assertThat(LogStorage.expectedEntries(tmp)).isBetween(KEYS * 6 / 10 / 2, KEYS * 6 / 10 * 2);
    long started = System.nanoTime();
    try (DefaultKvStore s = (DefaultKvStore) Stores.builder("n1", clock).dataDir(tmp).build()) {
      long millis = (System.nanoTime() - started) / 1_000_000;
      System.out.printf("recovered %d records (%d keys) in %d ms%n", s.storage().recoveredEntries(),
          s.size(), millis);
      assertThat(s.size()).isEqualTo(size);
      assertThat(s.digest()).isEqualTo(before);
      assertThat(s.get("key-1")).hasValueSatisfying(v -> assertThat(v[0]).isEqualTo((byte) 1));
      assertThat(s.get("key-97")).isEmpty();
    }
  }
}
