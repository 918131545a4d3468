package io.kvstore.core;

/**
 * Fixed 64-bit hashes for the digest (see {@link Digest#FORMAT}): FNV-1a over UTF-16 code units,
 * finished with the SplitMix64 mixer. Not cryptographic; they only need to be stable and well spread.
 */
final class Hashing {
  private static final long FNV_OFFSET = 0xcbf29ce484222325L;
  private static final long FNV_PRIME = 0x100000001b3L;

  private Hashing() {}

  static long key(String s) {
    long h = FNV_OFFSET;
    for (int i = 0, n = s.length(); i < n; i++) {
      h ^= s.charAt(i);
      h *= FNV_PRIME;
    }
    return mix(h);
  }

  static long entry(long keyHash, long timestamp, String nodeId) {
    return mix(keyHash ^ mix(timestamp + 0x9e3779b97f4a7c15L) ^ (key(nodeId) * 0xbf58476d1ce4e5b9L));
  }

  static long mix(long z) {
    z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
    z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
    return z ^ (z >>> 31);
  }
}
