package io.kvstore.core.spi;

import io.kvstore.core.Version;
import io.kvstore.core.WriteConcern;
import java.util.Objects;

/**
 * A client write that a node which does not own the key hands to an owner ({@link Router#forward}):
 * the owner runs it as its own local write (stamps the version, checks the condition, starts the TTL,
 * replicates it to the other owners at the concern) and answers with a {@link WriteResult}.
 *
 * @param key the key, already validated by the receiving node
 * @param value the value (held, not copied), or null for a delete
 * @param ttlMillis time to live from the write's timestamp, 0 for none (puts only)
 * @param ifAbsent write only if the key holds no live value (puts only)
 * @param expectedVersion write only if the key's live value has this version, or null
 * @param concern the write concern among the key's owners
 * @param timeoutMillis how long the owner waits for the concern
 */
public record WriteRequest(String key, byte[] value, long ttlMillis, boolean ifAbsent,
    Version expectedVersion, WriteConcern concern, long timeoutMillis) {
  /**
   * Checks the request: a delete carries no TTL and no if-absent condition.
   *
   * @param key the key
   * @param value the value, or null for a delete
   * @param ttlMillis time to live, 0 for none
   * @param ifAbsent write only if absent
   * @param expectedVersion write only at this version, or null
   * @param concern the write concern
   * @param timeoutMillis the owner's timeout
   */
  public WriteRequest {
    Objects.requireNonNull(key, "key");
    Objects.requireNonNull(concern, "concern");
    if (ttlMillis < 0 || timeoutMillis <= 0) {
      throw new IllegalArgumentException("ttlMillis must be >= 0 and timeoutMillis > 0, were "
          + ttlMillis + " and " + timeoutMillis);
    }
    if (value == null && (ttlMillis != 0 || ifAbsent)) {
      throw new IllegalArgumentException("a delete has no ttl and no if-absent condition");
    }
    if (ifAbsent && expectedVersion != null) {
      throw new IllegalArgumentException("ifAbsent and expectedVersion exclude each other");
    }
  }

  /**
   * Whether this is a delete.
   *
   * @return true for a delete
   */
  public boolean isDelete() {
    return value == null;
  }

  @Override
  public String toString() {
    return (value == null ? "delete(" : "put(") + key + (value != null ? ", " + value.length
        + " bytes" : "") + (ttlMillis > 0 ? ", ttl " + ttlMillis + " ms" : "")
        + (ifAbsent ? ", if absent" : "") + (expectedVersion != null ? ", if " + expectedVersion
        : "") + ", " + concern + ")";
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof WriteRequest w && key.equals(w.key)
        && java.util.Arrays.equals(value, w.value) && ttlMillis == w.ttlMillis
        && ifAbsent == w.ifAbsent && Objects.equals(expectedVersion, w.expectedVersion)
        && concern == w.concern && timeoutMillis == w.timeoutMillis;
  }

  @Override
  public int hashCode() {
    return Objects.hash(key, java.util.Arrays.hashCode(value), ttlMillis, ifAbsent,
        expectedVersion, concern, timeoutMillis);
  }
}
