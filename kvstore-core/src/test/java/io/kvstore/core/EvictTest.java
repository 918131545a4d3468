package io.kvstore.core;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.kvstore.core.spi.ApplyResult;
import io.kvstore.core.spi.KeyVersion;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.ReplicaStore;
import io.kvstore.core.spi.Replicator;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@link ReplicaStore#evict}: a local, silent removal of exactly the listed entries, in memory. Every
 * behaviour runs on a standalone store (digest computed when asked) and on a store with a replicator
 * (digest maintained per change), since the two keep the digest differently.
 */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class EvictTest {
  private static final int BUCKETS = 16;

  static Stream<Arguments> kinds() {
    return Stream.of(
        Arguments.of("standalone", (Function<ManualClock, DefaultKvStore>)
            c -> Stores.open("self", c, BUCKETS)),
        Arguments.of("with a replicator", (Function<ManualClock, DefaultKvStore>)
            c -> Stores.openUnwired("self", c, BUCKETS)));
  }

  private static byte[] utf8(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  private static KeyVersion held(ReplicaStore r, String key) {
    return KeyVersion.of(r.mutation(key));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("kinds")
  void evict_removesOnlyKeysHoldingExactlyTheListedVersionAndFingerprint(String kind,
      Function<ManualClock, DefaultKvStore> open) {
    ManualClock clock = new ManualClock();
    try (DefaultKvStore s = open.apply(clock)) {
      ReplicaStore r = ReplicaViews.of(s);
      s.put("match", "1");
      Version olderOfB = s.put("b", "old");
      clock.advance(1);
      s.put("b", "new");
      s.put("c", "1");
      KeyVersion c = held(r, "c");

      long removed = r.evict(List.of(
          held(r, "match"),
          new KeyVersion("b", olderOfB, Mutation.put("b", utf8("old"), olderOfB, 0).fingerprint()),
          new KeyVersion("c", c.version(), c.fingerprint() + 1), // same version, other content
          new KeyVersion("never-held", c.version(), c.fingerprint())));

      assertThat(removed).isEqualTo(1);
      assertThat(s.getString("match")).isEmpty();
      assertThat(r.mutation("match")).as("no tombstone left behind").isNull();
      assertThat(s.getString("b")).hasValue("new");
      assertThat(s.getString("c")).hasValue("1");
      assertThat(Stores.heldVersions(r).keySet()).containsExactly("b", "c");
      assertThat(s.size()).isEqualTo(2);
    }
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("kinds")
  void evict_removesTombstonesAndExpiredPutsAndCountsThem(String kind,
      Function<ManualClock, DefaultKvStore> open) {
    ManualClock clock = new ManualClock();
    try (DefaultKvStore s = open.apply(clock)) {
      ReplicaStore r = ReplicaViews.of(s);
      s.put("deleted", "x");
      s.delete("deleted");
      s.put("ttl", utf8("y"), WriteOptions.defaults().withTtl(Duration.ofSeconds(1)));
      KeyVersion ttlAsHandedOff = held(r, "ttl"); // read while live
      s.put("swept", utf8("z"), WriteOptions.defaults().withTtl(Duration.ofSeconds(1)));
      s.put("live", "v");
      clock.advance(2_000);
      s.runMaintenance(); // "ttl" and "swept" become expired tombstones
      assertThat(s.stats().tombstones()).isEqualTo(3);

      long removed = r.evict(List.of(held(r, "deleted"), ttlAsHandedOff, held(r, "swept")));

      assertThat(removed).as("the expired form of a put is the same entry").isEqualTo(3);
      assertThat(Stores.heldVersions(r).keySet()).containsExactly("live");
      assertThat(s.stats().tombstones()).isZero();
      assertThat(s.stats().liveEntries()).isEqualTo(1);
      assertThat(s.stats().purged()).as("an eviction is not a purge").isZero();
    }
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("kinds")
  void digestAfterEvict_equalsTheDigestOfAStoreThatNeverHadTheKeys(String kind,
      Function<ManualClock, DefaultKvStore> open) {
    ManualClock clock = new ManualClock();
    try (DefaultKvStore s = open.apply(clock); DefaultKvStore never = open.apply(clock)) {
      ReplicaStore r = ReplicaViews.of(s);
      ReplicaStore n = ReplicaViews.of(never);
      List<KeyVersion> toEvict = new ArrayList<>();
      for (int i = 0; i < 200; i++) {
        Version v = Version.of(clock.millis(), i, "peer");
        Mutation m = i % 7 == 0 ? Mutation.delete("k" + i, v)
            : Mutation.put("k" + i, utf8("v" + i), v, i % 5 == 0 ? clock.millis() + 60_000 : 0);
        assertThat(r.apply(m)).isEqualTo(ApplyResult.APPLIED);
        if (i % 3 == 0) {
          toEvict.add(KeyVersion.of(m)); // every bucket loses some keys, keeps others
        } else {
          n.apply(m);
        }
      }
      assertThat(r.digest()).isNotEqualTo(n.digest());

      assertThat(r.evict(toEvict)).isEqualTo(toEvict.size());

      assertThat(r.digest()).isEqualTo(n.digest());
      assertThat(r.digest()).isEqualTo(Stores.digestOf(Stores.rawState(r).values(), BUCKETS));
      assertThat(Stores.rawState(r)).isEqualTo(Stores.rawState(n));
      assertThat(s.stats().liveEntries()).isEqualTo(never.stats().liveEntries());
      assertThat(s.stats().tombstones()).isEqualTo(never.stats().tombstones());
    }
  }

  @Test
  void evict_firesNoEventAndReplicatesNothing() {
    ConcurrentLinkedQueue<Mutation> sent = new ConcurrentLinkedQueue<>();
    ClusterView view = ClusterView.standalone(new Member("self", null, null, Member.Status.ALIVE));
    Replicator recording = new Replicator() {
      @Override
      public void start(ReplicaStore store) {}

      @Override
      public CompletableFuture<Void> replicate(Mutation mutation, WriteConcern concern,
          Duration timeout) {
        sent.add(mutation);
        return CompletableFuture.completedFuture(null);
      }

      @Override
      public ClusterView clusterView() {
        return view;
      }

      @Override
      public void close() {}
    };
    ManualClock clock = new ManualClock();
    try (KvStore s = Stores.builder("self", clock).replicator(config -> recording).build()) {
      ReplicaStore r = ReplicaViews.of(s);
      s.put("a", "1");
      r.apply(Mutation.put("b", utf8("2"), Version.of(clock.millis(), 0, "peer"), 0));
      ConcurrentLinkedQueue<ChangeEvent> events = new ConcurrentLinkedQueue<>();
      s.addListener("", events::add);
      sent.clear();

      assertThat(r.evict(List.of(held(r, "a"), held(r, "b")))).isEqualTo(2);

      assertThat(events).isEmpty();
      assertThat(sent).isEmpty();
      StoreStats st = s.stats();
      assertThat(st.deletes()).isZero();
      assertThat(st.remoteApplied()).isEqualTo(1);
    }
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("kinds")
  void evictedKey_isGoneFromReadsScansAndAntiEntropy_andComesBackLikeANewKey(String kind,
      Function<ManualClock, DefaultKvStore> open) {
    ManualClock clock = new ManualClock();
    try (DefaultKvStore s = open.apply(clock)) {
      ReplicaStore r = ReplicaViews.of(s);
      s.put("p/1", "a");
      s.put("p/2", "b");
      Mutation handedOff = r.mutation("p/1");

      assertThat(r.evict(List.of(KeyVersion.of(handedOff)))).isEqualTo(1);

      assertThat(s.get("p/1")).isEmpty();
      assertThat(s.scan("p/", 10)).extracting(Versioned::key).containsExactly("p/2");
      assertThat(r.scanLocal("p/", null, 10)).extracting(Mutation::key).containsExactly("p/2");
      assertThat(r.mutations(List.of("p/1", "p/2"))).extracting(Mutation::key)
          .containsExactly("p/2");
      assertThat(Stores.heldVersions(r)).doesNotContainKey("p/1");
      // The partition handed back: the same version applies again, as on a store that never had it.
      assertThat(r.apply(handedOff)).isEqualTo(ApplyResult.APPLIED);
      assertThat(s.getString("p/1")).hasValue("a");
      // Evicting again the entry already gone, or twice in one call, removes it once.
      assertThat(r.evict(List.of(KeyVersion.of(handedOff), KeyVersion.of(handedOff)))).isEqualTo(1);
      assertThat(r.evict(List.of(KeyVersion.of(handedOff)))).isZero();
      assertThat(r.evict(Collections.emptyList())).isZero();
    }
  }

  /**
   * The race the compare-and-remove exists for: a newer write lands between the eviction reading the
   * entry and removing it. Deterministic through a seam that applies the write at exactly that point.
   */
  @ParameterizedTest(name = "{0}")
  @MethodSource("kinds")
  void aNewerWriteBetweenReadAndRemove_survivesTheEviction(String kind,
      Function<ManualClock, DefaultKvStore> open) {
    ManualClock clock = new ManualClock();
    try (DefaultKvStore s = open.apply(clock)) {
      ReplicaStore r = ReplicaViews.of(s);
      s.put("k", "old");
      KeyVersion old = held(r, "k");
      Mutation newer = Mutation.put("k", utf8("newer"), Version.of(clock.millis() + 5, 0, "peer"), 0);
      s.beforeEvictRemoveForTest(() -> r.apply(newer));

      assertThat(r.evict(List.of(old))).isZero();

      s.beforeEvictRemoveForTest(null);
      assertThat(r.mutation("k")).isEqualTo(newer);
      assertThat(r.digest()).isEqualTo(Stores.digestOf(List.of(newer), BUCKETS));
      assertThat(s.size()).isEqualTo(1);
    }
  }

  @Test
  void theSweepExpiringTheEntryMeanwhile_doesNotStopTheEviction() {
    ManualClock clock = new ManualClock();
    try (DefaultKvStore s = Stores.openUnwired("self", clock, BUCKETS)) {
      ReplicaStore r = ReplicaViews.of(s);
      s.put("k", utf8("v"), WriteOptions.defaults().withTtl(Duration.ofSeconds(1)));
      KeyVersion handedOff = held(r, "k");
      clock.advance(2_000);
      s.beforeEvictRemoveForTest(s::runMaintenance); // the put becomes its expired form

      assertThat(r.evict(List.of(handedOff))).isEqualTo(1);

      s.beforeEvictRemoveForTest(null);
      assertThat(r.mutation("k")).isNull();
      assertThat(s.stats().tombstones()).isZero();
      assertThat(r.digest()).isEqualTo(Stores.digestOf(List.of(), BUCKETS));
    }
  }

  @Test
  void aClosedStore_evictsNothing_andNullsAreRefused() {
    ManualClock clock = new ManualClock();
    DefaultKvStore s = Stores.open("self", clock);
    ReplicaStore r = ReplicaViews.of(s);
    s.put("k", "v");
    KeyVersion kv = held(r, "k");
    assertThatThrownBy(() -> r.evict(null)).isInstanceOf(NullPointerException.class);
    assertThatThrownBy(() -> r.evict(Collections.singletonList(null)))
        .isInstanceOf(NullPointerException.class);
    s.close();
    assertThat(r.evict(List.of(kv))).isZero();
  }
}
