package io.kvstore.core;

import java.util.Arrays;
import java.util.Objects;

/**
 * One replicated change: a put (key, value, version, optional expiry) or a delete (a tombstone).
 *
 * <p>This is what a {@link Replicator} carries between nodes and hands to
 * {@link ReplicaStore#apply(Mutation)}. Applying the same mutation twice, or mutations in any order,
 * gives the same state (last-writer-wins by {@link Version}).
 *
 * <p>For speed a mutation holds its value array without copying it; the array must not be modified
 * after the mutation is built, and {@link #valueUnsafe()} must be treated as read-only.
 */
public final class Mutation {
  private final String key;
  private final byte[] value;
  private final Version version;
  private final long expiresAtMillis;

  private Mutation(String key, byte[] value, Version version, long expiresAtMillis) {
    this.key = Objects.requireNonNull(key, "key");
    this.value = value;
    this.version = Objects.requireNonNull(version, "version");
    if (expiresAtMillis < 0) {
      throw new IllegalArgumentException("expiresAtMillis must be >= 0, was " + expiresAtMillis);
    }
    this.expiresAtMillis = expiresAtMillis;
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
    return new Mutation(key, Objects.requireNonNull(value, "value"), version, expiresAtMillis);
  }

  /**
   * A delete: a tombstone that beats every older write of the key.
   *
   * @param key the key
   * @param version the delete's version
   * @return the mutation
   */
  public static Mutation delete(String key, Version version) {
    return new Mutation(key, null, version, 0);
  }

  /**
   * A put whose TTL has passed and whose value a node already dropped. It ranks by version like the
   * original put and reads as absent everywhere, like a delete; it keeps the expiry so every replica
   * purges it at the same time.
   *
   * @param key the key
   * @param version the version of the expired put
   * @param expiresAtMillis when it expired, epoch millis, positive
   * @return the mutation
   */
  public static Mutation expired(String key, Version version, long expiresAtMillis) {
    if (expiresAtMillis <= 0) {
      throw new IllegalArgumentException("an expired put needs its expiry, was " + expiresAtMillis);
    }
    return new Mutation(key, null, version, expiresAtMillis);
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
        && m.expiresAtMillis == expiresAtMillis && Arrays.equals(m.value, value);
  }

  @Override
  public int hashCode() {
    return Objects.hash(key, version, expiresAtMillis) * 31 + Arrays.hashCode(value);
  }

  @Override
  public String toString() {
    return (value == null ? (expiresAtMillis == 0 ? "delete(" : "expired(") : "put(") + key + ", " + version
        + (value == null ? "" : ", " + value.length + " bytes")
        + (expiresAtMillis == 0 ? "" : ", expires " + expiresAtMillis) + ")";
  }
}
