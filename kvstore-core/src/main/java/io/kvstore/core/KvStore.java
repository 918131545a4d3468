package io.kvstore.core;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;

/**
 * A thread-safe, versioned key-value store: a single node, or one node of a replicated cluster.
 *
 * <pre>{@code
 * try (KvStore store = KvStore.builder().nodeId("node-1").build()) {
 *   Version v = store.put("greeting", "hello");
 *   store.getString("greeting");                  // Optional[hello]
 *   store.putIfVersion("greeting", "hi".getBytes(UTF_8), v);
 *   store.delete("greeting");
 * }
 * }</pre>
 *
 * <h2>Semantics</h2>
 * Every write is stamped with a {@link Version} (hybrid logical clock plus node id) and merged per key,
 * last-writer-wins: the higher version wins on every node, whatever order writes arrive in. Deletes
 * leave tombstones, so an older write arriving late never brings a deleted key back; tombstones and
 * expired entries are purged after {@link KvStoreConfig#tombstoneGrace()}. Reads are local. Write
 * concerns ({@link WriteConcern}) say how many replicas hold a write when its future completes.
 *
 * <h2>Keys and values</h2>
 * A key is a non-empty string of at most {@link KvStoreConfig#maxKeyBytes()} UTF-8 bytes, with no
 * control characters and no unpaired surrogates. A value is at most
 * {@link KvStoreConfig#maxValueBytes()} bytes; arrays are copied on the way in and out. A violation
 * throws {@link IllegalArgumentException} naming the limit and the actual size, and stores nothing.
 *
 * <h2>Errors</h2>
 * Blocking writes throw what the async forms fail with: {@link ConditionFailedException},
 * {@link WriteConcernException}, {@link StoreClosedException}.
 */
public interface KvStore extends AutoCloseable {

  /**
   * A builder with documented defaults.
   *
   * @return a new builder
   */
  static KvStoreBuilder builder() {
    return new KvStoreBuilder();
  }

  // ---- reads -----------------------------------------------------------------------------------

  /**
   * The key's live value. A local read with full replication (the default) or when this node owns
   * the key; in partitioned mode a key this node does not own is read from one of its owners, and
   * this call blocks until it answers (at most the store's write timeout).
   *
   * @param key the key
   * @return a copy of the value, or empty if absent, deleted or expired
   */
  Optional<byte[]> get(String key);

  /**
   * The key's live value as UTF-8 text.
   *
   * @param key the key
   * @return the value, or empty if absent, deleted or expired
   */
  default Optional<String> getString(String key) {
    return get(key).map(b -> new String(b, StandardCharsets.UTF_8));
  }

  /**
   * The key's live value with its version and expiry; local or remote like {@link #get}.
   *
   * @param key the key
   * @return the entry, or empty if absent, deleted or expired
   */
  Optional<Versioned> getVersioned(String key);

  /**
   * The key's live value with its version and expiry, read at the given concern. With full
   * replication, or when this node owns the key, {@link ReadConcern#ONE} reads this node; otherwise
   * (partitioned mode) it asks the key's owners and blocks until they answer or the options' timeout
   * passes.
   *
   * @param key the key
   * @param options the read concern and timeout
   * @return the entry, or empty if absent, deleted or expired
   * @throws KvStoreException if not enough owners answered in time
   */
  Optional<Versioned> getVersioned(String key, ReadOptions options);

  /**
   * The asynchronous form of {@link #getVersioned(String, ReadOptions)}: completes at once for a
   * local read, when the owners answered for a remote one. Invalid input throws at once.
   *
   * @param key the key
   * @param options the read concern and timeout
   * @return completes with the entry, or empty if absent, deleted or expired
   */
  CompletableFuture<Optional<Versioned>> getAsync(String key, ReadOptions options);

  /**
   * {@link #getAsync(String, ReadOptions)} at {@link ReadOptions#defaults()}.
   *
   * @param key the key
   * @return completes with the entry, or empty if absent, deleted or expired
   */
  default CompletableFuture<Optional<Versioned>> getAsync(String key) {
    return getAsync(key, ReadOptions.defaults());
  }

  /**
   * Live entries whose keys start with {@code prefix}, in ascending key order.
   *
   * @param prefix the prefix; empty for all keys
   * @param limit at most this many, 1 to {@link KvStoreConfig#maxScanLimit()}
   * @return the entries
   */
  default List<Versioned> scan(String prefix, int limit) {
    return scan(prefix, null, limit);
  }

  /**
   * Live entries whose keys start with {@code prefix} and sort after {@code startAfter}, in ascending
   * key order: pass the last key of one page to get the next. Walks the whole store (O(entries)).
   *
   * @param prefix the prefix; empty for all keys
   * @param startAfter exclusive lower bound, or null to start at the beginning
   * @param limit at most this many, 1 to {@link KvStoreConfig#maxScanLimit()}
   * @return the entries
   */
  List<Versioned> scan(String prefix, String startAfter, int limit);

  /**
   * Keys holding a live value. Values whose TTL has passed read as absent at once and leave this count
   * at the next maintenance sweep.
   *
   * @return the number of live entries
   */
  long size();

  // ---- writes ----------------------------------------------------------------------------------

  /**
   * Stores a value.
   *
   * @param key the key
   * @param value the value; copied
   * @param options write concern, timeout, TTL, condition
   * @return completes with the write's version once the write concern is met
   * @throws IllegalArgumentException for an invalid key or value (thrown, not in the future)
   */
  CompletableFuture<Version> putAsync(String key, byte[] value, WriteOptions options);

