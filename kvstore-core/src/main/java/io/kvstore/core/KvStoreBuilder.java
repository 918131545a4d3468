package io.kvstore.core;

import io.kvstore.core.spi.Replicator;
import java.nio.file.Path;
import java.time.Duration;
import java.time.InstantSource;
import java.util.Objects;
import java.util.UUID;
import java.util.concurrent.ScheduledExecutorService;
import java.util.function.Function;

/**
 * Builds a {@link KvStore}. Obtain one from {@link KvStore#builder()}; every setting has a documented
 * default in {@link KvStoreConfig}. Settings are validated by {@link #build()}, which fails with an
 * {@link IllegalArgumentException} naming the setting.
 */
public final class KvStoreBuilder {
  private String nodeId;
  private int maxKeyBytes = KvStoreConfig.DEFAULT_MAX_KEY_BYTES;
  private int maxValueBytes = KvStoreConfig.DEFAULT_MAX_VALUE_BYTES;
  private Duration tombstoneGrace = KvStoreConfig.DEFAULT_TOMBSTONE_GRACE;
  private Duration purgeInterval = KvStoreConfig.DEFAULT_PURGE_INTERVAL;
  private Duration maxClockDrift = KvStoreConfig.DEFAULT_MAX_CLOCK_DRIFT;
  private WriteConcern defaultWriteConcern = KvStoreConfig.DEFAULT_WRITE_CONCERN;
  private Duration writeTimeout = KvStoreConfig.DEFAULT_WRITE_TIMEOUT;
  private int digestBuckets = KvStoreConfig.DEFAULT_DIGEST_BUCKETS;
  private int maxScanLimit = KvStoreConfig.DEFAULT_MAX_SCAN_LIMIT;
  private InstantSource clock = InstantSource.system();
  private ScheduledExecutorService scheduler;
  private Function<KvStoreConfig, Replicator> replicatorFactory;
  private Path dataDir;
  private Durability durability;
  private Duration syncInterval = DEFAULT_SYNC_INTERVAL;
  private CorruptionPolicy onCorruption = CorruptionPolicy.REFUSE;
  private String clusterName;
  private long segmentBytes = LogStorage.Options.DEFAULT_SEGMENT_BYTES;
  private long compactBytes = LogStorage.Options.DEFAULT_COMPACT_BYTES;
  private long clockStepMillis = LogStorage.Options.DEFAULT_CLOCK_STEP_MILLIS;
  private FileIo fileIo = FileIo.DEFAULT;

  /**
   * 1 s: the sync period of {@link Durability#INTERVAL}, so a power loss loses at most about this
   * much; shorter costs more syncs (each one a few hundred microseconds of disk time).
   */
  public static final Duration DEFAULT_SYNC_INTERVAL = Duration.ofSeconds(1);

  KvStoreBuilder() {}

  /**
   * Keeps the store's data in this directory across restarts (default: none, memory-only). The
   * directory is created if needed and holds one node's data: a directory of another node id, or
   * one in use by another store, is refused. The store recovers what the directory holds before
   * {@link #build()} returns. See {@link Durability} for when writes are acknowledged.
   *
   * @param dir the data directory, or null for a memory-only store
   * @return this builder
   */
  public KvStoreBuilder dataDir(Path dir) {
    this.dataDir = dir;
    return this;
  }

  /**
   * When writes are acknowledged (default {@link Durability#INTERVAL}); needs a
   * {@link #dataDir(Path) data directory}.
   *
   * @param durability the durability level
   * @return this builder
   */
  public KvStoreBuilder durability(Durability durability) {
    this.durability = Objects.requireNonNull(durability, "durability");
    return this;
  }

  /**
   * How often {@link Durability#INTERVAL} syncs the log (default 1 s, {@link #DEFAULT_SYNC_INTERVAL}).
   *
   * @param interval a positive duration
   * @return this builder
   */
  public KvStoreBuilder syncInterval(Duration interval) {
    this.syncInterval = interval;
    return this;
  }

