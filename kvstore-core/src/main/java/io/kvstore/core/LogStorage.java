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
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Condition;
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
 * <p><b>Writes:</b> the writer thread encodes its record and appends it under a lock with one
 * {@code write}; that is the acknowledgement point of {@link Durability#INTERVAL} and
 * {@link Durability#NONE} (a crash of the process loses nothing the OS has). Under
 * {@link Durability#SYNC} the append also queues a waiter at its log position, and a sync thread
 * forces the log, as soon as the previous force ended, covering everything written by then, and
 * completes the waiters up to that position: group commit without an artificial wait, each batch being
 * what arrived during one sync. Under INTERVAL the sync thread forces once per interval. A segment is
 * forced before the next one is started, so only the last segment can ever hold unsynced data.
 *
 * <p><b>A failed write or sync is not retried</b> (after a failed {@code fsync} Linux may already have
 * dropped the dirty pages, so a retry that succeeds proves nothing): every waiting write fails, every
 * later one is refused, the store reads on and reports it ({@link StorageStatus}, the log).
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
 * then the segments from its sequence on, in order. A damaged or zero-filled tail of the last segment
 * is what a crash during a write leaves; it is truncated, counted and logged (under SYNC nothing in it
 * was acknowledged). Damage anywhere else (a snapshot, an earlier segment, a missing segment, a
 * damaged clock file) cannot come from a crash: by the {@link CorruptionPolicy} the store refuses to
 * start with the file and the offset, or moves the files aside and starts empty.
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

  /**
   * The settings of a log storage.
   *
   * @param dir the data directory
   * @param durability when writes are acknowledged
   * @param syncInterval the sync period of {@link Durability#INTERVAL}
   * @param onCorruption what recovery does with a corrupted directory
   * @param clusterName recorded in the manifest; a directory of another cluster is refused (or null)
   * @param segmentBytes a segment is rolled once it passes this size
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

  // Guarded by writeLock.
  private final ReentrantLock writeLock = new ReentrantLock();
  private final Condition work = writeLock.newCondition();
  private final ArrayDeque<Waiter> waiters = new ArrayDeque<>();
  private FileChannel segment;
  private long segmentPos;
  private long written;
  private long bytesSinceSnapshot;
  private long lastSnapshotBytes;
  private volatile long synced;
  /** Changes only while both locks are held; read under either. */
  private volatile long segmentSeq;

  /** Held while forcing or closing the current segment. */
  private final ReentrantLock syncLock = new ReentrantLock();
  private final Object clockLock = new Object();
  private final Object snapshotLock = new Object();
  private long reserved; // guarded by clockLock
  private volatile StorageException failure;
  private volatile boolean running;

  private final AtomicLong logBytes = new AtomicLong();
  private final AtomicLong syncs = new AtomicLong();
  private final AtomicLong failedSyncs = new AtomicLong();
  private final AtomicLong snapshots = new AtomicLong();
  private long recoveredEntries;
  /** How often a long recovery logs its progress; tests shorten it. */
  static volatile long progressIntervalNanos = 5_000_000_000L;
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

  private LogStorage(Options options, String nodeId, InstantSource clock) {
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
    compactor.scheduleWithFixedDelay(this::compactIfDue, 1, 1, TimeUnit.SECONDS);
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
      closeQuietly(segment);
      segment = null;
      sink.reset();
      recoveredEntries = 0;
      recoveredMaxTimestamp = 0;
      moveAside("corrupt", "recovery found corruption: " + e.getMessage());
      createSegment(1);
    }
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
        openForAppend(seq, end);
      }
    }
    bytesSinceSnapshot = logged; // so compaction after a restart counts the whole log
    if (segs.isEmpty()) {
      createSegment(first);
    }
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
    if (!last) {
      throw new Corrupt(file, f.offset, f.damage.getMessage()
          + " (not the last segment, so not a torn write)");
    }
    long dropped = size - f.offset;
    truncatedTailBytes += dropped;
    log.warn("node {}: dropped a torn tail of {} bytes from {} at offset {} ({}); a crash during a "
        + "write leaves one, and nothing in it was acknowledged under SYNC", nodeId, dropped, file,
        f.offset, f.damage.getMessage());
    return f.offset;
  }

  private void accept(Sink sink, RecordCodec.Record r) {
    recoveredEntries++;
    recoveredMaxTimestamp = Math.max(recoveredMaxTimestamp, r.entry.timestamp);
    sink.accept(r.key, r.entry);
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
          if (e.damage == RecordCodec.Damage.BAD || eof) {
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

  private void openForAppend(long seq, long end) throws IOException {
    Path file = segmentFile(seq);
    FileChannel ch = io.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE);
    if (ch.size() != end) {
      ch.truncate(end);
      ch.force(false);
    }
    segment = ch;
    segmentSeq = seq;
    segmentPos = end;
    if (end == 0) {
      writeFully(ch, RecordCodec.header(RecordCodec.KIND_SEGMENT, seq), 0);
      ch.force(false);
      segmentPos = HEADER_BYTES;
    }
  }

  private void createSegment(long seq) throws IOException {
    Path file = segmentFile(seq);
    FileChannel ch = io.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.READ,
        StandardOpenOption.WRITE);
    try {
      writeFully(ch, RecordCodec.header(RecordCodec.KIND_SEGMENT, seq), 0);
      io.syncDirectory(dir);
    } catch (IOException e) {
      closeQuietly(ch);
      throw e;
    }
    segment = ch;
    segmentSeq = seq;
    segmentPos = HEADER_BYTES;
    written += HEADER_BYTES;
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

  @Override
  public CompletableFuture<Void> append(String key, Entry entry) {
    ByteBuffer record = RecordCodec.encode(key, entry);
    int n = record.remaining();
    CompletableFuture<Void> done;
    List<Waiter> failed;
    writeLock.lock();
    try {
      if (failure != null) {
        return CompletableFuture.failedFuture(failure);
      }
      if (segment == null) {
        return CompletableFuture.failedFuture(new StoreClosedException(nodeId));
      }
      try {
        if (segmentPos + n > options.segmentBytes() && segmentPos > HEADER_BYTES) {
          rollLocked();
        }
        writeFully(segment, record, segmentPos);
        failed = null;
      } catch (IOException e) {
        failed = failLocked("writing " + segmentFile(segmentSeq), e);
      }
      if (failed != null) {
        done = CompletableFuture.failedFuture(failure);
      } else {
        segmentPos += n;
        written += n;
        bytesSinceSnapshot += n;
        logBytes.addAndGet(n);
        if (durability != Durability.SYNC) {
          return StandaloneReplicator.DONE;
        }
        done = new CompletableFuture<>();
        waiters.add(new Waiter(written, done));
        work.signal();
      }
    } finally {
      writeLock.unlock();
    }
    if (failed != null) {
      failAll(failed);
    }
    return done;
  }

  @Override
  public CompletableFuture<Void> barrier() {
    if (durability != Durability.SYNC) {
      StorageException f = failure;
      return f == null ? StandaloneReplicator.DONE : CompletableFuture.failedFuture(f);
    }
    writeLock.lock();
    try {
      if (failure != null) {
        return CompletableFuture.failedFuture(failure);
      }
      if (synced >= written) {
        return StandaloneReplicator.DONE;
      }
      CompletableFuture<Void> done = new CompletableFuture<>();
      waiters.add(new Waiter(written, done));
      work.signal();
      return done;
    } finally {
      writeLock.unlock();
    }
  }

  /** Forces and closes the current segment, starts the next one. Holds writeLock. */
  private void rollLocked() throws IOException {
    syncLock.lock();
    try {
      segment.force(false);
      syncs.incrementAndGet();
      segment.close();
      segment = null;
      synced = written;
      segmentSeq = segmentSeq + 1;
    } finally {
      syncLock.unlock();
    }
    createSegment(segmentSeq);
    work.signal(); // waiters up to the roll are durable
  }

  private static void writeFully(FileChannel ch, ByteBuffer b, long position) throws IOException {
    long pos = position;
    while (b.hasRemaining()) {
      pos += ch.write(b, pos);
    }
  }

  private void syncLoop() {
    boolean interval = durability == Durability.INTERVAL;
    long intervalNanos = interval ? options.syncInterval().toNanos() : Long.MAX_VALUE;
    long clockNanos = TimeUnit.MILLISECONDS.toNanos(Math.max(1, options.clockStepMillis() / 4));
    long nextForce = System.nanoTime() + (interval ? intervalNanos : 0);
    long nextClock = System.nanoTime() + clockNanos;
    while (running) {
      long target;
      long seq;
      FileChannel ch;
      boolean waiting;
      writeLock.lock();
      try {
        while (running && failure == null && waiters.isEmpty()) {
          long deadline = interval && nextForce - nextClock < 0 ? nextForce : nextClock;
          long wait = deadline - System.nanoTime();
          if (wait <= 0) {
            break;
          }
          work.awaitNanos(wait);
        }
        if (!running || failure != null) {
          break;
        }
        target = written;
        seq = segmentSeq;
        ch = segment;
        waiting = !waiters.isEmpty();
      } catch (InterruptedException e) {
        break;
      } finally {
        writeLock.unlock();
      }
      try {
        boolean periodic = interval && System.nanoTime() - nextForce >= 0;
        if (target > synced && (waiting || periodic)) {
          syncLock.lock();
          try {
            if (seq == segmentSeq) {
              ch.force(false);
              syncs.incrementAndGet();
            } // else a roll forced it
          } finally {
            syncLock.unlock();
          }
        }
        if (waiting || periodic) {
          completeUpTo(target);
        }
        if (periodic) {
          nextForce = System.nanoTime() + intervalNanos;
        }
        if (System.nanoTime() - nextClock >= 0) {
          refreshClock();
          nextClock = System.nanoTime() + clockNanos;
        }
      } catch (IOException e) {
        fail("syncing " + segmentFile(seq), e);
      } catch (RuntimeException e) {
        fail("the sync thread", new IOException(e));
      }
    }
  }

  private void completeUpTo(long position) {
    List<CompletableFuture<Void>> done = new ArrayList<>();
    writeLock.lock();
    try {
      if (position > synced) {
        synced = position;
      }
      while (!waiters.isEmpty() && waiters.peek().position() <= synced) {
        done.add(waiters.poll().future());
      }
    } finally {
      writeLock.unlock();
    }
    for (CompletableFuture<Void> f : done) {
      f.complete(null);
    }
  }

  private void fail(String what, IOException e) {
    List<Waiter> failed;
    writeLock.lock();
    try {
      failed = failLocked(what, e);
    } finally {
      writeLock.unlock();
    }
    failAll(failed);
  }

  /** Turns the storage read-only; returns the waiters to fail (outside the lock). */
  private List<Waiter> failLocked(String what, IOException e) {
    if (failure != null) {
      return List.of();
    }
    boolean crash = e.getMessage() != null && e.getMessage().equals(CRASHED);
    if (!crash) {
      failedSyncs.incrementAndGet();
    }
    failure = new StorageException("node " + nodeId + ": " + what + " failed (" + e + "); the store "
        + "is read-only until restarted, and the writes that were waiting for this fail (they may "
        + "or may not be on disk)", e);
    if (!crash) {
      log.error("node {}: {} failed; the store is now read-only (a failed sync is not retried: the "
        + "OS may have dropped the data already)", nodeId, what, e);
    }
    List<Waiter> out = new ArrayList<>(waiters);
    waiters.clear();
    work.signalAll();
    return out;
  }

  private void failAll(List<Waiter> failed) {
    for (Waiter w : failed) {
      w.future().completeExceptionally(failure);
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
      long since;
      long last;
      writeLock.lock();
      try {
        since = bytesSinceSnapshot;
        last = lastSnapshotBytes;
      } finally {
        writeLock.unlock();
      }
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
    long seq;
    List<Waiter> failed = null;
    writeLock.lock();
    try {
      if (failure != null || segment == null) {
        return;
      }
      try {
        rollLocked();
      } catch (IOException e) {
        failed = failLocked("rolling the log in " + dir, e);
      }
      seq = segmentSeq;
      bytesSinceSnapshot = HEADER_BYTES;
    } finally {
      writeLock.unlock();
    }
    if (failed != null) {
      failAll(failed);
      return;
    }
    Path file = snapshotFile(seq);
    Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
    try {
      long bytes = 0;
      try (FileChannel ch = io.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
          StandardOpenOption.TRUNCATE_EXISTING)) {
        ByteBuffer buf = ByteBuffer.allocate(READ_CHUNK);
        buf.put(RecordCodec.header(RecordCodec.KIND_SNAPSHOT, seq));
        long count = 0;
        Iterator<Map.Entry<String, Entry>> it = snapshotSource.get();
        while (it.hasNext()) {
          Map.Entry<String, Entry> me = it.next();
          ByteBuffer rec = RecordCodec.encode(me.getKey(), me.getValue());
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
      writeLock.lock();
      try {
        lastSnapshotBytes = bytes;
      } finally {
        writeLock.unlock();
      }
      snapshots.incrementAndGet();
      log.debug("node {}: snapshot {} written, {} bytes", nodeId, file, bytes);
    } catch (IOException e) {
      fail("writing the snapshot " + file, e);
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
        recoveredEntries, truncatedTailBytes, logBytes.get(), syncs.get(), failedSyncs.get(),
        snapshots.get());
  }

  @Override
  public void close() {
    stopThreads();
    List<Waiter> failed = List.of();
    writeLock.lock();
    try {
      if (failure == null && segment != null) {
        try {
          segment.force(false);
          syncs.incrementAndGet();
          synced = written;
        } catch (IOException e) {
          failed = failLocked("syncing " + segmentFile(segmentSeq) + " at close", e);
        }
      }
      closeQuietly(segment);
      segment = null;
    } finally {
      writeLock.unlock();
    }
    failAll(failed);
    completeUpTo(synced);
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

  /** Test hook: stops like a killed process, syncing nothing; waiting writes fail. */
  void crash() {
    stopThreads();
    List<Waiter> failed;
    writeLock.lock();
    try {
      failed = failLocked("the store (a simulated crash)", new IOException(CRASHED));
      closeQuietly(segment);
      segment = null;
    } finally {
      writeLock.unlock();
    }
    failAll(failed);
    releaseQuietly();
  }

  private void stopThreads() {
    running = false;
    writeLock.lock();
    try {
      work.signalAll();
    } finally {
      writeLock.unlock();
    }
    if (syncer != null) {
      try {
        syncer.join(10_000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    if (compactor != null) {
      compactor.shutdownNow();
      try {
        compactor.awaitTermination(10, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  private void releaseQuietly() {
    closeQuietly(segment);
    segment = null;
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
