package io.kvstore.cluster;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * The shared secrets that authenticate a cluster's nodes to each other, on both planes. Immutable.
 *
 * <p>A keyring holds one or more keys, each with a short id. Every key is <em>accepted</em>: a message
 * or connection authenticated with any of them is let in. One key is the <em>primary</em>: the one this
 * node authenticates with when it sends or connects. That split is what allows rotating the secret on a
 * running cluster without downtime: (1) add the new key on every node (still sending with the old one),
 * (2) make it the primary on every node, (3) remove the old key everywhere. Apply a new keyring to a
 * running node with {@link ClusterNode#updateKeyring(ClusterKeyring)}.
 *
 * <p>Keys are at least {@value #MIN_KEY_BYTES} random bytes (for example {@code openssl rand -base64
 * 32}). The raw bytes are not kept: only keys derived from them for each plane (HKDF-SHA256). Neither
 * {@link #toString()} nor any log message contains key material, only key ids.
 *
 * <p>A key file has one key per line: {@code <key-id> <base64 secret>}, or just {@code <base64
 * secret>} (the id is then a fingerprint of the key, {@code k} plus 8 hex digits). The first key is the
 * primary. Blank lines and lines starting with {@code #} are ignored.
 */
public final class ClusterKeyring {
  /** 32 bytes (256 bits): the shortest key accepted. */
  public static final int MIN_KEY_BYTES = 32;
  /** 1024 bytes: the longest key accepted. */
  public static final int MAX_KEY_BYTES = 1024;
  /** 16: the most keys a keyring holds (a rotation needs two). */
  public static final int MAX_KEYS = 16;
  /** 64 KiB: the largest key file read. */
  static final int MAX_FILE_BYTES = 64 * 1024;
  private static final Pattern KEY_ID = Pattern.compile("[A-Za-z0-9._-]{1,32}");
  private static final byte[] SALT = Crypto.utf8("kvstore keyring v1");

  /** One key's derived secrets. */
  static final class Key {
    final String id;
    final byte[] membership;
    final byte[] dataPlane;
    private final byte[] check;

    private Key(String id, byte[] secret) {
      this.id = id;
      this.membership = Crypto.hkdf(secret, SALT, Crypto.utf8("kvstore membership"), 32);
      this.dataPlane = Crypto.hkdf(secret, SALT, Crypto.utf8("kvstore data plane"), 32);
      this.check = Crypto.hkdf(secret, SALT, Crypto.utf8("kvstore key check"), 32);
    }

    /** Whether both hold the same secret (constant time). */
    boolean sameSecret(Key other) {
      return other != null && Crypto.equal(check, other.check);
    }
  }

  private final Map<String, Key> keys;
  private final String primary;

  private ClusterKeyring(Map<String, Key> keys, String primary) {
    this.keys = Collections.unmodifiableMap(keys);
    this.primary = primary;
  }

  /**
   * A keyring of one key, whose id is the key's fingerprint.
   *
   * @param secret at least {@value #MIN_KEY_BYTES} random bytes (copied; the array is not kept)
   * @return the keyring
   * @throws IllegalArgumentException if the secret is too short or too long
   */
  public static ClusterKeyring of(byte[] secret) {
    return of(fingerprint(secret), secret);
  }

  /**
   * A keyring of one key.
   *
   * @param keyId 1 to 32 characters of {@code A-Z a-z 0-9 . _ -}
   * @param secret at least {@value #MIN_KEY_BYTES} random bytes (not kept)
   * @return the keyring
   * @throws IllegalArgumentException if the id or the secret is invalid
   */
  public static ClusterKeyring of(String keyId, byte[] secret) {
    Map<String, Key> keys = new LinkedHashMap<>();
    keys.put(requireId(keyId), new Key(keyId, requireSecret(secret)));
    return new ClusterKeyring(keys, keyId);
  }

  /**
   * Parses key-file text: one key per line, {@code <key-id> <base64 secret>} or {@code <base64
   * secret>}; the first key is the primary. Error messages give line numbers, never line content.
   *
   * @param text the file's content
   * @return the keyring
   * @throws IllegalArgumentException if a line is malformed, a key too short, an id repeated, or no
   *     key is given
   */
  public static ClusterKeyring parse(String text) {
    Objects.requireNonNull(text, "text");
    Map<String, Key> keys = new LinkedHashMap<>();
    String primary = null;
    String[] lines = text.split("\r?\n", -1);
    for (int i = 0; i < lines.length; i++) {
      String line = lines[i].strip();
      if (line.isEmpty() || line.startsWith("#")) {
        continue;
      }
      String[] tokens = line.split("\\s+");
      if (tokens.length > 2) {
        throw new IllegalArgumentException("key line " + (i + 1)
            + " must be '<key-id> <base64 secret>' or '<base64 secret>'");
      }
      byte[] secret;
      try {
        secret = Base64.getDecoder().decode(tokens[tokens.length - 1]);
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException("key line " + (i + 1) + ": the secret is not base64");
      }
      requireSecret(secret, "key line " + (i + 1));
      String id = tokens.length == 2 ? tokens[0] : fingerprint(secret);
      if (!isValidId(id)) {
        // Never echo the token: a line '<secret> <secret2>' puts a secret where the id belongs.
        java.util.Arrays.fill(secret, (byte) 0);
        throw new IllegalArgumentException("key line " + (i + 1) + ": the key id (the first word)"
            + " must be 1 to 32 characters of A-Z a-z 0-9 . _ - (the line is not shown)");
      }
      if (keys.containsKey(id)) {
        throw new IllegalArgumentException("key line " + (i + 1) + ": key id '" + id
            + "' appears twice");
      }
      if (keys.size() == MAX_KEYS) {
        throw new IllegalArgumentException("a keyring holds at most " + MAX_KEYS + " keys");
      }
      keys.put(id, new Key(id, secret));
      java.util.Arrays.fill(secret, (byte) 0);
      if (primary == null) {
        primary = id;
      }
    }
    if (primary == null) {
      throw new IllegalArgumentException("no key given (one key per line: "
          + "'<key-id> <base64 secret>' or '<base64 secret>', at least " + MIN_KEY_BYTES + " bytes)");
    }
    return new ClusterKeyring(keys, primary);
  }

  /**
   * Reads a key file (format as in {@link #parse(String)}, at most 64 KiB, UTF-8).
   *
   * @param file the key file
   * @return the keyring
   * @throws IOException if the file cannot be read
   * @throws IllegalArgumentException if its content is not a valid keyring
   */
  public static ClusterKeyring fromFile(Path file) throws IOException {
    Objects.requireNonNull(file, "file");
    byte[] bytes;
    try (InputStream in = Files.newInputStream(file)) {
      bytes = in.readNBytes(MAX_FILE_BYTES + 1);
    }
    if (bytes.length > MAX_FILE_BYTES) {
      throw new IllegalArgumentException("key file " + file + " is larger than " + MAX_FILE_BYTES
          + " bytes");
    }
    try {
      return parse(new String(bytes, StandardCharsets.UTF_8));
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("key file " + file + ": " + e.getMessage(), e);
    } finally {
      java.util.Arrays.fill(bytes, (byte) 0);
    }
  }

  /**
   * This keyring plus a key that is accepted but not used for sending (rotation step 1).
   *
   * @param keyId an id not in this keyring
   * @param secret at least {@value #MIN_KEY_BYTES} random bytes (not kept)
   * @return a new keyring
   * @throws IllegalArgumentException if the id is taken or invalid, or the secret invalid
   */
  public ClusterKeyring withKey(String keyId, byte[] secret) {
    requireId(keyId);
    if (keys.containsKey(keyId)) {
      throw new IllegalArgumentException("key id '" + keyId + "' is already in the keyring");
    }
    if (keys.size() == MAX_KEYS) {
      throw new IllegalArgumentException("a keyring holds at most " + MAX_KEYS + " keys");
    }
    Map<String, Key> copy = new LinkedHashMap<>(keys);
    copy.put(keyId, new Key(keyId, requireSecret(secret)));
    return new ClusterKeyring(copy, primary);
  }

  /**
   * This keyring with another of its keys as the primary (rotation step 2).
   *
   * @param keyId an id in this keyring
   * @return a new keyring
   * @throws IllegalArgumentException if the id is not in the keyring
   */
  public ClusterKeyring withPrimary(String keyId) {
    requireKnown(keyId);
    return new ClusterKeyring(new LinkedHashMap<>(keys), keyId);
  }

  /**
   * This keyring without a key (rotation step 3): what it authenticated is refused from now on.
   *
   * @param keyId an id in this keyring, not the primary
   * @return a new keyring
   * @throws IllegalArgumentException if the id is unknown or the primary
   */
  public ClusterKeyring withoutKey(String keyId) {
    requireKnown(keyId);
    if (keyId.equals(primary)) {
      throw new IllegalArgumentException("cannot remove the primary key '" + keyId
          + "'; make another key the primary first");
    }
    Map<String, Key> copy = new LinkedHashMap<>(keys);
    copy.remove(keyId);
    return new ClusterKeyring(copy, primary);
  }

  /**
   * The id of the key this node sends and connects with.
   *
   * @return the primary key id
   */
  public String primaryKeyId() {
    return primary;
  }

  /**
   * The ids of every accepted key, the primary first.
   *
   * @return key ids
   */
  public List<String> keyIds() {
    List<String> ids = new ArrayList<>();
    ids.add(primary);
    for (String id : keys.keySet()) {
      if (!id.equals(primary)) {
        ids.add(id);
      }
    }
    return List.copyOf(ids);
  }

  /**
   * Whether a key id is accepted.
   *
   * @param keyId a key id
   * @return true if this keyring holds it
   */
  public boolean accepts(String keyId) {
    return keys.containsKey(keyId);
  }

  Key primary() {
    return keys.get(primary);
  }

  /** The key with this id, or null. */
  Key key(String keyId) {
    return keyId == null ? null : keys.get(keyId);
  }

  /** Whether this keyring still holds exactly the given key (same id, same secret). */
  boolean stillHolds(Key k) {
    return k.sameSecret(keys.get(k.id));
  }

  static boolean isValidId(String keyId) {
    return keyId != null && KEY_ID.matcher(keyId).matches();
  }

  /** {@code k} plus 8 hex digits derived from the secret; reveals nothing useful about it. */
  static String fingerprint(byte[] secret) {
    requireSecret(secret);
    return "k" + Crypto.hex(Crypto.hkdf(secret, SALT, Crypto.utf8("kvstore key id"), 4), 4);
  }

  private static String requireId(String keyId) {
    if (!isValidId(keyId)) {
      throw new IllegalArgumentException("a key id must be 1 to 32 characters of A-Z a-z 0-9 . _ -, was "
          + (keyId == null ? "null" : "'" + keyId + "'"));
    }
    return keyId;
  }

  private void requireKnown(String keyId) {
    if (!keys.containsKey(keyId)) {
      throw new IllegalArgumentException("key id '" + keyId + "' is not in the keyring " + keyIds());
    }
  }

  private static byte[] requireSecret(byte[] secret) {
    return requireSecret(secret, "the cluster secret");
  }

  private static byte[] requireSecret(byte[] secret, String what) {
    Objects.requireNonNull(secret, "secret");
    if (secret.length < MIN_KEY_BYTES || secret.length > MAX_KEY_BYTES) {
      throw new IllegalArgumentException(what + " must be " + MIN_KEY_BYTES + " to " + MAX_KEY_BYTES
          + " bytes, was " + secret.length + " (generate one with: openssl rand -base64 32)");
    }
    return secret;
  }

  /** Key ids only, never key material. */
  @Override
  public String toString() {
    return "ClusterKeyring{primary=" + primary + ", keys=" + keyIds() + "}";
  }
}
