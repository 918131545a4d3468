package io.kvstore.examples.bench;

import io.kvstore.core.Durability;
import io.kvstore.core.KvStore;
import io.kvstore.core.KvStoreBuilder;
import io.kvstore.core.WriteOptions;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Comparator;
import java.util.SplittableRandom;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * What durability costs, in one run: the fsync floor of the disk under the data directory (a 4 KiB
 * append and {@code fdatasync}, in a loop), then a put overwriting an existing key (100-byte values,
 * 100,000 keys) in memory and at each {@link Durability}. Run the floor first, with {@code -t 1},
 * then the puts at {@code -t 1} and {@code -t 2}; see docs/BENCHMARKS.md for the commands and figures.
 * The data directory is under {@code java.io.tmpdir} ({@code -Djava.io.tmpdir=/path/on/the/disk}).
 *
 * <p>Also: {@link #putLatency} (the same put, sampled: SYNC ack p99 against the floor's p99),
 * {@link #putAsyncInFlight} (one thread keeping 256 async puts in flight), and, with
 * {@code -Dbench.diskUse=true}, a line per trial with the data directory's allocated size (as
 * {@code du} counts it: the segments are sparse) at its peak and at the end, against the live data.
 */
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"-Xms2g", "-Xmx2g"})
public class DurabilityBenchmark {

  /** A file to append to and sync. */
  @State(Scope.Thread)
  public static class Floor {
    Path dir;
    FileChannel channel;
    ByteBuffer block = ByteBuffer.allocateDirect(4096);
    long position;

    /**
     * Opens the file.
     *
     * @throws IOException if it cannot be created
     */
    @Setup(Level.Trial)
    public void open() throws IOException {
      dir = Files.createTempDirectory("kvstore-fsync-floor");
      channel = FileChannel.open(dir.resolve("floor"), StandardOpenOption.CREATE,
          StandardOpenOption.WRITE);
    }

    /**
     * Closes and deletes it.
     *
     * @throws IOException if it cannot be deleted
     */
    @TearDown(Level.Trial)
    public void close() throws IOException {
      channel.close();
      deleteTree(dir);
    }
  }

  /**
   * 4 KiB appended and synced: the latency floor of a SYNC acknowledgement.
   *
   * @param f the file
   * @return the position, so the work is not dead code
   * @throws IOException if the disk fails
   */
  @Benchmark
  @BenchmarkMode(Mode.SampleTime)
  @OutputTimeUnit(TimeUnit.MICROSECONDS)
  public long fsyncFloor(Floor f) throws IOException {
    f.block.clear();
    f.position += f.channel.write(f.block, f.position);
    f.channel.force(false);
    return f.position;
  }

  /**
   * A 512 MiB file, {@code written} with zeros and synced beforehand or left {@code sparse}, to sync
   * 4 KiB pages of, in order, with {@code pwrite} + {@code fdatasync} or through a mapping +
   * {@code msync}: why SYNC segments are written with {@code pwrite} into zeroed blocks
   * (io.kvstore.core.ZeroedWrites) while the other levels copy into a mapping (zeroed ahead too,
   * and mapped in windows: io.kvstore.core.MappedWindows).
   */
  @State(Scope.Thread)
  public static class Pages {
    /** {@code zeroed-pwrite}, {@code sparse-pwrite}, {@code sparse-mapped} or {@code zeroed-mapped}. */
    @Param({"zeroed-pwrite", "sparse-pwrite", "sparse-mapped", "zeroed-mapped"})
    public String kind;
    static final long SIZE = 512L << 20;
    Path dir;
    FileChannel channel;
    java.nio.MappedByteBuffer map;
    ByteBuffer block = ByteBuffer.allocateDirect(4096);
    long position;

