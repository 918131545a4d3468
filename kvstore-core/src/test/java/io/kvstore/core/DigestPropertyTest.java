package io.kvstore.core;

import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.Digest;
import io.kvstore.core.spi.KeyVersion;
import io.kvstore.core.spi.AntiEntropy;
import io.kvstore.core.spi.ApplyResult;
import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
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
        Set<String> held = new HashSet<>(Stores.heldVersions(s.replicaView()).keySet());
        held.removeIf(k -> !diffBits.get(Digest.bucketOf(k, buckets)));
        assertThat(listed).as(ctx).isEqualTo(held);
      }

      // Digests are exactly the XOR of the public entry hashes; keyVersions carry the fingerprints
      // of the entries mutations() returns.
      for (DefaultKvStore s : List.of(a, b)) {
        assertThat(s.digest()).as(ctx).isEqualTo(Stores.digestOf(Stores.rawState(s.replicaView()).values(), buckets));
        assertThat(Stores.heldEntries(s.replicaView()).values()).as(ctx)
            .containsExactlyElementsOf(Stores.rawState(s.replicaView()).values().stream().map(KeyVersion::of)
                .toList());
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
      assertThat(Stores.heldEntries(s.replicaView())).as(ctx).isEqualTo(model.keyVersions());
      assertThat(Stores.rawState(s.replicaView())).as(ctx).isEqualTo(model.raw());
      Digest expectedDigest = Stores.digestOf(model.raw().values(), buckets);
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

  /** How two replicas can hold different entries of one key under one version. */
  private enum Twin {
    OTHER_VALUE, OTHER_EXPIRY, DELETE_VS_PUT, EXPIRED_VS_OTHER_PUT, EXPIRED_VS_DELETE,
    /** Not different: a put and its own expired form, which hash alike on purpose. */
    PUT_VS_ITS_EXPIRED_FORM
  }

  @ParameterizedTest(name = Seeds.NAME)
  @MethodSource("io.kvstore.core.Seeds#seeds")
  void equalVersionsWithDifferentContent_landInDifferingBuckets_andAntiEntropyMakesStoresIdentical(
      long seed) {
    Seeds.run(seed, r -> {
      int buckets = BUCKET_COUNTS[r.nextInt(BUCKET_COUNTS.length)];
      ManualClock clock = new ManualClock(ManualClock.T0 + 60_000);
      DefaultKvStore a = store("a", clock, buckets); // digest kept up to date on every write
      DefaultKvStore b = store("b", clock, buckets); // digest computed when asked
      List<String> keys = new ArrayList<>();
      for (int i = 0, n = 1 + r.nextInt(40); i < n; i++) {
        keys.add("key-" + i);
      }
      Set<String> differing = new TreeSet<>();
      Set<String> sameButForTheSweep = new TreeSet<>();
      List<String> history = new ArrayList<>();
      for (String k : keys) {
        if (r.nextInt(3) == 0) {
          Mutation base = Mutation.put(k, bytes(r), Version.of(ManualClock.T0 + r.nextInt(1_000),
              0, "writer"), 0);
          a.apply(base);
          b.apply(base);
        }
        if (r.nextInt(2) == 0) {
          continue;
        }
        // The same version, newer than the base, with different contents on the two replicas.
        Version v = Version.of(ManualClock.T0 + 2_000 + r.nextInt(1_000), r.nextInt(4), "reused");
        Twin twin = Twin.values()[r.nextInt(Twin.values().length)];
        Mutation[] pair = twins(r, k, v, twin);
        boolean flip = r.nextBoolean();
        Mutation toA = pair[flip ? 1 : 0];
        Mutation toB = pair[flip ? 0 : 1];
        history.add(twin + ": a got " + toA + ", b got " + toB);
        assertThat(a.apply(toA)).as(Seeds.describe(seed, "apply %s", toA))
            .isEqualTo(ApplyResult.APPLIED);
        assertThat(b.apply(toB)).as(Seeds.describe(seed, "apply %s", toB))
            .isEqualTo(ApplyResult.APPLIED);
        (twin == Twin.PUT_VS_ITS_EXPIRED_FORM ? sameButForTheSweep : differing).add(k);
      }
      String ctx = Seeds.describe(seed, "%d buckets, %s", buckets, history);

      // The digests differ exactly in the buckets of the keys whose entries differ.
      int[] expected = bucketsOf(differing, buckets);
      assertThat(a.digest().diff(b.digest())).as(ctx).containsExactly(expected);
      BitSet diffBits = new BitSet();
      for (int i : expected) {
        diffBits.set(i);
      }
      // Anti-entropy moves exactly those keys, both ways (the version cannot say who wins).
      AntiEntropy.Plan plan = AntiEntropy.compare(a.keyVersions(diffBits), b.keyVersions(diffBits));
      assertThat(new TreeSet<>(plan.push())).as(ctx).isEqualTo(differing);
      assertThat(new TreeSet<>(plan.pull())).as(ctx).isEqualTo(differing);

      // Crossed messages: each side sends what it held before receiving anything.
      List<Mutation> pushed = a.mutations(plan.push());
      List<Mutation> pulled = b.mutations(plan.pull());
      pushed.forEach(b::apply);
      pulled.forEach(a::apply);
      assertThat(a.digest()).as(ctx).isEqualTo(b.digest())
          .isEqualTo(Stores.digestOf(Stores.rawState(b.replicaView()).values(), buckets));
      assertThat(Stores.heldEntries(a.replicaView())).as(ctx).isEqualTo(Stores.heldEntries(b.replicaView()));
      for (String k : differing) {
        Mutation winner = Stores.rawState(a.replicaView()).get(k);
        assertThat(Stores.rawState(b.replicaView()).get(k)).as(ctx).isEqualTo(winner);
        Mutation loser = pushed.stream().filter(m -> m.key().equals(k)).findFirst().orElseThrow();
        if (loser.equals(winner)) {
          loser = pulled.stream().filter(m -> m.key().equals(k)).findFirst().orElseThrow();
        }
        assertThat(LwwModel.SAME_VERSION.compare(winner, loser)).as(ctx + " winner of " + k)
            .isPositive();
      }
      // A put and its expired form differ only until both replicas have swept.
      a.runMaintenance();
      b.runMaintenance();
      assertThat(Stores.rawState(a.replicaView())).as(ctx).isEqualTo(Stores.rawState(b.replicaView()));
      assertThat(a.digest()).as(ctx).isEqualTo(b.digest());
      assertThat(sameButForTheSweep).as(ctx).allMatch(k -> a.get(k).isEmpty());
    });
  }

  /** Two mutations of {@code key} at {@code v}, different entries except for the last kind. */
  private static Mutation[] twins(SplittableRandom r, String key, Version v, Twin twin) {
    long past = v.physicalMillis() + 1 + r.nextInt(50_000); // before the clock (T0 + 60 s)
    long future = ManualClock.T0 + 120_000 + r.nextInt(50_000);
    long[] expiries = {0, past, future};
    long e = expiries[r.nextInt(3)];
    byte[] x = bytes(r);
    byte[] y = otherThan(r, x);
    switch (twin) {
      case OTHER_VALUE:
        return new Mutation[] {Mutation.put(key, x, v, e), Mutation.put(key, y, v, e)};
      case OTHER_EXPIRY: {
        long e2 = e == 0 ? past : e + 1 + r.nextInt(1_000);
        return new Mutation[] {Mutation.put(key, x, v, e), Mutation.put(key, x, v, e2)};
      }
      case DELETE_VS_PUT:
        return new Mutation[] {Mutation.delete(key, v), Mutation.put(key, x, v, e)};
      case EXPIRED_VS_OTHER_PUT:
        return new Mutation[] {Mutation.expired(key, v, past, Digest.valueHash(x)),
            Mutation.put(key, y, v, r.nextBoolean() ? past : e)};
      case EXPIRED_VS_DELETE:
        return new Mutation[] {Mutation.expired(key, v, past, Digest.valueHash(x)),
            Mutation.delete(key, v)};
      case PUT_VS_ITS_EXPIRED_FORM:
        return new Mutation[] {Mutation.put(key, x, v, past),
            Mutation.expired(key, v, past, Digest.valueHash(x))};
      default:
        throw new AssertionError(twin);
    }
  }

  private static byte[] otherThan(SplittableRandom r, byte[] x) {
    while (true) {
      byte[] y = r.nextInt(4) == 0 ? java.util.Arrays.copyOf(x, x.length + 1) : bytes(r);
      if (!java.util.Arrays.equals(x, y)) {
        return y;
      }
    }
  }

  private static byte[] bytes(SplittableRandom r) {
    byte[] b = new byte[1 + r.nextInt(6)];
    r.nextBytes(b);
    return b;
  }
}
