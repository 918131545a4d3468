package io.kvstore.core;

import io.kvstore.core.spi.ReplicaStore;
import java.util.concurrent.CompletableFuture;

/**
 * Where a store keeps its entries across restarts, below the {@link ReplicaStore} boundary: the store
 * hands every change it applied, and learns when it is durable. {@link LogStorage} is the log and
 * snapshot implementation; an engine for data larger than memory (RocksDB, say) would implement the
 * same contract. Implementations are thread-safe.
 */
interface Storage extends AutoCloseable {
  /**
   * Persists a change the store applied to its map: the key's new entry.
   *
   * @return completes when the entry is durable per the store's {@link Durability}; fails with a
   *     {@link StorageException} if it cannot be (the storage is then read-only)
   */
  CompletableFuture<Void> append(String key, Entry entry);

  /**
   * Persists that the store dropped {@code key} while it held {@code evicted} (an eviction, not a
   * change: no entry replaces it). Recovery then removes the key unless what it holds by then is
   * newer than that version. Best effort: it returns without waiting for durability, and a failure
   * only turns the storage read-only (see {@link io.kvstore.core.spi.ReplicaStore#evict}).
   */
  void appendEviction(String key, Entry evicted);

  /**
   * Completes when every entry appended before the call is durable.
   *
   * @return the barrier; already complete when nothing is waiting
   */
  CompletableFuture<Void> barrier();

  /**
   * Persists a clock reservation of at least {@code timestamp}: no timestamp above the returned value
   * is issued before a later reservation is persisted.
   *
   * @return the reservation now persisted
   * @throws StorageException if it cannot be persisted
   */
  long reserve(long timestamp);

  /** The failure that made the storage read-only, or null. */
  StorageException failure();

  /** Counters and state. */
  StorageStatus status();

  /** Syncs what is written, records the time, releases the directory. */
  @Override
  void close();
}
