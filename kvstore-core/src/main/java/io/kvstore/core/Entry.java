package io.kvstore.core;

/**
 * What the store's map holds per key: value (null for a tombstone), version, expiry. Immutable.
 *
 * <p>Memory: the version is kept unboxed (timestamp plus a reference to the node id string, which all
 * entries of one writer share), so an entry without TTL is one 32-byte object besides its arrays on a
 * 64-bit JVM with compressed oops; entries with a TTL are a subclass with one more field, so the common
 * case does not pay for the expiry.
 */
class Entry {
  final byte[] value;
  final long timestamp;
  final String nodeId;

  Entry(byte[] value, long timestamp, String nodeId) {
    this.value = value;
    this.timestamp = timestamp;
    this.nodeId = nodeId;
  }

  static Entry create(byte[] value, long timestamp, String nodeId, long expiresAt) {
    return expiresAt == 0 ? new Entry(value, timestamp, nodeId)
        : new Expiring(value, timestamp, nodeId, expiresAt);
  }

  static Entry of(Mutation m) {
    return create(m.valueUnsafe(), m.version().timestamp(), m.version().nodeId(),
        m.expiresAtMillis());
  }

  /** Epoch millis at which the value stops being visible, or 0 for never. */
  long expiresAt() {
    return 0;
  }

  boolean isTombstone() {
    return value == null;
  }

  boolean isLiveAt(long nowMillis) {
    return value != null;
  }

  /** When the key stopped having a value: the delete's time, or the expiry. */
  long deadSinceMillis() {
    return Version.physicalOf(timestamp);
  }

  /** The same write after its TTL passed: no value, same version and expiry. */
  Entry expired() {
    return this;
  }

  Version version() {
    return Version.trusted(timestamp, nodeId);
  }

  boolean sameVersion(Version v) {
    return timestamp == v.timestamp() && nodeId.equals(v.nodeId());
  }

  Mutation toMutation(String key) {
    Version v = version();
    if (value != null) {
      return Mutation.put(key, value, v, expiresAt());
    }
    long expiresAt = expiresAt();
    return expiresAt == 0 ? Mutation.delete(key, v) : Mutation.expired(key, v, expiresAt);
  }

  /** An entry with a TTL (live or already expired). */
  static final class Expiring extends Entry {
    private final long expiresAt;

    Expiring(byte[] value, long timestamp, String nodeId, long expiresAt) {
      super(value, timestamp, nodeId);
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
      return value == null ? this : new Expiring(null, timestamp, nodeId, expiresAt);
    }
  }
}
