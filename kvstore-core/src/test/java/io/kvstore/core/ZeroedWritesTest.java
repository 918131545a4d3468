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
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * SYNC's positional writes: writers racing past the zeroed part of the file, so that some extend it
 * while others write their records around the boundary, never have a record overwritten by the
 * zeros, and the file reads as zeros after the last record.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ZeroedWritesTest {

  @Test
  void concurrentWritesAcrossSeveralZeroSteps_allSurvive_andTheRestIsZeros(@TempDir Path tmp)
      throws Exception {
    int record = 1000; // not a divisor of the step: records straddle every boundary
    int capacity = 5 * ZeroedWrites.ZERO_AHEAD_BYTES;
    int count = (capacity - ZeroedWrites.ZERO_AHEAD_BYTES) / record; // the last step stays zeros
    try (FileChannel ch = FileChannel.open(tmp.resolve("seg"), StandardOpenOption.CREATE_NEW,
        StandardOpenOption.READ, StandardOpenOption.WRITE)) {
      ZeroedWrites w = new ZeroedWrites(ch, capacity, 0);
      AtomicLong next = new AtomicLong();
      List<Thread> writers = new ArrayList<>();
      for (int t = 0; t < 4; t++) {
        Thread th = new Thread(() -> {
          for (long i; (i = next.getAndIncrement()) < count; ) {
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
      w.force(0, count * record);
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
      assertThat(a.length).as("zeroed ahead past the last record")
          .isGreaterThan(count * record);
    }
  }
}
