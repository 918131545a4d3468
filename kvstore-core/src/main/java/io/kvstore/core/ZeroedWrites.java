package io.kvstore.core;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;

/**
 * A segment's writable region with zeros written ahead of the records: every level's segments go
 * through it. Under {@link Durability#SYNC} the region is {@link #positional positional writes}
 * ({@code pwrite}, synced by {@code fdatasync}); under INTERVAL and NONE it is the memory-mapped
 * file.
 *
 * <p><b>Why zeros ahead:</b> the segment is preallocated sparsely (the file reads as zeros past the
 * data), so the first write into each 4 KiB page lands in a hole and the file system allocates its
 * block then. Measured on this project's machine (ext4 on virtio, 2026-12-08, docs/BENCHMARKS.md §4
 * "Zeros ahead of the mapping"): copying 130-byte records into a fresh sparse mapping costs
 * 140–690 ns per record (the page fault on each hole, ~5–20 µs, shared by ~30 records); into pages
 * written with zeros beforehand by {@code pwrite} 16–40 ns, and those zeros cost ~1.5 µs a page
 * written 1 MiB at a time. That fault was the half microsecond an INTERVAL put cost over an
 * in-memory one. Under SYNC a sync after writing into holes also commits their allocation, each time
 * ({@code DurabilityBenchmark.syncPage}: a 4 KiB {@code pwrite} + {@code fdatasync} into a hole
 * 165 µs, into zeroed blocks 102 µs), so the zeros pay off there too.
 *
 * <p><b>How:</b> a write that would end past the zeroed part first extends it by at least a step
 * of zeros ({@link #ZERO_AHEAD_BYTES} under SYNC, {@link #MAPPED_STEP_BYTES} for a mapping; one
 * writer does it, under this object's lock; the others only check a volatile offset), and under
 * INTERVAL and NONE the sync thread calls {@link #keepAhead} so writers rarely have to. The zeros
 * past a segment's end are written to the disk with it (at most two steps) and cut off when the
 * segment is retired. Zeros are written only above the zeroed offset, and a write lands only below it
 * once it is published, so no record is ever overwritten by zeros. The file reads as zeros past the
 * data either way: the format and recovery are unchanged.
 */
final class ZeroedWrites implements FileIo.Mapping {
  /** SYNC's step: writers extend the zeros, and the sync after it commits their allocation once. */
  static final int ZERO_AHEAD_BYTES = 4 << 20;
  /** A mapping's step: the sync thread keeps one to two of them ahead (checking every 10 ms). */
  static final int MAPPED_STEP_BYTES = 1 << 20;
  private static final ByteBuffer ZEROS = ByteBuffer.allocateDirect(1 << 20).asReadOnlyBuffer();

  private final FileIo.Mapping target;
  private final int capacity;
  private final int step;
  /** Below this offset the file holds data or zeros (never a hole). */
  private volatile long zeroedTo;

  /**
   * @param target where records and zeros are written
   * @param capacity the segment's size (writes stay below it)
   * @param size where the file's hole starts (everything below it is written)
   * @param step the least a write extends the zeros by
   */
  ZeroedWrites(FileIo.Mapping target, int capacity, long size, int step) {
    this.target = target;
    this.capacity = capacity;
    this.step = step;
    this.zeroedTo = size;
  }

  /**
   * SYNC's region: each record written with {@code pwrite} at its offset, a force is
   * {@code fdatasync} of the whole file (what lies past the range is unacknowledged, or zeros).
   * Why not the mapping: a 4 KiB page synced by {@code msync} of a mapped file took 295–1,837 µs
   * over zeroed blocks, by {@code pwrite} + {@code fdatasync} 110–134 µs (BENCHMARKS.md §4); every
   * SYNC acknowledgement waits for a sync, so its cost sets the rate of group commit, and the
   * system call per record (a few µs, by each writer in parallel) is cheap beside it.
   */
  static FileIo.Mapping positional(FileChannel channel) {
    return new FileIo.Mapping() {
      @Override
      public void put(int offset, ByteBuffer src) {
        try {
          writeFully(channel, src.duplicate(), offset);
        } catch (IOException e) {
          throw new UncheckedIOException(e); // the storage fails and turns read-only
        }
      }

      @Override
      public void zero(int offset, int length) throws IOException {
        writeZeros(channel, offset, length);
      }

      @Override
      public void force(int offset, int length) throws IOException {
        channel.force(false);
      }

      @Override
      public void unmap() {
        // nothing is mapped
      }
    };
  }

  /** Writes {@code length} zeros at {@code offset} with positional writes, 1 MiB at a time. */
  static void writeZeros(FileChannel channel, long offset, int length) throws IOException {
    for (long pos = offset, to = offset + length; pos < to; ) {
      ByteBuffer z = ZEROS.duplicate();
      z.limit((int) Math.min(z.capacity(), to - pos));
      pos += writeFully(channel, z, pos);
    }
  }

  private static int writeFully(FileChannel channel, ByteBuffer b, long at) throws IOException {
    int n = b.remaining();
    for (long pos = at; b.hasRemaining(); ) {
      pos += channel.write(b, pos);
    }
    return n;
  }

  @Override
  public void put(int offset, ByteBuffer src) {
    long end = (long) offset + src.remaining();
    if (end > zeroedTo) {
      try {
        zeroUpTo(end);
      } catch (IOException e) {
        throw new UncheckedIOException(e); // the storage fails and turns read-only
      }
    }
    target.put(offset, src);
  }

  /**
   * Zeros ahead of {@code top} (the segment's next reservation) when less than one step is left,
   * so that writers find their pages zeroed; whether it wrote. For the background thread.
   */
  boolean keepAhead(long top) throws IOException {
    long z = zeroedTo;
    if (z >= capacity || z - top >= step) {
      return false;
    }
    zeroUpTo(Math.min(capacity, top + 2L * step));
    return true;
  }

  private synchronized void zeroUpTo(long end) throws IOException {
    long from = zeroedTo;
    if (end <= from) {
      return; // another writer extended it meanwhile
    }
    long to = Math.min(capacity, Math.max(end, from + step));
    target.zero((int) from, (int) (to - from));
    zeroedTo = to; // published after the zeros are written: later writes land on top of them
  }

  /** The offset below which the region holds data or zeros. */
  long zeroedTo() {
    return zeroedTo;
  }

  @Override
  public void zero(int offset, int length) throws IOException {
    target.zero(offset, length);
  }

  @Override
  public void force(int offset, int length) throws IOException {
    target.force(offset, length);
  }

  @Override
  public boolean release(long below) {
    return target.release(below);
  }

  @Override
  public void unmap() {
    target.unmap();
  }
}
