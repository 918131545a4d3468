package io.kvstore.core.spi;

import java.util.Arrays;

/**
 * An immutable snapshot of a store's anti-entropy digest: a fixed number of buckets by key hash, each
 * the XOR of {@code hash(key, version, fingerprint)} over the entries (live values, tombstones and
 * expired entries) in the bucket.
 *
 * <p>Two stores holding the same entries have equal digests; {@link #diff(Digest)} names the buckets
 * whose contents differ, so anti-entropy only exchanges those. The hash covers the entry's content,
 * not only its version: two stores holding different entries under one version (which a node
 * restarted empty under its old id can cause, see {@link KeyVersion}) get different buckets, so
 * anti-entropy finds and repairs the difference. A put and the same put after its TTL passed (which
 * the maintenance sweep turns into a tombstone of the same version) hash alike, so replicas that have
 * swept and replicas that have not yet still agree.
 *
 * <p><b>The functions</b> (format {@value #FORMAT}) are fixed, the same on every JVM and platform and
 * in every kvstore with the same {@link #FORMAT}. All arithmetic is on 64-bit two's-complement longs,
 * wrapping; {@code G = 0x9e3779b97f4a7c15}, {@code M1 = 0xbf58476d1ce4e5b9},
 * {@code M2 = 0x94d049bb133111eb}; {@code mix} is the SplitMix64 finaliser
 * {@code z = (z ^ (z >>> 30)) * M1; z = (z ^ (z >>> 27)) * M2; return z ^ (z >>> 31)}.
 * <ul>
 *   <li>key hash: {@code mix(((long) key.hashCode() << 32) ^ (key.length() * G))}, with Java's
 *       {@link String#hashCode()} and UTF-16 length; the bucket is {@code (keyHash >>> 40) & (count - 1)}.
 *   <li>value hash ({@link #valueHash(byte[])}), of {@code n} bytes: {@code h = n * G}; for each whole
 *       8-byte word {@code w} read little-endian at offsets 0, 8, 16, ... and then, if 1 to 7 bytes
 *       are left, for those bytes zero-extended into one little-endian word:
 *       {@code h = Long.rotateLeft(h ^ (w * M1), 31) * M2}; then {@code h = mix(h)} and the result is
 *       {@code (int) (h ^ (h >>> 32))}, or 1 if that is 0.
 *   <li>fingerprint ({@link Mutation#fingerprint()}, {@link KeyVersion#fingerprint()}): for a delete
 *       {@code 0x64656c6574656421}; for a put or an expired put
 *       {@code mix(mix(expiresAt ^ 0x636f6e74656e7421) ^ (valueHash & 0xffffffffL))} with
 *       {@code expiresAt} 0 for none.
 *   <li>entry hash ({@link #entryHash(KeyVersion)}):
 *       {@code mix(keyHash ^ mix(timestamp + G) ^ (nodeId.hashCode() * M1) ^ fingerprint)}. For one
 *       key and version it is a bijection of the fingerprint: different fingerprints never hash alike.
 * </ul>
 * None is cryptographic. Two different entries of one key and version have equal fingerprints only
 * if their values' 32-bit hashes collide (about one chance in 2<sup>32</sup>) and their expiries are
 * equal, or if the fingerprint's own mixing collides.
 */
public final class Digest {
  /** Identifies the hash functions; nodes compare digests only when this matches. */
  public static final int FORMAT = 3;

  private final long[] buckets;

  private Digest(long[] buckets) {
    this.buckets = buckets;
  }

  /**
   * A digest from bucket hashes, for example as received from another node.
   *
   * @param buckets the bucket hashes; the count must be a power of two; copied
   * @return the digest
   */
  public static Digest of(long[] buckets) {
    checkBucketCount(buckets.length, "digest bucket count");
    return new Digest(buckets.clone());
  }

  /**
   * Checks a bucket count.
   *
   * @param count the count: a power of two from 1 to 2<sup>20</sup>
   * @param what names the count in the message (a setting or a field)
   * @throws IllegalArgumentException if the count is not allowed
   */
  public static void checkBucketCount(int count, String what) {
    if (count < 1 || Integer.bitCount(count) != 1 || count > (1 << 20)) {
      throw new IllegalArgumentException(
          what + " must be a power of two from 1 to 1048576, was " + count);
    }
  }

  /**
   * Number of buckets.
   *
   * @return the bucket count
   */
  public int bucketCount() {
    return buckets.length;
  }

  /**
   * One bucket's hash.
   *
   * @param index the bucket
   * @return its hash
   */
  public long bucket(int index) {
    return buckets[index];
  }

  /**
   * A copy of all bucket hashes.
   *
   * @return the hashes, index = bucket
   */
  public long[] toArray() {
    return buckets.clone();
  }

  /**
   * The buckets whose hashes differ.
   *
   * @param other a digest with the same bucket count
   * @return differing bucket indexes, ascending
   * @throws IllegalArgumentException if the bucket counts differ
   */
  public int[] diff(Digest other) {
    if (other.buckets.length != buckets.length) {
      throw new IllegalArgumentException("cannot compare digests of " + buckets.length + " and "
          + other.buckets.length + " buckets");
    }
    int n = 0;
    int[] out = new int[8];
    for (int i = 0; i < buckets.length; i++) {
      if (buckets[i] != other.buckets[i]) {
        if (n == out.length) {
          out = Arrays.copyOf(out, n * 2);
        }
        out[n++] = i;
      }
    }
    return Arrays.copyOf(out, n);
  }

  /**
   * The bucket a key falls into.
   *
   * @param key the key
   * @param bucketCount a power of two
   * @return the bucket index
   */
  public static int bucketOf(String key, int bucketCount) {
    return bucketOfHash(Hashing.key(key), bucketCount);
  }

  /**
   * The bucket of a key hash ({@link Hashing#key(String)}), for callers that already hold it.
   *
   * @param keyHash the key hash
   * @param bucketCount a power of two
   * @return the bucket index
   */
  public static int bucketOfHash(long keyHash, int bucketCount) {
    return (int) (keyHash >>> 40) & (bucketCount - 1);
  }

  /**
   * The contribution of one entry to its bucket.
   *
   * @param entry the key, version and content fingerprint of the entry
   * @return the entry hash
   */
  public static long entryHash(KeyVersion entry) {
    return Hashing.entry(Hashing.key(entry.key()), entry.version().timestamp(),
        entry.version().nodeId(), entry.fingerprint());
  }

  /**
   * The 32-bit hash of a value that an entry's fingerprint includes, as specified above; never 0.
   *
   * @param value the value bytes
   * @return the hash
   */
  public static int valueHash(byte[] value) {
    return Hashing.value(value);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof Digest d && Arrays.equals(d.buckets, buckets);
  }

  @Override
  public int hashCode() {
    return Arrays.hashCode(buckets);
  }

  @Override
  public String toString() {
    return "Digest{" + buckets.length + " buckets}";
  }
}