    /**
     * Creates the file.
     *
     * @throws IOException if it cannot be written
     */
    @Setup(Level.Trial)
    public void open() throws IOException {
      dir = Files.createTempDirectory("kvstore-sync-pages");
      channel = FileChannel.open(dir.resolve("pages"), StandardOpenOption.CREATE,
          StandardOpenOption.READ, StandardOpenOption.WRITE);
      if (kind.startsWith("zeroed")) {
        ByteBuffer zeros = ByteBuffer.allocateDirect(1 << 20);
        for (long p = 0; p < SIZE; p += zeros.capacity()) {
          zeros.clear();
          channel.write(zeros, p);
        }
      } else {
        channel.write(ByteBuffer.allocate(1), SIZE - 1);
      }
      channel.force(true);
      if (kind.endsWith("mapped")) {
        map = channel.map(FileChannel.MapMode.READ_WRITE, 0, SIZE);
      }
    }

    /**
     * Deletes the file.
     *
     * @throws IOException if it cannot be deleted
     */
    @TearDown(Level.Trial)
    public void close() throws IOException {
      map = null;
      channel.close();
      deleteTree(dir);
    }
  }

  /**
   * The next 4 KiB page of the file written and synced, by {@link Pages#kind}.
   *
   * @param f the file
   * @return the position, so the work is not dead code
   * @throws IOException if the disk fails
   */
  @Benchmark
  @BenchmarkMode(Mode.SampleTime)
  @OutputTimeUnit(TimeUnit.MICROSECONDS)
  public long syncPage(Pages f) throws IOException {
    long limit = Pages.SIZE - 4096;
    if (f.position >= limit) {
      f.position = 0; // rewritten pages are no longer holes: keep runs short (see BENCHMARKS.md)
    }
    if (f.map != null) {
      int at = (int) f.position;
      for (int i = 0; i < 4096; i += 8) {
        f.map.putLong(at + i, f.position + i + 1);
      }
      f.map.force(at, 4096);
    } else {
      f.block.clear();
      f.block.putLong(0, f.position + 1);
      f.channel.write(f.block, f.position);
      f.channel.force(false);
    }
    f.position += 4096;
    return f.position;
  }

  /** A store filled with the keys, in memory or durable. */
  @State(Scope.Benchmark)
  public static class Store {
    /** MEMORY (no data directory), NONE, INTERVAL or SYNC. */
    @Param({"MEMORY", "NONE", "INTERVAL", "SYNC"})
    public String durability;
    /** Distinct keys. */
    @Param("100000")
    public int keys;

    String[] keyNames;
    byte[] value = new byte[100];
    Path dir;
    KvStore store;
    Thread diskSampler;
    volatile boolean sampling;
    volatile long peakDiskBytes;

    /**
     * Opens and fills the store.
     *
     * @throws IOException if the data directory cannot be created
     */
    @Setup(Level.Trial)
    public void setUp() throws IOException {
      KvStoreBuilder b = KvStore.builder().nodeId("bench");
      if (!durability.equals("MEMORY")) {
        dir = Files.createTempDirectory("kvstore-durability-bench");
        b.dataDir(dir).durability(Durability.valueOf(durability));
      }
      store = b.build();
      keyNames = new String[keys];
      SplittableRandom random = new SplittableRandom(42);
      for (int i = 0; i < keys; i++) {
        keyNames[i] = "user:" + Integer.toHexString(random.nextInt()) + ":" + i;
        store.put(keyNames[i], value, WriteOptions.defaults());
      }
      if (dir != null && Boolean.getBoolean("bench.diskUse")) {
        sampling = true;
        diskSampler = new Thread(() -> {
          while (sampling) {
            peakDiskBytes = Math.max(peakDiskBytes, allocatedBytes(dir));
            try {
              Thread.sleep(250);
            } catch (InterruptedException e) {
              return;
            }
          }
        }, "disk-sampler");
        diskSampler.setDaemon(true);
        diskSampler.start();
      }
    }

