package io.kvstore.core;

import io.kvstore.core.spi.Replicator;
import io.kvstore.core.spi.ReplicaStore;
import io.kvstore.core.spi.Router;
import io.kvstore.core.spi.WriteRequest;
import io.kvstore.core.spi.WriteResult;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.Digest;
import io.kvstore.core.spi.KeyVersion;
import io.kvstore.core.spi.ApplyResult;
import io.kvstore.core.spi.Hashing;
import java.time.Duration;
import java.time.InstantSource;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Collection;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.PriorityQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executor;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.BiFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The store engine.
 *
 * <p><b>Concurrency:</b> a {@link ConcurrentHashMap} from key to immutable {@link Entry} (one per
 * snapshot shard, {@link ShardedMap}; a key lives in one of them). Every write is one atomic map
 * operation on its key: a remote write is a {@code compute} (the LWW merge inside
 * it); a local write reads the current entry, decides, and commits with {@code putIfAbsent} or
 * {@code replace} of exactly the entry it read, deciding again if another write got in between (so no
 * function object and no second lock). A local write is stamped before it reads; if what it replaces
 * is not older, it is stamped again after observing that version, so a local write always beats what
 * it replaces. Reads are lock-free {@code get}s. Listeners are called after the map operation, so a
 * listener always sees its change visible.
 *
 * <p><b>Digest:</b> an {@link AtomicLongArray} of buckets, each the XOR of the entry hashes in it
 * (key, version and content fingerprint, see {@link Digest}). A standalone store (no replicator)
 * keeps none and computes it when asked, since only replication compares digests; nor does it hash
 * values on its write path. A store with a replicator hashes each written value once (kept in the
 * entry). After a write changes a key, the writer XORs out the old entry's hash and XORs in the new one,
 * outside the map's lock; XOR commutes, so updates to one bucket need no ordering, and once writes
 * settle every bucket equals the XOR over the map (a digest read mid-write may briefly differ, which
 * costs anti-entropy one needless comparison at most).
 *
 * <p><b>Ties:</b> two different entries of one key can carry one version only if a node restarted
 * empty under its old id reused a timestamp. The remote merge then orders them by
 * {@link Entry#compareSameVersion} (a total order on distinct entries), so every replica keeps the same
 * one whatever the delivery order; an identical entry is a duplicate and is ignored. Local writes never
 * tie: they are stamped above what they replace.
 *
 * <p><b>Expiry and purge:</b> an entry whose TTL passed reads as absent at once. The maintenance sweep
 * turns it into a tombstone that keeps its version, expiry and value hash (same digest hash, so
 * replicas that have not swept yet still agree; the tie-break ranks it just above the put it came
 * from), and purges tombstones once {@code tombstoneGrace} has passed since the
 * delete's timestamp or the expiry. That deadline depends only on the entry, so every replica purges at
 * the same wall-clock time, give or take clock skew.
 *
 * <p><b>Eviction</b> ({@link ReplicaStore#evict}) drops an entry of a partition this node no longer
 * owns: a {@code remove(key, entry)} of exactly the entry it checked, so any write that replaced it
 * in between wins; then the digest loses the entry's hash (leaving the bucket as if the key had never
 * been there) and the counts lose the entry. No tombstone, no event, no replication.
 *
 * <p><b>Durability:</b> with a data directory every change to the map (local write, remote apply,
 * anti-entropy repair; not a merge that changed nothing) is appended to a {@link Storage} after the
 * map operation, and the write's future completes only when both the storage says it is durable and
 * the write concern is met. Reads may see a change before it is durable. Expiry and purge are not
 * logged: replay restores the put or tombstone and the sweep makes the same decision again. An
 * eviction is logged (best effort, waited for by nothing), under the key's stripe like a change, so a
 * key's records are in the log in the order of its map operations: replay relies on that to tell an
 * evicted entry from the same version handed back later. A failed
 * storage write or sync makes the store read-only: local writes throw {@link StorageException},
 * remote ones are refused ({@link ApplyResult#REFUSED_READ_ONLY}).
 *
 * <p><b>Map operation and append are one step per key:</b> a durable store holds a lock stripe of the
 * key from before the map operation until the append is done. Without it a remote mutation
 * {@link ApplyResult#IGNORED} because another thread had just stored a newer entry of its key (not
 * appended yet) would get a {@link #whenDurable()} that covers neither: the replica acknowledges the
 * older version as held, a power loss in that instant loses both, and a QUORUM write counted this
 * replica among its copies. With the stripe, an ignoring merge runs only once whatever beat it is in
 * the log, so the barrier covers it. The appends are serialized under the log's lock anyway, so the
 * stripes cost an uncontended lock per write.
 */
final class DefaultKvStore implements KvStore {
  private static final Logger log = LoggerFactory.getLogger(DefaultKvStore.class);
  private static final long WARN_INTERVAL_MILLIS = 10_000;
  private static final int APPEND_STRIPES = 64;

  private final KvStoreConfig config;
  private final String nodeId;
  private final Hlc hlc;
  private final ShardedMap map;
  private final AtomicLongArray digest;
  private final int bucketCount;
  private final Replicator replicator;
  /** Where keys live when the replicator partitions them; null: every key is local. */
  private final Router router;
  private final boolean standalone;
  private final ListenerRegistry listeners = new ListenerRegistry();
  private final ScheduledExecutorService scheduler;
  private final boolean ownsScheduler;
  private final long maxDriftMillis;
  private final long graceMillis;
  private final int maxKeyBytes;
  private final int maxValueBytes;
  private volatile boolean closed;
  /**
   * Whether the replicator's side of the store refuses forwarded writes ({@link ReplicaStore#write}):
   * set once {@link Replicator#close()} returned, not with {@link #closed}, because a graceful leave
   * in partitioned mode waits for its peers first and the node stays an owner of its keys meanwhile
   * (the other nodes still forward writes to it).
   */
  private volatile boolean replicaClosed;
  private ScheduledFuture<?> maintenanceTask;
  /** Null for a memory-only store. */
  private final LogStorage storage;
  /** Held from a change's map operation to its append (durable stores only; null otherwise). */
  private final ReentrantLock[] appendStripes;
  /** Test seam: runs between a change's map operation and its append, under the stripe. */
  private volatile Runnable beforeAppendForTest;
  /** Test seam: runs in an eviction between reading the entry and removing it. */
  private volatile Runnable beforeEvictRemoveForTest;
  private final AtomicLong lastReadOnlyWarning = new AtomicLong(Long.MIN_VALUE / 2);

  private final LongAdder gets = new LongAdder();
  private final LongAdder puts = new LongAdder();
  private final LongAdder deletes = new LongAdder();
  private final LongAdder conditionFailures = new LongAdder();
  private final LongAdder remoteApplied = new LongAdder();
  private final LongAdder remoteIgnored = new LongAdder();
  private final LongAdder refusedDrift = new LongAdder();
  private final LongAdder refusedInvalid = new LongAdder();
  private final LongAdder live = new LongAdder();
  private final LongAdder tombstones = new LongAdder();
  /** Live entries with a TTL: with none and no tombstones, the maintenance sweep has nothing to do. */
  private final LongAdder expiring = new LongAdder();
  private final LongAdder purged = new LongAdder();
  private final AtomicLong lastDriftWarning = new AtomicLong(Long.MIN_VALUE / 2);
  private final AtomicLong lastInvalidWarning = new AtomicLong(Long.MIN_VALUE / 2);
  private final ReplicaStore replicaView = new ReplicaView();

  DefaultKvStore(KvStoreConfig config, InstantSource clock, ScheduledExecutorService scheduler,
      Replicator replicator) {
    this(config, clock, scheduler, replicator, null);
  }

  DefaultKvStore(KvStoreConfig config, InstantSource clock, ScheduledExecutorService scheduler,
      Replicator replicator, LogStorage.Options storageOptions) {
    this.config = config;
    this.nodeId = config.nodeId();
    this.hlc = new Hlc(clock);
    this.bucketCount = config.digestBuckets();
    this.digest = new AtomicLongArray(bucketCount);
    this.replicator = replicator;
    this.standalone = replicator instanceof StandaloneReplicator;
    this.maxDriftMillis = config.maxClockDrift().toMillis();
    this.graceMillis = config.tombstoneGrace().toMillis();
    this.maxKeyBytes = config.maxKeyBytes();
    this.maxValueBytes = config.maxValueBytes();
    // Sized for what recovery will put in, so it does not rehash the whole map while it grows.
    this.map = new ShardedMap(
        storageOptions == null ? 16 : LogStorage.expectedEntries(storageOptions.dir()));
    this.storage = storageOptions == null ? null : openStorage(storageOptions, clock);
    this.appendStripes = storage == null ? null : newStripes(APPEND_STRIPES);
    if (scheduler == null) {
      this.scheduler = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "kvstore-maintenance-" + nodeId);
        t.setDaemon(true);
        return t;
      });
      this.ownsScheduler = true;
    } else {
      this.scheduler = scheduler;
      this.ownsScheduler = false;
    }
    long interval = config.purgeInterval().toMillis();
    this.maintenanceTask = this.scheduler.scheduleWithFixedDelay(this::maintenanceQuietly,
        interval, interval, TimeUnit.MILLISECONDS);
    Router r;
    try {
      replicator.start(replicaView);
      r = replicator.router();
    } catch (RuntimeException e) {
      shutdownScheduler();
      if (storage != null) {
        storage.close();
      }
      throw e;
    }
    this.router = r;
  }

  /** Opens the data directory, replays it into the map and resumes the clock above it. */
  private LogStorage openStorage(LogStorage.Options options, InstantSource clock) {
    long started = System.nanoTime();
    LogStorage s = LogStorage.open(options, nodeId, !standalone, graceMillis, clock,
        new LogStorage.Sink() {
          @Override
          public void accept(String key, Entry entry) {
            recoverEntry(key, entry);
          }

          @Override
          public void evict(String key, long timestamp, String nodeId) {
            recoverEviction(key, timestamp, nodeId);
          }

          @Override
          public void reset() {
            map.clear();
            for (int i = 0; i < bucketCount; i++) {
              digest.set(i, 0);
            }
            live.reset();
            tombstones.reset();
            expiring.reset();
          }
        });
    hlc.observe(s.resumeAbove());
    hlc.reservation(s.reservation(), s::reserve);
    s.start(hlc::current, hlc::extendLimit, map::shard);
    StorageStatus st = s.status();
    log.info("node {}: recovered {} records ({} entries) from {} in {} ms ({})", nodeId,
        st.recoveredEntries(), map.size(), options.dir(),
        (System.nanoTime() - started) / 1_000_000, options.durability());
    return s;
  }

  private void recoverEntry(String key, Entry entry) {
    RemoteMerge r = new RemoteMerge(entry);
    map.compute(key, r);
    if (r.applied) {
      digestReplace(key, r.old, r.result);
      countTransition(r.old, r.result);
    }
  }

  /** Replays an eviction: what the key holds now goes unless it is newer than the evicted version. */
  private void recoverEviction(String key, long timestamp, String evictedNodeId) {
    Entry cur = map.get(key);
    if (cur != null && Version.compare(cur.timestamp, cur.nodeId, timestamp, evictedNodeId) <= 0
        && map.remove(key, cur)) {
      digestReplace(key, cur, null);
      countTransition(cur, null);
    }
  }

  private static ReentrantLock[] newStripes(int n) {
    ReentrantLock[] locks = new ReentrantLock[n];
    for (int i = 0; i < n; i++) {
      locks[i] = new ReentrantLock();
    }
    return locks;
  }

  /** The key's stripe, locked; null for a memory-only store. */
  private ReentrantLock lockStripe(String key) {
    if (appendStripes == null) {
      return null;
    }
    int h = key.hashCode();
    ReentrantLock l = appendStripes[(h ^ (h >>> 16)) & (APPEND_STRIPES - 1)];
    l.lock();
    return l;
  }

  /** Appends a change just stored in the map (under its stripe); completes when it is durable. */
  private CompletableFuture<Void> appendStored(String key, Entry e) {
    if (storage == null) {
      return StandaloneReplicator.DONE;
    }
    Runnable hook = beforeAppendForTest;
    if (hook != null) {
      hook.run();
    }
    return storage.append(key, e);
  }

  /** Test seam: runs between a change's map operation and its append (null to clear). */
  void beforeAppendForTest(Runnable hook) {
    beforeAppendForTest = hook;
  }

  /** Test seam: runs in an eviction between reading the entry and removing it (null to clear). */
  void beforeEvictRemoveForTest(Runnable hook) {
    beforeEvictRemoveForTest = hook;
  }

  /** A local change stored in the map and the future of its append. */
  private record Stored(Entry entry, CompletableFuture<Void> durable) {}

  /** Completes when both the durability step and the write concern are done. */
  private static CompletableFuture<Void> both(CompletableFuture<Void> durable,
      CompletableFuture<Void> replicated) {
    if (durable == StandaloneReplicator.DONE) {
      return replicated;
    }
    if (replicated == StandaloneReplicator.DONE) {
      return durable;
    }
    return durable.thenCombine(replicated, (a, b) -> null);
  }

  private void checkWritable(String key) {
    StorageException failure = storage == null ? null : storage.failure();
    if (failure != null) {
      Keys.validate(key, maxKeyBytes);
      throw new StorageException("the store of node '" + nodeId + "' is read-only: "
          + failure.getMessage(), failure);
    }
  }

  // ---- reads -----------------------------------------------------------------------------------

  @Override
  public Optional<byte[]> get(String key) {
    if (isRemote(key)) {
      return getVersioned(key, ReadOptions.defaults()).map(Versioned::value);
    }
    Entry e = read(key);
    return e == null ? Optional.empty() : Optional.of(e.value.clone());
  }

  @Override
  public Optional<Versioned> getVersioned(String key) {
    if (isRemote(key)) {
      return getVersioned(key, ReadOptions.defaults());
    }
    Entry e = read(key);
    return e == null ? Optional.empty()
        : Optional.of(new Versioned(key, e.value, e.version(), e.expiresAt()));
  }

  @Override
  public Optional<Versioned> getVersioned(String key, ReadOptions options) {
    CompletableFuture<Optional<Versioned>> f = getAsync(key, options);
    if (f.isDone() && !f.isCompletedExceptionally()) {
      return f.join();
    }
    return awaitRead(f, options);
  }

  /** Blocks for a remote read; throws what the async form would fail with. */
  private Optional<Versioned> awaitRead(CompletableFuture<Optional<Versioned>> f,
      ReadOptions options) {
    Duration timeout = options.timeout() != null ? options.timeout() : config.writeTimeout();
    long t = timeout.toMillis();
    long guardMillis = t > (Long.MAX_VALUE - 1_000) / 2 ? Long.MAX_VALUE : t * 2 + 1_000;
    try {
      return f.get(guardMillis, TimeUnit.MILLISECONDS);
    } catch (ExecutionException | CompletionException e) {
      Throwable cause = e.getCause() != null ? e.getCause() : e;
      if (cause instanceof RuntimeException re) {
        throw re;
      }
      throw new KvStoreException("read failed: " + cause, cause);
    } catch (TimeoutException e) {
      throw new KvStoreException("read at " + options.concern() + ": the replicator gave no "
          + "answer within " + guardMillis + " ms");
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new KvStoreException("interrupted while waiting for a remote read", e);
    }
  }

  @Override
  public CompletableFuture<Optional<Versioned>> getAsync(String key, ReadOptions options) {
    Objects.requireNonNull(options, "options");
    ensureOpen();
    if (key == null) {
      throw new IllegalArgumentException("key must not be null");
    }
    if (router == null || (options.concern() == ReadConcern.ONE && router.isReadLocal(key))) {
      Entry e = read(key);
      return CompletableFuture.completedFuture(e == null ? Optional.empty()
          : Optional.of(new Versioned(key, e.value, e.version(), e.expiresAt())));
    }
    Keys.validate(key, maxKeyBytes);
    gets.increment();
    Duration timeout = options.timeout() != null ? options.timeout() : config.writeTimeout();
    CompletableFuture<Mutation> read;
    try {
      read = router.read(key, options.concern(), timeout);
    } catch (RuntimeException ex) {
      log.error("router threw from read(); it must fail the future instead", ex);
      return CompletableFuture.failedFuture(ex);
    }
    return read.thenApply(this::liveOf);
  }

  /** A mutation read from an owner as what a read returns: empty unless a live value. */
  private Optional<Versioned> liveOf(Mutation m) {
    if (m == null || m.valueUnsafe() == null) {
      return Optional.empty();
    }
    long expires = m.expiresAtMillis();
    if (expires != 0 && expires <= hlc.wallMillis()) {
      return Optional.empty();
    }
    return Optional.of(new Versioned(m.key(), m.valueUnsafe(), m.version(), expires));
  }

  /**
   * Whether a read of the key at ONE goes to other nodes (partitioned mode: this node is not an
   * owner, or a pending one).
   */
  private boolean isRemote(String key) {
    Router r = router;
    return r != null && key != null && !r.isReadLocal(key);
  }

  /**
   * Whether a write goes to an owner: this node is not one, or, for a conditional write, is one
   * still pulling the partition (its copy cannot decide the condition).
   */
  private boolean isRemoteWrite(String key, WriteOptions options) {
    Router r = router;
    if (r == null || key == null) {
      return false;
    }
    boolean conditional = options.isIfAbsent() || options.expectedVersion() != null;
    return conditional ? !r.isReadLocal(key) : !r.isLocal(key);
  }

  private Entry read(String key) {
    ensureOpen();
    if (key == null) {
      throw new IllegalArgumentException("key must not be null");
    }
    Entry e = map.get(key);
    if (e == null) {
      // Only a key that is not stored can be invalid (writes validate), so hits skip the check.
      Keys.validate(key, maxKeyBytes);
      gets.increment();
      return null;
    }
    gets.increment();
    if (e.value == null) {
      return null;
    }
    return e.expiresAt() == 0 || e.isLiveAt(hlc.wallMillis()) ? e : null;
  }

  @Override
  public List<Versioned> scan(String prefix, String startAfter, int limit) {
    ensureOpen();
    Objects.requireNonNull(prefix, "prefix (use \"\" for all keys)");
    KvStoreConfig.requireRange("limit", limit, 1, config.maxScanLimit());
    Router r = router;
    if (r != null && r.isPartitioned()) {
      return clusterScan(r, prefix, startAfter, limit);
    }
    return scanLocal(prefix, startAfter, limit);
  }

  /** Partitioned mode: this node holds only its partitions, so the scan gathers from the cluster. */
  private List<Versioned> clusterScan(Router r, String prefix, String startAfter, int limit) {
    CompletableFuture<List<Mutation>> f;
    try {
      f = r.scan(prefix, startAfter, limit, config.writeTimeout());
    } catch (RuntimeException ex) {
      log.error("router threw from scan(); it must fail the future instead", ex);
      throw ex;
    }
    List<Versioned> out = new ArrayList<>();
    ReadOptions options = ReadOptions.defaults();
    CompletableFuture<Optional<Versioned>> none = f.thenApply(ms -> {
      for (Mutation m : ms) {
        liveOf(m).ifPresent(out::add);
      }
      return Optional.empty();
    });
    awaitRead(none, options);
    return out;
  }

  /** This node's own entries of a scan (ReplicaStore.scanLocal, and the scan without a cluster). */
  List<Versioned> scanLocal(String prefix, String startAfter, int limit) {
    long now = hlc.wallMillis();
    Comparator<Map.Entry<String, Entry>> byKey = Map.Entry.comparingByKey();
    PriorityQueue<Map.Entry<String, Entry>> largestFirst = new PriorityQueue<>(byKey.reversed());
    for (Map.Entry<String, Entry> me : map.entrySet()) {
      String k = me.getKey();
      if (!k.startsWith(prefix) || (startAfter != null && k.compareTo(startAfter) <= 0)) {
        continue;
      }
      Entry e = me.getValue();
      if (!e.isLiveAt(now)) {
        continue;
      }
      if (largestFirst.size() < limit) {
        largestFirst.add(Map.entry(k, e));
      } else if (k.compareTo(largestFirst.peek().getKey()) < 0) {
        largestFirst.poll();
        largestFirst.add(Map.entry(k, e));
      }
    }
    List<Map.Entry<String, Entry>> sorted = new ArrayList<>(largestFirst);
    sorted.sort(byKey);
    List<Versioned> out = new ArrayList<>(sorted.size());
    for (Map.Entry<String, Entry> me : sorted) {
      Entry e = me.getValue();
      out.add(new Versioned(me.getKey(), e.value, e.version(), e.expiresAt()));
    }
    return out;
  }

  @Override
  public long size() {
    return Math.max(0, live.sum());
  }

  // ---- local writes ----------------------------------------------------------------------------

  @Override
  public CompletableFuture<Version> putAsync(String key, byte[] value, WriteOptions options) {
    byte[] copy = checkPut(key, value, options);
    if (isRemoteWrite(key, options)) {
      return forward(key, copy, options).thenApply(WriteResult::version);
    }
    Stored st;
    try {
      st = applyLocal(key, copy, ttlOf(options), options, null);
    } catch (StoreClosedException | ConditionFailedException | StorageException failure) {
      return CompletableFuture.failedFuture(failure); // async forms fail their future
    }
    Entry e = st.entry();
    return both(st.durable(), replicate(key, e, options)).thenApply(ignored -> e.version());
  }

  @Override
  public CompletableFuture<Boolean> deleteAsync(String key, WriteOptions options) {
    checkDelete(key, options);
    if (isRemoteWrite(key, options)) {
      return forward(key, null, options).thenApply(WriteResult::wasLive);
    }
    boolean[] wasLive = new boolean[1];
    Stored st;
    try {
      st = applyLocal(key, null, 0, options, wasLive);
    } catch (StoreClosedException | ConditionFailedException | StorageException failure) {
      return CompletableFuture.failedFuture(failure);
    }
    return both(st.durable(), replicate(key, st.entry(), options))
        .thenApply(ignored -> wasLive[0]);
  }

  @Override
  public Version put(String key, byte[] value, WriteOptions options) {
    byte[] copy = checkPut(key, value, options);
    if (isRemoteWrite(key, options)) {
      return await(forward(key, copy, options), options).version();
    }
    Stored st = applyLocal(key, copy, ttlOf(options), options, null);
    awaitConcern(both(st.durable(), replicate(key, st.entry(), options)), options);
    return st.entry().version();
  }

  @Override
  public boolean delete(String key, WriteOptions options) {
    checkDelete(key, options);
    if (isRemoteWrite(key, options)) {
      return await(forward(key, null, options), options).wasLive();
    }
    boolean[] wasLive = new boolean[1];
    Stored st = applyLocal(key, null, 0, options, wasLive);
    awaitConcern(both(st.durable(), replicate(key, st.entry(), options)), options);
    return wasLive[0];
  }

  /**
   * Hands a write of a key this node does not own to an owner (partitioned mode). Everything that can
   * be checked here is: the key fully (the map's shortcut for stored keys does not apply), the value
   * by {@link #checkPut}; a closed store refuses.
   */
  private CompletableFuture<WriteResult> forward(String key, byte[] value, WriteOptions options) {
    Keys.validate(key, maxKeyBytes);
    if (closed) {
      return CompletableFuture.failedFuture(new StoreClosedException(nodeId));
    }
    WriteConcern concern = options.concern() != null ? options.concern()
        : config.defaultWriteConcern();
    Duration timeout = options.timeout() != null ? options.timeout() : config.writeTimeout();
    WriteRequest request = new WriteRequest(key, value, value == null ? 0 : ttlOf(options),
        value != null && options.isIfAbsent(), options.expectedVersion(), concern,
        timeout.toMillis());
    try {
      return router.forward(request);
    } catch (RuntimeException ex) {
      log.error("router threw from forward(); it must fail the future instead", ex);
      return CompletableFuture.failedFuture(ex);
    }
  }

  /** Runs a forwarded write as this store's own local write ({@link ReplicaStore#write}). */
  CompletableFuture<WriteResult> write(WriteRequest r) {
    WriteOptions options = WriteOptions.concern(r.concern())
        .withTimeout(Duration.ofMillis(r.timeoutMillis()));
    if (r.ttlMillis() > 0) {
      options = options.withTtl(Duration.ofMillis(r.ttlMillis()));
    }
    if (r.ifAbsent()) {
      options = options.ifAbsent();
    } else if (r.expectedVersion() != null) {
      options = options.ifVersion(r.expectedVersion());
    }
    try {
      if (r.isDelete()) {
        checkDelete(r.key(), options);
        boolean[] wasLive = new boolean[1];
        Stored st = applyLocal(r.key(), null, 0, options, wasLive, replicaClosed);
        return both(st.durable(), replicate(r.key(), st.entry(), options))
            .thenApply(ignored -> new WriteResult(st.entry().version(), wasLive[0]));
      }
      byte[] copy = checkPut(r.key(), r.value(), options);
      Stored st = applyLocal(r.key(), copy, ttlOf(options), options, null, replicaClosed);
      return both(st.durable(), replicate(r.key(), st.entry(), options))
          .thenApply(ignored -> new WriteResult(st.entry().version(), false));
    } catch (RuntimeException failure) {
      return CompletableFuture.failedFuture(failure);
    }
  }

  /** Checks what can be checked before touching the map; returns the store's copy of the value. */
  private byte[] checkPut(String key, byte[] value, WriteOptions options) {
    Objects.requireNonNull(options, "options");
    requireKey(key);
    Keys.validateValue(value, maxValueBytes);
    return value.clone();
  }

  private static void checkDelete(String key, WriteOptions options) {
    Objects.requireNonNull(options, "options");
    requireKey(key);
  }

  /**
   * The part of key validation a write does before touching the map. The rest happens in
   * {@link #applyLocal} and only for a key the map does not hold: every stored key passed this store's
   * validation (local writes here, remote ones in {@link #apply(Mutation)}), so the common overwrite
   * does not read the key's characters.
   */
  private static void requireKey(String key) {
    if (key == null) {
      throw new IllegalArgumentException("key must not be null");
    }
  }

  private static long ttlOf(WriteOptions options) {
    return options.ttl() == null ? 0 : options.ttl().toMillis();
  }

  /**
   * Applies a local write and returns the entry it stored; then updates the digest and the counts and
   * tells the listeners. Optimistic: reads the current entry, decides (condition, version), and commits
   * with one atomic {@code putIfAbsent} or {@code replace} of exactly the entry it read; if another
   * write changed the key in between, it decides again against the new entry. So the merge is one
   * atomic map operation on a decision that is still valid, and a local write always beats what it
   * replaces: if the current entry is not older than this write's stamp (a concurrent write got there
   * first, or a remote one came from a clock ahead), it is stamped again after observing it.
   *
   * @param wasLive if not null, gets whether the key had a live value just before
   * @throws StoreClosedException if the store is closed
   * @throws ConditionFailedException if the write's condition does not hold
   * @throws StorageException if the store is read-only after a storage failure
   * @throws IllegalArgumentException if the key is not stored and invalid
   */
  private Stored applyLocal(String key, byte[] value, long ttlMillis, WriteOptions options,
      boolean[] wasLive) {
    return applyLocal(key, value, ttlMillis, options, wasLive, closed);
  }

  /** {@link #applyLocal}, refusing when {@code refuse} (the user's {@link #closed}, or the
   * replicator's {@link #replicaClosed} for a forwarded write). */
  private Stored applyLocal(String key, byte[] value, long ttlMillis, WriteOptions options,
      boolean[] wasLive, boolean refuse) {
    if (refuse) {
      Keys.validate(key, maxKeyBytes); // invalid input is reported as such, closed or not
      throw new StoreClosedException(nodeId);
    }
    if (storage != null) {
      checkWritable(key);
    }
    long stamp = hlc.now();
    // For the digest of a store with a replicator; a standalone store computes it only when asked.
    int valueHash = standalone || value == null ? 0 : Hashing.value(value);
    Entry next;
    CompletableFuture<Void> durable;
    ReentrantLock stripe = lockStripe(key);
    try {
      next = storeLocal(key, value, ttlMillis, options, wasLive, stamp, valueHash);
      durable = appendStored(key, next);
    } finally {
      if (stripe != null) {
        stripe.unlock();
      }
    }
    if (!listeners.isEmpty()) {
      listeners.fire(new ChangeEvent(value == null ? ChangeEvent.Type.DELETE
          : ChangeEvent.Type.PUT, key, next.version(), ChangeEvent.Origin.LOCAL, value));
    }
    return new Stored(next, durable);
  }

  /** The compare-and-set loop of a local write (under the key's stripe in a durable store). */
  private Entry storeLocal(String key, byte[] value, long ttlMillis, WriteOptions options,
      boolean[] wasLive, long firstStamp, int valueHash) {
    long stamp = firstStamp;
    while (true) {
      Entry cur = map.get(key);
      if (cur == null) {
        Keys.validate(key, maxKeyBytes);
      }
      boolean live = cur != null && cur.value != null
          && (cur.expiresAt() == 0 || cur.isLiveAt(hlc.wallMillis()));
      if (options.isIfAbsent() && live) {
        throw conditionFailed(key, options, cur);
      }
      Version expected = options.expectedVersion();
      if (expected != null && !(live && cur.sameVersion(expected))) {
        throw conditionFailed(key, options, live ? cur : null);
      }
      if (cur != null && !(Version.compare(stamp, nodeId, cur.timestamp, cur.nodeId) > 0)) {
        hlc.observe(cur.timestamp);
        stamp = hlc.now();
      }
      // A TTL runs from the write's own timestamp, so expiry is a function of the version alone.
      // The HLC is never behind this node's clock; a remote write within maxClockDrift can put it
      // ahead, lengthening a TTL by at most that much.
      long expiresAt = value != null && ttlMillis > 0
          ? expiry(Version.physicalOf(stamp), ttlMillis) : 0;
      Entry next = Entry.create(value, stamp, nodeId, expiresAt, valueHash);
      if (cur == null ? map.putIfAbsent(key, next) == null : map.replace(key, cur, next)) {
        if (wasLive != null) {
          wasLive[0] = live;
        }
        digestReplace(key, cur, next);
        (value == null ? deletes : puts).increment();
        countTransition(cur, next);
        return next;
      }
    }
  }

  private ConditionFailedException conditionFailed(String key, WriteOptions options, Entry live) {
    conditionFailures.increment();
    String expected = options.isIfAbsent() ? "no value" : "version " + options.expectedVersion();
    return new ConditionFailedException(key, expected, live != null ? live.version() : null);
  }

  /** Hands an applied local write to the replicator; the future completes per the write concern. */
  private CompletableFuture<Void> replicate(String key, Entry e, WriteOptions options) {
    if (standalone) {
      return StandaloneReplicator.DONE; // nobody consumes the mutation: don't build it
    }
    WriteConcern concern = options.concern() != null ? options.concern()
        : config.defaultWriteConcern();
    Duration timeout = options.timeout() != null ? options.timeout() : config.writeTimeout();
    try {
      return replicator.replicate(e.toMutation(key), concern, timeout);
    } catch (RuntimeException ex) {
      log.error("replicator threw from replicate(); it must fail the future instead", ex);
      return CompletableFuture.failedFuture(ex);
    }
  }

  /** Blocks until the write concern is met; throws what the async form would fail with. */
  private void awaitConcern(CompletableFuture<Void> replicated, WriteOptions options) {
    if (replicated.isDone() && !replicated.isCompletedExceptionally()) {
      return; // ONE, or a standalone store: no waiting, no extra futures
    }
    await(replicated, options);
  }

  /** When a value written at {@code physicalMillis} with this TTL expires; saturates, never wraps. */
  static long expiry(long physicalMillis, long ttlMillis) {
    return ttlMillis > Long.MAX_VALUE - physicalMillis ? Long.MAX_VALUE : physicalMillis + ttlMillis;
  }

  @Override
  public boolean putIfAbsent(String key, byte[] value) {
    try {
      put(key, value, WriteOptions.defaults().ifAbsent());
      return true;
    } catch (ConditionFailedException e) {
      return false;
    }
  }

  @Override
  public boolean putIfVersion(String key, byte[] value, Version expected) {
    try {
      put(key, value, WriteOptions.defaults().ifVersion(expected));
      return true;
    } catch (ConditionFailedException e) {
      return false;
    }
  }

  @Override
  public boolean deleteIfVersion(String key, Version expected) {
    try {
      delete(key, WriteOptions.defaults().ifVersion(expected));
      return true;
    } catch (ConditionFailedException e) {
      return false;
    }
  }

  private <T> T await(CompletableFuture<T> future, WriteOptions options) {
    Duration timeout = options.timeout() != null ? options.timeout() : config.writeTimeout();
    // The replicator owns the timeout; this bound only guards against one that never answers.
    long timeoutMillis = timeout.toMillis();
    long guardMillis = timeoutMillis > (Long.MAX_VALUE - 1_000) / 2 ? Long.MAX_VALUE
        : timeoutMillis * 2 + 1_000;
    try {
      return future.get(guardMillis, TimeUnit.MILLISECONDS);
    } catch (ExecutionException | CompletionException e) {
      Throwable cause = e.getCause() != null ? e.getCause() : e;
      if (cause instanceof RuntimeException re) {
        throw re;
      }
      throw new KvStoreException("write failed: " + cause, cause);
    } catch (TimeoutException e) {
      WriteConcern concern = options.concern() != null ? options.concern()
          : config.defaultWriteConcern();
      int members = Math.max(1, replicator.clusterView().members().size());
      throw new WriteConcernException(concern, concern.requiredAcks(members), 1,
          "the replicator gave no answer within " + guardMillis + " ms");
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new KvStoreException("interrupted while waiting for the write concern; "
          + "the write is applied locally and may still spread", e);
    }
  }

  // ---- remote writes (ReplicaStore) ------------------------------------------------------------

  String nodeId() {
    return nodeId;
  }

  ApplyResult apply(Mutation m) {
    String problem = Keys.problem(m.key(), maxKeyBytes);
    if (problem == null && m.valueUnsafe() != null && m.valueUnsafe().length > maxValueBytes) {
      problem = "value is " + m.valueUnsafe().length + " bytes, more than the limit of "
          + maxValueBytes;
    }
    if (problem != null) {
      refusedInvalid.increment();
      warnRateLimited(lastInvalidWarning, "refused a mutation from node {}: {}",
          m.version().nodeId(), problem);
      return ApplyResult.REFUSED_INVALID;
    }
    if (storage != null && storage.failure() != null) {
      warnRateLimited(lastReadOnlyWarning, "refused a mutation from node {}: {}",
          m.version().nodeId(), "this store is read-only after a storage failure");
      return ApplyResult.REFUSED_READ_ONLY;
    }
    long wall = hlc.wallMillis();
    if (m.version().physicalMillis() - wall > maxDriftMillis) { // no overflow for any drift
      refusedDrift.increment();
      warnRateLimited(lastDriftWarning,
          "refused a mutation from node {}: its clock is {} ms ahead of ours, over maxClockDrift",
          m.version().nodeId(), m.version().physicalMillis() - wall);
      return ApplyResult.REFUSED_CLOCK_DRIFT;
    }
    hlc.observe(m.version().timestamp());
    RemoteMerge r = new RemoteMerge(Entry.of(m)); // hashes the value outside the map's lock
    // Under the stripe: if this merge is ignored, whatever beat it is appended already, so
    // whenDurable() covers it (see the class comment).
    ReentrantLock stripe = lockStripe(m.key());
    try {
      map.compute(m.key(), r);
      if (r.applied) {
        appendStored(m.key(), r.result); // whenDurable() tells when; a failure fails it
      }
    } finally {
      if (stripe != null) {
        stripe.unlock();
      }
    }
    if (!r.applied) {
      remoteIgnored.increment();
      return ApplyResult.IGNORED;
    }
    digestReplace(m.key(), r.old, r.result);
    remoteApplied.increment();
    countTransition(r.old, r.result);
    Entry e = r.result;
    // A put that arrives after its expiry is stored as received (so replicas hold the same entry)
    // but was never visible: no PUT event; the next sweep reports its EXPIRE like any other.
    if (!listeners.isEmpty() && (e.value == null || e.isLiveAt(hlc.wallMillis()))) {
      ChangeEvent.Type type = e.value != null ? ChangeEvent.Type.PUT
          : e.expiresAt() == 0 ? ChangeEvent.Type.DELETE : ChangeEvent.Type.EXPIRE;
      listeners.fire(new ChangeEvent(type, m.key(), m.version(), ChangeEvent.Origin.REMOTE,
          e.value));
    }
    return ApplyResult.APPLIED;
  }

  CompletableFuture<Void> whenDurable() {
    return storage == null ? StandaloneReplicator.DONE : storage.barrier();
  }

  /** {@link ReplicaStore#evict}: drops exactly the listed entries; returns how many went. */
  long evict(Collection<KeyVersion> entries) {
    Objects.requireNonNull(entries, "entries");
    if (closed) {
      return 0;
    }
    long removed = 0;
    for (KeyVersion kv : entries) {
      if (evictOne(Objects.requireNonNull(kv, "an entry to evict"))) {
        removed++;
      }
    }
    if (log.isDebugEnabled()) {
      log.debug("node {}: evicted {} of {} entries listed", nodeId, removed, entries.size());
    }
    return removed;
  }

  /**
   * Removes the key if it holds exactly the listed entry. The loop repeats only when the entry was
   * replaced by another of the same version and fingerprint (a put by its expired form): each such
   * replacement is a step up the merge's total order, so it ends at once in practice. Under the
   * key's stripe in a durable store, so the record lands in the log in the key's order (see the
   * class comment).
   */
  private boolean evictOne(KeyVersion kv) {
    String key = kv.key();
    Entry gone = null;
    ReentrantLock stripe = lockStripe(key);
    try {
      Entry cur = map.get(key);
      while (cur != null && cur.sameVersion(kv.version()) && cur.fingerprint() == kv.fingerprint()) {
        Runnable hook = beforeEvictRemoveForTest;
        if (hook != null) {
          hook.run();
        }
        if (map.remove(key, cur)) {
          gone = cur;
          if (storage != null) {
            storage.appendEviction(key, cur); // best effort: a failure turns the store read-only
          }
          break;
        }
        cur = map.get(key);
      }
    } finally {
      if (stripe != null) {
        stripe.unlock();
      }
    }
    if (gone == null) {
      return false;
    }
    digestReplace(key, gone, null);
    countTransition(gone, null);
    return true;
  }

  /**
   * The last-writer-wins merge of a remote mutation; one instance per call. A higher version wins; an
   * equal version with different content is decided by {@link Entry#compareSameVersion}; an identical
   * entry changes nothing.
   */
  /**
   * The store as its replicator sees it ({@link Replicator#start(ReplicaStore)}): a separate object,
   * so no cast from the user's {@link KvStore} reaches the SPI.
   */
  private final class ReplicaView implements ReplicaStore {
    @Override
    public String nodeId() {
      return DefaultKvStore.this.nodeId();
    }

    @Override
    public ApplyResult apply(Mutation mutation) {
      return DefaultKvStore.this.apply(mutation);
    }

    @Override
    public CompletionStage<Void> whenDurable() {
      return DefaultKvStore.this.whenDurable();
    }

    @Override
    public long evict(Collection<KeyVersion> entries) {
      return DefaultKvStore.this.evict(entries);
    }

    @Override
    public Registration listen(String prefix, ChangeListener listener, Executor executor) {
      ensureOpen();
      return listeners.add(prefix, listener, Objects.requireNonNull(executor, "executor"));
    }

    @Override
    public Digest digest() {
      return DefaultKvStore.this.digest();
    }

    @Override
    public List<KeyVersion> keyVersions(BitSet buckets) {
      return DefaultKvStore.this.keyVersions(buckets);
    }

    @Override
    public List<Mutation> mutations(Collection<String> keys) {
      return DefaultKvStore.this.mutations(keys);
    }

    @Override
    public CompletableFuture<WriteResult> write(WriteRequest request) {
      return DefaultKvStore.this.write(request);
    }

    @Override
    public List<Mutation> scanLocal(String prefix, String startAfter, int limit) {
      List<Mutation> out = new ArrayList<>();
      for (Versioned v : DefaultKvStore.this.scanLocal(prefix, startAfter, limit)) {
        Entry e = map.get(v.key());
        if (e != null && e.value != null) {
          out.add(e.toMutation(v.key()));
        }
      }
      return out;
    }

    @Override
    public Mutation mutation(String key) {
      Entry e = map.get(key);
      return e == null ? null : e.toMutation(key);
    }

    @Override
    public String toString() {
      return "ReplicaView[" + DefaultKvStore.this.nodeId() + "]";
    }
  }

  /** The view handed to the replicator; package-private, for core's tests ({@code ReplicaViews}). */
  ReplicaStore replicaView() {
    return replicaView;
  }

  private static final class RemoteMerge implements BiFunction<String, Entry, Entry> {
    private final Entry incoming;
    Entry old;
    Entry result;
    boolean applied;

    RemoteMerge(Entry incoming) {
      this.incoming = incoming;
    }

    @Override
    public Entry apply(String key, Entry cur) {
      old = cur;
      if (cur != null) {
        int c = Version.compare(incoming.timestamp, incoming.nodeId, cur.timestamp, cur.nodeId);
        if (c < 0 || (c == 0 && Entry.compareSameVersion(incoming, cur) <= 0)) {
          return cur;
        }
      }
      applied = true;
      result = incoming;
      return result;
    }
  }

  Digest digest() {
    long[] copy = new long[bucketCount];
    if (standalone) {
      // Nothing compares this store's digest routinely, so writes keep none; compute it (O(entries)).
      map.forEach((key, e) -> {
        long keyHash = Hashing.key(key);
        copy[Digest.bucketOfHash(keyHash, bucketCount)] ^=
            Hashing.entry(keyHash, e.timestamp, e.nodeId, e.fingerprint());
      });
      return Digest.of(copy);
    }
    for (int i = 0; i < bucketCount; i++) {
      copy[i] = digest.get(i);
    }
    return Digest.of(copy);
  }

  List<KeyVersion> keyVersions(BitSet buckets) {
    List<KeyVersion> out = new ArrayList<>();
    for (Map.Entry<String, Entry> me : map.entrySet()) {
      String k = me.getKey();
      if (buckets.get(Digest.bucketOfHash(Hashing.key(k), bucketCount))) {
        Entry e = me.getValue();
        out.add(new KeyVersion(k, e.version(), e.fingerprint()));
      }
    }
    return out;
  }

  List<Mutation> mutations(Collection<String> keys) {
    List<Mutation> out = new ArrayList<>(keys.size());
    for (String k : keys) {
      Entry e = map.get(k);
      if (e != null) {
        out.add(e.toMutation(k));
      }
    }
    return out;
  }

  private void digestReplace(String key, Entry old, Entry now) {
    if (standalone) {
      return; // see digest()
    }
    long keyHash = Hashing.key(key);
    long delta = 0;
    if (old != null) {
      delta ^= Hashing.entry(keyHash, old.timestamp, old.nodeId, old.fingerprint());
    }
    if (now != null) {
      delta ^= Hashing.entry(keyHash, now.timestamp, now.nodeId, now.fingerprint());
    }
    if (delta != 0) {
      digest.accumulateAndGet(Digest.bucketOfHash(keyHash, bucketCount), delta, (a, b) -> a ^ b);
    }
  }

  private void countTransition(Entry old, Entry now) {
    if (old != null && old.value != null && old.expiresAt() != 0) {
      expiring.decrement();
    }
    if (now != null && now.value != null && now.expiresAt() != 0) {
      expiring.increment();
    }
    if (old != null && now != null && (old.value == null) == (now.value == null)) {
      return; // live -> live or tombstone -> tombstone: counts unchanged
    }
    if (old != null) {
      (old.value != null ? live : tombstones).decrement();
    }
    if (now != null) {
      (now.value != null ? live : tombstones).increment();
    }
  }

  // ---- maintenance -----------------------------------------------------------------------------

  @Override
  public int runMaintenance() {
    if (closed) {
      return 0;
    }
    if (tombstones.sum() <= 0 && expiring.sum() <= 0) {
      // Nothing can expire or be purged: skip the O(entries) walk (it was ~6-9 % of a busy
      // cluster node's CPU at 500k entries with no TTLs and no deletes). A count that is being
      // updated right now is seen by the next sweep.
      return 0;
    }
    long now = hlc.wallMillis();
    int removed = 0;
    for (Map.Entry<String, Entry> me : map.entrySet()) {
      String key = me.getKey();
      Entry e = me.getValue();
      if (e.value != null && !e.isLiveAt(now)) {
        Entry expired = e.expired();
        if (map.replace(key, e, expired)) {
          countTransition(e, expired);
          if (!listeners.isEmpty()) {
            listeners.fire(new ChangeEvent(ChangeEvent.Type.EXPIRE, key, e.version(),
                e.nodeId.equals(nodeId) ? ChangeEvent.Origin.LOCAL : ChangeEvent.Origin.REMOTE,
                null));
          }
          e = expired;
        }
      }
      if (e.value == null && now - e.deadSinceMillis() >= graceMillis && map.remove(key, e)) {
        digestReplace(key, e, null);
        tombstones.decrement();
        purged.increment();
        removed++;
      }
    }
    return removed;
  }

  private void maintenanceQuietly() {
    try {
      if (!closed) {
        runMaintenance();
      }
    } catch (RuntimeException e) {
      log.error("maintenance sweep of node {} failed; it runs again in {}", nodeId,
          config.purgeInterval(), e);
    }
  }

  // ---- observation and lifecycle ---------------------------------------------------------------

  @Override
  public Registration addListener(String prefix, ChangeListener listener) {
    ensureOpen();
    return listeners.add(prefix, listener, null);
  }

  @Override
  public Registration addListener(String prefix, ChangeListener listener, Executor executor) {
    ensureOpen();
    return listeners.add(prefix, listener, Objects.requireNonNull(executor, "executor"));
  }

  @Override
  public long contentFingerprint() {
    long[] buckets = digest().toArray();
    long h = 0x9E3779B97F4A7C15L * buckets.length;
    for (int i = 0; i < buckets.length; i++) {
      h = Long.rotateLeft(h ^ buckets[i], 27) * 0x9E3779B97F4A7C15L + i;
    }
    return h;
  }

  @Override
  public Registration addClusterListener(String prefix, ChangeListener listener,
      Executor executor) {
    ensureOpen();
    Objects.requireNonNull(executor, "executor");
    Router r = router;
    if (r == null) {
      return addListener(prefix, listener, executor);
    }
    ChangeDedupe seen = new ChangeDedupe(ChangeDedupe.DEFAULT_KEYS);
    Registration local = listeners.add(prefix, e -> {
      if (seen.firstTime(e.key(), e.version())) {
        listener.onChange(e);
      }
    }, executor);
    Registration remote;
    try {
      remote = r.subscribe(prefix, m -> executor.execute(() -> {
        if (seen.firstTime(m.key(), m.version())) {
          listener.onChange(remoteEvent(m));
        }
      }));
    } catch (RuntimeException e) {
      local.close();
      throw e;
    }
    return () -> {
      remote.close();
      local.close();
    };
  }

  /** The event a cluster listener gets for a change another node applied. */
  private static ChangeEvent remoteEvent(Mutation m) {
    ChangeEvent.Type type = m.valueUnsafe() != null ? ChangeEvent.Type.PUT
        : m.expiresAtMillis() != 0 ? ChangeEvent.Type.EXPIRE : ChangeEvent.Type.DELETE;
    byte[] value = m.valueUnsafe() == null ? null : m.valueUnsafe().clone();
    return new ChangeEvent(type, m.key(), m.version(), ChangeEvent.Origin.REMOTE, value);
  }

  @Override
  public StoreStats stats() {
    return new StoreStats(gets.sum(), puts.sum(), deletes.sum(), conditionFailures.sum(),
        remoteApplied.sum(), remoteIgnored.sum(), refusedDrift.sum(), refusedInvalid.sum(),
        Math.max(0, live.sum()), Math.max(0, tombstones.sum()), purged.sum());
  }

  @Override
  public StorageStatus storage() {
    return storage == null ? StorageStatus.MEMORY_ONLY : storage.status();
  }

  @Override
  public ClusterView cluster() {
    return replicator.clusterView();
  }

  @Override
  public KvStoreConfig config() {
    return config;
  }

  @Override
  public void close() {
    synchronized (this) {
      if (closed) {
        return;
      }
      closed = true;
    }
    try {
      replicator.close();
    } catch (RuntimeException e) {
      log.warn("replicator of node {} failed to close cleanly", nodeId, e);
    }
    replicaClosed = true;
    shutdownScheduler();
    if (storage != null) {
      storage.close();
    }
  }

  /** Test hook: stops like a killed process (nothing more is written or synced). */
  void crashForTest() {
    synchronized (this) {
      if (closed) {
        return;
      }
      closed = true;
    }
    replicator.close();
    replicaClosed = true;
    shutdownScheduler();
    if (storage != null) {
      storage.crash();
    }
  }

  /** Test hook: the storage, or null. */
  LogStorage storageForTest() {
    return storage;
  }

  private void shutdownScheduler() {
    if (maintenanceTask != null) {
      maintenanceTask.cancel(false);
    }
    if (ownsScheduler) {
      scheduler.shutdownNow();
    }
  }

  private void ensureOpen() {
    if (closed) {
      throw new StoreClosedException(nodeId);
    }
  }

  private void warnRateLimited(AtomicLong last, String format, Object a, Object b) {
    long now = System.nanoTime() / 1_000_000;
    long prev = last.get();
    if (now - prev >= WARN_INTERVAL_MILLIS && last.compareAndSet(prev, now)) {
      log.warn(format + " (logged at most every 10 s; see stats())", a, b);
    }
  }

  /** Test hook: the HLC's last timestamp. */
  long hlcCurrent() {
    return hlc.current();
  }

  @Override
  public String toString() {
    return "KvStore{" + nodeId + ", " + size() + " entries}";
  }
}
