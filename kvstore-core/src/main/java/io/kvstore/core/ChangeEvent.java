package io.kvstore.core;

import java.nio.charset.StandardCharsets;
import java.util.Optional;

/**
 * One change to one key, seen by a {@link ChangeListener} after the change is visible to reads.
 *
 * @param type what happened
 * @param key the key
 * @param version the version of the write (for {@link Type#EXPIRE}, of the write that expired)
 * @param origin whether this node made the write or received it from another node
 * @param valueBytes the new value for {@link Type#PUT}, null otherwise; do not modify it
 */
public record ChangeEvent(Type type, String key, Version version, Origin origin, byte[] valueBytes) {
  /** What happened to the key. */
  public enum Type {
    /** A value was stored. */
    PUT,
    /** The key was deleted. */
    DELETE,
    /** The key's TTL passed; reported once by this node's maintenance sweep. */
    EXPIRE
  }

  /** Where the write came from. */
  public enum Origin {
    /** Written through this store. */
    LOCAL,
    /** Received from another node through the replicator. */
    REMOTE
  }

  /**
   * The new value as UTF-8 text, for puts.
   *
   * @return the value, or empty for deletes and expiries
   */
  public Optional<String> valueAsString() {
    return valueBytes == null ? Optional.empty()
        : Optional.of(new String(valueBytes, StandardCharsets.UTF_8));
  }

  @Override
  public String toString() {
    return "ChangeEvent{" + type + " " + key + " " + version + " " + origin + "}";
  }
}
