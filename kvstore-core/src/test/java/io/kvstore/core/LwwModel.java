package io.kvstore.core;

import io.kvstore.core.spi.ReplicaStore;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.KeyVersion;
import io.kvstore.core.spi.ApplyResult;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The reference semantics of one store, written the obvious way: per key, the mutation with the
 * highest version wins; between different mutations of an equal version, the one ranked higher by
 * {@link #SAME_VERSION} (the rule {@link ReplicaStore#apply} documents); an identical one changes
 * nothing. {@link #sweep(long)} is what {@link KvStore#runMaintenance()} must do. The property tests
 * compare a real store against this.
 */
final class LwwModel {
  /** The documented tie-break between two mutations of one version, written as a comparator chain. */
  static final Comparator<Mutation> SAME_VERSION = Comparator
      .comparing((Mutation m) -> m.isDelete() && m.expiresAtMillis() == 0) // a delete wins
      .thenComparing(m -> m.expiresAtMillis() == 0 ? Long.MAX_VALUE : m.expiresAtMillis())
      .thenComparing(m -> m.expiresAtMillis() == 0) // no expiry beats even the largest expiry
      .thenComparing(m -> Integer.toUnsignedLong(m.valueHash()))
      .thenComparing(Mutation::isDelete) // an expired put beats the put itself
      .thenComparing(Mutation::valueUnsafe,
          Comparator.nullsLast((a, b) -> Arrays.compareUnsigned(a, b)));

  private final TreeMap<String, Mutation> winners = new TreeMap<>();
  private final long graceMillis;

  LwwModel(long graceMillis) {
    this.graceMillis = graceMillis;
  }

  /** Merges one mutation; returns what {@link ReplicaStore#apply} must answer. */
  ApplyResult apply(Mutation m) {
    Mutation cur = winners.get(m.key());
    int c = cur == null ? 1 : m.version().compareTo(cur.version());
    if (c > 0 || (c == 0 && SAME_VERSION.compare(m, cur) > 0)) {
      winners.put(m.key(), m);
      return ApplyResult.APPLIED;
    }
    return ApplyResult.IGNORED;
  }

  /** What a sweep at {@code now} does. */
  record Sweep(List<String> expired, List<String> purged) {}

  Sweep sweep(long now) {
    List<String> expired = new ArrayList<>();
    List<String> purged = new ArrayList<>();
    for (var it = winners.entrySet().iterator(); it.hasNext(); ) {
      Map.Entry<String, Mutation> e = it.next();
      Mutation m = e.getValue();
      if (!m.isDelete() && m.expiresAtMillis() != 0 && now >= m.expiresAtMillis()) {
        m = Mutation.expired(m.key(), m.version(), m.expiresAtMillis(), m.valueHash());
        e.setValue(m);
        expired.add(m.key());
      }
      if (m.isDelete() && now - deadSince(m) >= graceMillis) {
        it.remove();
        purged.add(m.key());
      }
    }
    return new Sweep(expired, purged);
  }

  static long deadSince(Mutation tombstone) {
    return tombstone.expiresAtMillis() == 0 ? tombstone.version().physicalMillis()
        : tombstone.expiresAtMillis();
  }

  static boolean isLiveAt(Mutation m, long now) {
    return !m.isDelete() && (m.expiresAtMillis() == 0 || now < m.expiresAtMillis());
  }

  /** The entries, as {@link ReplicaStore#mutations} must list them. */
  TreeMap<String, Mutation> raw() {
    return new TreeMap<>(winners);
  }

  /** What {@link ReplicaStore#keyVersions} must list. */
  TreeMap<String, KeyVersion> keyVersions() {
    TreeMap<String, KeyVersion> out = new TreeMap<>();
    winners.forEach((k, m) -> out.put(k, KeyVersion.of(m)));
    return out;
  }

  TreeMap<String, Version> versions() {
    TreeMap<String, Version> out = new TreeMap<>();
    winners.forEach((k, m) -> out.put(k, m.version()));
    return out;
  }

  /** What {@link Stores#view(KvStore)} must show at {@code now}. */
  Stores.View view(long now, int bucketCount) {
    TreeMap<String, String> entries = new TreeMap<>();
    winners.forEach((k, m) -> entries.put(k, m.version() + " = "
        + (isLiveAt(m, now) ? Stores.hex(m.valueUnsafe()) : "-")));
    return new Stores.View(entries, Stores.digestOf(winners.values(), bucketCount));
  }

  /** Entries holding a value (live or expired but not yet swept): what {@code size()} counts. */
  long valueCount() {
    return winners.values().stream().filter(m -> !m.isDelete()).count();
  }

  long tombstoneCount() {
    return winners.values().stream().filter(Mutation::isDelete).count();
  }
}
