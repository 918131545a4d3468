package io.kvstore.core;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Files;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * A file system for {@link LogStorage} that simulates what a crash does to data that was not synced,
 * in the spirit of H2's {@code FilePathReorderWrites} and FoundationDB's non-durable files.
 *
 * <p>Each file remembers its content as of its last {@code force} and the writes and truncations since.
 * {@link #losePower() A power loss} keeps each unsynced operation, drops it, or tears it (a prefix
 * only, or zeros where the data should be), chosen at random per operation, so later writes can
 * survive where earlier ones did not (reordering). Directory changes (created and renamed files)
 * since the directory's last sync are lost as a random suffix, as a journaling file system loses
 * them. {@link #crash() A process crash} loses nothing the OS was given. After the crash every
 * operation fails, as it would for a dead process. {@link #failForces(int)} makes syncs fail.
 *
 * <p><b>Mapped files</b> ({@link #map}): writes through the mapping go to the real file's page cache
 * at once (a process crash keeps them) and mark their 4 KiB pages dirty; forcing a range makes the
 * current content of its pages durable (a whole page, as the OS writes it back, including bytes
 * another thread is still copying). At a power loss each dirty page is kept or dropped on its own, so
 * a record across a page boundary can survive torn, and a later page can survive an earlier one.
 */
final class FaultyFileIo implements FileIo {
  private final SplittableRandom random;
  private final ReentrantReadWriteLock gate = new ReentrantReadWriteLock();
  private final Map<Path, FileState> files = new HashMap<>();
  private final List<DirOp> dirOps = new ArrayList<>();
  private final AtomicInteger failForces = new AtomicInteger();
  private volatile boolean crashed;
  private int tornOps;
  private int droppedOps;
  private int droppedPages;
  private int keptPages;
  static final int PAGE = 4096;

  FaultyFileIo(long seed) {
    this.random = new SplittableRandom(seed);
  }

  /** The next {@code n} forces of any file fail with an IOException. */
  void failForces(int n) {
    failForces.set(n);
  }

  int tornOps() {
    return tornOps;
  }

  int droppedOps() {
    return droppedOps;
  }

  private volatile Runnable beforeNextMappedWrite;

  /**
   * Runs {@code hook} in the writing thread before the next write through a mapping (once), after
   * the writer reserved its space: a test holds a copy there to see what waits for it.
   */
  void beforeNextMappedWrite(Runnable hook) {
    beforeNextMappedWrite = hook;
  }

  /** Dirty pages of mapped files dropped at the power loss. */
  int droppedPages() {
    return droppedPages;
  }

  /** Dirty pages of mapped files kept at the power loss. */
  int keptPages() {
    return keptPages;
  }

  private static final class FileState {
    byte[] durable; // null: the file never reached the disk with content
    final List<Object[]> pending = new ArrayList<>(); // {"w", pos, bytes} or {"t", size}
    final Set<Integer> dirtyPages = new HashSet<>(); // of a mapping, since the last force
    Path path; // where the file is now
  }

  private record DirOp(Path path, Path from, FileState replaced) {}

  private void enter() throws IOException {
    gate.readLock().lock();
    if (crashed) {
      gate.readLock().unlock();
      throw new IOException("simulated crash: the process is dead");
    }
  }

  private void exit() {
    gate.readLock().unlock();
  }

  @Override
  public FileChannel open(Path file, OpenOption... options) throws IOException {
    enter();
    try {
      Path p = file.toAbsolutePath();
      boolean existed = Files.exists(p);
      FileChannel real = FileChannel.open(p, options);
      synchronized (this) {
        FileState st = files.get(p);
        if (st == null) {
          st = new FileState();
          if (existed) {
            st.durable = Files.readAllBytes(p);
          } else {
            dirOps.add(new DirOp(p, null, null));
          }
          files.put(p, st);
        }
        if (!existed) {
          st.durable = null;
        }
        st.path = p;
        if (Arrays.asList(options).contains(StandardOpenOption.TRUNCATE_EXISTING) && existed) {
          st.pending.add(new Object[] {"t", 0L});
        }
        return new Channel(real, st, p);
      }
    } finally {
      exit();
    }
  }

  @Override
  public void syncDirectory(Path dir) throws IOException {
    enter();
    try {
      Path d = dir.toAbsolutePath();
      synchronized (this) {
        dirOps.removeIf(op -> d.equals(op.path().getParent()));
      }
    } finally {
      exit();
    }
  }

  @Override
  public void move(Path from, Path to) throws IOException {
    enter();
    try {
      Path f = from.toAbsolutePath();
      Path t = to.toAbsolutePath();
      synchronized (this) {
        FileState replaced = files.get(t);
        if (replaced == null && Files.exists(t)) {
          replaced = new FileState();
          replaced.durable = Files.readAllBytes(t);
        }
        Files.move(f, t, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        FileState st = files.remove(f);
        if (st == null) {
          st = new FileState();
          st.durable = Files.readAllBytes(t);
        }
        files.put(t, st);
        st.path = t;
        dirOps.add(new DirOp(t, f, replaced));
      }
    } finally {
      exit();
    }
  }

  @Override
  public void delete(Path file) throws IOException {
    enter();
    try {
      Path p = file.toAbsolutePath();
      synchronized (this) {
        Files.deleteIfExists(p);
        files.remove(p); // deletes are taken as durable at once (recovery tolerates their undoing)
      }
    } finally {
      exit();
    }
  }

  /**
   * Crashes the process: every later operation fails; an operation under way finishes first. The
   * files keep everything written (the OS had it): what a kill -9 leaves.
   */
  void crash() {
    gate.writeLock().lock();
    try {
      crashed = true;
    } finally {
      gate.writeLock().unlock();
    }
  }

  /**
   * After {@link #crash()} and after the store's threads stopped: rewrites the files on disk to what a
   * power loss leaves: synced content plus a random selection of the unsynced operations, torn at
   * random, and the directory changes since the last directory sync lost as a random suffix.
   */
  synchronized void losePower() throws IOException {
    Map<FileState, byte[]> content = new HashMap<>();
    Set<FileState> all = new HashSet<>(files.values());
    for (DirOp op : dirOps) {
      if (op.replaced() != null) {
        all.add(op.replaced());
      }
    }
    List<FileState> ordered = new ArrayList<>(all); // by name, so a seed replays the same choices
    ordered.sort(java.util.Comparator.comparing(
        (FileState st) -> st.path == null ? "" : st.path.getFileName().toString()));
    for (FileState st : ordered) {
      content.put(st, survive(st));
    }
    Map<Path, FileState> mapping = new HashMap<>(files);
    Set<Path> touched = new HashSet<>(files.keySet());
    int keep = dirOps.isEmpty() ? 0 : random.nextInt(dirOps.size() + 1);
    for (int i = dirOps.size() - 1; i >= keep; i--) {
      DirOp op = dirOps.get(i);
      touched.add(op.path());
      if (op.from() == null) {
        mapping.remove(op.path());
      } else {
        FileState st = mapping.remove(op.path());
        touched.add(op.from());
        if (st != null) {
          mapping.put(op.from(), st);
        }
        if (op.replaced() != null) {
          mapping.put(op.path(), op.replaced());
        }
      }
    }
    for (Path p : touched) {
      Files.deleteIfExists(p);
    }
    for (Map.Entry<Path, FileState> e : mapping.entrySet()) {
      byte[] c = content.get(e.getValue());
      Files.write(e.getKey(), c == null ? new byte[0] : c);
    }
  }

  private byte[] survive(FileState st) {
    byte[] data = st.durable == null ? new byte[0] : st.durable.clone();
    for (Object[] op : st.pending) {
      int fate = random.nextInt(3); // 0 dropped, 1 kept, 2 torn
      if (fate == 0) {
        droppedOps++;
        continue;
      }
      if (op[0].equals("t")) {
        data = Arrays.copyOf(data, (int) Math.min(data.length, (long) op[1]));
        continue;
      }
      int pos = (int) (long) op[1];
      byte[] bytes = (byte[]) op[2];
      if (fate == 2) {
        tornOps++;
        int cut = random.nextInt(bytes.length + 1);
        bytes = random.nextBoolean() ? Arrays.copyOf(bytes, cut) : new byte[bytes.length];
      }
      if (data.length < pos + bytes.length) {
        data = Arrays.copyOf(data, pos + bytes.length);
      }
      System.arraycopy(bytes, 0, data, pos, bytes.length);
    }
    if (!st.dirtyPages.isEmpty()) {
      byte[] now = st.path != null && Files.exists(st.path) ? readAll(st.path) : new byte[0];
      List<Integer> pages = new ArrayList<>(st.dirtyPages);
      pages.sort(null);
      for (int page : pages) {
        if (random.nextBoolean()) {
          droppedPages++;
          continue;
        }
        keptPages++;
        int from = page * PAGE;
        int to = Math.min(now.length, from + PAGE);
        if (to <= from) {
          continue;
        }
        if (data.length < to) {
          data = Arrays.copyOf(data, to);
        }
        System.arraycopy(now, from, data, from, to - from);
      }
    }
    return data;
  }

  private static byte[] readAll(Path p) {
    try {
      return Files.readAllBytes(p);
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  @Override
  public Mapping map(FileChannel channel, Path file, int size) throws IOException {
    enter();
    try {
      Channel c = (Channel) channel;
      MappedByteBuffer real = c.real.map(FileChannel.MapMode.READ_WRITE, 0, size);
      synchronized (this) {
        byte[] d = c.st.durable == null ? new byte[0] : c.st.durable;
        if (d.length < size) {
          c.st.durable = Arrays.copyOf(d, size); // the grown size, read as zeros
        }
      }
      return new Region(real, c.real, c.st);
    } finally {
      exit();
    }
  }

  /** A mapping of a real file that records its dirty pages for the power-loss simulation. */
  private final class Region implements Mapping {
    private final MappedByteBuffer real;
    private final FileChannel file;
    private final FileState st;

    Region(MappedByteBuffer real, FileChannel file, FileState st) {
      this.real = real;
      this.file = file;
      this.st = st;
    }

    /**
     * Zeros over a hole: the real file gets them (so the mapping's pages are allocated, as in
     * production), the simulation records nothing, since the content, durable or not, is zeros
     * before and after.
     */
    @Override
    public void zero(int offset, int length) throws IOException {
      enter();
      try {
        ZeroedWrites.writeZeros(file, offset, length);
      } finally {
        exit();
      }
    }

    @Override
    public void put(int offset, ByteBuffer src) {
      Runnable hook = beforeNextMappedWrite;
      if (hook != null && offset > 0) {
        beforeNextMappedWrite = null;
        hook.run();
      }
      try {
        enter();
      } catch (IOException e) {
        throw new java.io.UncheckedIOException(e); // the process is dead: the copy never happens
      }
      try {
        int n = src.remaining();
        real.put(offset, src, src.position(), n);
        if (n > 0) {
          synchronized (FaultyFileIo.this) {
            for (int p = offset / PAGE; p <= (offset + n - 1) / PAGE; p++) {
              st.dirtyPages.add(p);
            }
          }
        }
      } finally {
        exit();
      }
    }

    @Override
    public void force(int offset, int length) throws IOException {
      enter();
      try {
        if (failForces.getAndUpdate(n -> Math.max(0, n - 1)) > 0) {
          throw new IOException("injected fsync failure (EIO)");
        }
        real.force(offset, length);
        synchronized (FaultyFileIo.this) {
          int first = offset / PAGE;
          int last = length == 0 ? first - 1 : (offset + length - 1) / PAGE;
          for (int p = first; p <= last; p++) {
            int from = p * PAGE;
            int to = Math.min(real.capacity(), from + PAGE);
            if (st.durable == null || st.durable.length < to) {
              st.durable = Arrays.copyOf(st.durable == null ? new byte[0] : st.durable, to);
            }
            real.get(from, st.durable, from, to - from);
            st.dirtyPages.remove(p);
          }
        }
      } finally {
        exit();
      }
    }

    @Override
    public void unmap() {
      FileIo.Unmapper.unmap(real);
    }
  }

  /** A channel over a real file that records writes for the crash simulation. */
  private final class Channel extends FileChannel {
    private final FileChannel real;
    private final FileState st;
    private final Path path;

    Channel(FileChannel real, FileState st, Path path) {
      this.real = real;
      this.st = st;
      this.path = path;
    }

    @Override
    public int read(ByteBuffer dst) throws IOException {
      enter();
      try {
        return real.read(dst);
      } finally {
        exit();
      }
    }

    @Override
    public long read(ByteBuffer[] dsts, int offset, int length) throws IOException {
      throw new UnsupportedOperationException();
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
      return write(src, real.position());
    }

    @Override
    public long write(ByteBuffer[] srcs, int offset, int length) throws IOException {
      throw new UnsupportedOperationException();
    }

    @Override
    public long position() throws IOException {
      return real.position();
    }

    @Override
    public FileChannel position(long newPosition) throws IOException {
      real.position(newPosition);
      return this;
    }

    @Override
    public long size() throws IOException {
      return real.size();
    }

    @Override
    public FileChannel truncate(long size) throws IOException {
      enter();
      try {
        real.truncate(size);
        synchronized (FaultyFileIo.this) {
          st.pending.add(new Object[] {"t", size});
        }
        return this;
      } finally {
        exit();
      }
    }

    @Override
    public void force(boolean metaData) throws IOException {
      enter();
      try {
        if (failForces.getAndUpdate(n -> Math.max(0, n - 1)) > 0) {
          throw new IOException("injected fsync failure (EIO)");
        }
        real.force(metaData);
        synchronized (FaultyFileIo.this) {
          st.durable = Files.readAllBytes(path); // forces happen before a file is renamed
          st.pending.clear();
          st.dirtyPages.clear(); // fsync writes a mapping's dirty pages too
        }
      } finally {
        exit();
      }
    }

    @Override
    public long transferTo(long position, long count, WritableByteChannel target) {
      throw new UnsupportedOperationException();
    }

    @Override
    public long transferFrom(ReadableByteChannel src, long position, long count) {
      throw new UnsupportedOperationException();
    }

    @Override
    public int read(ByteBuffer dst, long position) throws IOException {
      enter();
      try {
        return real.read(dst, position);
      } finally {
        exit();
      }
    }

    @Override
    public int write(ByteBuffer src, long position) throws IOException {
      enter();
      try {
        byte[] bytes = new byte[src.remaining()];
        src.duplicate().get(bytes);
        int n = real.write(src, position);
        synchronized (FaultyFileIo.this) {
          st.pending.add(new Object[] {"w", position, Arrays.copyOf(bytes, n)});
        }
        return n;
      } finally {
        exit();
      }
    }

    @Override
    public MappedByteBuffer map(MapMode mode, long position, long size) {
      throw new UnsupportedOperationException();
    }

    @Override
    public FileLock lock(long position, long size, boolean shared) {
      throw new UnsupportedOperationException();
    }

    @Override
    public FileLock tryLock(long position, long size, boolean shared) {
      throw new UnsupportedOperationException();
    }

    @Override
    protected void implCloseChannel() throws IOException {
      real.close();
    }
  }
}
