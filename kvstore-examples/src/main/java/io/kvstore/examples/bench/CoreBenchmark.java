package io.kvstore.examples.bench;

import io.kvstore.core.KvStore;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
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
 * Single-node kvstore against {@link ConcurrentHashMap} with the same keys, values and threads, in the
 * same run: get (hit), put (overwrite of an existing key) and delete-and-reinsert (a delete followed by
 * a put of the same key, so the key space stays full for both). Run with {@code -t 1} and {@code -t 2};
 * see docs/BENCHMARKS.md for the command and the figures.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"-Xms2g", "-Xmx2g"})
public class CoreBenchmark {

  /** The store and the baseline map, both filled with the same keys and values. */
  @State(Scope.Benchmark)
  public static class Maps {
    /** Distinct keys. */
    @Param("100000")
    public int keys;
    /** Bytes per value. */
    @Param("100")
    public int valueSize;

    String[] keyNames;
    byte[][] values;
    KvStore store;
    ConcurrentHashMap<String, byte[]> chm;

    /** Fills both maps. */
    @Setup(Level.Trial)
    public void setUp() {
      SplittableRandom random = new SplittableRandom(42);
      keyNames = new String[keys];
      values = new byte[keys][];
      for (int i = 0; i < keys; i++) {
        keyNames[i] = "user:" + Integer.toHexString(random.nextInt()) + ":" + i;
        values[i] = new byte[valueSize];
        for (int j = 0; j < valueSize; j++) {
          values[i][j] = (byte) random.nextInt(256);
        }
      }
      store = KvStore.builder().nodeId("bench").build();
      chm = new ConcurrentHashMap<>();
      for (int i = 0; i < keys; i++) {
        store.put(keyNames[i], values[i]);
        chm.put(keyNames[i], values[i].clone());
      }
    }

    /** Closes the store. */
    @TearDown(Level.Trial)
    public void tearDown() {
      store.close();
    }
  }

  /** Each thread walks its own random key sequence. */
  @State(Scope.Thread)
  public static class Cursor {
    private SplittableRandom random;

    /** Seeds the sequence per thread. */
    @Setup(Level.Trial)
    public void setUp() {
      random = new SplittableRandom(Thread.currentThread().getId() * 0x9E3779B97F4A7C15L);
    }

    int next(int bound) {
      return random.nextInt(bound);
    }
  }

  /**
   * kvstore get.
   *
   * @param m maps
   * @param c cursor
   * @return the value, so it is not optimised away
   */
  @Benchmark
  public Object getKvstore(Maps m, Cursor c) {
    return m.store.get(m.keyNames[c.next(m.keys)]).orElse(null);
  }

  /**
   * ConcurrentHashMap get, returning a copy as kvstore does.
   *
   * @param m maps
   * @param c cursor
   * @return the value copy
   */
  @Benchmark
  public Object getChm(Maps m, Cursor c) {
    byte[] v = m.chm.get(m.keyNames[c.next(m.keys)]);
    return v == null ? null : v.clone();
  }

  /**
   * kvstore put (overwrite).
   *
   * @param m maps
   * @param c cursor
   * @return the version
   */
  @Benchmark
  public Object putKvstore(Maps m, Cursor c) {
    int i = c.next(m.keys);
    return m.store.put(m.keyNames[i], m.values[i]);
  }

  /**
   * ConcurrentHashMap put (overwrite) of a copy, as kvstore copies.
   *
   * @param m maps
   * @param c cursor
   * @return the previous value
   */
  @Benchmark
  public Object putChm(Maps m, Cursor c) {
    int i = c.next(m.keys);
    return m.chm.put(m.keyNames[i], m.values[i].clone());
  }

  /**
   * kvstore delete then put of the same key.
   *
   * @param m maps
   * @param c cursor
   * @return the put's version
   */
  @Benchmark
  public Object deleteReinsertKvstore(Maps m, Cursor c) {
    int i = c.next(m.keys);
    m.store.delete(m.keyNames[i]);
    return m.store.put(m.keyNames[i], m.values[i]);
  }

  /**
   * ConcurrentHashMap remove then put of the same key.
   *
   * @param m maps
   * @param c cursor
   * @return the previous value
   */
  @Benchmark
  public Object deleteReinsertChm(Maps m, Cursor c) {
    int i = c.next(m.keys);
    m.chm.remove(m.keyNames[i]);
    return m.chm.put(m.keyNames[i], m.values[i].clone());
  }
}
