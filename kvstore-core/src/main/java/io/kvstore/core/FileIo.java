package io.kvstore.core;

import java.io.IOException;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.nio.ByteBuffer;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Locale;

/**
 * The file operations of {@link LogStorage}, so tests can put a fault-injecting file system under it
 * (one that drops, tears or reorders unsynced writes at a simulated crash, drops unsynced pages of a
 * mapped file at a simulated power loss, or fails a sync).
 */
interface FileIo {
  /** Opens a file channel. */
  FileChannel open(Path file, OpenOption... options) throws IOException;

  /**
   * Maps the first {@code size} bytes of a file opened by {@link #open} for reading and writing,
   * growing the file to that size (the new bytes read as zero).
   */
  Mapping map(FileChannel channel, Path file, int size) throws IOException;

  /** Makes the directory's entries (created, renamed, deleted files) durable. */
  void syncDirectory(Path dir) throws IOException;

  /** Renames atomically, replacing the target. */
  void move(Path from, Path to) throws IOException;

  /** Deletes the file if it exists. */
  void delete(Path file) throws IOException;

  /**
   * A file region mapped into memory. Writes land in the page cache (a killed process loses none of
   * them) and reach the disk at {@link #force} or whenever the OS writes the pages back.
   * {@link #put} is safe from many threads on disjoint ranges; nothing may touch the region after
   * {@link #unmap}.
   */
  interface Mapping {
    /** Copies {@code src}'s remaining bytes to {@code offset}; {@code src} is left unchanged. */
    void put(int offset, ByteBuffer src);

    /**
     * Writes zeros over {@code [offset, offset + length)}, a part of the file nothing was written to
     * yet (a hole, read as zeros): the content stays the same, but the blocks are allocated now, so
     * the first write there does not allocate them in a page fault ({@link ZeroedWrites}).
     */
    void zero(int offset, int length) throws IOException;

    /** Writes the pages of {@code [offset, offset + length)} to the disk and waits for it. */
    void force(int offset, int length) throws IOException;

    /**
     * Tells that every write below {@code below} has returned and none will come there again, so
     * that part may be unmapped ({@link MappedWindows}); whether anything was. By default nothing.
     */
    default boolean release(long below) {
      return false;
    }

    /** Releases the mapping now (not at garbage collection), so the file can be deleted. */
    void unmap();
  }

  /** The real file system. */
  FileIo DEFAULT = new FileIo() {
    private final boolean windows = System.getProperty("os.name", "").toLowerCase(Locale.ROOT)
        .startsWith("windows");

    @Override
    public FileChannel open(Path file, OpenOption... options) throws IOException {
      return FileChannel.open(file, options);
    }

    @Override
    public Mapping map(FileChannel channel, Path file, int size) throws IOException {
      return new MappedWindows(channel, size);
    }

    @Override
    public void syncDirectory(Path dir) throws IOException {
      if (windows) {
        return; // directories cannot be opened there; NTFS journals its metadata
      }
      try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
        ch.force(true);
      }
    }

    @Override
    public void move(Path from, Path to) throws IOException {
      Files.move(from, to, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }

    @Override
    public void delete(Path file) throws IOException {
      Files.deleteIfExists(file);
    }
  };

  /**
   * Unmaps a buffer at once through {@code sun.misc.Unsafe.invokeCleaner} (found by reflection, so
   * nothing depends on it at compile time). Without it a mapping lives until the buffer is garbage
   * collected: memory stays mapped and, on Windows, the file cannot be deleted or renamed meanwhile.
   * If the method is not there, the buffer is left to the garbage collector.
   */
  final class Unmapper {
    private static final Object UNSAFE;
    private static final Method INVOKE_CLEANER;

    static {
      Object unsafe = null;
      Method invoke = null;
      try {
        Class<?> c = Class.forName("sun.misc.Unsafe");
        Field f = c.getDeclaredField("theUnsafe");
        f.setAccessible(true);
        unsafe = f.get(null);
        invoke = c.getMethod("invokeCleaner", ByteBuffer.class);
      } catch (ReflectiveOperationException | RuntimeException e) {
        unsafe = null;
        invoke = null;
      }
      UNSAFE = unsafe;
      INVOKE_CLEANER = invoke;
    }

    private Unmapper() {}

    /** Whether buffers are unmapped at once (else at garbage collection). */
    static boolean available() {
      return INVOKE_CLEANER != null;
    }

    static void unmap(MappedByteBuffer b) {
      if (INVOKE_CLEANER == null) {
        return;
      }
      try {
        INVOKE_CLEANER.invoke(UNSAFE, b);
      } catch (ReflectiveOperationException | RuntimeException e) {
        // left to the garbage collector
      }
    }
  }
}
