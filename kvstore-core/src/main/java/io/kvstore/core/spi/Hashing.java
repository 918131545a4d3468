package io.kvstore.core.spi;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/**
 * The fixed hash functions of {@link Digest} format {@value Digest#FORMAT}, for the store and for
 * replicators that compute fingerprints or buckets themselves (most go through {@link Digest} and
 * {@link Mutation}). The functions are specified in {@link Digest}, in public, so another
 * implementation could compute them.
 *
 * <p>A key's hash is {@link String#hashCode()} (specified by the Java language, so the same on every
 * JVM, and cached in the string, so a write that already hashed its key for the map pays nothing)
 * with the length, spread by the SplitMix64 finaliser. Its 32 bits are enough: an entry's hash also
 * mixes in the version and the content fingerprint, so two different entries whose keys collide
 * still hash apart. A value's hash reads the bytes eight at a time as little-endian longs (a byte-array
 * view {@link VarHandle}: the same result on every platform, whatever its byte order). Not
 * cryptographic; only stable and well spread.
 */
public final class Hashing {
  private static final VarHandle LE_LONG =
      MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);

  static final long GOLDEN = 0x9e3779b97f4a7c15L;
  private static final long M1 = 0xbf58476d1ce4e5b9L;
  private static final long M2 = 0x94d049bb133111ebL;
  /** The content fingerprint of every delete (a tombstone without expiry). */
  public static final long DELETE_FINGERPRINT = 0x64656c6574656421L; // "deleted!"
  private static final long CONTENT_SEED = 0x636f6e74656e7421L; // "content!"

  private Hashing() {}

  /**
   * A key's hash, as {@link Digest} specifies it.
   *
   * @param s the key
   * @return the hash
   */
  public static long key(String s) {
    return mix(((long) s.hashCode() << 32) ^ (s.length() * GOLDEN));
  }

  /**
   * An entry's contribution to its bucket: key, version and content fingerprint. For one key and
   * version it is a bijection of the fingerprint, so different fingerprints always hash apart.
   *
   * @param keyHash {@link #key(String)} of the key
   * @param timestamp the version's timestamp
   * @param nodeId the version's node id
   * @param fingerprint the content fingerprint
   * @return the entry hash
   */
  public static long entry(long keyHash, long timestamp, String nodeId, long fingerprint) {
    return mix(keyHash ^ mix(timestamp + GOLDEN) ^ (nodeId.hashCode() * M1) ^ fingerprint);
  }

  /**
   * The fingerprint of an entry's content: {@link #DELETE_FINGERPRINT} for a delete; otherwise a hash
   * of the expiry and the value's hash (a put and the same put after its TTL passed share it).
   *
   * @param expiresAt the expiry in epoch millis, 0 for none
   * @param valueHash {@link #value(byte[])} of the value
   * @return the fingerprint
   */
  public static long content(long expiresAt, int valueHash) {
    return mix(mix(expiresAt ^ CONTENT_SEED) ^ (valueHash & 0xffffffffL));
  }

  /**
   * A value's 32-bit hash; never 0 (0 means "not computed" in the store's entries).
   *
   * @param b the value bytes
   * @return the hash
   */
  public static int value(byte[] b) {
    int n = b.length;
    long h = n * GOLDEN;
    int i = 0;
    for (; i <= n - 8; i += 8) {
      h = step(h, (long) LE_LONG.get(b, i));
    }
    if (i < n) {
      long w = 0;
      for (int shift = 0; i < n; i++, shift += 8) {
        w |= (b[i] & 0xffL) << shift;
      }
      h = step(h, w);
    }
    h = mix(h);
    int folded = (int) (h ^ (h >>> 32));
    return folded != 0 ? folded : 1;
  }

  /** One word into the state; a bijection of the word for a given state and of the state for a given word. */
  private static long step(long h, long word) {
    return Long.rotateLeft(h ^ (word * M1), 31) * M2;
  }

  /** The SplitMix64 finaliser (a bijection). */
  static long mix(long z) {
    z = (z ^ (z >>> 30)) * M1;
    z = (z ^ (z >>> 27)) * M2;
    return z ^ (z >>> 31);
  }
}
