package io.kvstore.core;

/**
 * What a store does when recovery finds its data directory corrupted anywhere but in the torn tail of
 * the last log segment (which a crash leaves behind and which is always truncated).
 */
public enum CorruptionPolicy {
  /**
   * Refuse to start, with a {@link StorageException} naming the file and the offset. The default:
   * a standalone store is the only copy of its data, so a person must decide (restore a backup, or
   * move the directory away to start empty).
   */
  REFUSE,
  /**
   * Move the data files into a {@code corrupt-<millis>} subdirectory, log it, and start empty. For
   * cluster nodes (the default of {@code KvClusterBuilder}): the peers hold the data and anti-entropy
   * repairs the node, and a corrupted replica must never serve or spread what it cannot trust.
   */
  MOVE_ASIDE
}
