package io.kvstore.core;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Zeros ahead of the records, over both of a segment's regions (SYNC's positional writes and the
 * windowed mapping of the other levels): writers racing past the zeroed part of the file, so that
 * some extend it while others write their records around the boundary, with or without a background
 * thread zeroing ahead and unmapping the windows behind the writers at the same time, never have a
 * record overwritten by the zeros or lost with a window, and the file reads as zeros after the last
 * record.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ZeroedWritesTest {

  @ParameterizedTest(name = "{0}, background zeroing {1}")
  @CsvSource({"positional, false", "mapped, false", "positional, true", "mapped, true"})
  void concurrentWritesAcrossSeveralZeroSteps_allSurvive_andTheRestIsZeros(String region,
      boolean background, @TempDir Path tmp) throws Exception {
    int record = 1000; // not a divisor of the step: records straddle every boundary
    int capacity = 5 * ZeroedWrites.ZERO_AHEAD_BYTES;
    int count = (capacity - 2 * ZeroedWrites.ZERO_AHEAD_BYTES) / record; // the rest stays zeros
    try (FileChannel ch = FileChannel.open(tmp.resolve("seg"), StandardOpenOption.CREATE_NEW,
        StandardOpenOption.READ, StandardOpenOption.WRITE)) {
      FileIo.Mapping target = region.equals("positional") ? ZeroedWrites.positional(ch)
          : FileIo.DEFAULT.map(ch, tmp.resolve("seg"), capacity);
      ZeroedWrites w = new ZeroedWrites(target, capacity, 0, ZeroedWrites.ZERO_AHEAD_BYTES);
      AtomicBoolean writing = new AtomicBoolean(true);
      AtomicLong next = new AtomicLong();
      AtomicLong zeroSteps = new AtomicLong();
      AtomicLong releases = new AtomicLong();
      int writerCount = 4;
      // Each writer's record in progress (a lower bound, published before it takes the index);
      // below the least of them and of the next index every write has returned: the watermark.
      AtomicLongArray inProgress = new AtomicLongArray(writerCount);
      for (int t = 0; t < writerCount; t++) {
        inProgress.set(t, Long.MAX_VALUE);
      }
      AtomicReference<Throwable> zeroerFailure = new AtomicReference<>();
      Thread zeroer = new Thread(() -> {
        try {
          for (boolean last = false; !last; ) {
            last = !writing.get(); // one pass more once the writers are done: the final watermark
            long done = next.get();
            for (int t = 0; t < writerCount; t++) {
              done = Math.min(done, inProgress.get(t));
            }
            if (w.keepAhead(Math.min(next.get(), count) * record)) {
              zeroSteps.incrementAndGet();
            }
            if (w.release(Math.min(done, count) * record)) {
              releases.incrementAndGet();
            }
            Thread.onSpinWait();
          }
        } catch (java.io.IOException | RuntimeException e) {
          zeroerFailure.set(e);
        }
      });
      if (background) {
        zeroer.start();
      }
      List<Thread> writers = new ArrayList<>();
      for (int t = 0; t < writerCount; t++) {
        int me = t;
        Thread th = new Thread(() -> {
          while (true) {
            inProgress.set(me, next.get());
            long i = next.getAndIncrement();
            if (i >= count) {
              inProgress.set(me, Long.MAX_VALUE);
              return;
            }
            ByteBuffer b = ByteBuffer.allocate(record);
            while (b.hasRemaining()) {
              b.put((byte) (i % 251 + 1)); // never 0
            }
            w.put((int) (i * record), b.flip());
          }
        });
        writers.add(th);
        th.start();
      }
      for (Thread th : writers) {
        th.join();
      }
      writing.set(false);
      if (background) {
        zeroer.join();
        assertThat(zeroerFailure.get()).as("the background thread's failure").isNull();
        assertThat(zeroSteps.get()).as("steps zeroed by the background thread").isPositive();
        if (region.equals("mapped")) {
          assertThat(releases.get()).as("windows unmapped behind the writers, or after them")
              .isPositive();
        }
      }
      w.force(0, count * record);
      w.unmap();
      ByteBuffer all = ByteBuffer.allocate((int) ch.size());
      while (all.hasRemaining() && ch.read(all, all.position()) > 0) {
        // read the whole file
      }
      byte[] a = all.array();
      for (int i = 0; i < count; i++) {
        for (int j = 0; j < record; j++) {
          assertThat(a[i * record + j]).as("byte %d of record %d", j, i)
              .isEqualTo((byte) (i % 251 + 1));
        }
      }
      for (int p = count * record; p < a.length; p++) {
        assertThat(a[p]).as("byte %d past the records", p).isZero();
      }
      assertThat(w.zeroedTo()).as("zeroed ahead past the last record")
          .isGreaterThan((long) count * record).isLessThanOrEqualTo(capacity);
    }
  }
}
