package io.kvstore.core;

import io.kvstore.core.spi.Mutation;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Random mutations of a few keys, built to hit the merge's corner cases: many versions share a
 * timestamp and differ only in node id, the same write is delivered again, deletes and expired puts mix
 * with live puts, empty values occur, and different writes share a version.
 *
 * <p>Usually a version names one write (as in a running cluster): the generator remembers the writes
 * it made for each (key, version) and mostly hands one of them out again when it draws that version
 * again. Sometimes it makes a twin instead: a different write under the same version (what a node
 * restarted empty under its old id can do by reusing a timestamp): another value, the same value with
 * another expiry, a delete, or a fresh random write. A put whose expiry is at or before {@code now}
 * may come back as {@link Mutation#expired}, the form a replica holds after its TTL passed.
 */
final class MutationGen {
  private static final List<String> KEY_POOL = List.of("k0", "k1", "k2", "k3", "k4", "user:1",
      "user:2", "ключ", "\uD83D\uDE00-emoji", "a/b/c");
  private static final List<String> NODES = List.of("node-a", "node-b", "node-c");

  private final SplittableRandom r;
  private final long now;
  private final List<String> keys;
  private final Map<String, Map<Version, List<Mutation>>> issued = new HashMap<>();
  private int timeOffset;

  /**
   * A generator.
   *
   * @param r the seeded random source
   * @param now the clock of the stores the mutations go to: every past expiry is at or before it
   * @param keyCount how many distinct keys to use, 1 to 10
   */
  MutationGen(SplittableRandom r, long now, int keyCount) {
    this.r = r;
    this.now = now;
    List<String> pool = new ArrayList<>(KEY_POOL);
    this.keys = new ArrayList<>();
    for (int i = 0; i < keyCount; i++) {
      keys.add(pool.remove(r.nextInt(pool.size())));
    }
  }

  /** A generator over 1 to 6 keys. */
  static MutationGen random(SplittableRandom r, long now) {
    return new MutationGen(r, now, 1 + r.nextInt(6));
  }

  List<String> keys() {
    return keys;
  }

  /**
   * Moves later writes' timestamps forward, so writes made after this call beat earlier ones of the
   * same key more often (like writes made later in real time).
   */
  void laterWrites(int millis) {
    timeOffset += millis;
  }

  /** {@code n} mutations; repeats and twins included. */
  List<Mutation> batch(int n) {
    List<Mutation> out = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      out.add(next());
    }
    return out;
  }

  /** One mutation. */
  Mutation next() {
    String key = Seeds.pick(r, keys);
    // Few distinct timestamps, so equal timestamps with different node ids are common.
    Version v = Version.of(ManualClock.T0 + timeOffset + r.nextInt(6), r.nextInt(3),
        Seeds.pick(r, NODES));
    List<Mutation> ofVersion = issued.computeIfAbsent(key, k -> new HashMap<>())
        .computeIfAbsent(v, x -> new ArrayList<>());
    Mutation canonical;
    if (ofVersion.isEmpty()) {
      canonical = fresh(key, v);
      ofVersion.add(canonical);
    } else if (r.nextInt(4) == 0) {
      canonical = twin(Seeds.pick(r, ofVersion));
      ofVersion.add(canonical);
    } else {
      canonical = Seeds.pick(r, ofVersion);
    }
    return formOf(canonical);
  }

  /** A different write (or, by chance, the same one) under the version of {@code m}. */
  private Mutation twin(Mutation m) {
    int kind = r.nextInt(4);
    if (kind == 0 && !m.isDelete()) { // same value, another expiry
      return Mutation.put(m.key(), m.valueUnsafe(), m.version(), expiry());
    }
    if (kind == 1 && !m.isDelete()) { // same expiry, another value
      return Mutation.put(m.key(), value(), m.version(), m.expiresAtMillis());
    }
    if (kind == 2) {
      return Mutation.delete(m.key(), m.version());
    }
    return fresh(m.key(), m.version());
  }

  private Mutation fresh(String key, Version v) {
    int kind = r.nextInt(10);
    if (kind < 3) {
      return Mutation.delete(key, v);
    }
    return Mutation.put(key, value(), v, expiry());
  }

  private byte[] value() {
    byte[] value = new byte[r.nextInt(5)];
    r.nextBytes(value);
    return value;
  }

  private long expiry() {
    int ttlKind = r.nextInt(10);
    if (ttlKind < 6) {
      return 0;
    } else if (ttlKind < 8) {
      return now + 1 + r.nextInt(3_600_000); // still live at now
    }
    return ManualClock.T0 + 1 + r.nextInt((int) Math.max(1, now - ManualClock.T0)); // passed
  }

  /** The canonical write, or (half the time, for a put whose TTL passed) its expired form. */
  private Mutation formOf(Mutation m) {
    if (!m.isDelete() && m.expiresAtMillis() != 0 && m.expiresAtMillis() <= now && r.nextBoolean()) {
      return Mutation.expired(m.key(), m.version(), m.expiresAtMillis(), m.valueHash());
    }
    return m;
  }
}
