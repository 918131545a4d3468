package io.kvstore.core.testing;

import io.kvstore.core.FaultInjection;
import io.kvstore.core.KvStore;
import io.kvstore.core.KvStoreBuilder;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Objects;
import java.util.function.Consumer;

/**
 * The disk under one incarnation of a durable store, for tests in any module: it simulates what a
 * process crash (kill -9) and a power loss do to the store's data directory.
 *
 * <p>Give a store the disk when building it ({@link #install(KvStoreBuilder)}, or {@link #settings()}
 * for {@code KvCluster.builder().store(...)}), together with a data directory and a durability;
 * later {@link #crash(KvStore)} or {@link #losePower(KvStore)} it. Either one stops the store without
 * a final flush; a crash leaves everything the store had written to the OS, a power loss only what
 * was synced plus a seeded random selection of the rest, some of it torn (in the spirit of H2's
 * {@code FilePathReorderWrites}). Restart the store on the same directory with a new disk (one disk
 * per incarnation: a crashed disk refuses every operation).
 *
 * <p>The log is kept small ({@value #SEGMENT_BYTES} bytes per segment, a snapshot every
 * {@value #COMPACT_BYTES}), because the simulation keeps a copy of every file as of its last sync and
 * rereads a file at each sync; rolls and snapshots then also happen within a short test.
 */
public final class PowerLossDisk {
  /** Segment size of a store on this disk. */
  public static final long SEGMENT_BYTES = 256L << 10;
  /** Log bytes since the last snapshot that trigger the next one. */
  public static final long COMPACT_BYTES = 1L << 20;

  private final long seed;
  private final FaultInjection faults;
  private volatile boolean used;

  private PowerLossDisk(long seed) {
    this.seed = seed;
    this.faults = new FaultInjection(seed);
  }

  /**
   * A fresh disk.
   *
   * @param seed fixes what a power loss keeps, drops and tears
   * @return the disk
   */
  public static PowerLossDisk create(long seed) {
    return new PowerLossDisk(seed);
  }

  /** @return the seed this disk was created with */
  public long seed() {
    return seed;
  }

  /**
   * Puts this disk under the store the builder makes (the builder still needs a data directory).
   *
   * @param builder the store's builder
   * @return the builder
   */
  public KvStoreBuilder install(KvStoreBuilder builder) {
    used = true;
    return faults.install(builder, SEGMENT_BYTES, COMPACT_BYTES);
  }

  /**
   * {@link #install} as store settings, for {@code KvCluster.builder().store(...)}.
   *
   * @return settings that install this disk
   */
  public Consumer<KvStoreBuilder> settings() {
    return this::install;
  }

  /**
   * Kill -9: stops the store with no final flush or clean close; what it wrote to the OS stays.
   *
   * @param store the store running on this disk
   */
  public void crash(KvStore store) {
    Objects.requireNonNull(store, "store");
    requireUsed();
    faults.crashFiles();
    FaultInjection.crashStore(store);
  }

  /**
   * A power cut: {@link #crash(KvStore)}, then the files are rewritten to what survives: synced data,
   * and of each unsynced write (or truncation) either all, nothing, or a torn part, and of each
   * unsynced 4 KiB page of the memory-mapped log either all or nothing, chosen by the seed.
   *
   * @param store the store running on this disk
   * @throws UncheckedIOException if the files cannot be rewritten
   */
  public void losePower(KvStore store) {
    crash(store);
    try {
      faults.losePower();
    } catch (IOException e) {
      throw new UncheckedIOException("simulating the power loss failed", e);
    }
  }

  /**
   * The next {@code n} syncs of any file of this disk fail (the store turns read-only).
   *
   * @param n how many
   */
  public void failSyncs(int n) {
    faults.failForces(n);
  }

  private void requireUsed() {
    if (!used) {
      throw new IllegalStateException("this disk was never installed under a store");
    }
  }

  @Override
  public String toString() {
    return "PowerLossDisk(seed " + seed + ")";
  }
}
