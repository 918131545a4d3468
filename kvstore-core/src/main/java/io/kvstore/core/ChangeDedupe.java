package io.kvstore.core;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * For one cluster-wide listener: the newest version delivered per key, for the most recently
 * changed keys, so a change that several owners report reaches the listener once and an older
 * change of a key arriving after a newer one is dropped. Bounded: past {@code maxKeys} the least
 * recently changed key is forgotten (a duplicate of it could then be delivered again). Thread-safe.
 */
final class ChangeDedupe {
  static final int DEFAULT_KEYS = 100_000;

  private final Map<String, Version> newest;

  ChangeDedupe(int maxKeys) {
    this.newest = new LinkedHashMap<>(16, 0.75f, true) {
      @Override
      protected boolean removeEldestEntry(Map.Entry<String, Version> eldest) {
        return size() > maxKeys;
      }
    };
  }

  /**
   * Records the change if it is newer than anything delivered for the key.
   *
   * @return whether to deliver it
   */
  synchronized boolean firstTime(String key, Version version) {
    Version seen = newest.get(key);
    if (seen != null && seen.compareTo(version) >= 0) {
      return false;
    }
    newest.put(key, version);
    return true;
  }
}
