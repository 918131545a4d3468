package io.kvstore.core;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The anti-entropy digest names exactly the buckets whose keys differ, is empty for equal stores, and
 * after any history of writes, deletes, expiries and purges equals the digest of a store built
 * directly with the final state (and the digest recomputed from scratch). Kept up to date on every
 * write by a store with a replicator and computed on demand by a standalone one: both are checked
 * against each other and against the model.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class DigestPropertyTest {
  private static final int[] BUCKET_COUNTS = {1, 2, 16, 256, 1024};

  private final List<KvStore> opened = new ArrayList<>();

  @AfterEach
  void closeStores() {
    opened.forEach(KvStore::close);
  }

  /**
   * Node "a" keeps its digest up to date on every write (a store with a replicator); the others are
   * standalone and compute theirs when asked, so every comparison checks one against the other.
   */
  private DefaultKvStore store(String nodeId, ManualClock clock, int buckets) {
    DefaultKvStore s = nodeId.equals("a") ? Stores.openUnwired(nodeId, clock, buckets)
        : Stores.open(nodeId, clock, buckets);
    opened.add(s);
    return s;
  }

  private static int[] bucketsOf(Set<String> keys, int bucketCount) {
    return keys.stream().mapToInt(k -> Digest.bucketOf(k, bucketCount)).distinct().sorted()
        .toArray();
  }

  @ParameterizedTest(name = Seeds.NAME)
  @MethodSource("io.kvstore.core.Seeds#seeds")
  void diff_namesExactlyTheBucketsOfTheDifferingKeys(long seed) {
    Seeds.run(seed, r -> {
      int buckets = BUCKET_COUNTS[r.nextInt(BUCKET_COUNTS.length)];
      ManualClock clock = new ManualClock(ManualClock.T0 + 60_000);
      DefaultKvStore a = store("a", clock, buckets);
      DefaultKvStore b = store("b", clock, buckets);
      int universe = 1 + r.nextInt(60);
      List<String> keys = new ArrayList<>();
      for (int i = 0; i < universe; i++) {
        keys.add("key-" + i);
      }
      // A common base, delivered to each store in its own order.
      List<Mutation> base = new ArrayList<>();
      for (String k : keys) {
        if (r.nextInt(4) != 0) {
          Version v = Version.of(ManualClock.T0 + r.nextInt(1_000), r.nextInt(4), "writer");
          base.add(r.nextInt(4) == 0 ? Mutation.delete(k, v) : Mutation.put(k, bytes(r), v, 0));
        }
      }
      List<Mutation> reversed = new ArrayList<>(base);
      java.util.Collections.reverse(reversed);
      base.forEach(a::apply);
      reversed.forEach(b::apply);
      assertThat(a.digest()).as(Seeds.describe(seed, "same contents, %d buckets", buckets))
          .isEqualTo(b.digest());
      assertThat(a.digest().diff(b.digest())).as(Seeds.describe(seed, "diff of equal stores"))
          .isEmpty();

      // Make a random set of keys differ: a newer write (put or delete) on one side only.
      Set<String> differing = new TreeSet<>();
      for (String k : keys) {
        if (r.nextInt(3) == 0) {
          differing.add(k);
          Version newer = Version.of(ManualClock.T0 + 2_000 + r.nextInt(1_000), r.nextInt(4),
              r.nextBoolean() ? "a" : "b");
          Mutation m = r.nextInt(3) == 0 ? Mutation.delete(k, newer)
              : Mutation.put(k, bytes(r), newer, 0);
          assertThat((r.nextBoolean() ? a : b).apply(m)).as(Seeds.describe(seed, "apply %s", m))
              .isEqualTo(ApplyResult.APPLIED);
        }
      }
      String ctx = Seeds.describe(seed, "%d buckets, differing keys %s", buckets, differing);
      int[] expected = bucketsOf(differing, buckets);
      assertThat(a.digest().diff(b.digest())).as(ctx).containsExactly(expected);
      assertThat(b.digest().diff(a.digest())).as(ctx).containsExactly(expected);
      assertThat(a.digest().equals(b.digest())).as(ctx).isEqualTo(differing.isEmpty());

      // The keys listed for those buckets, compared, are exactly the differing keys.
      BitSet diffBits = new BitSet();
      for (int i : expected) {
        diffBits.set(i);
      }
      AntiEntropy.Plan plan = AntiEntropy.compare(a.keyVersions(diffBits), b.keyVersions(diffBits));
      Set<String> planned = new TreeSet<>(plan.push());
      planned.addAll(plan.pull());
      assertThat(planned).as(ctx).isEqualTo(differing);
      assertThat(plan.push().size() + plan.pull().size()).as(ctx).isEqualTo(differing.size());

      // Every listed key is in one of the asked-for buckets, and every held key there is listed.
      for (DefaultKvStore s : List.of(a, b)) {
        Set<String> listed = new HashSet<>();
        for (KeyVersion kv : s.keyVersions(diffBits)) {
          assertThat(diffBits.get(Digest.bucketOf(kv.key(), buckets))).as(ctx).isTrue();
          listed.add(kv.key());
        }
        Set<String> held = new HashSet<>(Stores.heldVersions(s).keySet());
        held.removeIf(k -> !diffBits.get(Digest.bucketOf(k, buckets)));
        assertThat(listed).as(ctx).isEqualTo(held);
      }

      // Digests are exactly the XOR of the public entry hashes.
      for (DefaultKvStore s : List.of(a, b)) {
        assertThat(s.digest()).as(ctx).isEqualTo(Stores.digestOf(Stores.heldVersions(s), buckets));
      }
    });
  }

  @ParameterizedTest(name = Seeds.NAME)
  @MethodSource("io.kvstore.core.Seeds#seeds")
  void digestAfterDeletesExpiriesAndPurges_equalsDigestOfAStoreBuiltWithTheFinalState(long seed) {
    Seeds.run(seed, r -> {
      int buckets = BUCKET_COUNTS[r.nextInt(BUCKET_COUNTS.length)];
      long grace = 1_000 + r.nextInt(60_000);
      ManualClock clock = new ManualClock();
      // Incremental digest (a store with a replicator) here, computed on demand in "direct" below.
      DefaultKvStore s = (DefaultKvStore) Stores.builder("self", clock).digestBuckets(buckets)
          .tombstoneGrace(java.time.Duration.ofMillis(grace))
          .replicator(config -> new Stores.Unwired(
              new Member("self", null, null, Member.Status.ALIVE)))
          .build();
      opened.add(s);
      List<ChangeEvent> events = new ArrayList<>();
      s.addListener("", events::add);
      LwwModel model = new LwwModel(grace);
      List<String> keys = List.of("a", "b", "c", "d", "e", "f", "g", "h");
      List<String> history = new ArrayList<>();
      int steps = 20 + r.nextInt(60);
      for (int step = 0; step < steps; step++) {
        clock.advance(r.nextInt(4) == 0 ? r.nextInt((int) grace) : r.nextInt(50));
        String k = Seeds.pick(r, keys);
        int op = r.nextInt(10);
        if (op < 3) {
          byte[] value = bytes(r);
          WriteOptions o = r.nextBoolean() ? WriteOptions.defaults()
              : WriteOptions.defaults().withTtl(java.time.Duration.ofMillis(1 + r.nextInt(5_000)));
          Version v = s.put(k, value, o);
          long expiresAt = o.ttl() == null ? 0 : v.physicalMillis() + o.ttl().toMillis();
          model.apply(Mutation.put(k, value, v, expiresAt));
          history.add("put " + k + " " + v + " exp " + expiresAt);
        } else if (op < 5) {
          s.delete(k);
          ChangeEvent e = events.get(events.size() - 1);
          assertThat(e.type()).isEqualTo(ChangeEvent.Type.DELETE);
          model.apply(Mutation.delete(k, e.version()));
          history.add("delete " + k + " " + e.version());
        } else if (op < 8) {
          // A remote write, older or newer than what is held.
          Version v = Version.of(clock.millis() - r.nextInt(3_000), r.nextInt(3), "peer");
          Mutation m = r.nextInt(3) == 0 ? Mutation.delete(k, v)
              : Mutation.put(k, bytes(r), v, r.nextBoolean() ? 0 : clock.millis() + r.nextInt(5_000));
          assertThat(s.apply(m)).as(Seeds.describe(seed, "apply %s after %s", m, history))
              .isEqualTo(model.apply(m));
          history.add("apply " + m);
        } else {
          LwwModel.Sweep sweep = model.sweep(clock.millis());
          assertThat(s.runMaintenance()).as(Seeds.describe(seed, "sweep at %d after %s",
              clock.millis(), history)).isEqualTo(sweep.purged().size());
          history.add("sweep at " + clock.millis() + " purged " + sweep.purged());
        }
      }
      clock.advance(r.nextInt((int) grace * 2));
      LwwModel.Sweep last = model.sweep(clock.millis());
      assertThat(s.runMaintenance()).isEqualTo(last.purged().size());

      String ctx = Seeds.describe(seed, "history %s", history);
      TreeMap<String, Version> expectedVersions = model.versions();
      assertThat(Stores.heldVersions(s)).as(ctx).isEqualTo(expectedVersions);
      assertThat(Stores.rawState(s)).as(ctx).isEqualTo(model.raw());
      Digest expectedDigest = Stores.digestOf(expectedVersions, buckets);
      assertThat(s.digest()).as(ctx).isEqualTo(expectedDigest);

      // A store given only the final state has the same digest.
      DefaultKvStore direct = store("direct", clock, buckets);
      for (Map.Entry<String, Mutation> e : model.raw().entrySet()) {
        direct.apply(e.getValue());
      }
      assertThat(direct.digest()).as(ctx).isEqualTo(s.digest());
      assertThat(direct.digest().diff(s.digest())).as(ctx).isEmpty();
    });
  }

  private static byte[] bytes(SplittableRandom r) {
    byte[] b = new byte[1 + r.nextInt(6)];
    r.nextBytes(b);
    return b;
  }
}
