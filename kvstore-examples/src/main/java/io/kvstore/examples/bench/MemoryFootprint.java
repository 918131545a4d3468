package io.kvstore.examples.bench;

import io.kvstore.core.KvStore;
import java.lang.management.ManagementFactory;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Measures heap bytes per entry of a filled store against the raw key and value bytes, and the same
 * for a {@link ConcurrentHashMap} holding the same data, in one JVM run.
 *
 * <p>Usage: {@code java -cp kvstore-benchmarks.jar io.kvstore.examples.bench.MemoryFootprint
 * [entries] [valueSize]} (defaults 1,000,000 and 100). Run with a fixed heap, e.g.
 * {@code -Xms4g -Xmx4g -XX:+UseParallelGC}, so the GC settles the same way each time.
 */
public final class MemoryFootprint {
  private MemoryFootprint() {}

  /**
   * Runs the measurement and prints one line per structure.
   *
   * @param args entries and value size, both optional
   */
  public static void main(String[] args) {
    int entries = args.length > 0 ? Integer.parseInt(args[0]) : 1_000_000;
    int valueSize = args.length > 1 ? Integer.parseInt(args[1]) : 100;
    long rawKeyBytes = 0;
    for (int i = 0; i < entries; i++) {
      rawKeyBytes += key(i).length();
    }
    double rawPerEntry = (double) rawKeyBytes / entries + valueSize;

    // The baseline first: a plain map leaves nothing reachable behind it once dropped, while a store's
    // maintenance thread may hold it for a moment after close().
    long before = usedAfterGc();
    Map<String, byte[]> chm = new ConcurrentHashMap<>();
    for (int i = 0; i < entries; i++) {
      chm.put(key(i), new byte[valueSize]);
    }
    long base = usedAfterGc() - before;
    if (chm.size() != entries) {
      throw new AssertionError("lost entries");
    }
    chm = null;

    before = usedAfterGc();
    KvStore store = KvStore.builder().nodeId("memory").build();
    for (int i = 0; i < entries; i++) {
      store.put(key(i), new byte[valueSize]);
    }
    long kv = usedAfterGc() - before;
    if (store.size() != entries) {
      throw new AssertionError("lost entries");
    }
    store.close();
    report("ConcurrentHashMap", base, entries, rawPerEntry);
    report("kvstore", kv, entries, rawPerEntry);
  }

  private static String key(int i) {
    return "user:" + Integer.toHexString(i * 0x9E3779B1) + ":" + i;
  }

  private static void report(String what, long bytes, int entries, double rawPerEntry) {
    double perEntry = (double) bytes / entries;
    System.out.printf("%-18s entries=%d bytes/entry=%.1f raw(key+value)=%.1f overhead/entry=%.1f%n",
        what, entries, perEntry, rawPerEntry, perEntry - rawPerEntry);
  }

  private static long usedAfterGc() {
    long used = Long.MAX_VALUE;
    for (int i = 0; i < 5; i++) {
      System.gc();
      used = Math.min(used,
          ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed());
    }
    return used;
  }
}
