package io.kvstore.core;

import java.util.Arrays;

/**
 * An immutable snapshot of a store's anti-entropy digest: a fixed number of buckets by key hash, each
 * the XOR of {@code hash(key, version)} over the entries (live values, tombstones and expired entries)
 * in the bucket.
 *
 * <p>Two stores holding the same keys at the same versions have equal digests; {@link #diff(Digest)}
 * names the buckets whose contents differ, so anti-entropy only exchanges those. The bucket and entry
 * hashes are fixed functions of the key's characters, the version's timestamp and its node id, the same
 * on every JVM and version of kvstore with the same {@link #FORMAT}.
 */
public final class Digest {
  /** Identifies the hash functions; nodes compare digests only when this matches. */
  public static final int FORMAT = 2;

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

  static Digest wrap(long[] buckets) {
    return new Digest(buckets);
  }

  /** Checks a bucket count; {@code what} names it in the message (a setting or a field). */
  static void checkBucketCount(int count, String what) {
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

  static int bucketOfHash(long keyHash, int bucketCount) {
    return (int) (keyHash >>> 40) & (bucketCount - 1);
  }

  /**
   * The contribution of one entry to its bucket.
   *
   * @param key the key
   * @param version the version held
   * @return the entry hash
   */
  public static long entryHash(String key, Version version) {
    return Hashing.entry(Hashing.key(key), version.timestamp(), version.nodeId());
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
