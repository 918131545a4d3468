package io.kvstore.examples.server;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Reading the server's secret files: the cluster key file, the HTTP token file and the keystore
 * password file. Every error names the file and, where it helps, the line, and never shows the
 * content: a secret must not reach a terminal, a log or a CI transcript because its file was
 * malformed.
 */
public final class SecretFiles {
  private static final Logger log = LoggerFactory.getLogger(SecretFiles.class);
  /** Token and password files are a few lines; anything bigger is the wrong file. */
  static final int MAX_BYTES = 64 * 1024;

  private SecretFiles() {}

  /**
   * Refuses a secret file that every user of the machine may read, and warns when its group may.
   * A file system without POSIX permissions is not checked.
   *
   * @param file the file
   * @throws IllegalArgumentException if others may read or write it (the message says how to fix it)
   * @throws IOException if its permissions cannot be read
   */
  static void checkPermissions(Path file) throws IOException {
    Set<PosixFilePermission> perms;
    try {
      perms = Files.getPosixFilePermissions(file);
    } catch (UnsupportedOperationException e) {
      return; // not a POSIX file system: nothing to check
    }
    if (perms.contains(PosixFilePermission.OTHERS_READ)
        || perms.contains(PosixFilePermission.OTHERS_WRITE)) {
      throw new IllegalArgumentException(file + " holds secrets but every user of this machine may "
          + "read or change it (" + PosixFilePermissions.toString(perms) + "): chmod 600 it (640 "
          + "for a service group; in Kubernetes, a secret volume's defaultMode 0400)");
    }
    if (perms.contains(PosixFilePermission.GROUP_READ)) {
      log.warn("{} holds secrets and is readable by its group ({}); chmod 600 it unless that is "
          + "meant", file, PosixFilePermissions.toString(perms));
    }
  }

  /**
   * The bearer tokens of a token file: one per line, blank lines and {@code #} comments ignored,
   * surrounding whitespace removed. The file's permissions are checked like the cluster key file's.
   *
   * @param file the token file
   * @return the tokens, at least one
   * @throws IllegalArgumentException if a line is not a valid token, the file is not UTF-8, larger
   *     than 64 KiB, holds no token or may be read by every user; the message never shows a line
   * @throws IOException if it cannot be read
   */
  public static Set<String> readTokens(Path file) throws IOException {
    String text = readText(file);
    Set<String> tokens = new LinkedHashSet<>();
    List<String> lines = text.lines().toList();
    for (int i = 0; i < lines.size(); i++) {
      String line = lines.get(i).strip();
      if (line.isEmpty() || line.startsWith("#")) {
        continue;
      }
      if (!isToken(line)) {
        throw new IllegalArgumentException("line " + (i + 1) + " of " + file + " is not a token: "
            + "a token is printable ASCII without spaces, one per line (the line is not shown)");
      }
      tokens.add(line);
    }
    if (tokens.isEmpty()) {
      throw new IllegalArgumentException(file + " holds no token (only blank lines or comments)");
    }
    checkPermissions(file);
    return tokens;
  }

  /**
   * The first line of a password file, without its line break.
   *
   * @param file the password file
   * @return the password, possibly empty
   * @throws IllegalArgumentException if it is not UTF-8 or larger than 64 KiB; never shows content
   * @throws IOException if it cannot be read
   */
  static String readPassword(Path file) throws IOException {
    String text = readText(file);
    int end = 0;
    while (end < text.length() && text.charAt(end) != '\n' && text.charAt(end) != '\r') {
      end++;
    }
    return text.substring(0, end);
  }

  /** Whether a bearer token is acceptable: non-empty printable ASCII without spaces. */
  static boolean isToken(String token) {
    return !token.isEmpty() && token.chars().allMatch(c -> c > ' ' && c < 0x7f);
  }

  private static String readText(Path file) throws IOException {
    byte[] bytes;
    try (InputStream in = Files.newInputStream(file)) {
      bytes = in.readNBytes(MAX_BYTES + 1);
    }
    try {
      if (bytes.length > MAX_BYTES) {
        throw new IllegalArgumentException(file + " is larger than 64 KiB; is it the right file?");
      }
      String text = StandardCharsets.UTF_8.newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT)
          .decode(ByteBuffer.wrap(bytes)).toString();
      return text.startsWith("\uFEFF") ? text.substring(1) : text;
    } catch (CharacterCodingException e) {
      throw new IllegalArgumentException(file + " is not UTF-8 text (the content is not shown)");
    } finally {
      Arrays.fill(bytes, (byte) 0);
    }
  }
}
