package io.kvstore.core;

import java.util.Optional;

/**
 * A conditional write ({@link WriteOptions#ifAbsent()}, {@link WriteOptions#ifVersion(Version)}) found
 * the key in another state; nothing was written. Read the key again and decide whether to retry.
 */
public final class ConditionFailedException extends KvStoreException {
  private static final long serialVersionUID = 1L;

  private final transient Version current;

  /**
   * The condition failed.
   *
   * @param key the key written
   * @param expected what the write expected, for the message
   * @param current the live version found, or null when the key was absent
   */
  public ConditionFailedException(String key, String expected, Version current) {
    super("condition failed for key '" + key + "': expected " + expected + ", found "
        + (current == null ? "no value" : "version " + current) + "; nothing was written");
    this.current = current;
  }

  /**
   * The live version found when the condition was checked.
   *
   * @return the version, or empty if the key was absent
   */
  public Optional<Version> current() {
    return Optional.ofNullable(current);
  }
}
