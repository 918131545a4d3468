package io.kvstore.core;

import java.util.Objects;

/**
 * A key and the version a store holds for it (live, tombstone or expired): what anti-entropy compares.
 *
 * @param key the key
 * @param version the version held
 */
public record KeyVersion(String key, Version version) {
  /**
   * Checks both parts.
   *
   * @param key the key
   * @param version the version held
   */
  public KeyVersion {
    Objects.requireNonNull(key, "key");
    Objects.requireNonNull(version, "version");
  }
}