    /**
     * Closes the store and deletes its directory.
     *
     * @throws IOException if the directory cannot be deleted
     */
    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
      if (diskSampler != null) {
        sampling = false;
        diskSampler.interrupt();
        long live = 0;
        for (String k : keyNames) {
          live += k.length() + value.length;
        }
        System.out.printf("%ndisk use (%s, %d keys): peak %.1f MiB allocated, end %.1f MiB; live "
            + "keys+values %.1f MiB; peak/live %.2f%n", durability, keys, peakDiskBytes / 1048576.0,
            allocatedBytes(dir) / 1048576.0, live / 1048576.0, (double) peakDiskBytes / live);
      }
      store.close();
      if (dir != null) {
        deleteTree(dir);
      }
    }
  }

  /** Each thread walks its own random key sequence. */
  @State(Scope.Thread)
  public static class Cursor {
    private static final java.util.concurrent.atomic.AtomicLong SEEDS = new java.util.concurrent.atomic.AtomicLong(42);
    private final SplittableRandom random = new SplittableRandom(SEEDS.incrementAndGet());

    int next(int bound) {
      return random.nextInt(bound);
    }
  }

  /**
   * A blocking put of an existing key: returns after the durability step.
   *
   * @param s the store
   * @param c the key cursor
   * @return the version's timestamp
   */
  @Benchmark
  @BenchmarkMode(Mode.Throughput)
  @OutputTimeUnit(TimeUnit.SECONDS)
  public long put(Store s, Cursor c) {
    return s.store.put(s.keyNames[c.next(s.keys)], s.value, WriteOptions.defaults()).timestamp();
  }

  /**
   * A blocking put, its latency sampled (run with {@code -p durability=SYNC} and compare the p99 with
   * {@link #fsyncFloor}'s).
   *
   * @param s the store
   * @param c the key cursor
   * @return the version's timestamp
   */
  @Benchmark
  @BenchmarkMode(Mode.SampleTime)
  @OutputTimeUnit(TimeUnit.MICROSECONDS)
  public long putLatency(Store s, Cursor c) {
    return s.store.put(s.keyNames[c.next(s.keys)], s.value, WriteOptions.defaults()).timestamp();
  }

  /** A bound on the puts one benchmark thread has in flight. */
  @State(Scope.Thread)
  public static class InFlight {
    /** Async puts in flight per thread. */
    @Param("256")
    public int inFlight;
    Semaphore permits;

    /** Creates the permits. */
    @Setup(Level.Trial)
    public void setUp() {
      permits = new Semaphore(inFlight);
    }

    /**
     * Waits for the puts still in flight.
     *
     * @throws InterruptedException if interrupted
     */
    @TearDown(Level.Trial)
    public void drain() throws InterruptedException {
      permits.acquire(inFlight);
      permits.release(inFlight);
    }
  }

  /**
   * An async put, at most {@code inFlight} of them outstanding: one operation is one put started,
   * so in steady state the score is the rate at which puts complete.
   *
   * @param s the store
   * @param c the key cursor
   * @param f the in-flight bound
   * @throws InterruptedException if interrupted
   */
  @Benchmark
  @BenchmarkMode(Mode.Throughput)
  @OutputTimeUnit(TimeUnit.SECONDS)
  public void putAsyncInFlight(Store s, Cursor c, InFlight f) throws InterruptedException {
    f.permits.acquire();
    s.store.putAsync(s.keyNames[c.next(s.keys)], s.value, WriteOptions.defaults())
        .whenComplete((v, e) -> f.permits.release());
  }

  /** Blocks allocated to the files under {@code dir}, as {@code du} counts them (Linux). */
  static long allocatedBytes(Path dir) {
    try {
      Process p = new ProcessBuilder("du", "-sk", dir.toString()).redirectErrorStream(true).start();
      String out = new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
      p.waitFor();
      return Long.parseLong(out.trim().split("\\s+")[0]) * 1024;
    } catch (IOException | RuntimeException e) {
      return -1;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return -1;
    }
  }

  static void deleteTree(Path dir) throws IOException {
    try (Stream<Path> files = Files.walk(dir)) {
      for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
        Files.delete(p);
      }
    }
  }
}