  /**
   * What recovery does with a corrupted data directory (default {@link CorruptionPolicy#REFUSE};
   * {@code KvClusterBuilder} sets {@link CorruptionPolicy#MOVE_ASIDE}, since peers can repair a node).
   *
   * @param policy the policy
   * @return this builder
   */
  public KvStoreBuilder onCorruption(CorruptionPolicy policy) {
    this.onCorruption = Objects.requireNonNull(policy, "policy");
    return this;
  }

  /**
   * The cluster this store belongs to, recorded in the data directory (default: none); a directory
   * recorded for another cluster is refused. {@code KvClusterBuilder} sets it.
   *
   * @param name the cluster name, or null
   * @return this builder
   */
  public KvStoreBuilder clusterName(String name) {
    this.clusterName = name;
    return this;
  }

  /** Test hook: segment and compaction sizes, the clock step, and the file system. */
  KvStoreBuilder storageInternals(long segmentBytes, long compactBytes, long clockStepMillis,
      FileIo io) {
    this.segmentBytes = segmentBytes;
    this.compactBytes = compactBytes;
    this.clockStepMillis = clockStepMillis;
    this.fileIo = Objects.requireNonNull(io, "io");
    return this;
  }

  /**
   * This node's id (default: {@code node-} and 8 random hex digits). Must be unique in the cluster.
   *
   * @param nodeId 1 to 64 characters of {@code A-Z a-z 0-9 . _ : -}
   * @return this builder
   */
  public KvStoreBuilder nodeId(String nodeId) {
    this.nodeId = nodeId;
    return this;
  }

  /**
   * The longest key in UTF-8 bytes (default {@value KvStoreConfig#DEFAULT_MAX_KEY_BYTES}).
   *
   * @param maxKeyBytes 1 to 65536
   * @return this builder
   */
  public KvStoreBuilder maxKeyBytes(int maxKeyBytes) {
    this.maxKeyBytes = maxKeyBytes;
    return this;
  }

  /**
   * The largest value in bytes (default {@value KvStoreConfig#DEFAULT_MAX_VALUE_BYTES}).
   *
   * @param maxValueBytes 0 to {@value KvStoreConfig#MAX_VALUE_BYTES_LIMIT}
   * @return this builder
   */
  public KvStoreBuilder maxValueBytes(int maxValueBytes) {
    this.maxValueBytes = maxValueBytes;
    return this;
  }

  /**
   * How long deleted and expired keys are remembered (default 1 hour); see
   * {@link KvStoreConfig#DEFAULT_TOMBSTONE_GRACE}.
   *
   * @param grace a positive duration
   * @return this builder
   */
  public KvStoreBuilder tombstoneGrace(Duration grace) {
    this.tombstoneGrace = grace;
    return this;
  }

  /**
   * How often the maintenance sweep runs (default 5 s).
   *
   * @param interval a positive duration
   * @return this builder
   */
  public KvStoreBuilder purgeInterval(Duration interval) {
    this.purgeInterval = interval;
    return this;
  }

  /**
   * How far ahead of this node's clock another node's writes may be (default 60 s).
   *
   * @param drift a positive duration
   * @return this builder
   */
  public KvStoreBuilder maxClockDrift(Duration drift) {
    this.maxClockDrift = drift;
    return this;
  }

  /**
   * The write concern of writes that name none (default {@link WriteConcern#ONE}).
   *
   * @param concern the write concern
   * @return this builder
   */
  public KvStoreBuilder defaultWriteConcern(WriteConcern concern) {
    this.defaultWriteConcern = concern;
    return this;
  }

  /**
   * How long a write waits for its write concern by default (default 5 s).
   *
   * @param timeout a positive duration
   * @return this builder
   */
  public KvStoreBuilder writeTimeout(Duration timeout) {
    this.writeTimeout = timeout;
    return this;
  }

