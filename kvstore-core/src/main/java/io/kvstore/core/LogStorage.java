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
import java.util.Comparator;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.Properties;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.LongConsumer;
import java.util.function.LongSupplier;
import java.util.function.Supplier;
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
 * 4 MiB are unforced (acknowledging nothing), so that a roll has little left to force. A record that
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
 * <p><b>Snapshots and compaction:</b> when the log since the last snapshot outgrows both the
 * configured size and the last snapshot, the log is rolled to segment S first and then the map is
 * iterated into {@code snap-S}. The iteration is fuzzy (writes continue), but every change in a
 * segment before S was in the map before the roll, so the snapshot holds it or something newer, and
 * every change made during the iteration is in segment S or later. Replaying the snapshot and then
 * segments S.. through the idempotent merge is exact. Then the older segments and snapshots are
 * deleted, so the log stays within about twice the live data.
 *
 * <p><b>Recovery:</b> the newest complete snapshot (one that never got its final rename is ignored),
 * then the segments from its sequence on, in order. A segment ends at a zero length followed by
 * nothing but zeros (its preallocated rest). A damaged tail of the last segment, or one with data after
 * a zero gap (a power loss kept a later page and dropped an earlier one), is what a crash during a
 * write leaves; it is truncated, counted and logged (under SYNC nothing in it
 * was acknowledged). Damage anywhere else (a snapshot, an earlier segment, a missing segment, a
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
  private static final int BACKGROUND_FORCE_BYTES = 4 << 20;
  private static final long BACKGROUND_CHECK_NANOS = 10_000_000;
  private static final long COMPACT_CHECK_MILLIS = 100;
  private static final long COPY_WAIT_NANOS = 50_000;
  /** The largest segment (a mapped buffer is indexed by int). */
  static final long MAX_SEGMENT_BYTES = 1L << 30;

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
  private volatile long snapshotBase;
  private volatile long lastSnapshotBytes;
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
  private Supplier<Iterator<Map.Entry<String, Entry>>> snapshotSource;
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
    final FileIo.Mapping map;
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

    Segment(long seq, Path file, FileChannel channel, FileIo.Mapping map, int capacity, long base,
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
   * About how many entries recovering {@code dir} yields, from its newest snapshot's size (a
   * snapshot record of a small key and a 100-byte value takes ~160 bytes), so the map can be sized
   * before the replay; 16 for a directory without a snapshot or one that cannot be read (a guess,
   * never a promise: the map grows as usual).
   */
  static int expectedEntries(Path dir) {
    long newest = 0;
    try (DirectoryStream<Path> files = Files.newDirectoryStream(dir, "snap-*.snap")) {
      for (Path f : files) {
        newest = Math.max(newest, Files.size(f)); // normally there is one
      }
    } catch (IOException | RuntimeException e) {
      return 16;
    }
    return (int) Math.max(16, Math.min(newest / 128, 1 << 26));
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
      Supplier<Iterator<Map.Entry<String, Entry>>> snapshotSource) {
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
    List<Long> snaps = list("snap-", ".snap");
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
      Properties p = new Properties();
      p.setProperty("format", Integer.toString(RecordCodec.FORMAT_VERSION));
      p.setProperty("nodeId", nodeId);
      p.setProperty("clusterName", cluster);
      StringBuilder text = new StringBuilder("# kvstore data directory; do not edit\n");
      for (String k : List.of("format", "nodeId", "clusterName")) {
        text.append(k).append('=').append(p.getProperty(k)).append('\n');
      }
      replaceFile(file, ByteBuffer.wrap(text.toString().getBytes(StandardCharsets.UTF_8)));
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
    if (!format.equals(Integer.toString(RecordCodec.FORMAT_VERSION))) {
      throw new StorageException("data directory " + dir + " has format " + format + "; this "
          + "version of kvstore reads format " + RecordCodec.FORMAT_VERSION);
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

  private void replay(List<Long> snaps, List<Long> segs, Sink sink) throws IOException, Corrupt {
    long first = 1;
    if (!snaps.isEmpty()) {
      long s = snaps.get(snaps.size() - 1);
      readSnapshot(s, sink);
      first = s;
      for (long older : snaps.subList(0, snaps.size() - 1)) {
        io.delete(snapshotFile(older)); // a compaction that stopped before its clean-up
      }
      List<Long> kept = new ArrayList<>();
      for (long seg : segs) {
        if (seg < s) {
          io.delete(segmentFile(seg));
        } else {
          kept.add(seg);
        }
      }
      segs = kept;
      if (segs.isEmpty() || segs.get(0) != s) {
        throw new Corrupt("segment " + segmentFile(s) + " of snapshot " + snapshotFile(s)
            + " is missing");
      }
    } else if (!segs.isEmpty()) {
      first = segs.get(0);
    }
    long total = snaps.isEmpty() ? 0 : Files.size(snapshotFile(snaps.get(snaps.size() - 1)));
    for (long seg : segs) {
      total += Files.size(segmentFile(seg));
    }
    progress = new RecoveryProgress(total);
    for (int i = 1; i < segs.size(); i++) {
      if (segs.get(i) != segs.get(i - 1) + 1) {
        throw new Corrupt("segment " + segmentFile(segs.get(i - 1) + 1) + " is missing");
      }
    }
    long logged = 0;
    for (int i = 0; i < segs.size(); i++) {
      boolean last = i == segs.size() - 1;
      long seq = segs.get(i);
      long end = readSegment(seq, last, sink);
      logged += end;
      if (last) {
        current = openForAppend(seq, end);
      }
    }
    if (segs.isEmpty()) {
      current = createSegment(first, 0, segmentCapacity(), 0);
    }
    snapshotBase = position() - logged; // so compaction after a restart counts the whole log
  }

  private void readSnapshot(long seq, Sink sink) throws IOException, Corrupt {
    Path file = snapshotFile(seq);
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
        accept(sink, r);
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
    lastSnapshotBytes = Files.size(file);
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
        accept(sink, r);
      } else if (r.type == RecordCodec.EVICTED) {
        acceptEviction(sink, r);
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
      FileIo.Mapping map = map(ch, file, capacity, end);
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
      FileIo.Mapping map = map(ch, file, capacity, 0);
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
   * A segment's writable region: positional writes into zeroed blocks under SYNC (see
   * {@link ZeroedWrites} for why), the memory-mapped file otherwise. {@code size}: the file's size.
   */
  private FileIo.Mapping map(FileChannel ch, Path file, int capacity, long size)
      throws IOException {
    if (durability == Durability.SYNC) {
      return new ZeroedWrites(ch, capacity, size);
    }
    return io.map(ch, file, capacity);
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

  private Path segmentFile(long seq) {
    return dir.resolve(String.format("log-%016d.seg", seq));
  }

  private Path snapshotFile(long seq) {
    return dir.resolve(String.format("snap-%016d.snap", seq));
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
      boolean behind = background && cur != null
          && cur.done.get() - cur.forced.get() >= BACKGROUND_FORCE_BYTES;
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
      closeSegment(seg, true);
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

  private void compactIfDue() {
    try {
      long since = position() - snapshotBase;
      long last = lastSnapshotBytes;
      if (running && failure == null && since > Math.max(options.compactBytes(), last)) {
        snapshot();
      }
    } catch (RuntimeException e) {
      log.error("node {}: compaction failed", nodeId, e);
    }
  }

  /**
   * Rolls the log and writes a snapshot of the map; then deletes what it makes obsolete. One at a
   * time (the compaction thread, or a test).
   */
  void snapshot() {
    synchronized (snapshotLock) {
      snapshotLocked();
    }
  }

  private void snapshotLocked() {
    Sealed sealed = seal(true);
    if (sealed == null) {
      return;
    }
    long seq = sealed.segment().seq + 1;
    Segment rolledTo = current;
    if (rolledTo != null && rolledTo.seq == seq) {
      snapshotBase = rolledTo.base;
    }
    Path file = snapshotFile(seq);
    Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
    try {
      long bytes = 0;
      try (FileChannel ch = io.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
          StandardOpenOption.TRUNCATE_EXISTING)) {
        ByteBuffer buf = ByteBuffer.allocate(READ_CHUNK);
        ByteBuffer scratch = ByteBuffer.allocate(SCRATCH_BYTES);
        buf.put(RecordCodec.header(RecordCodec.KIND_SNAPSHOT, seq));
        long count = 0;
        Iterator<Map.Entry<String, Entry>> it = snapshotSource.get();
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
        ch.force(true);
        syncs.incrementAndGet();
      }
      io.move(tmp, file);
      io.syncDirectory(dir);
      for (long s : list("snap-", ".snap")) {
        if (s < seq) {
          io.delete(snapshotFile(s));
        }
      }
      for (long s : list("log-", ".seg")) {
        if (s < seq) {
          io.delete(segmentFile(s));
        }
      }
      io.syncDirectory(dir);
      lastSnapshotBytes = bytes;
      snapshots.incrementAndGet();
      log.debug("node {}: snapshot {} written, {} bytes", nodeId, file, bytes);
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
        snapshots.get());
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
