package io.kvstore.core.sim;

import io.kvstore.core.Version;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;

/**
 * The oracle of the simulation: every write a store accepted, with its version. The state every replica
 * must converge to is, per key, the accepted write with the highest version (a delete is a tombstone
 * that wins like any write).
 */
final class LwwModel {
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

  Set<String> keys() {
    return byKey.keySet();
  }

  Optional<Write> winner(String key) {
    Write best = null;
    for (Write w : byKey.getOrDefault(key, List.of())) {
      if (best == null || w.version().isNewerThan(best.version())) {
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

  int size() {
    return byVersion.size();
  }
}
