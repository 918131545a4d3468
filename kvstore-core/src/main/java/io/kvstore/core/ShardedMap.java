package io.kvstore.core;

import java.util.Iterator;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.BiConsumer;
import java.util.function.BiFunction;

/**
 * The store's entries: one {@link ConcurrentHashMap} per snapshot shard ({@link LogStorage#shardOf}),
 * so that a compaction step, which snapshots one shard, walks that shard's entries only. Walking the
 * whole map for each of the {@link LogStorage#SHARDS} steps of a round made compaction eight times
 * the work of a whole-store snapshot: at 1M keys under full-speed writers a step took 400–900 ms,
 * the steps fell behind the log and it grew to twice the snapshots (docs/BENCHMARKS.md §4). Every
 * operation is the one of the key's map; the whole-map ones (size, iteration, clear) go over all of
 * them, none of them atomically (as with one map, whose iteration is weakly consistent too).
 */
final class ShardedMap {
  private final ConcurrentHashMap<String, Entry>[] shards;

  @SuppressWarnings({"unchecked", "rawtypes"})
  ShardedMap(int expectedEntries) {
    shards = new ConcurrentHashMap[LogStorage.SHARDS];
    int each = Math.max(16, expectedEntries / LogStorage.SHARDS);
    for (int i = 0; i < shards.length; i++) {
      shards[i] = new ConcurrentHashMap<>(each);
    }
  }

  private ConcurrentHashMap<String, Entry> of(String key) {
    return shards[LogStorage.shardOf(key)];
  }

  Entry get(String key) {
    return of(key).get(key);
  }

  Entry putIfAbsent(String key, Entry e) {
    return of(key).putIfAbsent(key, e);
  }

  boolean replace(String key, Entry expected, Entry next) {
    return of(key).replace(key, expected, next);
  }

  Entry compute(String key, BiFunction<? super String, ? super Entry, ? extends Entry> f) {
    return of(key).compute(key, f);
  }

  boolean remove(String key, Entry expected) {
    return of(key).remove(key, expected);
  }

  int size() {
    long n = 0;
    for (ConcurrentHashMap<String, Entry> m : shards) {
      n += m.size();
    }
    return (int) Math.min(Integer.MAX_VALUE, n);
  }

  void clear() {
    for (ConcurrentHashMap<String, Entry> m : shards) {
      m.clear();
    }
  }

  void forEach(BiConsumer<String, Entry> action) {
    for (ConcurrentHashMap<String, Entry> m : shards) {
      m.forEach(action);
    }
  }

  /** One shard's entries (weakly consistent, as a map's iterator). */
  Iterator<Map.Entry<String, Entry>> shard(int shard) {
    return shards[shard].entrySet().iterator();
  }

  /** Every entry, shard after shard (weakly consistent). */
  Iterable<Map.Entry<String, Entry>> entrySet() {
    return () -> new Iterator<>() {
      private int next = 1;
      private Iterator<Map.Entry<String, Entry>> it = shard(0);

      @Override
      public boolean hasNext() {
        while (!it.hasNext() && next < shards.length) {
          it = shard(next++);
        }
        return it.hasNext();
      }

      @Override
      public Map.Entry<String, Entry> next() {
        if (!hasNext()) {
          throw new NoSuchElementException();
        }
        return it.next();
      }
    };
  }
}
