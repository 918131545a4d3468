package io.kvstore.core;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;

/**
 * The segment "mapping" of {@link Durability#SYNC}: each record is written with {@code pwrite} at its
 * offset, into blocks of the file already written with zeros, and a force is {@code fdatasync}.
 *
 * <p><b>Why not the memory-mapped segment the other levels use:</b> measured on this project's
 * machine (ext4 on virtio, 2026-12-07, docs/BENCHMARKS.md §4, {@code DurabilityBenchmark.syncPage}),
 * a 4 KiB page synced by {@code msync} of a sparse mapped file takes 320 µs on average, by
 * {@code pwrite} + {@code fdatasync} into a hole 165 µs, into blocks written before 102 µs (an
 * append + {@code fdatasync}, the floor, ~200–260 µs): writing into a hole
 * allocates a block the journal commits at the next sync, and pages dirtied through a mapping must be
 * write-protected and cleaned by every sync. Under SYNC every acknowledgement waits for a sync, so the
 * sync's cost sets the batch rate of group commit, and the system call per record (a few µs, done by
 * each writer in parallel with the others) is cheap beside it. INTERVAL and NONE keep the mapping:
 * there nothing waits for a sync and the copy without a system call is what a write costs. Either
 * way the record is in the page cache when its append returns, so a killed process loses none.
 *
 * <p><b>Zeros ahead:</b> a write that would end past the zeroed part of the file first extends it by
 * {@link #ZERO_AHEAD_BYTES} of zeros (one writer does it, under this object's lock; the others only
 * check a volatile offset). So the sync after that commits the blocks' allocation once, and the syncs
 * after it only overwrite. Zeros are written only above the zeroed offset, and a write lands only
 * below it once it is published, so no record is ever overwritten by zeros. The file grows in steps
 * and reads as zeros past the data, like the sparse segment: recovery is unchanged.
 */
final class ZeroedWrites implements FileIo.Mapping {
  static final int ZERO_AHEAD_BYTES = 4 << 20;
  private static final ByteBuffer ZEROS = ByteBuffer.allocateDirect(1 << 20).asReadOnlyBuffer();

  private final FileChannel channel;
  private final int capacity;
  /** Below this offset the file holds data or zeros (never a hole). */
  private volatile long zeroedTo;

  /**
   * @param channel the segment's file, open for writing, {@code size} bytes long
   * @param capacity the segment's size (writes stay below it)
   * @param size the file's current size (everything below it is written)
   */
  ZeroedWrites(FileChannel channel, int capacity, long size) {
    this.channel = channel;
    this.capacity = capacity;
    this.zeroedTo = size;
  }

  @Override
  public void put(int offset, ByteBuffer src) {
    long end = (long) offset + src.remaining();
    try {
      if (end > zeroedTo) {
        zeroUpTo(end);
      }
      ByteBuffer b = src.duplicate();
      long pos = offset;
      while (b.hasRemaining()) {
        pos += channel.write(b, pos);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e); // the storage fails and turns read-only
    }
  }

  private synchronized void zeroUpTo(long end) throws IOException {
    long from = zeroedTo;
    if (end <= from) {
      return; // another writer extended it meanwhile
    }
    long to = Math.min(capacity, Math.max(end, from + ZERO_AHEAD_BYTES));
    for (long pos = from; pos < to; ) {
      ByteBuffer z = ZEROS.duplicate();
      z.limit((int) Math.min(z.capacity(), to - pos));
      pos += channel.write(z, pos);
    }
    zeroedTo = to; // published after the zeros are written: later writes land on top of them
  }

  /** Syncs the file (the whole file: what lies past the range is unacknowledged, or zeros). */
  @Override
  public void force(int offset, int length) throws IOException {
    channel.force(false);
  }

  @Override
  public void unmap() {
    // nothing is mapped
  }
}
