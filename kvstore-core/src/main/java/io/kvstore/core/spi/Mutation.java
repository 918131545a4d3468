package io.kvstore.core.spi;

import io.kvstore.core.Version;

import java.util.Arrays;
import java.util.Objects;

/**
 * One replicated change: a put (key, value, version, optional expiry), a delete (a tombstone), or a
 * put whose TTL passed and whose value was dropped ({@link #expired}).
 *
 * <p>This is what a {@link Replicator} carries between nodes and hands to
 * {@link ReplicaStore#apply(Mutation)}. Applying the same mutation twice, or mutations in any order,
 * gives the same state (last-writer-wins by {@link Version}, with a fixed tie-break between different
 * mutations of one version: see {@link ReplicaStore#apply(Mutation)}).
 *
 * <p>For speed a mutation holds its value array without copying it; the array must not be modified
 * after the mutation is built, and {@link #valueUnsafe()} must be treated as read-only.
 */
public final class Mutation {
  private final String key;
  private final byte[] value;
  private final Version version;
  private final long expiresAtMillis;
  /** The dropped value's hash for an expired put; 0 otherwise (a put's is computed from its value). */
  private final int expiredValueHash;

  private Mutation(String key, byte[] value, Version version, long expiresAtMillis,
      int expiredValueHash) {
    this.key = Objects.requireNonNull(key, "key");
    this.value = value;
    this.version = Objects.requireNonNull(version, "version");
    if (expiresAtMillis < 0) {
      throw new IllegalArgumentException("expiresAtMillis must be >= 0, was " + expiresAtMillis);
    }
    this.expiresAtMillis = expiresAtMillis;
    this.expiredValueHash = expiredValueHash;
  }

  /**
   * A put.
   *
   * @param key the key
   * @param value the value; held, not copied
   * @param version the write's version
   * @param expiresAtMillis epoch millis after which the value reads as absent, or 0 for never
   * @return the mutation
   */
  public static Mutation put(String key, byte[] value, Version version, long expiresAtMillis) {
    return new Mutation(key, Objects.requireNonNull(value, "value"), version, expiresAtMillis, 0);
  }

  /**
   * A delete: a tombstone that beats every older write of the key.
   *
   * @param key the key
   * @param version the delete's version
   * @return the mutation
   */
  public static Mutation delete(String key, Version version) {
    return new Mutation(key, null, version, 0, 0);
  }

  /**
   * A put whose TTL has passed and whose value a node already dropped. It ranks by version like the
   * original put and reads as absent everywhere, like a delete; it keeps the expiry so every replica
   * purges it at the same time, and the dropped value's hash so its {@link #fingerprint()} (and a
   * digest's view of it) stays that of the put: replicas that expired it and replicas that did not yet
   * still agree.
   *
   * @param key the key
   * @param version the version of the expired put
   * @param expiresAtMillis when it expired, epoch millis, positive
   * @param valueHash {@link Digest#valueHash(byte[])} of the value it had; never 0
   * @return the mutation
   * @throws IllegalArgumentException if the expiry is not positive or the value hash is 0
   */
  public static Mutation expired(String key, Version version, long expiresAtMillis, int valueHash) {
    if (expiresAtMillis <= 0) {
      throw new IllegalArgumentException("an expired put needs its expiry, was " + expiresAtMillis);
    }
    if (valueHash == 0) {
      throw new IllegalArgumentException(
          "an expired put needs the hash of its value (Digest.valueHash never returns 0)");
    }
    return new Mutation(key, null, version, expiresAtMillis, valueHash);
  }

  /**
   * The key.
   *
   * @return the key
   */
  public String key() {
    return key;
  }

  /**
   * The value array itself, not a copy; {@code null} for a delete. Do not modify it.
   *
   * @return the value, or null for a tombstone
   */
  public byte[] valueUnsafe() {
    return value;
  }

  /**
   * The version.
   *
   * @return the version of this write
   */
  public Version version() {
    return version;
  }

  /**
   * When the value expires.
   *
   * @return epoch millis, or 0 when it never expires
   */
  public long expiresAtMillis() {
    return expiresAtMillis;
  }

  /**
   * The value's hash, {@link Digest#valueHash(byte[])}: computed from the value for a put (each call
   * hashes it again), the carried hash for an expired put, 0 for a delete.
   *
   * @return the value hash, or 0 for a delete
   */
  public int valueHash() {
    return value != null ? Hashing.value(value) : expiredValueHash;
  }

  /**
   * The content fingerprint of the entry this mutation makes, as {@link KeyVersion#fingerprint()}
   * carries it: equal for a put and its {@link #expired} form, different (but for hash collisions)
   * for any two other mutations of one key and version. See {@link Digest} for the function.
   *
   * @return the fingerprint
   */
  public long fingerprint() {
    return value == null && expiresAtMillis == 0 ? Hashing.DELETE_FINGERPRINT
        : Hashing.content(expiresAtMillis, valueHash());
  }

  /**
   * Whether this carries no value: a delete, or a put that {@link #expired expired}.
   *
   * @return true for a tombstone
   */
  public boolean isDelete() {
    return value == null;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof Mutation m && m.key.equals(key) && m.version.equals(version)
        && m.expiresAtMillis == expiresAtMillis && m.expiredValueHash == expiredValueHash
        && Arrays.equals(m.value, value);
  }

  @Override
  public int hashCode() {
    return (Objects.hash(key, version, expiresAtMillis) * 31 + Arrays.hashCode(value)) * 31
        + expiredValueHash;
  }

  @Override
  public String toString() {
    return (value == null ? (expiresAtMillis == 0 ? "delete(" : "expired(") : "put(") + key + ", " + version
        + (value == null ? "" : ", " + value.length + " bytes")
        + (expiresAtMillis == 0 ? "" : ", expires " + expiresAtMillis)
        + (expiredValueHash == 0 ? "" : ", value hash " + Integer.toHexString(expiredValueHash)) + ")";
  }
}
