package io.kvstore.core;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Locale;

/**
 * The file operations of {@link LogStorage}, so tests can put a fault-injecting file system under it
 * (one that drops, tears or reorders unsynced writes at a simulated crash, or fails a sync).
 */
interface FileIo {
  /** Opens a file channel. */
  FileChannel open(Path file, OpenOption... options) throws IOException;

  /** Makes the directory's entries (created, renamed, deleted files) durable. */
  void syncDirectory(Path dir) throws IOException;

  /** Renames atomically, replacing the target. */
  void move(Path from, Path to) throws IOException;

  /** Deletes the file if it exists. */
  void delete(Path file) throws IOException;

  /** The real file system. */
  FileIo DEFAULT = new FileIo() {
    private final boolean windows = System.getProperty("os.name", "").toLowerCase(Locale.ROOT)
        .startsWith("windows");

    @Override
    public FileChannel open(Path file, OpenOption... options) throws IOException {
      return FileChannel.open(file, options);
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
}
