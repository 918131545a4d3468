package io.kvstore.core;

import io.kvstore.core.spi.ReplicaStore;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.KeyVersion;
import io.kvstore.core.spi.Hashing;
import java.util.Arrays;

/**
 * What the store's map holds per key: value (null for a tombstone), version, expiry, and the value's
 * hash for the digest. Immutable.
 *
 * <p>Memory: the version is kept unboxed (timestamp plus a reference to the node id string, which all
 * entries of one writer share), so an entry without TTL is one 32-byte object besides its arrays on a
 * 64-bit JVM with compressed oops (12-byte header, value and node id references, the timestamp and the
 * int value hash: 32 bytes exactly); entries with a TTL are a subclass with one more field (40 bytes),
 * so the common case does not pay for the expiry.
 *
 * <p>The value hash ({@link Hashing#value}) is 0 when not computed: a standalone store does not hash
 * values on its write path, and {@link #valueHash()} computes it when asked. A store with a replicator
 * computes it once per write, for its digest. A put whose TTL passed keeps the hash of the value it
 * dropped, so its digest contribution and its anti-entropy fingerprint do not change when it expires.
 */
class Entry {
  final byte[] value;
  final long timestamp;
  final String nodeId;
  /** {@link Hashing#value} of the value (of the dropped value for an expired put), or 0. */
  private final int valueHash;

  Entry(byte[] value, long timestamp, String nodeId, int valueHash) {
    this.value = value;
    this.timestamp = timestamp;
    this.nodeId = nodeId;
    this.valueHash = valueHash;
  }

  /**
   * An entry.
   *
   * @param valueHash the value's {@link Hashing#value}, or 0 to compute it when needed; required (not
   *     0) for an expired put ({@code value == null && expiresAt != 0})
   */
  static Entry create(byte[] value, long timestamp, String nodeId, long expiresAt, int valueHash) {
    return expiresAt == 0 ? new Entry(value, timestamp, nodeId, valueHash)
        : new Expiring(value, timestamp, nodeId, expiresAt, valueHash);
  }

  /** The entry a mutation makes, with its value hash computed. */
  static Entry of(Mutation m) {
    return create(m.valueUnsafe(), m.version().timestamp(), m.version().nodeId(),
        m.expiresAtMillis(), m.valueHash());
  }

  /** Epoch millis at which the value stops being visible, or 0 for never. */
  long expiresAt() {
    return 0;
  }

  boolean isTombstone() {
    return value == null;
  }

  /** A tombstone without expiry: what a delete leaves. */
  boolean isDelete() {
    return value == null && expiresAt() == 0;
  }

  boolean isLiveAt(long nowMillis) {
    return value != null;
  }

  /** When the key stopped having a value: the delete's time, or the expiry. */
  long deadSinceMillis() {
    return Version.physicalOf(timestamp);
  }

  /** The same write after its TTL passed: no value, same version, expiry and value hash. */
  Entry expired() {
    return this;
  }

  /** The value's hash (of the dropped value for an expired put); 0 for a delete. */
  int valueHash() {
    return valueHash != 0 || value == null ? valueHash : Hashing.value(value);
  }

  /**
   * The content fingerprint that {@link KeyVersion#fingerprint()} carries and the digest hashes: the
   * same for a put and its expired form, different (but for hash collisions) for any other pair.
   */
  long fingerprint() {
    return isDelete() ? Hashing.DELETE_FINGERPRINT : Hashing.content(expiresAt(), valueHash());
  }

  Version version() {
    return Version.trusted(timestamp, nodeId);
  }

  boolean sameVersion(Version v) {
    return timestamp == v.timestamp() && nodeId.equals(v.nodeId());
  }

  /**
   * Orders two entries of the same version (the tie-break of {@link ReplicaStore#apply}); 0 only for
   * identical entries. A delete wins; then the later expiry (no expiry counts as latest); then the
   * higher value hash (unsigned); then a put's expired form beats the put; then the value bytes,
   * unsigned lexicographically. Deciding by the value hash before the bytes (which an expired put no
   * longer has) makes "A beats B" hold alike for the puts and for their expired forms, so the winner
   * does not depend on which replica expired which entry first.
   */
  static int compareSameVersion(Entry a, Entry b) {
    boolean aDelete = a.isDelete();
    boolean bDelete = b.isDelete();
    if (aDelete || bDelete) {
      return Boolean.compare(aDelete, bDelete);
    }
    // expiresAt - 1 as unsigned: 0 (never) becomes the largest; nothing else wraps.
    int c = Long.compareUnsigned(a.expiresAt() - 1, b.expiresAt() - 1);
    if (c != 0) {
      return c;
    }
    c = Integer.compareUnsigned(a.valueHash(), b.valueHash());
    if (c != 0) {
      return c;
    }
    if (a.value == null || b.value == null) {
      return Boolean.compare(a.value == null, b.value == null);
    }
    return Arrays.compareUnsigned(a.value, b.value);
  }

  Mutation toMutation(String key) {
    Version v = version();
    if (value != null) {
      return Mutation.put(key, value, v, expiresAt());
    }
    long expiresAt = expiresAt();
    return expiresAt == 0 ? Mutation.delete(key, v) : Mutation.expired(key, v, expiresAt, valueHash);
  }

  /** An entry with a TTL (live or already expired). */
  static final class Expiring extends Entry {
    private final long expiresAt;

    Expiring(byte[] value, long timestamp, String nodeId, long expiresAt, int valueHash) {
      super(value, timestamp, nodeId, valueHash);
      this.expiresAt = expiresAt;
    }

    @Override
    long expiresAt() {
      return expiresAt;
    }

    @Override
    boolean isLiveAt(long nowMillis) {
      return value != null && nowMillis < expiresAt;
    }

    @Override
    long deadSinceMillis() {
      return expiresAt;
    }

    @Override
    Entry expired() {
      return value == null ? this : new Expiring(null, timestamp, nodeId, expiresAt, valueHash());
    }
  }
}
