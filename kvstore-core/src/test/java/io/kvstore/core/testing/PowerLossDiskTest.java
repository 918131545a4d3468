package io.kvstore.core.testing;

import static org.assertj.core.api.Assertions.assertThat;

import io.kvstore.core.Durability;
import io.kvstore.core.KvStore;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The public crash and power-loss disk other modules' tests use: SYNC keeps every acknowledged write
 * through a power loss, INTERVAL keeps them through a crash but loses unsynced ones to a power loss.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class PowerLossDiskTest {
  private static final int WRITES = 200;

  @TempDir
  Path tmp;

  private KvStore open(Path dir, Durability durability, PowerLossDisk disk) {
    return disk.install(KvStore.builder().nodeId("d1").dataDir(dir).durability(durability)
        .syncInterval(Duration.ofHours(1))).build();
  }

  private int survivors(Path dir, Durability durability) {
    try (KvStore again = KvStore.builder().nodeId("d1").dataDir(dir).durability(durability)
        .build()) {
      int n = 0;
      for (int i = 0; i < WRITES; i++) {
        n += again.getString("k" + i).isPresent() ? 1 : 0;
      }
      return n;
    }
  }

  private void write(KvStore store) {
    // 1 KiB values: the log's unsynced part spans ~50 pages, each kept or dropped at a power loss, so
    // that one loses some of them whatever the seed.
    String pad = "x".repeat(1024);
    for (int i = 0; i < WRITES; i++) {
      store.put("k" + i, "v" + i + pad);
    }
  }

  @Test
  void syncAcknowledgedWrites_surviveAPowerLoss() {
    Path dir = tmp.resolve("sync");
    PowerLossDisk disk = PowerLossDisk.create(1);
    KvStore store = open(dir, Durability.SYNC, disk);
    write(store);
    disk.losePower(store);
    assertThat(survivors(dir, Durability.SYNC)).isEqualTo(WRITES);
  }

  @Test
  void intervalAcknowledgedWrites_surviveACrash_butNotAPowerLossBeforeTheSync() {
    Path crashed = tmp.resolve("crash");
    PowerLossDisk disk = PowerLossDisk.create(2);
    KvStore store = open(crashed, Durability.INTERVAL, disk);
    write(store);
    disk.crash(store);
    assertThat(survivors(crashed, Durability.INTERVAL)).isEqualTo(WRITES);

    Path cut = tmp.resolve("power");
    PowerLossDisk other = PowerLossDisk.create(3);
    KvStore second = open(cut, Durability.INTERVAL, other);
    write(second);
    other.losePower(second);
    assertThat(survivors(cut, Durability.INTERVAL)).isLessThan(WRITES);
  }
}
