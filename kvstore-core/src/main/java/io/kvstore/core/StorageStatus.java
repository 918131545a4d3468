package io.kvstore.core;

import java.nio.file.Path;

/**
 * The state of a store's disk storage: {@link KvStore#storage()}.
 *
 * @param dataDir the data directory, or null for a memory-only store
 * @param durability the durability level, or null for a memory-only store
 * @param writable false once a write or sync of the log failed: the store is read-only until restarted
 * @param failure what failed (file and error), or null while writable
 * @param recoveredEntries entries read back at start (snapshot and log records)
 * @param truncatedTailBytes bytes of a torn log tail dropped at start (a crash leaves one behind)
 * @param logBytes bytes of log written since the store started
 * @param syncs log syncs ({@code fdatasync}) since the store started
 * @param failedSyncs failed writes or syncs (0 or 1: the first one turns the store read-only)
 * @param snapshots snapshots written since the store started: one per compaction step (a step writes
 *     one shard's snapshot and lets the log before the oldest of them go)
 * @param stalledWrites writes since the store started that first waited for compaction (at most
 *     50 ms each), because more log was kept than a round of compaction steps covers: a sustained
 *     write rate the disk and the compaction thread cannot take
 */
public record StorageStatus(
    Path dataDir,
    Durability durability,
    boolean writable,
    String failure,
    long recoveredEntries,
    long truncatedTailBytes,
    long logBytes,
    long syncs,
    long failedSyncs,
    long snapshots,
    long stalledWrites) {

  /** The status of a memory-only store. */
  static final StorageStatus MEMORY_ONLY = new StorageStatus(null, null, true, null, 0, 0, 0, 0, 0, 0, 0);

  /**
   * Whether the store keeps its data on disk.
   *
   * @return true if it has a data directory
   */
  public boolean isDurable() {
    return dataDir != null;
  }
}
