package io.kvstore.core;

import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.Arrays;
import java.util.Objects;
import java.util.Optional;

/** A key's live value with its version and optional expiry, as read from a store. Immutable. */
public final class Versioned {
  private final String key;
  private final byte[] value;
  private final Version version;
  private final long expiresAtMillis;

  Versioned(String key, byte[] value, Version version, long expiresAtMillis) {
    this.key = key;
    this.value = value;
    this.version = version;
    this.expiresAtMillis = expiresAtMillis;
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
   * A copy of the value.
   *
   * @return the value bytes
   */
  public byte[] value() {
    return value.clone();
  }

  /**
   * The value decoded as UTF-8.
   *
   * @return the value as a string
   */
  public String valueAsString() {
    return new String(value, StandardCharsets.UTF_8);
  }

  /**
   * Size of the value.
   *
   * @return bytes
   */
  public int valueLength() {
    return value.length;
  }

  /**
   * The version of the write that stored this value.
   *
   * @return the version
   */
  public Version version() {
    return version;
  }

  /**
   * When the value expires.
   *
   * @return the expiry instant, or empty if it has no TTL
   */
  public Optional<Instant> expiresAt() {
    return expiresAtMillis == 0 ? Optional.empty() : Optional.of(Instant.ofEpochMilli(expiresAtMillis));
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof Versioned v && v.key.equals(key) && v.version.equals(version)
        && v.expiresAtMillis == expiresAtMillis && Arrays.equals(v.value, value);
  }

  @Override
  public int hashCode() {
    return Objects.hash(key, version) * 31 + Arrays.hashCode(value);
  }

  @Override
  public String toString() {
    return "Versioned{" + key + ", " + value.length + " bytes, " + version + "}";
  }
}
