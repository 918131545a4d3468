package io.kvstore.core;

import io.kvstore.core.spi.ReplicaStore;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.Digest;
import io.kvstore.core.spi.ApplyResult;
import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The last-writer-wins merge of {@link ReplicaStore#apply(Mutation)} is commutative, associative and
 * idempotent, and any delivery order or duplication of a set of mutations ends in the state a
 * reference model computes ({@link LwwModel}): same versions, same readable values, same digest and,
 * after a maintenance sweep, the same stored entries.
 *
 * <p>Stores merge by anti-entropy's means: every entry of one store ({@link ReplicaStore#mutations})
 * applied to another.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class LwwMergePropertyTest {
  /** The stores' clock: every generated past expiry is at or before it; no tombstone is purged. */
  private static final long NOW = ManualClock.T0 + 600_000;
  private static final long GRACE = KvStoreConfig.DEFAULT_TOMBSTONE_GRACE.toMillis();
  private static final int[] BUCKET_COUNTS = {1, 4, 64, 1024};

  private final List<KvStore> opened = new ArrayList<>();
  private final ManualClock clock = new ManualClock(NOW);
  private int buckets;

  @AfterEach
  void closeStores() {
    opened.forEach(KvStore::close);
  }

  private DefaultKvStore store() {
    DefaultKvStore s = Stores.open("self", clock, buckets);
    opened.add(s);
    return s;
  }

  private DefaultKvStore storeOf(List<Mutation> mutations) {
    DefaultKvStore s = store();
    mutations.forEach(s::apply);
    return s;
  }

  /** A fresh store holding {@code first}'s entries merged with {@code second}'s. */
  private DefaultKvStore merge(ReplicaStore first, ReplicaStore second) {
    DefaultKvStore s = store();
    Stores.copyInto(first, s.replicaView());
    Stores.copyInto(second, s.replicaView());
    return s;
  }

  private void pickBuckets(SplittableRandom r) {
    buckets = BUCKET_COUNTS[r.nextInt(BUCKET_COUNTS.length)];
  }

  private static List<Mutation> shuffledWithDuplicates(SplittableRandom r, List<Mutation> ms) {
    List<Mutation> out = new ArrayList<>(ms);
    int dups = r.nextInt(ms.size() + 1);
    for (int i = 0; i < dups; i++) {
      out.add(Seeds.pick(r, ms));
    }
    for (int i = out.size() - 1; i > 0; i--) {
      int j = r.nextInt(i + 1);
      out.set(i, out.set(j, out.get(i)));
    }
    return out;
  }

  @ParameterizedTest(name = Seeds.NAME)
  @MethodSource("io.kvstore.core.Seeds#seeds")
  void anyDeliveryOrderOrDuplication_endsInTheModelState(long seed) {
    Seeds.run(seed, r -> {
      pickBuckets(r);
      MutationGen gen = MutationGen.random(r, NOW);
      List<Mutation> mutations = gen.batch(1 + r.nextInt(40));
      TreeMap<String, Mutation> sweptRawOfFirstRun = null;
      for (int run = 0; run < 3; run++) {
        List<Mutation> delivery = shuffledWithDuplicates(r, mutations);
        LwwModel model = new LwwModel(GRACE);
        DefaultKvStore s = store();
        long applied = 0;
        for (int i = 0; i < delivery.size(); i++) {
          Mutation m = delivery.get(i);
          ApplyResult expected = model.apply(m);
          applied += expected == ApplyResult.APPLIED ? 1 : 0;
          assertThat(s.apply(m))
              .as(Seeds.describe(seed, "run %d: apply of delivery #%d %s", run, i, m))
              .isEqualTo(expected);
        }
        String ctx = Seeds.describe(seed, "run %d, delivery %s", run, delivery);
        // Same delivery order as the model, so even the stored form of each entry must match.
        assertThat(Stores.rawState(s.replicaView())).as(ctx).isEqualTo(model.raw());
        assertThat(Stores.view(s)).as(ctx).isEqualTo(model.view(NOW, buckets));
        assertThat(s.stats().remoteApplied()).as(ctx).isEqualTo(applied);
        assertThat(s.stats().remoteIgnored()).as(ctx).isEqualTo(delivery.size() - applied);
        assertThat(s.size()).as(ctx).isEqualTo(model.valueCount());
        assertThat(s.stats().tombstones()).as(ctx).isEqualTo(model.tombstoneCount());

        model.sweep(NOW);
        assertThat(s.runMaintenance()).as(ctx).isZero();
        assertThat(Stores.rawState(s.replicaView())).as(ctx).isEqualTo(model.raw());
        assertThat(s.size()).as(ctx).isEqualTo(model.valueCount());
        assertThat(s.stats().tombstones()).as(ctx).isEqualTo(model.tombstoneCount());
        if (sweptRawOfFirstRun == null) {
          sweptRawOfFirstRun = Stores.rawState(s.replicaView());
        } else {
          assertThat(Stores.rawState(s.replicaView())).as(ctx).isEqualTo(sweptRawOfFirstRun);
        }
      }
    });
  }

  /**
   * Different writes under one version (a node restarted empty reusing a timestamp): whatever the
   * order, the duplicates, and which of them arrive already expired, every store keeps the same
   * winner, the highest by the documented tie-break; an exact duplicate is ignored.
   */
  @ParameterizedTest(name = Seeds.NAME)
  @MethodSource("io.kvstore.core.Seeds#seeds")
  void differentWritesOfOneVersion_everyOrderKeepsTheSameWinner(long seed) {
    Seeds.run(seed, r -> {
      pickBuckets(r);
      Version v = Version.of(ManualClock.T0 + r.nextInt(1_000), r.nextInt(3), "reused");
      List<Mutation> writes = new ArrayList<>();
      byte[] shared = new byte[r.nextInt(4)];
      r.nextBytes(shared);
      for (int i = 0, n = 2 + r.nextInt(6); i < n; i++) {
        int kind = r.nextInt(8);
        long expiry = r.nextInt(3) == 0 ? 0 : ManualClock.T0 + 1_000 + r.nextInt(1_200_000);
        byte[] value = new byte[r.nextInt(4)];
        r.nextBytes(value);
        Mutation m = kind == 0 ? Mutation.delete("k", v)
            : Mutation.put("k", kind < 4 ? shared : value, v, expiry); // same value, other expiry
        // A put whose TTL passed may arrive in the form a replica that swept it sends.
        if (!m.isDelete() && expiry != 0 && expiry <= NOW && r.nextBoolean()) {
          m = Mutation.expired("k", v, expiry, m.valueHash());
        }
        writes.add(m);
      }
      TreeMap<String, Mutation> sweptOfFirstRun = null;
      Digest digestOfFirstRun = null;
      for (int run = 0; run < 4; run++) {
        List<Mutation> delivery = shuffledWithDuplicates(r, writes);
        DefaultKvStore s = run % 2 == 0 ? store() : Stores.openUnwired("self", clock, buckets);
        opened.add(s);
        Mutation held = null;
        for (Mutation m : delivery) {
          boolean wins = held == null || LwwModel.SAME_VERSION.compare(m, held) > 0;
          assertThat(s.apply(m)).as(Seeds.describe(seed, "run %d: apply %s holding %s", run, m, held))
              .isEqualTo(wins ? ApplyResult.APPLIED : ApplyResult.IGNORED);
          held = wins ? m : held;
        }
        String ctx = Seeds.describe(seed, "run %d, delivery %s", run, delivery);
        assertThat(held).as(ctx).isEqualTo(writes.stream().max(LwwModel.SAME_VERSION).orElseThrow());
        assertThat(Stores.rawState(s.replicaView())).as(ctx).containsExactly(java.util.Map.entry("k", held));
        // The digest does not depend on whether the winner arrived expired.
        if (digestOfFirstRun == null) {
          digestOfFirstRun = s.digest();
        }
        assertThat(s.digest()).as(ctx).isEqualTo(digestOfFirstRun)
            .isEqualTo(Stores.digestOf(List.of(held), buckets));
        s.runMaintenance();
        if (sweptOfFirstRun == null) {
          sweptOfFirstRun = Stores.rawState(s.replicaView());
        }
        assertThat(Stores.rawState(s.replicaView())).as(ctx).isEqualTo(sweptOfFirstRun);
      }
    });
  }

  @ParameterizedTest(name = Seeds.NAME)
  @MethodSource("io.kvstore.core.Seeds#seeds")
  void merge_isCommutative(long seed) {
    Seeds.run(seed, r -> {
      pickBuckets(r);
      MutationGen gen = MutationGen.random(r, NOW);
      // Two mutations at a time, in both orders.
      for (int i = 0; i < 10; i++) {
        Mutation a = gen.next();
        Mutation b = gen.next();
        DefaultKvStore ab = storeOf(List.of(a, b));
        DefaultKvStore ba = storeOf(List.of(b, a));
        String ctx = Seeds.describe(seed, "apply(%s) then apply(%s), and the reverse", a, b);
        assertThat(Stores.view(ab)).as(ctx).isEqualTo(Stores.view(ba));
        ab.runMaintenance();
        ba.runMaintenance();
        assertThat(Stores.rawState(ab.replicaView())).as(ctx).isEqualTo(Stores.rawState(ba.replicaView()));
      }
      // Whole stores.
      List<Mutation> batchA = gen.batch(1 + r.nextInt(25));
      List<Mutation> batchB = gen.batch(1 + r.nextInt(25));
      DefaultKvStore sa = storeOf(batchA);
      DefaultKvStore sb = storeOf(batchB);
      DefaultKvStore ab = merge(sa.replicaView(), sb.replicaView());
      DefaultKvStore ba = merge(sb.replicaView(), sa.replicaView());
      LwwModel model = new LwwModel(GRACE);
      batchA.forEach(model::apply);
      batchB.forEach(model::apply);
      String ctx = Seeds.describe(seed, "merge(A, B) vs merge(B, A), A=%s, B=%s", batchA, batchB);
      assertThat(Stores.view(ab)).as(ctx).isEqualTo(Stores.view(ba))
          .isEqualTo(model.view(NOW, buckets));
      ab.runMaintenance();
      ba.runMaintenance();
      model.sweep(NOW);
      assertThat(Stores.rawState(ab.replicaView())).as(ctx).isEqualTo(Stores.rawState(ba.replicaView()))
          .isEqualTo(model.raw());
    });
  }

  @ParameterizedTest(name = Seeds.NAME)
  @MethodSource("io.kvstore.core.Seeds#seeds")
  void merge_isAssociative(long seed) {
    Seeds.run(seed, r -> {
      pickBuckets(r);
      MutationGen gen = MutationGen.random(r, NOW);
      List<Mutation> batchA = gen.batch(1 + r.nextInt(20));
      List<Mutation> batchB = gen.batch(1 + r.nextInt(20));
      List<Mutation> batchC = gen.batch(1 + r.nextInt(20));
      DefaultKvStore sa = storeOf(batchA);
      DefaultKvStore sb = storeOf(batchB);
      DefaultKvStore sc = storeOf(batchC);
      DefaultKvStore left = merge(merge(sa.replicaView(), sb.replicaView()).replicaView(),
          sc.replicaView());
      DefaultKvStore right = merge(sa.replicaView(),
          merge(sb.replicaView(), sc.replicaView()).replicaView());
      List<Mutation> all = new ArrayList<>(batchA);
      all.addAll(batchB);
      all.addAll(batchC);
      DefaultKvStore flat = storeOf(all);
      String ctx = Seeds.describe(seed, "(A+B)+C vs A+(B+C) vs one store, A=%s, B=%s, C=%s",
          batchA, batchB, batchC);
      assertThat(Stores.view(left)).as(ctx).isEqualTo(Stores.view(right))
          .isEqualTo(Stores.view(flat));
      for (DefaultKvStore s : List.of(left, right, flat)) {
        s.runMaintenance();
      }
      assertThat(Stores.rawState(left.replicaView())).as(ctx).isEqualTo(Stores.rawState(right.replicaView()))
          .isEqualTo(Stores.rawState(flat.replicaView()));
    });
  }

  @ParameterizedTest(name = Seeds.NAME)
  @MethodSource("io.kvstore.core.Seeds#seeds")
  void merge_isIdempotent(long seed) {
    Seeds.run(seed, r -> {
      pickBuckets(r);
      MutationGen gen = MutationGen.random(r, NOW);
      List<Mutation> batch = gen.batch(1 + r.nextInt(40));
      DefaultKvStore s = storeOf(batch);
      Stores.View before = Stores.view(s);
      TreeMap<String, Mutation> rawBefore = Stores.rawState(s.replicaView());
      StoreStats statsBefore = s.stats();
      String ctx = Seeds.describe(seed, "batch %s", batch);

      // Every mutation again: each is now equal to or older than what is held.
      for (Mutation m : batch) {
        assertThat(s.apply(m)).as(Seeds.describe(seed, "re-apply of %s", m))
            .isEqualTo(ApplyResult.IGNORED);
      }
      // The store's own entries back into itself, and a merge of the store with itself.
      assertThat(Stores.copyInto(s.replicaView(), s.replicaView())).as(ctx).containsOnly(ApplyResult.IGNORED);
      DefaultKvStore twice = merge(s.replicaView(), s.replicaView());

      assertThat(Stores.rawState(s.replicaView())).as(ctx).isEqualTo(rawBefore);
      assertThat(Stores.view(s)).as(ctx).isEqualTo(before);
      assertThat(Stores.view(twice)).as(ctx).isEqualTo(before);
      assertThat(s.stats().remoteApplied()).as(ctx).isEqualTo(statsBefore.remoteApplied());
      assertThat(s.stats().liveEntries()).as(ctx).isEqualTo(statsBefore.liveEntries());
      assertThat(s.stats().tombstones()).as(ctx).isEqualTo(statsBefore.tombstones());
    });
  }
}
