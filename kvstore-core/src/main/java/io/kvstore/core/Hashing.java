package io.kvstore.core;

/**
 * Fixed 64-bit hashes for the digest (see {@link Digest#FORMAT}).
 *
 * <p>A key's hash is {@link String#hashCode()} (specified by the Java language, so the same on every
 * JVM, and cached in the string, so a write that already hashed its key for the map pays nothing)
 * with the length, spread by the SplitMix64 finaliser. Its 32 bits are enough: an entry's hash also
 * mixes in the version, and a version names exactly one write of one key, so two different entries
 * whose keys collide still hash apart. Not cryptographic; only stable and well spread.
 */
final class Hashing {
  private Hashing() {}

  static long key(String s) {
    return mix(((long) s.hashCode() << 32) ^ (s.length() * 0x9e3779b97f4a7c15L));
  }

  static long entry(long keyHash, long timestamp, String nodeId) {
    return mix(keyHash ^ mix(timestamp + 0x9e3779b97f4a7c15L)
        ^ (nodeId.hashCode() * 0xbf58476d1ce4e5b9L));
  }

  static long mix(long z) {
    z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
    z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
    return z ^ (z >>> 31);
  }
}