  /**
   * Buckets in the anti-entropy digest (default 1024). Every node of a cluster must use the same.
   *
   * @param buckets a power of two
   * @return this builder
   */
  public KvStoreBuilder digestBuckets(int buckets) {
    this.digestBuckets = buckets;
    return this;
  }

  /**
   * The most entries one scan may return (default 10,000).
   *
   * @param limit 1 to 1,000,000
   * @return this builder
   */
  public KvStoreBuilder maxScanLimit(int limit) {
    this.maxScanLimit = limit;
    return this;
  }

  /**
   * The time source for versions, TTLs and purging (default the system clock). Tests inject one.
   *
   * @param clock the time source
   * @return this builder
   */
  public KvStoreBuilder clock(InstantSource clock) {
    this.clock = Objects.requireNonNull(clock, "clock");
    return this;
  }

  /**
   * The scheduler for the maintenance sweep (default: a daemon thread owned and shut down by the
   * store). A scheduler given here is not shut down by the store.
   *
   * @param scheduler the scheduler
   * @return this builder
   */
  public KvStoreBuilder scheduler(ScheduledExecutorService scheduler) {
    this.scheduler = Objects.requireNonNull(scheduler, "scheduler");
    return this;
  }

  /**
   * The replicator (default: none, a standalone store).
   *
   * @param replicator the replicator; the store starts and closes it
   * @return this builder
   */
  public KvStoreBuilder replicator(Replicator replicator) {
    Objects.requireNonNull(replicator, "replicator");
    this.replicatorFactory = config -> replicator;
    return this;
  }

  /**
   * A replicator made from the final config, for replicators that need the node id or limits.
   *
   * @param factory called once by {@link #build()}
   * @return this builder
   */
  public KvStoreBuilder replicator(Function<KvStoreConfig, Replicator> factory) {
    this.replicatorFactory = Objects.requireNonNull(factory, "factory");
    return this;
  }

  /**
   * The validated config these settings make.
   *
   * @return the config
   * @throws IllegalArgumentException naming the first invalid setting
   */
  public KvStoreConfig config() {
    String id = nodeId != null ? nodeId : "node-" + UUID.randomUUID().toString().substring(0, 8);
    nodeId = id;
    return new KvStoreConfig(id, maxKeyBytes, maxValueBytes, tombstoneGrace, purgeInterval,
        maxClockDrift, defaultWriteConcern, writeTimeout, digestBuckets, maxScanLimit);
  }

  /**
   * Builds and starts the store (and its replicator). With a data directory, recovers what it holds
   * first.
   *
   * @return a running store; close it when done
   * @throws IllegalArgumentException naming the first invalid setting
   * @throws StorageException if the data directory is in use, belongs to another node or cluster,
   *     is corrupted (under {@link CorruptionPolicy#REFUSE}) or cannot be read or written
   */
  public KvStore build() {
    KvStoreConfig config = config();
    LogStorage.Options storage = storageOptions();
    Replicator replicator = replicatorFactory == null
        ? new StandaloneReplicator(ClusterView.standalone(
            new Member(config.nodeId(), null, null, Member.Status.ALIVE)))
        : Objects.requireNonNull(replicatorFactory.apply(config), "replicator factory returned null");
    return new DefaultKvStore(config, clock, scheduler, replicator, storage);
  }

  /** The storage settings, validated; null for a memory-only store. */
  LogStorage.Options storageOptions() {
    if (dataDir == null) {
      if (durability != null) {
        throw new IllegalArgumentException("durability " + durability + " needs a dataDir; set "
            + "one, or drop durability for a memory-only store");
      }
      return null;
    }
    KvStoreConfig.requirePositive("syncInterval", syncInterval);
    return new LogStorage.Options(dataDir, durability == null ? Durability.INTERVAL : durability,
        syncInterval, onCorruption, clusterName, segmentBytes, compactBytes, clockStepMillis, fileIo);
  }
}
