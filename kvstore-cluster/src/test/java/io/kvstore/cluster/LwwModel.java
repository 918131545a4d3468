package io.kvstore.cluster;

import io.kvstore.core.spi.Digest;
import io.kvstore.core.Version;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;

/**
 * The oracle of the simulation: every write a store accepted, with its version. The state every replica
 * must converge to is, per key, the accepted write with the highest version (a delete is a tombstone
 * that wins like any write); between writes that share a version (a node reusing one, see
 * {@link #acceptReuse}), the one ranked highest by the documented tie-break, {@link #SAME_VERSION}.
 */
final class LwwModel {
  /**
   * {@code ReplicaStore.apply}'s tie-break, written from its Javadoc: a delete wins, then the later
   * expiry (none counts as latest), then the higher value hash (unsigned), then the bytes (unsigned).
   * (The expired form of a put does not occur among accepted writes.)
   */
  static final Comparator<Write> SAME_VERSION = Comparator.comparing(Write::isDelete)
      .thenComparing(w -> w.expiresAt() == 0 ? Long.MAX_VALUE : w.expiresAt())
      .thenComparing(w -> w.expiresAt() == 0)
      .thenComparing(w -> w.isDelete() ? 0L : Integer.toUnsignedLong(Digest.valueHash(w.bytes())))
      .thenComparing(Write::bytes, Comparator.nullsLast((a, b) -> Arrays.compareUnsigned(a, b)));

  /**
   * One accepted local write.
   *
   * @param tick simulation tick it happened in
   * @param node the store that accepted it
   * @param key the key
   * @param version its version
   * @param value the value as text, or null for a delete
   * @param expiresAt expiry in epoch millis, 0 for none
   */
  record Write(long tick, String node, String key, Version version, String value, long expiresAt) {
    boolean isDelete() {
      return value == null;
    }

    /** The value a read at {@code nowMillis} must return, or null for absent. */
    String liveValueAt(long nowMillis) {
      return value != null && (expiresAt == 0 || nowMillis < expiresAt) ? value : null;
    }

    byte[] bytes() {
      return value == null ? null : value.getBytes(StandardCharsets.UTF_8);
    }

    @Override
    public String toString() {
      return "tick " + tick + " " + node + ": " + (value == null ? "delete" : "put '" + value + "'")
          + " @" + version + (expiresAt == 0 ? "" : " expires " + expiresAt);
    }
  }

  private final TreeMap<String, List<Write>> byKey = new TreeMap<>();
  private final Map<Version, Write> byVersion = new HashMap<>();
  private int reused;

  /**
   * Records an accepted write.
   *
   * @param w the write
   * @throws AssertionError if another accepted write has the same version (versions name one write)
   */
  void accept(Write w) {
    Write clash = byVersion.putIfAbsent(w.version(), w);
    if (clash != null) {
      throw new AssertionError("two accepted writes share version " + w.version() + ": " + clash
          + " and " + w);
    }
    byKey.computeIfAbsent(w.key(), k -> new ArrayList<>()).add(w);
  }

  /**
   * Records a write that reuses the version of an earlier write of the same key by the same node, as a
   * node restarted empty under its old id can.
   *
   * @param w the write
   * @throws AssertionError if no write of that key, node and version was accepted before
   */
  void acceptReuse(Write w) {
    Write original = byVersion.get(w.version());
    if (original == null || !original.key().equals(w.key()) || !original.node().equals(w.node())) {
      throw new AssertionError("a reuse must repeat an accepted version of the same key and node: "
          + w + ", earlier " + original);
    }
    byKey.get(w.key()).add(w);
    reused++;
  }

  /** How many writes reused a version. */
  int reused() {
    return reused;
  }

  Set<String> keys() {
    return byKey.keySet();
  }

  Optional<Write> winner(String key) {
    Write best = null;
    for (Write w : byKey.getOrDefault(key, List.of())) {
      if (best == null || w.version().isNewerThan(best.version())
          || (w.version().equals(best.version()) && SAME_VERSION.compare(w, best) > 0)) {
        best = w;
      }
    }
    return Optional.ofNullable(best);
  }

  /** The accepted write of this key with exactly this version, if any. */
  Optional<Write> find(String key, Version version) {
    Write w = byVersion.get(version);
    return w != null && w.key().equals(key) ? Optional.of(w) : Optional.empty();
  }

  List<Write> history(String key) {
    return List.copyOf(byKey.getOrDefault(key, List.of()));
  }

  /** Accepted writes, reuses of a version included. */
  int size() {
    return byVersion.size() + reused;
  }
}