  /**
   * Deletes a key by writing a tombstone (even when this node holds no value: another may).
   *
   * @param key the key
   * @param options write concern, timeout, condition (the TTL is ignored)
   * @return completes with whether this node held a live value, once the write concern is met
   * @throws IllegalArgumentException for an invalid key (thrown, not in the future)
   */
  CompletableFuture<Boolean> deleteAsync(String key, WriteOptions options);

  /**
   * Stores a value and waits for the write concern.
   *
   * @param key the key
   * @param value the value; copied
   * @param options write concern, timeout, TTL, condition
   * @return the write's version
   */
  Version put(String key, byte[] value, WriteOptions options);

  /**
   * Stores a value with the default options.
   *
   * @param key the key
   * @param value the value; copied
   * @return the write's version
   */
  default Version put(String key, byte[] value) {
    return put(key, value, WriteOptions.defaults());
  }

  /**
   * Stores a UTF-8 value with the default options.
   *
   * @param key the key
   * @param value the value
   * @return the write's version
   */
  default Version put(String key, String value) {
    return put(key, value.getBytes(StandardCharsets.UTF_8), WriteOptions.defaults());
  }

  /**
   * Stores a value only if the key has no live value on this node.
   *
   * @param key the key
   * @param value the value; copied
   * @return true if stored, false if a value was present
   */
  boolean putIfAbsent(String key, byte[] value);

  /**
   * Stores a value only if the key's live value on this node has exactly the expected version.
   *
   * @param key the key
   * @param value the value; copied
   * @param expected the version read earlier
   * @return true if stored, false if the version differed or the key was absent
   */
  boolean putIfVersion(String key, byte[] value, Version expected);

  /**
   * Deletes a key and waits for the write concern.
   *
   * @param key the key
   * @param options write concern, timeout, condition
   * @return whether this node held a live value
   */
  boolean delete(String key, WriteOptions options);

  /**
   * Deletes a key with the default options.
   *
   * @param key the key
   * @return whether this node held a live value
   */
  default boolean delete(String key) {
    return delete(key, WriteOptions.defaults());
  }

  /**
   * Deletes a key only if its live value on this node has exactly the expected version.
   *
   * @param key the key
   * @param expected the version read earlier
   * @return true if deleted, false if the version differed or the key was absent
   */
  boolean deleteIfVersion(String key, Version expected);

  // ---- observation and lifecycle ---------------------------------------------------------------

  /**
   * Listens to changes of keys starting with {@code prefix}; the listener runs on the thread that
   * applied the change (see {@link ChangeListener}).
   *
   * @param prefix the prefix; empty for all keys
   * @param listener the listener
   * @return a registration; close it to stop listening
   */
  Registration addListener(String prefix, ChangeListener listener);

  /**
   * Listens to changes of keys starting with {@code prefix}; the listener runs on {@code executor}.
   *
   * @param prefix the prefix; empty for all keys
   * @param listener the listener
   * @param executor where the listener runs
   * @return a registration; close it to stop listening
   */
  Registration addListener(String prefix, ChangeListener listener, Executor executor);

  /**
   * Listens to changes of keys starting with {@code prefix} anywhere in the cluster, on
   * {@code executor}. Standalone and under full replication this is {@link #addListener(String,
   * ChangeListener, Executor)}: every node applies every change. In partitioned mode a node applies
   * only the keys it owns, so this also subscribes to every connected peer, which sends the changes
   * it applies of keys this node does not own. Each change (key and version) reaches the listener
   * once; a change older than one already delivered for its key is dropped (so one key's changes
   * arrive in version order), remembered for the most recent 100,000 keys. Changes made while a peer
   * is unreachable are not replayed when it comes back: read or scan to catch up. Events of remote
   * changes carry {@link ChangeEvent.Origin#REMOTE}.
   *
   * @param prefix the prefix; empty for all keys
   * @param listener the listener
   * @param executor where the listener runs
   * @return a registration; close it to stop listening (and the peers to send)
   */
  default Registration addClusterListener(String prefix, ChangeListener listener,
      Executor executor) {
    return addListener(prefix, listener, executor);
  }

  /**
   * A snapshot of the counters.
   *
   * @return the stats
   */
  StoreStats stats();

  /**
   * The state of the store's disk storage: the data directory and durability, whether it is still
   * writable (a failed write or sync turns the store read-only), and its counters.
   *
   * @return the status; {@link StorageStatus#isDurable()} is false for a memory-only store
   */
  default StorageStatus storage() {
    return StorageStatus.MEMORY_ONLY;
  }

  /**
   * The cluster as this node sees it (just this node when standalone).
   *
   * @return the view
   */
  ClusterView cluster();

  /**
   * The settings the store runs with.
   *
   * @return the config
   */
  KvStoreConfig config();

  /**
   * Runs one maintenance sweep now, on the calling thread: entries whose TTL passed become tombstones
   * (reported as {@link ChangeEvent.Type#EXPIRE}); tombstones older than the grace period are purged.
   * The background task does this every {@link KvStoreConfig#purgeInterval()}.
   *
   * @return the number of entries purged
   */
  int runMaintenance();

  /**
   * Closes the replicator (leaving the cluster) and stops maintenance. Later reads, writes and
   * {@code addListener} calls fail with {@link StoreClosedException}; {@link #stats()}, {@link #size()}
   * and {@link #config()} still answer. Closing twice is harmless.
   */
  @Override
  void close();
}
