package io.kvstore.core;

import java.io.IOException;
import java.io.StringReader;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.InstantSource;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Comparator;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.LongConsumer;
import java.util.function.LongSupplier;
import java.util.function.IntFunction;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The store's data on disk: a segmented append-only log of the changes, compacted by snapshots.
 *
 * <p><b>Why a log and snapshots:</b> the store is a hash map in memory, and every change is already
 * one immutable entry with a total order on versions; the merge is last-writer-wins, idempotent and
 * order-free. So the disk only has to give back, after a crash, some set of entries that contains every
 * acknowledged one: replaying them through the same merge rebuilds the map whatever their order or
 * duplicates. An append-only log is the cheapest structure that does that (sequential writes, one
 * sync per group of writes), and a snapshot bounds it. A B-tree or LSM engine would pay for ordered
 * access and partial reads that a map fully in memory does not need; {@link Storage} is the seam for
 * one if data ever outgrows memory.
 *
 * <p><b>Files</b> (every one a sequence of {@link RecordCodec} records, length + CRC32C each):
 * {@code log-<seq>.seg} segments (a header, then one record per change), {@code snap-<seq>.snap}
 * snapshots (a header, the entries, an END record with the count), {@code CLOCK} (the clock
 * reservation and the last-alive time), {@code MANIFEST} (format, node id, cluster name, as text) and
 * {@code LOCK} (held with an OS file lock while the store runs, so a second process is refused).
 * New files are made durable in their directory (the directory is synced after every create and
 * rename); whole-file replacements go through a temporary file, a sync and an atomic rename.
 *
 * <p><b>Writes</b> go into memory-mapped segments, preallocated at their full size (sparsely: the
 * file reads as zeros past the data, and a zero length is where recovery stops). A writer encodes its
 * record, reserves its bytes with a CAS on the segment's next offset and copies them in, in parallel
 * with the other writers: no lock, no system call. Copies finish out of order, so the segment keeps a
 * watermark, the offset below which every reservation is copied; nothing counts as written above it
 * (recovery stops at the first gap, so a record after a gap is as good as lost). Under
 * {@link Durability#INTERVAL} and {@link Durability#NONE} a write is acknowledged once the watermark
 * passes it: a killed process loses nothing, the page cache has it. Under {@link Durability#SYNC} it
 * then waits for a sync thread that, as soon as a write waits and the previous force ended, forces the
 * segment up to the watermark (at most 8 MiB at once) and completes every waiter below it in one go:
 * group commit without an artificial wait, each batch being what was copied during one force. Under
 * INTERVAL the sync thread forces once per interval; under INTERVAL and NONE it also forces whenever
 * 8 MiB are unforced (acknowledging nothing), so that a roll has little left to force. Two things keep
 * the page faults and the writeback of the mapping off the writers' path (measured, see the classes):
 * the sync thread writes zeros a few MiB ahead of the writers ({@link ZeroedWrites}: a first write into
 * a hole of a sparse mapped file allocates its block in a page fault), and the segment is mapped in
 * 4 MiB windows that are unmapped as soon as the watermark passes them, so a force writes back pages
 * no longer mapped ({@link MappedWindows}: cleaning a mapped page costs a TLB shoot-down). A record that
 * does not fit seals the segment (a flag in the same atomic offset): its writer waits for the copies
 * below, forces the segment, and starts the next one, sized for the record if that is larger than a
 * segment; the others wait for it. So records never span segments and only the last segment can ever
 * hold unsynced data. The sync thread then unmaps the old segment (through
 * {@code Unsafe.invokeCleaner}, else the garbage collector does), so its file can be deleted and its
 * memory is released. Under {@link Durability#SYNC} the segment is not mapped: each copy is a
 * {@code pwrite} into blocks zeroed ahead of time, and a force is {@code fdatasync}
 * ({@link ZeroedWrites}: such a sync costs about half an {@code msync} of the mapping, and every
 * SYNC acknowledgement waits for one). Same file format, same watermark, same group commit.
 *
 * <p><b>A failed write or sync is not retried</b> (after a failed {@code fsync} Linux may already have
 * dropped the dirty pages, so a retry that succeeds proves nothing): every waiting write fails, every
 * later one is refused, the store reads on and reports it ({@link StorageStatus}, the log). The same
 * for a fault while copying into a mapping (a full disk under a sparse segment shows up that way).
 *
 * <p><b>Snapshots and compaction, by shard:</b> keys fall into {@link #SHARDS} shards by their hash
 * ({@link #shardOf}), and each shard has its own snapshot. A compaction step takes the shard whose
 * snapshot is the oldest: the log is rolled to segment S first and then the map is iterated into
 * {@code snap-S-J} with the keys of shard J. The iteration is fuzzy (writes continue), but every
 * change of shard J in a segment before S was in the map before the roll, so the snapshot holds it or
 * something newer, and every change made during the iteration is in segment S or later. Replaying the
 * snapshot and then shard J's records of segments S.. through the idempotent merge is exact. A step
 * runs whenever a share (1/{@link #SHARDS}) of the larger of the configured size and the snapshots'
 * total has been logged since the last one, so a round of steps covers every shard within about that
 * much log; the segments before the oldest shard snapshot are then deleted. Why by shard: a snapshot
 * of the whole store needs, while it is written, the old snapshot, the whole log since it and the new
 * one on disk at once, more than 3x the live data at its peak (4.8x measured, docs/BENCHMARKS.md §4);
 * a step writes one shard, so the peak is about the snapshots, one shard more, and the log of one
 * round. Layout 1 wrote one {@code snap-S} of the whole store; it is read as every shard's snapshot
 * at S until each shard has a newer one, and the manifest is upgraded to layout 2 at open
 * ({@link #LAYOUT_VERSION}), so an older kvstore refuses the directory instead of ignoring the shards.
 *
 * <p><b>Recovery:</b> each shard's newest complete snapshot (one that never got its final rename is
 * ignored), then the segments from the oldest of their sequences on, in order, each record replayed
 * only if its segment is not older than its shard's snapshot (an older one is in that snapshot
 * already; replaying it too would end the same, the merge being idempotent and evictions replayed in
 * log order with the re-adds after them, only slower). A
 * segment ends at a zero length followed by nothing but zeros (its preallocated rest). A damaged tail
 * of the last segment, or one with data after a zero gap (a power loss kept a later page and dropped
 * an earlier one), is what a crash during a write leaves; it is truncated, counted and logged (under
 * SYNC nothing in it was acknowledged). Damage anywhere else (a snapshot, an earlier segment, a missing segment, a
 * damaged clock file) cannot come from a crash: by the {@link CorruptionPolicy} the store refuses to
 * start with the file and the offset, or moves the files aside and starts empty.
 *
 * <p><b>Evictions</b> ({@link io.kvstore.core.spi.ReplicaStore#evict}) are the one record that is not
 * an entry: {@code EVICTED} names a key and the version it held when the store dropped it, and replay
 * removes the key if what it holds at that point is not newer. That step, unlike the merge, depends on
 * order, and must: after an eviction the same version can come back (the partition handed back to
 * this node), and only its place in the log tells the re-added entry from the evicted one, so a
 * "floor" remembered across the whole replay would drop the handback. The order is there: the store
 * appends a key's records under the key's lock, in the order of its map operations, and recovery
 * reads them in that order. The fuzzy snapshot keeps it too: an entry it holds that the map got after
 * an eviction in segment S was logged after that eviction, so it replays again after it. Only a
 * successful eviction is logged; a snapshot leaves evicted keys out (they are not in the map) and an
 * eviction record goes with the segments the snapshot makes obsolete. Evictions are appended without
 * waiting for a sync, even under SYNC: a lost one brings the entry back as non-owned data, which the
 * engine hands off and evicts again.
 *
 * <p><b>Clock:</b> the {@code CLOCK} file holds a timestamp the node's clock may not pass before a
 * higher one is on disk (reserved a few seconds ahead, refreshed in the background, and synchronously
 * by a writer that reaches it). After a restart the clock resumes above it and above every recovered
 * version, so a restarted node never reuses a version, even when the log lost its tail. The same
 * file records when the node was last alive: a cluster node down longer than {@code tombstoneGrace}
 * starts empty, since its peers purged tombstones it would otherwise bring back to life.
 */
final class LogStorage implements Storage {
  private static final Logger log = LoggerFactory.getLogger(LogStorage.class);

  static final String LOCK_FILE = "LOCK";
  static final String MANIFEST_FILE = "MANIFEST";
  static final String CLOCK_FILE = "CLOCK";
  private static final int READ_CHUNK = 1 << 20;
  private static final String CRASHED = "simulated crash";
  private static final int HEADER_BYTES = RecordCodec.header(RecordCodec.KIND_SEGMENT, 0).remaining();
  /** The bit of {@link Segment#reserve} that closes a segment to writers. */
  private static final long SEALED = Long.MIN_VALUE;
  /** At most this much is forced at once, so one sync's batch stays bounded. */
  private static final int MAX_SYNC_BYTES = 8 << 20;
  /**
   * Under INTERVAL and NONE the sync thread also forces whenever this much is unforced, so the force
   * a roll waits for stays short (the data is there once, whoever forces it).
   */
  private static final int BACKGROUND_FORCE_BYTES = 2 * MappedWindows.WINDOW_BYTES;
  private static final long BACKGROUND_CHECK_NANOS = 10_000_000;
  private static final long COMPACT_CHECK_MILLIS = 100;
  private static final long COPY_WAIT_NANOS = 50_000;
  /** The largest segment (a mapped buffer is indexed by int). */
  static final long MAX_SEGMENT_BYTES = 1L << 30;
  /** Snapshot shards (see the class comment); {@code 1 << SHARD_BITS}. Part of the layout. */
  static final int SHARD_BITS = 3;
  static final int SHARDS = 1 << SHARD_BITS;
  /**
   * The directory layout written: 2 = snapshots by shard. Layout 1 (one snapshot of the whole
   * store) is read and upgraded at open; a kvstore that reads only layout 1 refuses a layout-2
   * directory by its manifest instead of ignoring the shard files. Records are unchanged
   * ({@link RecordCodec#FORMAT_VERSION}).
   */
  static final int LAYOUT_VERSION = 2;
  /** A compaction step runs every 1/STEP_SHARE of a round's bytes ({@link #roundBytes}). */
  static final int STEP_SHARE = 10;
  /** The longest one write waits for compaction to catch up (then it goes on regardless). */
  static final long MAX_STALL_NANOS = 50_000_000;
  private static final long STALL_LOG_NANOS = 10_000_000_000L;

  /**
   * The settings of a log storage.
   *
   * @param dir the data directory
   * @param durability when writes are acknowledged
   * @param syncInterval the sync period of {@link Durability#INTERVAL}
   * @param onCorruption what recovery does with a corrupted directory
   * @param clusterName recorded in the manifest; a directory of another cluster is refused (or null)
   * @param segmentBytes the size of a segment (mapped and preallocated at once); a record that does
   *     not fit rolls to the next one
   * @param compactBytes a snapshot is taken once the log since the last one passes this size (and the
   *     last snapshot's size)
   * @param clockStepMillis how far ahead the clock is reserved
   * @param io the file system
   */
  record Options(Path dir, Durability durability, Duration syncInterval, CorruptionPolicy onCorruption,
      String clusterName, long segmentBytes, long compactBytes, long clockStepMillis, FileIo io) {

    static final long DEFAULT_SEGMENT_BYTES = 64L << 20;
    static final long DEFAULT_COMPACT_BYTES = 64L << 20;
    static final long DEFAULT_CLOCK_STEP_MILLIS = 2_000;
  }

  /** Where recovered entries go. */
  interface Sink {
    /** One recovered entry, to merge last-writer-wins into the map. */
    void accept(String key, Entry entry);

    /**
     * A recovered eviction: remove the key if what the map holds for it now is not newer than the
     * version {@code timestamp}, {@code nodeId} (it is what was evicted, or older).
     */
    void evict(String key, long timestamp, String nodeId);

    /** Forget everything accepted so far (the directory was moved aside). */
    void reset();
  }

  /** Corruption found by recovery: the file, the offset and what is wrong. */
  private static final class Corrupt extends Exception {
    private static final long serialVersionUID = 1L;

    Corrupt(Path file, long offset, String what) {
      super(file + " at offset " + offset + ": " + what, null, false, false);
    }

    Corrupt(String what) {
      super(what, null, false, false);
    }
  }

  private final Options options;
  private final Path dir;
  private final FileIo io;
  private final String nodeId;
  private final InstantSource clock;
  private final Durability durability;

  private FileChannel lockChannel;
  private FileLock lock;

  /** The segment appended to; replaced by a roll (under rollLock), null once closed. */
  private volatile Segment current;
  /** Global log position (see {@link Segment#base}) up to which the log is on disk. */
  private volatile long synced;
  /** Global position at the start of the segment the last snapshot was taken at. */
  /** The log position of the last compaction step's roll (or of the log's start after recovery). */
  private volatile long snapshotBase;
  /**
   * Per shard, the sequence of the snapshot that holds it (0: none yet, the log from its start) and
   * that snapshot's size (a share of a whole-store one). Recovery sets them, then compaction steps
   * (under {@link #snapshotLock}).
   */
  private final long[] shardBase = new long[SHARDS];
  private final long[] shardBytes = new long[SHARDS];
  /** Per shard, the log position its snapshot starts the replay at (its base segment's start). */
  private final long[] shardBasePos = new long[SHARDS];
  /** The least of {@link #shardBasePos}: the log kept since is what a restart replays. */
  private volatile long keptFrom;
  /**
   * A round's log: the larger of the configured size and the snapshots. Steps run every
   * {@link #STEP_SHARE}th of it (at least every quarter of the configured size), so a round of
   * {@link #SHARDS} steps keeps ~0.8 of it; past {@link #keptLimit()} compaction is behind, and
   * writes wait for it ({@link #awaitCompaction}).
   */
  private volatile long roundBytes = Long.MAX_VALUE;
  /** {@link #keptLimit()}, as of the last step (writers read it). */
  private volatile long keptLimit = Long.MAX_VALUE;
  private final LongAdder stalledWrites =
      new LongAdder();
  private final AtomicBoolean compactionKicked =
      new AtomicBoolean();
  private final AtomicLong lastStallLog = new AtomicLong(System.nanoTime() - STALL_LOG_NANOS);
  private long startPosition;

  /** Segments rolled away from, for the sync thread to unmap (it may still be forcing one). */
  private final ConcurrentLinkedQueue<Segment> retired = new ConcurrentLinkedQueue<>();
  private final Object syncedLock = new Object();
  /** Writers that found the segment full wait here for the roll. */
  private final ReentrantLock rollLock = new ReentrantLock();
  private final Condition rolled = rollLock.newCondition();
  /** SYNC writes waiting for their force, handed to the sync thread. */
  private final ConcurrentLinkedQueue<Waiter> incoming = new ConcurrentLinkedQueue<>();
  /** The sync thread's waiters, by position (after the sync thread stopped: close's). */
  private final PriorityQueue<Waiter> pending = new PriorityQueue<>(
      Comparator.comparingLong(Waiter::position));
  private volatile boolean syncerParked;
  private final Object clockLock = new Object();
  private final Object snapshotLock = new Object();
  private final Object failLock = new Object();
  private long reserved; // guarded by clockLock
  private volatile StorageException failure;
  private volatile boolean running;

  private final AtomicLong syncs = new AtomicLong();
  private final AtomicLong failedSyncs = new AtomicLong();
  private final AtomicLong snapshots = new AtomicLong();
  private long recoveredEntries;
  /** How often a long recovery logs its progress; tests shorten it. */
  static volatile long progressIntervalNanos = 5_000_000_000L;
  /**
   * Test seam, a deliberately broken variant: SYNC writes are acknowledged after the memory copy,
   * before their force. CrashRecoveryTest checks that its seeded power losses catch it.
   */
  static volatile boolean ackSyncBeforeForceForTest;
  /**
   * Test seam, a deliberately broken variant: the sync thread forces up to the last reservation, not
   * to the watermark of completed copies, so a SYNC write is acknowledged while an earlier one is still
   * being copied. DurableStoreTest checks that it is caught.
   */
  static volatile boolean ignoreCopyWatermarkForTest;
  /** Test seam: runs at the start of every compaction step, on the compacting thread. */
  static volatile Runnable beforeStepForTest;
  /**
   * Test seam: run once, by the next writer, before it copies a record into a segment (after its
   * reservation; not for a segment's header).
   */
  static volatile Runnable beforeNextCopyForTest;
  /** Progress of the replay, for a person waiting on a large recovery. */
  private RecoveryProgress progress = new RecoveryProgress(0);
  private long truncatedTailBytes;
  private long recoveredMaxTimestamp;
  private long resumeAbove;

  private LongSupplier hlcCurrent = () -> 0;
  private LongConsumer onReserve = r -> { };
  /** A shard's entries, to snapshot. */
  private IntFunction<Iterator<Map.Entry<String, Entry>>> snapshotSource;
  private Thread syncer;
  private ScheduledExecutorService compactor;

  private record Waiter(long position, CompletableFuture<Void> future) {}

  /**
   * One mapped, preallocated segment. Writers reserve {@code [p, p + n)} by a CAS on
   * {@link #reserve} and copy in parallel; {@link #done} is the offset below which every reservation
   * is copied (the contiguous watermark). A set {@link #SEALED} bit in {@link #reserve} closes it to
   * writers: its end is then the offset in the other bits.
   */
  private static final class Segment {
    final long seq;
    final Path file;
    final FileChannel channel;
    final ZeroedWrites map;
    final int capacity;
    /** The global log position of offset 0: positions grow across segments, for SYNC waiters. */
    final long base;
    final AtomicLong reserve;
    final AtomicLong done;
    /** Copies finished above the watermark, by start offset: their end offsets. */
    private final ConcurrentHashMap<Long, Long> early = new ConcurrentHashMap<>();
    /** Entries put in {@link #early} and not yet taken out (counted before the put). */
    private final AtomicInteger earlyCount = new AtomicInteger();
    /** Below this offset the segment is on disk. */
    final AtomicInteger forced = new AtomicInteger();

    Segment(long seq, Path file, FileChannel channel, ZeroedWrites map, int capacity, long base,
        long reserved, long done) {
      this.seq = seq;
      this.file = file;
      this.channel = channel;
      this.map = map;
      this.capacity = capacity;
      this.base = base;
      this.reserve = new AtomicLong(reserved);
      this.done = new AtomicLong(done);
    }

    /**
     * Marks {@code [from, to)} copied and moves the watermark over every range now contiguous. The
     * range starting at the watermark is moved by exactly one thread: its writer (by CAS) or whoever
     * took it out of {@link #early}.
     */
    void complete(long from, long to) {
      if (!done.compareAndSet(from, to)) {
        earlyCount.incrementAndGet(); // before the put: see below
        early.put(from, to);
      } else if (earlyCount.get() == 0) {
        // Nothing finished early, or its writer has not counted it yet: then that writer's loop
        // below reads the watermark after this CAS (its count came later) and moves it on itself.
        return;
      }
      while (true) {
        long w = done.get();
        Long next = early.remove(w);
        if (next == null) {
          return;
        }
        earlyCount.decrementAndGet();
        done.set(next);
      }
    }

    /**
     * Forces {@code [forced, to)}; whether there was anything to force. The sync thread and a roll
     * may force at the same time (overlapping ranges are only written twice).
     */
    boolean forceTo(int to) throws IOException {
      int from = forced.get();
      if (to <= from) {
        return false;
      }
      map.force(from, to - from);
      forced.accumulateAndGet(to, Math::max);
      return true;
    }

    /** The offset the next reservation would get (the end, once sealed). */
    long top() {
      return reserve.get() & ~SEALED;
    }
  }

  private LogStorage(Options options, String nodeId, InstantSource clock) {
    if (options.segmentBytes() <= HEADER_BYTES || options.segmentBytes() > MAX_SEGMENT_BYTES) {
      throw new IllegalArgumentException("segmentBytes must be in (" + HEADER_BYTES + ", "
          + MAX_SEGMENT_BYTES + "] (a segment is one mapped buffer), not " + options.segmentBytes());
    }
    this.options = options;
    this.dir = options.dir();
    this.io = options.io();
    this.nodeId = nodeId;
    this.clock = clock;
    this.durability = options.durability();
  }

  /**
   * Opens (creating if needed) and recovers a data directory.
   *
   * @param clusterNode whether the store replicates (then a node down longer than the grace starts
   *     empty; a standalone store has no peers that could bring deleted keys back)
   * @throws StorageException if the directory cannot be used
   */
  static LogStorage open(Options options, String nodeId, boolean clusterNode, long graceMillis,
      InstantSource clock, Sink sink) {
    LogStorage s = new LogStorage(options, nodeId, clock);
    try {
      s.recover(clusterNode, graceMillis, sink);
      return s;
    } catch (IOException e) {
      s.releaseQuietly();
      throw new StorageException("cannot open the data directory " + options.dir() + ": " + e, e);
    } catch (RuntimeException e) {
      s.releaseQuietly();
      throw e;
    }
  }

  /**
   * About how many entries recovering {@code dir} yields, from its snapshots' sizes (a snapshot
   * record of a small key and a 100-byte value takes ~160 bytes): the shard snapshots together, or a
   * whole-store one of layout 1 if larger. So the map can be sized before the replay; 16 for a
   * directory without a snapshot or one that cannot be read (a guess, never a promise: the map grows
   * as usual).
   */
  static int expectedEntries(Path dir) {
    long whole = 0;
    long shards = 0;
    try (DirectoryStream<Path> files = Files.newDirectoryStream(dir, "snap-*.snap")) {
      for (Path f : files) {
        Matcher m = SNAPSHOT_NAME.matcher(f.getFileName().toString());
        if (!m.matches()) {
          continue;
        }
        if (m.group(2) == null) {
          whole = Math.max(whole, Files.size(f));
        } else {
          shards += Files.size(f); // normally one per shard
        }
      }
    } catch (IOException | RuntimeException e) {
      return 16;
    }
    return (int) Math.max(16, Math.min(Math.max(whole, shards) / 128, 1 << 26));
  }

  /** The highest version timestamp recovered. */
  long recoveredMaxTimestamp() {
    return recoveredMaxTimestamp;
  }

  /**
   * What the clock must resume above: the highest recovered version and the reservation found on
   * disk (what the node may have issued before it stopped).
   */
  long resumeAbove() {
    return resumeAbove;
  }

  /** The clock reservation persisted at open: timestamps up to it may be issued. */
  long reservation() {
    synchronized (clockLock) {
      return reserved;
    }
  }

  /** Starts the sync and compaction threads. */
  void start(LongSupplier hlcCurrent, LongConsumer onReserve,
      IntFunction<Iterator<Map.Entry<String, Entry>>> snapshotSource) {
    this.hlcCurrent = hlcCurrent;
    this.onReserve = onReserve;
    this.snapshotSource = snapshotSource;
    running = true;
    syncer = new Thread(this::syncLoop, "kvstore-sync-" + nodeId);
    syncer.setDaemon(true);
    syncer.start();
    compactor = Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, "kvstore-compact-" + nodeId);
      t.setDaemon(true);
      return t;
    });
    // Checked often (the check is two reads), so a fast-growing log does not overshoot the
    // threshold by a second's worth of writes before its snapshot starts: that overshoot is disk use.
    compactor.scheduleWithFixedDelay(this::compactIfDue, COMPACT_CHECK_MILLIS, COMPACT_CHECK_MILLIS,
        TimeUnit.MILLISECONDS);
  }

  // ---- recovery --------------------------------------------------------------------------------

  private void recover(boolean clusterNode, long graceMillis, Sink sink) throws IOException {
    Files.createDirectories(dir);
    lockDirectory();
    checkManifest();
    long lastAlive = 0;
    try {
      long[] c = readClock();
      if (c != null) {
        reserved = c[0];
        lastAlive = c[1];
      }
    } catch (Corrupt e) {
      if (options.onCorruption() == CorruptionPolicy.REFUSE) {
        throw refuse(e);
      }
      // Without the reservation the clock must assume the worst it allows: a drift's worth ahead.
      reserved = Version.pack(clock.millis() + Duration.ofMinutes(2).toMillis(), 0);
      moveAside("corrupt", "the clock file is corrupted (" + e.getMessage() + ")");
    }
    List<SnapFile> snaps = listSnapshots();
    List<Long> segs = list("log-", ".seg");
    long now = clock.millis();
    if (clusterNode && lastAlive > 0 && now - lastAlive > graceMillis
        && (!snaps.isEmpty() || !segs.isEmpty())) {
      moveAside("stale", "this node was last alive " + Duration.ofMillis(now - lastAlive)
          + " ago, longer than tombstoneGrace (" + Duration.ofMillis(graceMillis) + "): its peers "
          + "have purged deletes it would bring back, so it starts empty and anti-entropy refills it");
      snaps = List.of();
      segs = List.of();
    }
    try {
      replay(snaps, segs, sink);
    } catch (Corrupt e) {
      if (options.onCorruption() == CorruptionPolicy.REFUSE) {
        throw refuse(e);
      }
      closeSegment(current, true);
      current = null;
      sink.reset();
      recoveredEntries = 0;
      recoveredMaxTimestamp = 0;
      moveAside("corrupt", "recovery found corruption: " + e.getMessage());
      current = createSegment(1, 0, segmentCapacity(), 0);
      snapshotBase = 0;
      Arrays.fill(shardBase, 0);
      Arrays.fill(shardBytes, 0);
      Arrays.fill(shardBasePos, 0);
      roundsChanged();
    }
    startPosition = position();
    synced = startPosition;
    resumeAbove = Math.max(recoveredMaxTimestamp, reserved);
    long base = Math.max(now, Version.physicalOf(resumeAbove));
    writeClock(Math.max(reserved, Version.pack(base + options.clockStepMillis(), 0)), now);
  }

  private StorageException refuse(Corrupt e) {
    return new StorageException("data directory " + dir + " is corrupted: " + e.getMessage()
        + ". A standalone store refuses to start on damage a crash cannot cause (disk or file "
        + "system damage, or files changed by hand). Restore the directory from a backup, or move "
        + "it away to start empty.", e);
  }

  private void lockDirectory() throws IOException {
    Path file = dir.resolve(LOCK_FILE);
    lockChannel = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
    try {
      lock = lockChannel.tryLock();
    } catch (OverlappingFileLockException e) {
      lock = null;
    }
    if (lock == null) {
      closeQuietly(lockChannel);
      lockChannel = null;
      throw new StorageException("data directory " + dir + " is in use by another store (the lock "
          + "on " + file + " is held, by another process or another store in this JVM); stop that "
          + "one or use another data directory");
    }
  }

  private void checkManifest() throws IOException {
    Path file = dir.resolve(MANIFEST_FILE);
    String cluster = options.clusterName() == null ? "" : options.clusterName();
    if (!Files.exists(file)) {
      writeManifest(file, cluster);
      return;
    }
    Properties p = new Properties();
    p.load(new StringReader(Files.readString(file, StandardCharsets.UTF_8)));
    String format = p.getProperty("format");
    String owner = p.getProperty("nodeId");
    if (format == null || owner == null) {
      throw new StorageException("data directory " + dir + ": " + file + " is not a kvstore "
          + "manifest (no format or nodeId); is this the right directory?");
    }
    if (!format.equals("1") && !format.equals(Integer.toString(LAYOUT_VERSION))) {
      throw new StorageException("data directory " + dir + " has format " + format + "; this "
          + "version of kvstore reads formats 1 and " + LAYOUT_VERSION);
    }
    if (!owner.equals(nodeId)) {
      throw new StorageException("data directory " + dir + " belongs to node '" + owner
          + "', not to '" + nodeId + "': start it with node id '" + owner
          + "' or give this node its own data directory");
    }
    String ownerCluster = p.getProperty("clusterName", "");
    if (!ownerCluster.isEmpty() && !cluster.isEmpty() && !ownerCluster.equals(cluster)) {
      throw new StorageException("data directory " + dir + " belongs to cluster '" + ownerCluster
          + "', not to '" + cluster + "': give this node its own data directory");
    }
    if (format.equals("1")) {
      // Before any shard snapshot is written: a kvstore that reads only format 1 would ignore them.
      writeManifest(file, ownerCluster.isEmpty() ? cluster : ownerCluster);
      log.info("node {}: data directory {} upgraded to format {} (snapshots by shard); kvstore "
          + "versions before it refuse it from now on", nodeId, dir, LAYOUT_VERSION);
    }
  }

  private void writeManifest(Path file, String cluster) throws IOException {
    StringBuilder text = new StringBuilder("# kvstore data directory; do not edit\n");
    text.append("format=").append(LAYOUT_VERSION).append('\n');
    text.append("nodeId=").append(nodeId).append('\n');
    text.append("clusterName=").append(cluster).append('\n');
    replaceFile(file, ByteBuffer.wrap(text.toString().getBytes(StandardCharsets.UTF_8)));
  }

  /** [reserved timestamp, last alive millis], or null if there is no clock file yet. */
  private long[] readClock() throws IOException, Corrupt {
    Path file = dir.resolve(CLOCK_FILE);
    if (!Files.exists(file)) {
      return null;
    }
    ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(file));
    try {
      RecordCodec.Record r = RecordCodec.decode(b, RecordCodec.nodeIdTable());
      if (r.type != RecordCodec.CLOCK || b.hasRemaining()) {
        throw new Corrupt(file, 0, "not a clock record");
      }
      return new long[] {r.reservedTimestamp, r.lastAliveMillis};
    } catch (RecordCodec.DamageException e) {
      throw new Corrupt(file, 0, e.getMessage());
    }
  }

  private void replay(List<SnapFile> snaps, List<Long> segs, Sink sink)
      throws IOException, Corrupt {
    // Each shard's newest snapshot; a whole-store one (layout 1) counts for every shard it is the
    // newest of. The others are left from a step that stopped before its clean-up.
    SnapFile whole = null;
    SnapFile[] newest = new SnapFile[SHARDS];
    for (SnapFile f : snaps) {
      if (f.shard() < 0) {
        whole = whole == null || f.seq() > whole.seq() ? f : whole;
      } else if (newest[f.shard()] == null || f.seq() > newest[f.shard()].seq()) {
        newest[f.shard()] = f;
      }
    }
    boolean wholeNeeded = false;
    for (int j = 0; j < SHARDS; j++) {
      if (whole != null && (newest[j] == null || newest[j].seq() <= whole.seq())) {
        newest[j] = null;
        shardBase[j] = whole.seq();
        wholeNeeded = true;
      } else {
        shardBase[j] = newest[j] == null ? 0 : newest[j].seq();
      }
    }
    Set<SnapFile> used = new HashSet<>();
    if (wholeNeeded) {
      used.add(whole);
    }
    for (SnapFile f : newest) {
      if (f != null) {
        used.add(f);
      }
    }
    long total = 0;
    for (SnapFile f : snaps) {
      if (used.contains(f)) {
        total += Files.size(f.path());
      } else {
        io.delete(f.path()); // superseded: a step that stopped before its clean-up
      }
    }
    long first = Long.MAX_VALUE;
    for (long b : shardBase) {
      first = Math.min(first, b);
    }
    List<Long> kept = new ArrayList<>();
    for (long seg : segs) {
      if (seg < first) {
        io.delete(segmentFile(seg)); // every shard has a snapshot after it
      } else {
        kept.add(seg);
      }
    }
    segs = kept;
    if (first > 0 && (segs.isEmpty() || segs.get(0) != first)) {
      throw new Corrupt("segment " + segmentFile(first) + " of the oldest snapshot is missing");
    }
    for (long seg : segs) {
      total += Files.size(segmentFile(seg));
    }
    progress = new RecoveryProgress(total);
    if (wholeNeeded) {
      readSnapshot(whole, sink);
    }
    for (int j = 0; j < SHARDS; j++) {
      if (newest[j] != null) {
        readSnapshot(newest[j], sink);
      }
    }
    for (int i = 1; i < segs.size(); i++) {
      if (segs.get(i) != segs.get(i - 1) + 1) {
        throw new Corrupt("segment " + segmentFile(segs.get(i - 1) + 1) + " is missing");
      }
    }
    long logged = 0;
    long[] ends = new long[segs.size()];
    for (int i = 0; i < segs.size(); i++) {
      boolean last = i == segs.size() - 1;
      long seq = segs.get(i);
      long end = readSegment(seq, last, sink);
      ends[i] = end;
      logged += end;
      if (last) {
        current = openForAppend(seq, end);
      }
    }
    if (segs.isEmpty()) {
      current = createSegment(first == 0 ? 1 : first, 0, segmentCapacity(), 0);
    }
    snapshotBase = position() - logged; // so compaction after a restart counts the whole log
    // The last segment starts at position 0 (it is opened with base 0), each earlier one its
    // length before the next.
    Map<Long, Long> startOf = new HashMap<>();
    long start = 0;
    for (int i = segs.size() - 1; i >= 0; i--) {
      if (i < segs.size() - 1) {
        start -= ends[i];
      }
      startOf.put(segs.get(i), start);
    }
    for (int j = 0; j < SHARDS; j++) {
      shardBasePos[j] = startOf.getOrDefault(shardBase[j], snapshotBase);
    }
    roundsChanged();
  }

  /** After a step or recovery: where the kept log starts, and how much of it a round may take. */
  private void roundsChanged() {
    long from = Long.MAX_VALUE;
    long snapshotBytes = 0;
    for (int j = 0; j < SHARDS; j++) {
      from = Math.min(from, shardBasePos[j]);
      snapshotBytes += shardBytes[j];
    }
    keptFrom = from;
    roundBytes = Math.max(options.compactBytes(), snapshotBytes);
    keptLimit = keptLimit();
  }

  private void readSnapshot(SnapFile snap, Sink sink) throws IOException, Corrupt {
    Path file = snap.path();
    long seq = snap.seq();
    int shard = snap.shard();
    long[] count = {0};
    boolean[] ended = {false};
    boolean[] headed = {false};
    Failure f = readRecords(file, (r, offset) -> {
      if (ended[0]) {
        throw new Corrupt(file, offset, "a record after the END record");
      }
      if (!headed[0]) {
        if (r.type != RecordCodec.HEADER || r.kind != RecordCodec.KIND_SNAPSHOT
            || r.sequence != seq) {
          throw new Corrupt(file, offset, "no snapshot header of sequence " + seq);
        }
        headed[0] = true;
      } else if (r.type == RecordCodec.END) {
        if (r.entries != count[0]) {
          throw new Corrupt(file, offset, "END says " + r.entries + " entries, read " + count[0]);
        }
        ended[0] = true;
      } else if (r.entry != null) {
        count[0]++;
        int of = shardOf(r.key);
        if (shard >= 0 && of != shard) {
          throw new Corrupt(file, offset, "an entry of shard " + of + " in a snapshot of shard "
              + shard);
        }
        if (shardBase[of] == seq) { // else a newer snapshot of its shard holds it
          accept(sink, r);
        }
      } else {
        throw new Corrupt(file, offset, "unexpected record type " + r.type);
      }
    });
    if (f != null) {
      throw new Corrupt(file, f.offset, f.damage.getMessage());
    }
    if (!ended[0]) {
      throw new Corrupt(file, Files.size(file), "the snapshot ends without its END record");
    }
    long size = Files.size(file);
    for (int j = 0; j < SHARDS; j++) {
      if (shard == j || shard < 0 && shardBase[j] == seq) {
        shardBytes[j] = shard < 0 ? size / SHARDS : size;
      }
    }
  }

  /** Replays one segment; returns the offset after its last good record. */
  private long readSegment(long seq, boolean last, Sink sink) throws IOException, Corrupt {
    Path file = segmentFile(seq);
    boolean[] headed = {false};
    Failure f = readRecords(file, (r, offset) -> {
      if (!headed[0]) {
        if (r.type != RecordCodec.HEADER || r.kind != RecordCodec.KIND_SEGMENT
            || r.sequence != seq) {
          throw new Corrupt(file, offset, "no segment header of sequence " + seq);
        }
        headed[0] = true;
      } else if (r.entry != null) {
        if (seq >= shardBase[shardOf(r.key)]) {
          accept(sink, r);
        } else {
          recoveredMaxTimestamp = Math.max(recoveredMaxTimestamp, r.entry.timestamp);
        }
      } else if (r.type == RecordCodec.EVICTED) {
        if (seq >= shardBase[shardOf(r.key)]) {
          acceptEviction(sink, r);
        } else {
          recoveredMaxTimestamp = Math.max(recoveredMaxTimestamp, r.evictedTimestamp);
        }
      } else {
        throw new Corrupt(file, offset, "unexpected record type " + r.type);
      }
    });
    long size = Files.size(file);
    if (f == null) {
      if (!headed[0] && !last) {
        throw new Corrupt(file, 0, "an empty segment before the last one");
      }
      return headed[0] ? size : 0;
    }
    long dataEnd = f.damage.damage == RecordCodec.Damage.ZERO ? dataEnd(file, f.offset) : size;
    if (dataEnd == f.offset) { // the preallocated, never written rest of a segment
      if (!headed[0] && !last) {
        throw new Corrupt(file, 0, "an empty segment before the last one");
      }
      return headed[0] ? f.offset : 0;
    }
    if (!last) {
      throw new Corrupt(file, f.offset, f.damage.getMessage()
          + " (not the last segment, so not a torn write)");
    }
    long dropped = dataEnd - f.offset;
    truncatedTailBytes += dropped;
    log.warn("node {}: dropped a torn tail of {} bytes from {} at offset {} ({}); a crash during a "
        + "write leaves one, and nothing in it was acknowledged under SYNC", nodeId, dropped, file,
        f.offset, f.damage.getMessage());
    return f.offset;
  }

  /** The offset after the last non-zero byte of the file at or after {@code from} ({@code from} if none). */
  private long dataEnd(Path file, long from) throws IOException {
    long end = from;
    byte[] zeros = new byte[READ_CHUNK];
    try (FileChannel ch = io.open(file, StandardOpenOption.READ)) {
      ByteBuffer buf = ByteBuffer.allocate(READ_CHUNK);
      long pos = from;
      while (true) {
        buf.clear();
        int n = ch.read(buf, pos);
        if (n < 0) {
          return end;
        }
        byte[] a = buf.array();
        if (Arrays.mismatch(a, 0, n, zeros, 0, n) >= 0) {
          for (int i = n - 1; i >= 0; i--) {
            if (a[i] != 0) {
              end = pos + i + 1;
              break;
            }
          }
        }
        pos += n;
      }
    }
  }

  private void accept(Sink sink, RecordCodec.Record r) {
    recoveredEntries++;
    recoveredMaxTimestamp = Math.max(recoveredMaxTimestamp, r.entry.timestamp);
    sink.accept(r.key, r.entry);
  }

  /** An eviction record; its version counts for the clock like an entry's (it was issued). */
  private void acceptEviction(Sink sink, RecordCodec.Record r) {
    recoveredEntries++;
    recoveredMaxTimestamp = Math.max(recoveredMaxTimestamp, r.evictedTimestamp);
    sink.evict(r.key, r.evictedTimestamp, r.evictedNodeId);
  }

  /**
   * Logs, at most every {@link #progressIntervalNanos} (5 s), how far the replay is (records and bytes of the
   * snapshot and segments), so a recovery that takes more than a few seconds is seen to move. Reads
   * the clock once every {@value #PROGRESS_EVERY} records only.
   */
  private final class RecoveryProgress {
    private static final int PROGRESS_EVERY = 8192;
    private final long totalBytes;
    private final long started = System.nanoTime();
    private long lastLog = started;
    private long doneBytes;
    private Path file;
    private long fileOffset;
    private int sinceCheck;

    private static String mib(long bytes) {
      return String.format(java.util.Locale.ROOT, "%.1f", bytes / 1048576.0);
    }

    RecoveryProgress(long totalBytes) {
      this.totalBytes = totalBytes;
    }

    void at(Path current, long offset) {
      if (!current.equals(file)) {
        doneBytes += fileOffset;
        file = current;
      }
      fileOffset = offset;
      if (++sinceCheck < PROGRESS_EVERY) {
        return;
      }
      sinceCheck = 0;
      long now = System.nanoTime();
      if (now - lastLog >= progressIntervalNanos) {
        lastLog = now;
        long done = doneBytes + fileOffset;
        log.info("node {}: recovering from {}: {} records read, {} of {} MiB ({}%, {} s)", nodeId,
            dir, recoveredEntries, mib(done), mib(totalBytes),
            totalBytes == 0 ? 100 : done * 100 / totalBytes, (now - started) / 1_000_000_000L);
      }
    }
  }

  private record Failure(long offset, RecordCodec.DamageException damage) {}

  @FunctionalInterface
  private interface Visitor {
    void visit(RecordCodec.Record r, long offset) throws Corrupt;
  }

  /** Reads records until the end of the file or the first damage (returned, null at a clean end). */
  private Failure readRecords(Path file, Visitor visitor) throws IOException, Corrupt {
    Map<String, String> nodeIds = RecordCodec.nodeIdTable();
    try (FileChannel ch = io.open(file, StandardOpenOption.READ)) {
      ByteBuffer buf = ByteBuffer.allocate(READ_CHUNK);
      long bufStart = 0; // file offset of buf's position 0
      boolean eof = false;
      buf.flip();
      while (true) {
        if (!buf.hasRemaining() && eof) {
          return null;
        }
        try {
          long offset = bufStart + buf.position();
          RecordCodec.Record r = RecordCodec.decode(buf, nodeIds);
          visitor.visit(r, offset);
          progress.at(file, offset);
        } catch (RecordCodec.DamageException e) {
          if (e.damage == RecordCodec.Damage.BAD || eof
              || (e.damage == RecordCodec.Damage.ZERO && buf.remaining() >= 4)) {
            return new Failure(bufStart + buf.position(), e);
          }
          // SHORT or ZERO with more file to read: read on (growing the buffer for a large record).
          bufStart += buf.position();
          buf.compact();
          if (!buf.hasRemaining()) {
            ByteBuffer bigger = ByteBuffer.allocate(buf.capacity() * 2);
            buf.flip();
            bigger.put(buf);
            buf = bigger;
          }
          while (buf.hasRemaining()) {
            int n = ch.read(buf);
            if (n < 0) {
              eof = true;
              break;
            }
            if (n == 0) {
              break;
            }
          }
          buf.flip();
        }
      }
    }
  }

  private int segmentCapacity() {
    return (int) options.segmentBytes();
  }

  /**
   * Opens the last segment to append after its last good record: cuts the file there (so no torn
   * bytes stay behind the records to come) and maps it at its capacity again.
   */
  private Segment openForAppend(long seq, long end) throws IOException {
    Path file = segmentFile(seq);
    FileChannel ch = io.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE);
    try {
      if (ch.size() != end) {
        ch.truncate(end);
        ch.force(false);
      }
      int capacity = (int) Math.max(options.segmentBytes(), end);
      ZeroedWrites map = map(ch, file, capacity, end);
      long top = end;
      if (end == 0) {
        map.put(0, RecordCodec.header(RecordCodec.KIND_SEGMENT, seq));
        top = HEADER_BYTES;
      }
      return new Segment(seq, file, ch, map, capacity, 0, top, top);
    } catch (IOException | RuntimeException e) {
      closeQuietly(ch);
      throw e;
    }
  }

  /**
   * Creates, maps and preallocates (sparsely: the OS allocates blocks as pages are written) a
   * segment, writes its header and syncs the directory; {@code reserve} bytes after the header are
   * reserved for the caller.
   */
  private Segment createSegment(long seq, long base, int capacity, int reserve) throws IOException {
    Path file = segmentFile(seq);
    FileChannel ch = io.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.READ,
        StandardOpenOption.WRITE);
    try {
      ZeroedWrites map = map(ch, file, capacity, 0);
      map.put(0, RecordCodec.header(RecordCodec.KIND_SEGMENT, seq));
      io.syncDirectory(dir);
      return new Segment(seq, file, ch, map, capacity, base, HEADER_BYTES + (long) reserve,
          HEADER_BYTES);
    } catch (IOException | RuntimeException e) {
      closeQuietly(ch);
      throw e;
    }
  }

  /**
   * A segment's writable region, zeroed ahead of the writes: positional writes under SYNC, the
   * memory-mapped file otherwise (see {@link ZeroedWrites} for why). {@code size}: the file's size.
   */
  private ZeroedWrites map(FileChannel ch, Path file, int capacity, long size)
      throws IOException {
    if (durability == Durability.SYNC) {
      return new ZeroedWrites(ZeroedWrites.positional(ch), capacity, size,
          ZeroedWrites.ZERO_AHEAD_BYTES);
    }
    return new ZeroedWrites(io.map(ch, file, capacity), capacity, size,
        ZeroedWrites.MAPPED_STEP_BYTES);
  }

  /** Closes a segment's channel and, if nothing can touch it any more, unmaps it. */
  private static void closeSegment(Segment seg, boolean unmap) {
    if (seg == null) {
      return;
    }
    if (unmap) {
      seg.map.unmap();
    }
    closeQuietly(seg.channel);
  }

  private void moveAside(String why, String message) throws IOException {
    Path aside = dir.resolve(why + "-" + clock.millis());
    Files.createDirectories(aside);
    List<Path> moved = new ArrayList<>();
    try (DirectoryStream<Path> files = Files.newDirectoryStream(dir)) {
      for (Path p : files) {
        String name = p.getFileName().toString();
        if (name.startsWith("log-") || name.startsWith("snap-") || name.equals(CLOCK_FILE)) {
          moved.add(p);
        }
      }
    }
    for (Path p : moved) {
      io.move(p, aside.resolve(p.getFileName()));
    }
    io.syncDirectory(aside);
    io.syncDirectory(dir);
    log.warn("node {}: {}; moved {} files of {} to {} (delete them when no longer wanted)", nodeId,
        message, moved.size(), dir, aside);
  }

  /** Sequences of the files {@code <prefix><seq><suffix>}, sorted; recovery also drops temporaries. */
  private List<Long> list(String prefix, String suffix) throws IOException {
    List<Long> out = new ArrayList<>();
    try (DirectoryStream<Path> files = Files.newDirectoryStream(dir)) {
      for (Path p : files) {
        String name = p.getFileName().toString();
        if (name.startsWith(prefix) && name.endsWith(suffix + ".tmp")) {
          if (!running) {
            io.delete(p); // an unfinished snapshot of the previous run
          }
        } else if (name.startsWith(prefix) && name.endsWith(suffix)) {
          try {
            out.add(Long.parseLong(name.substring(prefix.length(), name.length() - suffix.length())));
          } catch (NumberFormatException e) {
            log.warn("node {}: ignoring unexpected file {} in the data directory", nodeId, p);
          }
        }
      }
    }
    Collections.sort(out);
    return out;
  }

  /** A snapshot file: of one shard, or ({@code shard} -1) of the whole store (layout 1). */
  private record SnapFile(long seq, int shard, Path path) {}

  /**
   * The snapshots in the directory: {@code snap-S.snap} (the whole store, written before layout 2)
   * and {@code snap-S-J.snap} (shard J). Unfinished ones ({@code .tmp}) of a previous run are deleted.
   */
  private List<SnapFile> listSnapshots() throws IOException {
    List<SnapFile> out = new ArrayList<>();
    try (DirectoryStream<Path> files = Files.newDirectoryStream(dir)) {
      for (Path p : files) {
        String name = p.getFileName().toString();
        if (!name.startsWith("snap-")) {
          continue;
        }
        if (name.endsWith(".snap.tmp")) {
          if (!running) {
            io.delete(p);
          }
          continue;
        }
        Matcher m = SNAPSHOT_NAME.matcher(name);
        if (!m.matches()) {
          log.warn("node {}: ignoring unexpected file {} in the data directory", nodeId, p);
          continue;
        }
        int shard = m.group(2) == null ? -1 : Integer.parseInt(m.group(2));
        out.add(new SnapFile(Long.parseLong(m.group(1)), shard, p));
      }
    }
    out.sort(Comparator.comparingLong(SnapFile::seq).thenComparingInt(SnapFile::shard));
    return out;
  }

  private static final Pattern SNAPSHOT_NAME =
      Pattern.compile("snap-(\\d{1,19})(?:-([0-" + (SHARDS - 1) + "]))?\\.snap");

  /**
   * The snapshot shard of a key: 0 to {@link #SHARDS} - 1, from {@link String#hashCode} (fixed by
   * the language), mixed. Part of the on-disk layout: it decides which snapshot file holds a key.
   */
  static int shardOf(String key) {
    return (key.hashCode() * 0x9E3779B9) >>> (32 - SHARD_BITS);
  }

  private Path shardSnapshotFile(long seq, int shard) {
    return dir.resolve(String.format("snap-%016d-%d.snap", seq, shard));
  }

  private Path segmentFile(long seq) {
    return dir.resolve(String.format("log-%016d.seg", seq));
  }

  // ---- writes ----------------------------------------------------------------------------------

  /**
   * Each writing thread's encoding buffer: a record is encoded there and copied into the segment
   * before {@link #append} returns, so the buffer is free again (a larger record gets its own).
   * Saves a buffer and its array per write.
   */
  private static final int SCRATCH_BYTES = 4096;
  private static final ThreadLocal<ByteBuffer> SCRATCH =
      ThreadLocal.withInitial(() -> ByteBuffer.allocate(SCRATCH_BYTES));

  @Override
  public CompletableFuture<Void> append(String key, Entry entry) {
    return append(RecordCodec.encode(key, entry, SCRATCH.get()), true);
  }

  /**
   * Logs an eviction without waiting for anything: the record is in the mapped segment when this
   * returns (so a killed process keeps it) and reaches the disk with the next force, whoever does it.
   * Under SYNC nothing waits for that force (an eviction is best effort, see
   * {@link io.kvstore.core.spi.ReplicaStore#evict}). A failure turns the storage read-only as usual.
   */
  @Override
  public void appendEviction(String key, Entry evicted) {
    append(RecordCodec.eviction(key, evicted), false);
  }

  /** Appends a framed record; {@code ack} false: returns once copied, waiting for no sync. */
  private CompletableFuture<Void> append(ByteBuffer record, boolean ack) {
    if (ack && position() - keptFrom > keptLimit && running) {
      awaitCompaction();
    }
    int n = record.remaining();
    while (true) {
      StorageException f = failure;
      if (f != null) {
        return CompletableFuture.failedFuture(f);
      }
      Segment seg = current;
      if (seg == null) {
        return CompletableFuture.failedFuture(new StoreClosedException(nodeId));
      }
      long p = seg.reserve.get();
      if (p < 0) {
        awaitRoll(seg);
      } else if (p + n > seg.capacity) {
        if (seg.reserve.compareAndSet(p, p | SEALED)) {
          return rollAndAppend(seg, p, record, ack);
        }
      } else if (seg.reserve.compareAndSet(p, p + n)) {
        return copy(seg, (int) p, record, ack);
      }
    }
  }

  /**
   * Copies a reserved record into the segment and acknowledges it per the durability ({@code ack}
   * false: at once).
   */
  private CompletableFuture<Void> copy(Segment seg, int at, ByteBuffer record, boolean ack) {
    int end = at + record.remaining();
    Runnable hook = beforeNextCopyForTest;
    if (hook != null) {
      beforeNextCopyForTest = null;
      hook.run();
    }
    try {
      seg.map.put(at, record);
    } catch (RuntimeException | InternalError e) { // InternalError: a fault on the mapping (disk full)
      seg.complete(at, end); // so nothing waits for it; the failure stops every acknowledgement
      fail("writing " + seg.file, new IOException(e));
      return CompletableFuture.failedFuture(failure);
    }
    seg.complete(at, end);
    if (!ack) {
      return StandaloneReplicator.DONE;
    }
    if (durability == Durability.SYNC && !ackSyncBeforeForceForTest) {
      return waitForSync(seg.base + end);
    }
    // A kill -9 keeps the page cache, but recovery stops at the first gap: an earlier reservation
    // still being copied must be done before this one counts as written.
    awaitCopied(seg, end);
    StorageException f = failure;
    return f == null ? StandaloneReplicator.DONE : CompletableFuture.failedFuture(f);
  }

  private CompletableFuture<Void> waitForSync(long position) {
    if (synced >= position) {
      return StandaloneReplicator.DONE; // a force already covered it
    }
    CompletableFuture<Void> done = new CompletableFuture<>();
    Waiter w = new Waiter(position, done);
    incoming.add(w);
    if (syncerParked) {
      LockSupport.unpark(syncer);
    }
    settleLate(w);
    return done;
  }

  /**
   * A waiter queued while the sync thread stopped or the storage failed may have missed the hand-over:
   * it settles itself (closing forces everything reserved before it drains the queue).
   */
  private void settleLate(Waiter w) {
    StorageException f = failure;
    if (f != null) {
      w.future().completeExceptionally(f);
    } else if (!running && synced >= w.position()) {
      w.future().complete(null);
    }
  }

  /** Waits (spinning, then parking briefly) until every reservation below {@code end} is copied. */
  private void awaitCopied(Segment seg, long end) {
    for (int i = 0; seg.done.get() < end && failure == null; i++) {
      if (i < 100) {
        Thread.onSpinWait();
      } else if (i < 200) {
        Thread.yield();
      } else {
        LockSupport.parkNanos(20_000);
      }
    }
  }

  /** Waits until {@code seg} is no longer the current segment (a roll, a failure or the close). */
  private void awaitRoll(Segment seg) {
    rollLock.lock();
    try {
      while (current == seg && failure == null) {
        rolled.awaitUninterruptibly();
      }
    } finally {
      rollLock.unlock();
    }
  }

  private void signalRolled() {
    rollLock.lock();
    try {
      rolled.signalAll();
    } finally {
      rollLock.unlock();
    }
  }

  /**
   * Run by the one writer that sealed {@code seg} at {@code end}: waits for the copies below it,
   * forces and unmaps it, starts the next segment (sized for {@code record} if that is larger than a
   * segment) with the record's space already reserved, publishes it and copies the record. Forcing
   * before the next segment starts keeps unsynced data to the last segment, so a power loss can only
   * tear the last one. {@code record} null: a roll for a snapshot.
   */
  private CompletableFuture<Void> rollAndAppend(Segment seg, long end, ByteBuffer record,
      boolean ack) {
    int n = record == null ? 0 : record.remaining();
    Segment next;
    try {
      awaitCopied(seg, end);
      if (failure != null) {
        signalRolled();
        return CompletableFuture.failedFuture(failure);
      }
      seg.map.release(end); // every copy below is done: the force needs no TLB shoot-downs
      if (seg.forceTo((int) end)) {
        syncs.incrementAndGet();
      }
      advanceSynced(seg.base + end);
      retired.add(seg); // the sync thread unmaps it: it may be forcing it right now
      long capacity = Math.max(options.segmentBytes(), HEADER_BYTES + (long) n);
      next = createSegment(seg.seq + 1, seg.base + end, (int) capacity, n);
    } catch (IOException e) {
      fail("rolling the log from " + seg.file, e);
      signalRolled();
      return CompletableFuture.failedFuture(failure);
    }
    current = next;
    signalRolled();
    if (syncerParked) {
      LockSupport.unpark(syncer); // waiters up to the roll are durable
    }
    return record == null ? StandaloneReplicator.DONE : copy(next, HEADER_BYTES, record, ack);
  }

  /**
   * Seals the current segment and rolls to the next one (for a snapshot, or at close with
   * {@code roll} false); returns the sealed segment and its end, or null if the storage failed or
   * closed.
   */
  private record Sealed(Segment segment, long end) {}

  private Sealed seal(boolean roll) {
    while (true) {
      Segment seg = current;
      if (failure != null || seg == null) {
        return null;
      }
      long p = seg.reserve.get();
      if (p < 0) {
        awaitRoll(seg);
      } else if (seg.reserve.compareAndSet(p, p | SEALED)) {
        if (roll && rollAndAppend(seg, p, null, false).isCompletedExceptionally()) {
          return null;
        }
        return new Sealed(seg, p);
      }
    }
  }

  @Override
  public CompletableFuture<Void> barrier() {
    StorageException f = failure;
    if (f != null) {
      return CompletableFuture.failedFuture(f);
    }
    if (durability != Durability.SYNC) {
      return StandaloneReplicator.DONE;
    }
    Segment seg = current;
    if (seg == null) {
      return CompletableFuture.failedFuture(new StoreClosedException(nodeId));
    }
    long target = seg.base + seg.top(); // every reservation made so far, copied or not
    if (synced >= target) {
      return StandaloneReplicator.DONE;
    }
    return waitForSync(target);
  }

  /** The global position after the last reservation. */
  private long position() {
    Segment seg = current;
    return seg == null ? synced : seg.base + seg.top();
  }

  /**
   * The sync thread. Under SYNC: as soon as a write waits and the previous force ended, forces the
   * current segment up to its watermark (at most {@link #MAX_SYNC_BYTES}) and completes every waiter
   * at or below it in one go: group commit with no artificial wait, each batch being what was copied
   * during one force. Under INTERVAL: one force per interval. Both: the clock reservation.
   */
  private void syncLoop() {
    boolean interval = durability == Durability.INTERVAL;
    long intervalNanos = interval ? options.syncInterval().toNanos() : Long.MAX_VALUE;
    long clockNanos = TimeUnit.MILLISECONDS.toNanos(Math.max(1, options.clockStepMillis() / 4));
    long nextForce = System.nanoTime() + (interval ? intervalNanos : 0);
    long nextClock = System.nanoTime() + clockNanos;
    boolean background = durability != Durability.SYNC;
    while (running && failure == null) {
      unmapRetired();
      for (Waiter w; (w = incoming.poll()) != null; ) {
        pending.add(w);
      }
      long now = System.nanoTime();
      Segment cur = current;
      boolean periodic = interval && now - nextForce >= 0;
      boolean released = false;
      if (background && cur != null) {
        if (!keepZeroedAhead(cur)) {
          break;
        }
        released = cur.map.release(cur.done.get()); // unmapped: forced without TLB shoot-downs
      }
      long unforced = cur == null ? 0 : cur.done.get() - cur.forced.get();
      // Right after a window was unmapped, the current one has few dirty pages still mapped.
      boolean behind = background && (released ? unforced >= BACKGROUND_FORCE_BYTES
          : unforced >= 2L * BACKGROUND_FORCE_BYTES);
      boolean clockDue = now - nextClock >= 0;
      boolean waiting = !pending.isEmpty() && pending.peek().position() > synced;
      if (!waiting && !periodic && !behind && !clockDue) {
        completeSynced();
        long deadline = interval && nextForce - nextClock < 0 ? nextForce : nextClock;
        park(Math.min(deadline - now, background ? BACKGROUND_CHECK_NANOS : Long.MAX_VALUE));
        continue;
      }
      Segment seg = current;
      try {
        if (waiting || periodic || behind) {
          boolean forced = force(); // "behind": keeps the force a roll waits for short
          if (periodic) {
            nextForce = System.nanoTime() + intervalNanos;
          }
          if (failure == null) {
            completeSynced();
          }
          if (!forced && waiting && !periodic && !pending.isEmpty()
              && pending.peek().position() > synced) {
            // A copy below the waiter is still running (under SYNC a pwrite, a few µs): look again
            // soon. A full millisecond here stalled every waiter behind one preempted writer.
            park(COPY_WAIT_NANOS);
          }
        }
        if (clockDue) {
          refreshClock();
          nextClock = System.nanoTime() + clockNanos;
        }
      } catch (IOException e) {
        fail("syncing " + (seg == null ? dir : seg.file), e);
      } catch (RuntimeException e) {
        fail("the sync thread", new IOException(e));
      }
    }
    if (failure != null) {
      failWaiters();
    }
  }

  /**
   * Zeros the current segment ahead of its writers (INTERVAL and NONE: this thread checks every
   * {@link #BACKGROUND_CHECK_NANOS}, so a writer extends the zeros itself only when the thread falls
   * a whole step behind); false if that failed (the storage turned read-only). Skips a sealed
   * segment: nothing more is written there, and this thread is the one that closes it.
   */
  private boolean keepZeroedAhead(Segment seg) {
    long p = seg.reserve.get();
    if (p < 0) {
      return true;
    }
    try {
      seg.map.keepAhead(p);
      return true;
    } catch (IOException | RuntimeException e) {
      fail("zeroing ahead in " + seg.file, e instanceof IOException io ? io : new IOException(e));
      return false;
    }
  }

  private void park(long nanos) {
    syncerParked = true;
    if (incoming.isEmpty() && running && failure == null) {
      LockSupport.parkNanos(this, Math.max(1, nanos));
    }
    syncerParked = false;
  }

  /** Forces the current segment up to its watermark; whether there was anything to force. */
  private boolean force() throws IOException {
    Segment seg = current;
    if (seg == null) {
      return false;
    }
    long copied = ignoreCopyWatermarkForTest ? seg.top() : seg.done.get();
    int to = (int) Math.min(copied, (long) seg.forced.get() + MAX_SYNC_BYTES);
    if (!seg.forceTo(to)) {
      return false;
    }
    syncs.incrementAndGet();
    advanceSynced(seg.base + to);
    return true;
  }

  private void advanceSynced(long position) {
    synchronized (syncedLock) {
      if (position > synced) {
        synced = position;
      }
    }
  }

  /** Unmaps the segments rolled away from (the sync thread, or the closer once it stopped). */
  private void unmapRetired() {
    for (Segment seg; (seg = retired.poll()) != null; ) {
      seg.map.unmap();
      try {
        long end = seg.top(); // sealed: its end; every copy below is done and forced
        if (seg.channel.size() > end) {
          seg.channel.truncate(end); // the zeros written ahead, and the sparse rest: not needed
        }
      } catch (IOException e) {
        log.warn("node {}: could not cut the unused rest off {}: {}", nodeId, seg.file,
            e.getMessage());
      }
      closeSegment(seg, false);
    }
  }

  /** Completes the sync thread's waiters up to {@link #synced}. */
  private void completeSynced() {
    long s = synced;
    while (!pending.isEmpty() && pending.peek().position() <= s) {
      pending.poll().future().complete(null);
    }
  }

  private void failWaiters() {
    for (Waiter w; (w = incoming.poll()) != null; ) {
      pending.add(w);
    }
    for (Waiter w; (w = pending.poll()) != null; ) {
      w.future().completeExceptionally(failure);
    }
  }

  /**
   * Turns the storage read-only (the first failure wins); the sync thread or the closer fails the
   * waiting writes, later ones are refused.
   */
  private void fail(String what, IOException e) {
    synchronized (failLock) {
      if (failure != null) {
        return;
      }
      boolean crash = e.getMessage() != null && e.getMessage().equals(CRASHED);
      if (!crash) {
        failedSyncs.incrementAndGet();
      }
      failure = new StorageException("node " + nodeId + ": " + what + " failed (" + e + "); the "
          + "store is read-only until restarted, and the writes that were waiting for this fail "
          + "(they may or may not be on disk)", e);
      if (!crash) {
        log.error("node {}: {} failed; the store is now read-only (a failed sync is not retried: "
            + "the OS may have dropped the data already)", nodeId, what, e);
      }
    }
    signalRolled(); // writers waiting for a roll see the failure
    Thread t = syncer;
    if (t != null) {
      LockSupport.unpark(t); // it fails its waiters and stops; a late waiter fails itself
    }
  }

  private static void writeFully(FileChannel ch, ByteBuffer b, long position) throws IOException {
    long pos = position;
    while (b.hasRemaining()) {
      pos += ch.write(b, pos);
    }
  }

  // ---- clock -----------------------------------------------------------------------------------

  @Override
  public long reserve(long timestamp) {
    synchronized (clockLock) {
      if (reserved >= timestamp) {
        return reserved;
      }
      StorageException f = failure;
      if (f != null) {
        throw f;
      }
      long base = Math.max(clock.millis(), Version.physicalOf(timestamp));
      try {
        writeClock(Version.pack(base + options.clockStepMillis(), 0), clock.millis());
      } catch (IOException e) {
        fail("persisting the clock reservation in " + dir.resolve(CLOCK_FILE), e);
        throw failure;
      }
      return reserved;
    }
  }

  private void refreshClock() throws IOException {
    long r;
    synchronized (clockLock) {
      long base = Math.max(clock.millis(), Version.physicalOf(hlcCurrent.getAsLong()));
      writeClock(Math.max(reserved, Version.pack(base + options.clockStepMillis(), 0)),
          clock.millis());
      r = reserved;
    }
    onReserve.accept(r);
  }

  /** Replaces the clock file (temporary file, sync, rename, directory sync). */
  private void writeClock(long reservation, long lastAlive) throws IOException {
    synchronized (clockLock) {
      replaceFile(dir.resolve(CLOCK_FILE), RecordCodec.clock(reservation, lastAlive));
      reserved = reservation;
    }
  }

  private void replaceFile(Path file, ByteBuffer content) throws IOException {
    Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
    try (FileChannel ch = io.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
        StandardOpenOption.TRUNCATE_EXISTING)) {
      writeFully(ch, content, 0);
      ch.force(true);
    }
    io.move(tmp, file);
    io.syncDirectory(dir);
  }

  // ---- snapshots -------------------------------------------------------------------------------

  /** Takes a compaction step if one is due (the compaction thread, every 100 ms; or a test). */
  void compactIfDue() {
    try {
      // Behind (more log kept than a round covers, writers waiting): steps back to back until it
      // is caught up, at most a round of them per call.
      for (int i = 0; i <= SHARDS && running && failure == null; i++) {
        boolean behind = position() - keptFrom > keptLimit;
        if (!behind && (i > 0 || position() - snapshotBase <= stepBytes())) {
          return;
        }
        compactionStep();
      }
    } catch (RuntimeException e) {
      log.error("node {}: compaction failed", nodeId, e);
    }
  }

  /**
   * The log between two compaction steps: a share of the larger of the configured threshold and the
   * snapshots' size, so that a whole round of steps (every shard once, which is what the log must be
   * kept for) spans about that much log.
   */
  private long stepBytes() {
    return Math.max(options.compactBytes() / 4, roundBytes / STEP_SHARE);
  }

  /**
   * The log kept past which compaction counts as behind: a round of steps plus two. Each step rolls
   * the log, and a roll makes the writers wait for a force of the old segment; so a small store (its
   * snapshots well below the configured size) steps every quarter of that size, not every tenth of
   * a round (measured: 10 rolls a second at 100k keys took a third off the put rate).
   */
  private long keptLimit() {
    return Math.max(roundBytes, (SHARDS + 2) * stepBytes());
  }

  /**
   * Back-pressure: a write that finds more log kept than a round's worth (compaction is behind: the
   * steps do not keep up with the writes) first wakes the compaction thread and waits until it caught
   * up, at most {@link #MAX_STALL_NANOS}. Without it the log, and the disk it takes, grows without a
   * bound whenever writes outrun compaction (measured: 2 writer threads at full speed against a 1M-key
   * store, docs/BENCHMARKS.md §4). Counted in {@link StorageStatus#stalledWrites()}.
   */
  private void awaitCompaction() {
    stalledWrites.increment();
    long now = System.nanoTime();
    long logged = lastStallLog.get();
    if (now - logged >= STALL_LOG_NANOS && lastStallLog.compareAndSet(logged, now)) {
      log.info("node {}: writes wait for compaction: {} MiB of log kept, more than a round of "
          + "compaction steps covers ({} MiB); it cannot keep up with this write rate", nodeId,
          (position() - keptFrom) >> 20, keptLimit >> 20);
    }
    kickCompaction();
    long deadline = now + MAX_STALL_NANOS;
    while (position() - keptFrom > keptLimit && running && failure == null
        && System.nanoTime() - deadline < 0) {
      LockSupport.parkNanos(100_000);
    }
  }

  private void kickCompaction() {
    ScheduledExecutorService c = compactor;
    if (c != null && compactionKicked.compareAndSet(false, true)) {
      try {
        c.execute(() -> {
          compactionKicked.set(false);
          compactIfDue();
        });
      } catch (RejectedExecutionException e) {
        compactionKicked.set(false); // closing
      }
    }
  }

  /**
   * Compacts the whole log: a step for every shard. Then only the log since the first of them is
   * kept. One compaction at a time (the compaction thread, or a test).
   */
  void snapshot() {
    synchronized (snapshotLock) {
      for (int i = 0; i < SHARDS; i++) {
        if (!stepLocked()) {
          return;
        }
      }
    }
  }

  /** One compaction step: the shard whose snapshot is the oldest. */
  void compactionStep() {
    synchronized (snapshotLock) {
      stepLocked();
    }
  }

  /**
   * Rolls the log to segment S and writes {@code snap-S-J} of the shard J whose snapshot is the
   * oldest; then deletes what that makes obsolete: J's older snapshot, a whole-store snapshot no shard
   * needs any more, and the segments before every shard's snapshot. False if the storage failed or
   * closed meanwhile.
   */
  private boolean stepLocked() {
    Runnable hook = beforeStepForTest;
    if (hook != null) {
      hook.run();
    }
    int shard = 0;
    for (int j = 1; j < SHARDS; j++) {
      if (shardBase[j] < shardBase[shard]) {
        shard = j;
      }
    }
    Sealed sealed = seal(true);
    if (sealed == null) {
      return false;
    }
    long seq = sealed.segment().seq + 1;
    Segment rolledTo = current;
    if (rolledTo != null && rolledTo.seq == seq) {
      snapshotBase = rolledTo.base;
    }
    Path file = shardSnapshotFile(seq, shard);
    Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
    long started = System.nanoTime();
    long count = 0;
    long written = 0;
    try {
      long bytes = 0;
      try (FileChannel ch = io.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
          StandardOpenOption.TRUNCATE_EXISTING)) {
        ByteBuffer buf = ByteBuffer.allocate(READ_CHUNK);
        ByteBuffer scratch = ByteBuffer.allocate(SCRATCH_BYTES);
        buf.put(RecordCodec.header(RecordCodec.KIND_SNAPSHOT, seq));
        Iterator<Map.Entry<String, Entry>> it = snapshotSource.apply(shard);
        while (it.hasNext()) {
          if (!running && syncer != null) {
            throw new SnapshotAbandoned();
          }
          Map.Entry<String, Entry> me = it.next();
          ByteBuffer rec = RecordCodec.encode(me.getKey(), me.getValue(), scratch);
          if (rec.remaining() > buf.remaining()) {
            buf.flip();
            bytes += buf.remaining();
            writeFully(ch, buf, bytes - buf.remaining());
            buf.clear();
          }
          if (rec.remaining() > buf.remaining()) {
            bytes += rec.remaining();
            writeFully(ch, rec, bytes - rec.remaining());
          } else {
            buf.put(rec);
          }
          count++;
        }
        ByteBuffer end = RecordCodec.end(count);
        if (end.remaining() > buf.remaining()) {
          buf.flip();
          bytes += buf.remaining();
          writeFully(ch, buf, bytes - buf.remaining());
          buf.clear();
        }
        buf.put(end).flip();
        bytes += buf.remaining();
        writeFully(ch, buf, bytes - buf.remaining());
        written = System.nanoTime();
        ch.force(true);
        syncs.incrementAndGet();
      }
      io.move(tmp, file);
      io.syncDirectory(dir);
      shardBase[shard] = seq;
      shardBytes[shard] = bytes;
      shardBasePos[shard] = rolledTo != null && rolledTo.seq == seq ? rolledTo.base : position();
      roundsChanged();
      long oldest = Long.MAX_VALUE;
      for (long b : shardBase) {
        oldest = Math.min(oldest, b);
      }
      for (SnapFile f : listSnapshots()) {
        if (f.seq() < seq && (f.shard() == shard || f.shard() < 0 && f.seq() < oldest)) {
          io.delete(f.path());
        }
      }
      for (long s : list("log-", ".seg")) {
        if (s < oldest) {
          io.delete(segmentFile(s));
        }
      }
      io.syncDirectory(dir);
      snapshots.incrementAndGet();
      long now = System.nanoTime();
      log.debug("node {}: snapshot {} of shard {}: {} entries, {} bytes, written in {} ms, synced "
          + "in {} ms", nodeId, file.getFileName(), shard, count, bytes,
          (written - started) / 1_000_000, (now - written) / 1_000_000);
      return true;
    } catch (SnapshotAbandoned e) {
      try {
        io.delete(tmp);
      } catch (IOException ignored) {
        // an unfinished snapshot is deleted by the next recovery
      }
      log.debug("node {}: snapshot {} abandoned: the store is closing", nodeId, file);
    } catch (IOException e) {
      fail("writing the snapshot " + file, e);
    }
    return false;
  }

  /** A snapshot stopped because the store closes (the log it would compact is intact). */
  private static final class SnapshotAbandoned extends IOException {
    private static final long serialVersionUID = 1L;

    SnapshotAbandoned() {
      super("the store is closing", null);
    }
  }

  // ---- status and lifecycle --------------------------------------------------------------------

  @Override
  public StorageException failure() {
    return failure;
  }

  @Override
  public StorageStatus status() {
    StorageException f = failure;
    return new StorageStatus(dir, durability, f == null, f == null ? null : f.getMessage(),
        recoveredEntries, truncatedTailBytes, position() - startPosition, syncs.get(), failedSyncs.get(),
        snapshots.get(), stalledWrites.sum());
  }

  @Override
  public void close() {
    stopThreads();
    Sealed sealed = seal(false);
    Segment seg = sealed == null ? current : sealed.segment();
    if (sealed != null) {
      int end = (int) sealed.end();
      awaitCopied(seg, end);
      try {
        if (failure == null) {
          seg.map.release(end);
        }
        if (failure == null && seg.forceTo(end)) {
          syncs.incrementAndGet();
        }
        if (failure == null) {
          advanceSynced(seg.base + end);
        }
      } catch (IOException e) {
        fail("syncing " + seg.file + " at close", e);
      }
    }
    current = null;
    signalRolled();
    closeSegment(seg, sealed != null);
    unmapRetired();
    settleWaiters();
    if (failure == null) {
      try {
        synchronized (clockLock) {
          writeClock(reserved, clock.millis());
        }
      } catch (IOException e) {
        log.warn("node {}: could not record the last-alive time in {}", nodeId, dir, e);
      }
    }
    releaseQuietly();
  }

  /** After the sync thread stopped: completes or fails every waiter left. */
  private void settleWaiters() {
    if (failure != null) {
      failWaiters();
      return;
    }
    for (Waiter w; (w = incoming.poll()) != null; ) {
      pending.add(w);
    }
    completeSynced();
    for (Waiter w; (w = pending.poll()) != null; ) {
      w.future().completeExceptionally(new StoreClosedException(nodeId));
    }
  }

  /**
   * Test hook: stops like a killed process, syncing nothing; waiting writes fail. The segment is not
   * unmapped (a write may still be copying into it); the garbage collector releases it.
   */
  void crash() {
    stopThreads();
    fail("the store (a simulated crash)", new IOException(CRASHED));
    Segment seg = current;
    current = null;
    signalRolled();
    closeSegment(seg, false);
    failWaiters();
    releaseQuietly();
  }

  private void stopThreads() {
    running = false;
    Thread t = syncer;
    if (t != null) {
      LockSupport.unpark(t);
      try {
        t.join(10_000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    if (compactor != null) {
      compactor.shutdown(); // not interrupted: an interrupt would close its channel and fail the store
      try {
        if (!compactor.awaitTermination(30, TimeUnit.SECONDS)) {
          compactor.shutdownNow();
        }
        compactor.awaitTermination(10, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  private void releaseQuietly() {
    if (!running && syncer == null) { // a failed open: nothing else can touch the segment
      closeSegment(current, true);
      current = null;
    }
    if (lock != null) {
      try {
        lock.release();
      } catch (IOException e) {
        log.debug("releasing the lock of {}", dir, e);
      }
      lock = null;
    }
    closeQuietly(lockChannel);
    lockChannel = null;
  }

  private static void closeQuietly(java.io.Closeable c) {
    if (c != null) {
      try {
        c.close();
      } catch (IOException e) {
        log.debug("closing a storage file", e);
      }
    }
  }

  @Override
  public String toString() {
    return "LogStorage{" + dir + ", " + durability + "}";
  }
}
