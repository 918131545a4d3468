package io.kvstore.core;

/**
 * What the store's map holds per key: value (null for a tombstone), version, expiry. Immutable; about
 * 40 bytes of header and fields on a 64-bit JVM with compressed oops. The version is kept unboxed
 * (timestamp + node id reference) so a stored entry costs one object besides its arrays.
 */
final class Entry {
  final byte[] value;
  final long timestamp;
  final String nodeId;
  final long expiresAt;

  Entry(byte[] value, long timestamp, String nodeId, long expiresAt) {
    this.value = value;
    this.timestamp = timestamp;
    this.nodeId = nodeId;
    this.expiresAt = expiresAt;
  }

  static Entry of(Mutation m) {
    return new Entry(m.valueUnsafe(), m.version().timestamp(), m.version().nodeId(),
        m.expiresAtMillis());
  }

  boolean isTombstone() {
    return value == null;
  }

  boolean isLiveAt(long nowMillis) {
    return value != null && (expiresAt == 0 || nowMillis < expiresAt);
  }

  /** When the key stopped having a value: the delete's time, or the expiry. */
  long deadSinceMillis() {
    return value == null && expiresAt == 0 ? Version.physicalOf(timestamp) : expiresAt;
  }

  Version version() {
    return Version.trusted(timestamp, nodeId);
  }

  boolean sameVersion(Version v) {
    return timestamp == v.timestamp() && nodeId.equals(v.nodeId());
  }

  /** Strictly newer than the other version. */
  boolean newerThan(long ts, String node) {
    return Version.compare(timestamp, nodeId, ts, node) > 0;
  }

  Mutation toMutation(String key) {
    Version v = version();
    if (value != null) {
      return Mutation.put(key, value, v, expiresAt);
    }
    return expiresAt == 0 ? Mutation.delete(key, v) : Mutation.expired(key, v, expiresAt);
  }
}
