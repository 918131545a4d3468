package io.kvstore.core;

import io.kvstore.core.spi.ReplicaStore;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.KeyVersion;
import java.util.Objects;

/**
 * The version of a write: a hybrid-logical-clock timestamp plus the id of the node that made it.
 *
 * <p>Versions are totally ordered: first by timestamp (physical milliseconds, then the logical
 * counter), then by node id. The higher version wins a last-writer-wins merge, so every node picks the
 * same winner whatever order it sees the writes in. A running node never issues the same timestamp
 * twice, so a version normally names exactly one write. A node restarted empty under the same node id
 * can reuse a timestamp it issued before the restart (when its clock had been pushed ahead of real
 * time); then two different writes share a version. The merge breaks such ties by the entries' content
 * (see {@link ReplicaStore#apply(Mutation)}) and anti-entropy compares content fingerprints
 * ({@link KeyVersion}), so replicas still converge on one of them.
 *
 * <p>The timestamp packs physical milliseconds since the epoch into the upper 48 bits and a logical
 * counter into the lower 16 bits. {@link #toString()} gives the compact form
 * {@code <physicalMillis>.<logical>@<nodeId>} that {@link #parse(String)} reads back (HTTP uses it as the
 * {@code ETag}).
 */
public final class Version implements Comparable<Version> {
  /** Bits of the timestamp that hold the logical counter. */
  public static final int LOGICAL_BITS = 16;
  /** The largest logical counter a timestamp can carry. */
  public static final int MAX_LOGICAL = (1 << LOGICAL_BITS) - 1;

  private final long timestamp;
  private final String nodeId;

  private Version(long timestamp, String nodeId) {
    this.timestamp = timestamp;
    this.nodeId = nodeId;
  }

  /**
   * A version from its packed timestamp and node id.
   *
   * @param timestamp packed HLC timestamp (physical millis in the upper 48 bits, logical in the lower 16)
   * @param nodeId id of the writing node, valid per {@link NodeIds#validate(String)}
   * @return the version
   * @throws IllegalArgumentException if the timestamp is negative or the node id is invalid
   */
  public static Version of(long timestamp, String nodeId) {
    if (timestamp < 0) {
      throw new IllegalArgumentException("version timestamp must be >= 0, was " + timestamp);
    }
    return new Version(timestamp, NodeIds.validate(nodeId));
  }

  /**
   * A version from its parts.
   *
   * @param physicalMillis physical time in milliseconds since the epoch
   * @param logical logical counter, 0 to {@link #MAX_LOGICAL}
   * @param nodeId id of the writing node
   * @return the version
   * @throws IllegalArgumentException if a part is out of range
   */
  public static Version of(long physicalMillis, int logical, String nodeId) {
    if (physicalMillis < 0 || physicalMillis >= (1L << (63 - LOGICAL_BITS))) {
      throw new IllegalArgumentException("physical millis out of range: " + physicalMillis);
    }
    if (logical < 0 || logical > MAX_LOGICAL) {
      throw new IllegalArgumentException(
          "logical counter must be 0.." + MAX_LOGICAL + ", was " + logical);
    }
    return of(pack(physicalMillis, logical), nodeId);
  }

  /** Trusted fast path for versions the store already validated. */
  static Version trusted(long timestamp, String nodeId) {
    return new Version(timestamp, nodeId);
  }

  static long pack(long physicalMillis, int logical) {
    return (physicalMillis << LOGICAL_BITS) | logical;
  }

  static long physicalOf(long timestamp) {
    return timestamp >>> LOGICAL_BITS;
  }

  /**
   * Parses the form written by {@link #toString()}: {@code <physicalMillis>.<logical>@<nodeId>}.
   *
   * @param text the text to parse
   * @return the version
   * @throws IllegalArgumentException if the text is not a version
   */
  public static Version parse(String text) {
    Objects.requireNonNull(text, "text");
    int at = text.indexOf('@');
    int dot = at < 0 ? -1 : text.lastIndexOf('.', at);
    if (at <= 0 || dot <= 0 || dot >= at - 1 || at == text.length() - 1
        || !Character.isDigit(text.charAt(0)) || !Character.isDigit(text.charAt(dot + 1))) {
      throw new IllegalArgumentException("not a version (want <millis>.<logical>@<nodeId>): " + text);
    }
    try {
      long physical = Long.parseLong(text.substring(0, dot));
      int logical = Integer.parseInt(text.substring(dot + 1, at));
      return of(physical, logical, text.substring(at + 1));
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("not a version (want <millis>.<logical>@<nodeId>): " + text, e);
    }
  }

  /**
   * The packed HLC timestamp.
   *
   * @return physical millis in the upper 48 bits, the logical counter in the lower 16
   */
  public long timestamp() {
    return timestamp;
  }

  /**
   * Physical part of the timestamp.
   *
   * @return milliseconds since the epoch
   */
  public long physicalMillis() {
    return physicalOf(timestamp);
  }

  /**
   * Logical part of the timestamp.
   *
   * @return the logical counter
   */
  public int logical() {
    return (int) (timestamp & MAX_LOGICAL);
  }

  /**
   * The node that made the write.
   *
   * @return its node id
   */
  public String nodeId() {
    return nodeId;
  }

  /**
   * Whether this version wins a last-writer-wins merge against {@code other}.
   *
   * @param other the competing version
   * @return true if this one is strictly higher
   */
  public boolean isNewerThan(Version other) {
    return compareTo(other) > 0;
  }

  static int compare(long ts1, String node1, long ts2, String node2) {
    int c = Long.compare(ts1, ts2);
    return c != 0 ? c : node1.compareTo(node2);
  }

  @Override
  public int compareTo(Version o) {
    return compare(timestamp, nodeId, o.timestamp, o.nodeId);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof Version v && v.timestamp == timestamp && v.nodeId.equals(nodeId);
  }

  @Override
  public int hashCode() {
    return Long.hashCode(timestamp) * 31 + nodeId.hashCode();
  }

  @Override
  public String toString() {
    return physicalMillis() + "." + logical() + "@" + nodeId;
  }
}
