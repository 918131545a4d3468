package io.kvstore.core;

/**
 * When a write to a store with a {@link KvStoreBuilder#dataDir data directory} is acknowledged: when
 * its future completes, or its blocking call returns. Reads may see a write before it is durable; its
 * acknowledgement always waits for the step below. See docs/RELIABILITY.md for what each level loses.
 */
public enum Durability {
  /**
   * After the write is on disk ({@code fdatasync}). Concurrent writes share one sync (group commit:
   * the next sync starts as soon as the previous one ends, with no artificial wait), so throughput
   * grows with the number of writers. Neither a crash of the process nor a power loss loses an
   * acknowledged write.
   */
  SYNC,
  /**
   * After the write is handed to the operating system ({@code write}); the log is synced every
   * {@link KvStoreBuilder#syncInterval interval} (default 1 s). A crash of the process loses no
   * acknowledged write; a power loss or kernel crash loses at most the last interval. The default
   * when a data directory is set.
   */
  INTERVAL,
  /**
   * Like {@link #INTERVAL} but never syncs on its own: the operating system writes the data back when
   * it chooses (on Linux usually within 30 s). A crash of the process loses no acknowledged write; a
   * power loss may lose anything not yet written back.
   */
  NONE
}
