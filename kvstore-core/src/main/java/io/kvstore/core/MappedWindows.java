package io.kvstore.core;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.util.concurrent.atomic.AtomicReferenceArray;

/**
 * The mapping of an INTERVAL or NONE segment on the real file system: the file mapped in windows of
 * {@link #WINDOW_BYTES}, each mapped when a write first needs it and unmapped by {@link #release}
 * once every write into it is done, before the sync thread forces it.
 *
 * <p><b>Why windows:</b> writing a dirty page of a mapped file back to the disk (a force, or the
 * kernel's writeback) write-protects it in every mapping first, and in a process whose threads run on
 * other CPUs that is a TLB shoot-down: one inter-processor interrupt per page, which in a virtual
 * machine is a VM exit on both sides. Measured here (ext4 on virtio, 2026-12-08, docs/BENCHMARKS.md
 * §4 "Windows"): with one mapping per segment the sync thread spent its time sending those
 * interrupts ({@code smp_call_function_many_cond}, {@code native_write_msr} in {@code perf}) and a
 * put under NONE ran at ~760k/s; with no background force at all, ~1.12M/s. Pages no longer mapped
 * anywhere are written back without any of that. So a window is unmapped as soon as the copy
 * watermark passes its end, and forces then find only the current window's pages still mapped.
 *
 * <p><b>Safety:</b> {@link #release} must only be given an offset below which every write has
 * returned (the segment's copy watermark): nothing touches an unmapped buffer, which would crash the
 * JVM. A write below a released offset (never done by {@link LogStorage}) maps its window again.
 * A force is {@code fdatasync} of the file: the released windows are no longer mapped to be
 * {@code msync}ed, and the data past the range is unacknowledged or zeros.
 */
final class MappedWindows implements FileIo.Mapping {
  static final int WINDOW_BYTES = 4 << 20;

  private final FileChannel channel;
  private final int size;
  private final AtomicReferenceArray<MappedByteBuffer> windows;
  /** Windows below this index were released (guarded by this). */
  private int released;

  MappedWindows(FileChannel channel, int size) throws IOException {
    this.channel = channel;
    this.size = size;
    this.windows = new AtomicReferenceArray<>((size + WINDOW_BYTES - 1) / WINDOW_BYTES);
    if (channel.size() < size) {
      channel.write(ByteBuffer.allocate(1), size - 1L); // the full size, sparsely, as a map would
    }
  }

  @Override
  public void put(int offset, ByteBuffer src) {
    int pos = src.position();
    int n = src.remaining();
    long at = offset;
    while (n > 0) {
      int w = (int) (at / WINDOW_BYTES);
      int in = (int) (at - (long) w * WINDOW_BYTES);
      int len = Math.min(n, WINDOW_BYTES - in);
      window(w).put(in, src, pos, len);
      at += len;
      pos += len;
      n -= len;
    }
  }

  private MappedByteBuffer window(int w) {
    MappedByteBuffer b = windows.get(w);
    return b != null ? b : map(w);
  }

  private synchronized MappedByteBuffer map(int w) {
    MappedByteBuffer b = windows.get(w);
    if (b == null) {
      long from = (long) w * WINDOW_BYTES;
      try {
        b = channel.map(FileChannel.MapMode.READ_WRITE, from, Math.min(WINDOW_BYTES, size - from));
      } catch (IOException e) {
        throw new UncheckedIOException(e); // the storage fails and turns read-only
      }
      windows.set(w, b);
    }
    return b;
  }

  /**
   * Unmaps the windows that end at or below {@code below}, an offset below which every write has
   * returned; whether it unmapped any.
   */
  @Override
  public synchronized boolean release(long below) {
    int upTo = (int) Math.min(windows.length(), below / WINDOW_BYTES);
    boolean any = false;
    for (int w = released; w < upTo; w++) {
      MappedByteBuffer b = windows.getAndSet(w, null);
      if (b != null) {
        FileIo.Unmapper.unmap(b);
        any = true;
      }
    }
    released = Math.max(released, upTo);
    return any;
  }

  @Override
  public void zero(int offset, int length) throws IOException {
    ZeroedWrites.writeZeros(channel, offset, length);
  }

  @Override
  public void force(int offset, int length) throws IOException {
    channel.force(false);
  }

  @Override
  public synchronized void unmap() {
    for (int w = 0; w < windows.length(); w++) {
      MappedByteBuffer b = windows.getAndSet(w, null);
      if (b != null) {
        FileIo.Unmapper.unmap(b);
      }
    }
  }
}
