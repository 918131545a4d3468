package io.kvstore.core;

import java.util.Arrays;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Applies recovered records on a second thread, in the order they were read, while the recovering
 * thread reads, checks and decodes the next ones.
 *
 * <p><b>Why:</b> a replay is two halves of about equal cost: reading, CRC-checking and decoding the
 * records (allocating each key, value and entry), and merging them into the map (hashing, the map's
 * compute, the digest and the counters). Each half is single-threaded by nature (the log's order
 * matters for evictions, see {@link LogStorage}), but they are independent of each other, so two
 * threads overlap them. The order is kept because there is exactly one applying thread and the queue
 * is FIFO: the target sees the same calls, in the same order, as it would from the reader.
 *
 * <p>Records travel in batches ({@link #BATCH} at a time) through a small bounded queue, so the
 * reader is at most a few batches ahead (bounded memory) and the hand-over costs one queue operation
 * per batch. A failure of the target on the applying thread is rethrown to the reader at its next
 * hand-over or at {@link #drain}. {@link #reset} and {@link #drain} wait until everything handed over
 * is applied; after {@link #drain} returns, everything the target did is visible to the caller (the
 * latch orders it).
 */
final class RecoveryPipeline implements LogStorage.Sink, AutoCloseable {
  static final int BATCH = 4096;
  private static final Object[] STOP = new Object[0];

  private final LogStorage.Sink target;
  private final BlockingQueue<Object[]> queue = new ArrayBlockingQueue<>(8);
  private final Thread applier;
  private volatile Throwable failure;
  /** key, entry-or-eviction-marker, timestamp, node id: four slots per record. */
  private Object[] batch = new Object[BATCH * 4];
  private int size;

  /** An eviction in a batch: the entry slot holds this marker, the next two slots the version. */
  private static final Object EVICTION = new Object();

  /** A barrier in the queue: the applier counts it down when everything before it is applied. */
  private static final class Barrier {
    final CountDownLatch applied = new CountDownLatch(1);
  }

  RecoveryPipeline(LogStorage.Sink target, String nodeId) {
    this.target = target;
    this.applier = new Thread(this::applyLoop, "kvstore-recovery-" + nodeId);
    applier.setDaemon(true);
    applier.start();
  }

  @Override
  public void accept(String key, Entry entry) {
    add(key, entry, null, null);
  }

  @Override
  public void evict(String key, long timestamp, String nodeId) {
    add(key, EVICTION, timestamp, nodeId);
  }

  @Override
  public void reset() {
    drain();
    target.reset(); // the applier is idle: nothing else touches the target now
  }

  private void add(String key, Object entry, Long timestamp, String nodeId) {
    int i = size * 4;
    batch[i] = key;
    batch[i + 1] = entry;
    batch[i + 2] = timestamp;
    batch[i + 3] = nodeId;
    if (++size == BATCH) {
      handOver();
    }
  }

  private void handOver() {
    if (size > 0) {
      Object[] full = batch;
      if (size < BATCH) {
        full = Arrays.copyOf(batch, size * 4);
      }
      put(full);
      batch = new Object[BATCH * 4];
      size = 0;
    }
  }

  /**
   * Waits until every record handed over so far is applied; rethrows a failure of the target.
   *
   * @throws RuntimeException what the target threw, or an {@link IllegalStateException} around
   *     an error
   */
  void drain() {
    handOver();
    Barrier b = new Barrier();
    put(new Object[] {b});
    try {
      while (!b.applied.await(10, TimeUnit.MILLISECONDS)) {
        rethrow(); // the applier died before it reached the barrier
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new StorageException("interrupted while recovering", e);
    }
    rethrow();
  }

  /**
   * Stops the applying thread once it has applied what is queued (a recovery that failed half-way
   * leaves a store nobody uses; the thread still ends on its own).
   */
  @Override
  public void close() {
    if (failure == null) {
      try {
        put(STOP);
      } catch (RuntimeException e) {
        // it failed meanwhile and ended by itself
      }
    }
  }

  private void put(Object[] item) {
    rethrow();
    try {
      while (!queue.offer(item, 10, TimeUnit.MILLISECONDS)) {
        rethrow(); // the applier died: its queue no longer drains
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new StorageException("interrupted while recovering", e);
    }
  }

  private void rethrow() {
    Throwable f = failure;
    if (f instanceof RuntimeException r) {
      throw r;
    }
    if (f != null) {
      throw new IllegalStateException("applying recovered records failed: " + f, f);
    }
  }

  private void applyLoop() {
    try {
      while (true) {
        Object[] items = queue.take();
        if (items == STOP) {
          return;
        }
        if (items.length == 1 && items[0] instanceof Barrier b) {
          b.applied.countDown();
          continue;
        }
        for (int i = 0; i < items.length; i += 4) {
          String key = (String) items[i];
          Object entry = items[i + 1];
          if (entry == EVICTION) {
            target.evict(key, (Long) items[i + 2], (String) items[i + 3]);
          } else {
            target.accept(key, (Entry) entry);
          }
        }
      }
    } catch (Throwable t) { // the reader rethrows it at its next hand-over or drain
      failure = t;
      queue.clear();
    }
  }
}
