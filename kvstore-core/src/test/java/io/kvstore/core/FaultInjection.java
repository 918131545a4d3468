package io.kvstore.core;

import java.io.IOException;
import java.util.Objects;

/**
 * The bridge from {@link io.kvstore.core.testing.PowerLossDisk} (public, for other modules' tests) to
 * the package-private test machinery of this package: {@link FaultyFileIo}, the
 * {@code storageInternals} hook of {@link KvStoreBuilder} and {@link DefaultKvStore#crashForTest()}.
 * It is public only because the testing package cannot reach them otherwise; nothing of core's main
 * code becomes public for it. Use {@code PowerLossDisk}, not this class.
 */
public final class FaultInjection {
  private final FaultyFileIo io;

  /**
   * A fault-injecting file system whose power-loss choices come from this seed.
   *
   * @param seed fixes which unsynced operations a power loss keeps, drops or tears
   */
  public FaultInjection(long seed) {
    this.io = new FaultyFileIo(seed);
  }

  /**
   * Puts this file system under the store the builder makes, with the given log sizes and the
   * default clock step.
   *
   * @param builder the store's builder
   * @param segmentBytes size at which the log rolls to a new segment
   * @param compactBytes log size since the last snapshot at which a snapshot is taken
   * @return the builder
   */
  public KvStoreBuilder install(KvStoreBuilder builder, long segmentBytes, long compactBytes) {
    return Objects.requireNonNull(builder, "builder").storageInternals(segmentBytes, compactBytes,
        LogStorage.Options.DEFAULT_CLOCK_STEP_MILLIS, io);
  }

  /** Every later file operation fails, as for a dead process; an operation under way finishes. */
  public void crashFiles() {
    io.crash();
  }

  /**
   * After {@link #crashFiles()} and the store's crash: rewrites the files to what a power loss
   * leaves (unsynced writes dropped, torn or reordered; unsynced directory changes undone).
   *
   * @throws IOException if the files cannot be rewritten
   */
  public void losePower() throws IOException {
    io.losePower();
  }

  /**
   * The next {@code n} syncs of any file fail.
   *
   * @param n how many
   */
  public void failForces(int n) {
    io.failForces(n);
  }

  /**
   * Stops a store like a killed process: the replicator and the background threads stop, pending
   * writes fail, and the storage is left without a final flush or a clean close.
   *
   * @param store a store built by {@code KvStore.builder()} (or {@code KvCluster.builder()})
   * @throws IllegalArgumentException for another implementation of {@link KvStore}
   */
  public static void crashStore(KvStore store) {
    if (!(store instanceof DefaultKvStore s)) {
      throw new IllegalArgumentException("not a store built by KvStore.builder(): "
          + (store == null ? "null" : store.getClass().getName()));
    }
    s.crashForTest();
  }
}
