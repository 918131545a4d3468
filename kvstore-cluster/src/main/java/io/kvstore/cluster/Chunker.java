package io.kvstore.cluster;

import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.ReplicaStore;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Predicate;
import java.util.function.ToIntFunction;

/** Cuts lists into frames of at most {@code maxBatchBytes} (one item more if a single item is larger). */
final class Chunker {
  private Chunker() {}

  /** Receives one chunk. */
  @FunctionalInterface
  interface Sink<T> {
    void accept(List<T> chunk, int bytes, boolean last);
  }

  /** The current mutations of a run of keys: {@code next} is the first key not covered. */
  record Mutations(List<Mutation> mutations, int bytes, int next) {}

  /**
   * Hands every item to the sink in chunks of at most {@code maxBytes}; calls it at least once (with
   * an empty last chunk for an empty list).
   */
  static <T> void chunk(List<T> items, ToIntFunction<T> size, int maxBytes, Sink<T> sink) {
    List<T> chunk = new ArrayList<>();
    int bytes = 0;
    for (T item : items) {
      int s = size.applyAsInt(item);
      if (!chunk.isEmpty() && bytes + s > maxBytes) {
        sink.accept(chunk, bytes, false);
        chunk = new ArrayList<>();
        bytes = 0;
      }
      chunk.add(item);
      bytes += s;
    }
    sink.accept(chunk, bytes, true);
  }

  /**
   * Reads the current mutations of the keys from {@code from} on, as many as fit in
   * {@code maxBatchBytes} (at least one); keys the store no longer holds are skipped but covered.
   */
  static Mutations mutations(ReplicationEngine.Context ctx, List<String> keys, int from) {
    return mutations(ctx, keys, from, null);
  }

  /**
   * As {@link #mutations(ReplicationEngine.Context, List, int)}, skipping (but covering) the keys
   * {@code allowed} refuses; null allows every key.
   */
  static Mutations mutations(ReplicationEngine.Context ctx, List<String> keys, int from,
      Predicate<String> allowed) {
    ReplicaStore store = ctx.store();
    int maxBytes = ctx.settings().maxBatchBytes();
    boolean dropTombstones = ctx.bug() == ReplicationEngine.Bug.AE_DROPS_TOMBSTONES;
    List<Mutation> out = new ArrayList<>();
    int bytes = 0;
    int i = from;
    for (; i < keys.size(); i++) {
      if (allowed != null && !allowed.test(keys.get(i))) {
        continue;
      }
      List<Mutation> ms = store.mutations(List.of(keys.get(i)));
      if (!ms.isEmpty() && !(dropTombstones && ms.get(0).isDelete())) {
        int size = Frames.mutationSize(ms.get(0));
        if (!out.isEmpty() && bytes + size > maxBytes) {
          break;
        }
        out.add(ms.get(0));
        bytes += size;
      }
    }
    return new Mutations(out, bytes, i);
  }
}
