package io.kvstore.core.testing;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assumptions.assumeThat;

import io.kvstore.core.spi.ApplyResult;
import io.kvstore.core.ChangeEvent;
import io.kvstore.core.spi.Digest;
import io.kvstore.core.KvStore;
import io.kvstore.core.Member;
import io.kvstore.core.MembershipEvent;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.Registration;
import io.kvstore.core.spi.ReplicaStore;
import io.kvstore.core.Version;
import io.kvstore.core.Versioned;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteConcernException;
import io.kvstore.core.WriteOptions;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.SortedMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The behaviour every {@link io.kvstore.core.spi.Replicator} must show, written once and run against each
 * implementation (kvstore-cluster runs it over its engine on a simulated network and over Netty).
 *
 * <pre>{@code
 * class NettyReplicatorContractTest extends ReplicatorContract {
 *   @Override
 *   protected Fixture createFixture(int nodes) {
 *     return new RealClusterFixture(nodes); // starts nodes on loopback with ManualClocks
 *   }
 * }
 * }</pre>
 *
 * <p>Each test gets a fresh fixture of {@link #nodeCount()} connected stores and closes it afterwards.
 * Tests that need partitions are skipped (assumption) when {@link Fixture#supportsPartitions()} is false.
 * Writes are issued through the async API and waited for with {@link Fixture#await}, so a fixture that
 * delivers messages only when told to (a deterministic network) drives delivery there; a real cluster
 * just waits.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
public abstract class ReplicatorContract {

  /**
   * A running cluster of stores for one test. Implementations for real clusters wait by polling
   * (Awaitility); deterministic ones step their network.
   */
  public interface Fixture extends AutoCloseable {
    /**
     * The running stores, in a stable order; the same objects on every call until {@link #addNode()}.
     *
     * @return the stores
     */
    List<KvStore> stores();

    /**
     * The replica side of a store (as its replicator sees it), to read its full state with tombstones.
     *
     * @param index index into {@link #stores()}
     * @return its replica store
     */
    ReplicaStore replicaStore(int index);

    /**
     * Starts one more store, empty, and joins it to the cluster; it appears at the end of
     * {@link #stores()}. Its clock shows the same time as the others'.
     *
     * @return the new store
     */
    KvStore addNode();

    /**
     * Waits until every store holds the same keys at the same versions (equal digests), with every
     * message delivered and anti-entropy run as needed.
     *
     * @throws AssertionError if that does not happen within the fixture's bound
     */
    void settle();

    /**
     * Waits for a future, driving replication meanwhile if the fixture must.
     *
     * @param future the future
     * @param <T> its value type
     * @return its value
     * @throws RuntimeException the future's own failure (for example {@link WriteConcernException}),
     *     unwrapped
     */
    <T> T await(CompletableFuture<T> future);

    /**
     * Waits until a condition holds, driving replication meanwhile if the fixture must.
     *
     * @param description what is awaited, for the failure message
     * @param condition the condition
     * @throws AssertionError if it does not hold within the fixture's bound
     */
    void awaitUntil(String description, BooleanSupplier condition);

    /**
     * Moves every store's clock forward (fixtures inject {@link ManualClock}s).
     *
     * @param duration how far
     */
    void advanceClocks(Duration duration);

    /**
     * Whether {@link #partition} and {@link #heal} work.
     *
     * @return true if they do
     */
    default boolean supportsPartitions() {
      return false;
    }

    /**
     * Splits the cluster: stores in different groups cannot exchange messages. Membership must not
     * change for at least {@link ReplicatorContract#failingWriteTimeout()} (a real cluster's failure
     * detector is slower than that).
     *
     * @param groups disjoint groups of node ids; unnamed nodes form one more group
     */
    default void partition(List<Set<String>> groups) {
      throw new UnsupportedOperationException("this fixture does not support partitions");
    }

    /** Removes every partition. */
    default void heal() {
      throw new UnsupportedOperationException("this fixture does not support partitions");
    }

    /** Stops every store and releases everything; fails if a background thread failed. */
    @Override
    void close();
  }

  /** The fixture of the running test. */
  protected Fixture cluster;

  /**
   * Creates a fixture of connected stores, every one empty, with the default write concern ONE.
   *
   * @param nodes how many stores
   * @return the running fixture
   */
  protected abstract Fixture createFixture(int nodes);

  /**
   * Stores per test (default 3: QUORUM needs 2, ALL needs 3).
   *
   * @return at least 3
   */
  protected int nodeCount() {
    return 3;
  }

  /**
   * Timeout of writes that are expected to fail; short, but longer than a healthy round trip.
   *
   * @return default 1 s
   */
  protected Duration failingWriteTimeout() {
    return Duration.ofSeconds(1);
  }

  @BeforeEach
  void startCluster() {
    cluster = createFixture(nodeCount());
    assertThat(cluster.stores()).as("stores of a new fixture").hasSize(nodeCount());
  }

  @AfterEach
  void stopCluster() {
    if (cluster != null) {
      cluster.close();
    }
  }

  // ---- propagation -----------------------------------------------------------------------------

  @Test
  void when_writtenOnAnyNode_then_visibleOnAllNodes() {
    List<KvStore> stores = cluster.stores();
    List<Version> versions = new ArrayList<>();
    for (int i = 0; i < stores.size(); i++) {
      versions.add(cluster.await(stores.get(i).putAsync("key-" + i, bytes("value-" + i),
          WriteOptions.defaults())));
    }
    cluster.settle();
    for (KvStore reader : stores) {
      for (int i = 0; i < stores.size(); i++) {
        Optional<Versioned> got = reader.getVersioned("key-" + i);
        assertThat(got).as("key-%d on %s", i, id(reader)).isPresent();
        assertThat(got.get().valueAsString()).isEqualTo("value-" + i);
        assertThat(got.get().version()).isEqualTo(versions.get(i));
      }
    }
    assertIdenticalReplicas();
  }

  @Test
  void when_deletedOnAnotherNode_then_absentEverywhere_andOlderWritesDoNotBringItBack() {
    List<KvStore> stores = cluster.stores();
    Version put = cluster.await(stores.get(0).putAsync("doomed", bytes("alive"),
        WriteOptions.defaults()));
    cluster.settle();
    Version delete = deleteAndCaptureVersion(stores.get(1), "doomed");
    assertThat(delete).isGreaterThan(put);
    cluster.settle();
    for (int i = 0; i < stores.size(); i++) {
      assertThat(stores.get(i).get("doomed")).as("deleted key on %s", id(stores.get(i))).isEmpty();
      assertThat(heldVersion(cluster.replicaStore(i), "doomed"))
          .as("tombstone on %s", id(stores.get(i))).contains(delete);
    }
    // The old put arriving late (a retransmission, a slow peer) must lose to the tombstone.
    Mutation stale = Mutation.put("doomed", bytes("alive"), put, 0);
    for (int i = 0; i < stores.size(); i++) {
      assertThat(cluster.replicaStore(i).apply(stale)).isEqualTo(ApplyResult.IGNORED);
    }
    cluster.settle();
    for (KvStore s : stores) {
      assertThat(s.get("doomed")).as("deleted key on %s after re-sync", id(s)).isEmpty();
    }
    assertIdenticalReplicas();
  }

  @Test
  void when_partitionedReplicaMissesDelete_then_deleteWinsAfterHeal() {
    assumeThat(cluster.supportsPartitions()).as("fixture supports partitions").isTrue();
    List<KvStore> stores = cluster.stores();
    KvStore cutOff = stores.get(stores.size() - 1);
    cluster.await(stores.get(0).putAsync("k", bytes("old"), WriteOptions.defaults()));
    cluster.settle();
    cluster.partition(List.of(Set.of(id(cutOff))));
    Version delete = deleteAndCaptureVersion(stores.get(0), "k");
    cluster.awaitUntil("the delete reaches the connected nodes", () -> {
      for (KvStore s : stores) {
        if (s != cutOff && s.get("k").isPresent()) {
          return false;
        }
      }
      return true;
    });
    assertThat(cutOff.getString("k")).as("value on the cut-off node").contains("old");
    cluster.heal();
    cluster.settle();
    for (int i = 0; i < stores.size(); i++) {
      assertThat(stores.get(i).get("k")).as("k on %s after heal", id(stores.get(i))).isEmpty();
      assertThat(heldVersion(cluster.replicaStore(i), "k")).contains(delete);
    }
  }

  @Test
  void when_nodesWriteOneKeyConcurrently_then_allConvergeToTheHighestVersion() {
    List<KvStore> stores = cluster.stores();
    List<CompletableFuture<Version>> puts = new ArrayList<>();
    for (int i = 0; i < stores.size(); i++) {
      puts.add(stores.get(i).putAsync("contended", bytes("from-" + i), WriteOptions.defaults()));
    }
    Version winner = null;
    int winnerIndex = -1;
    for (int i = 0; i < puts.size(); i++) {
      Version v = cluster.await(puts.get(i));
      if (winner == null || v.isNewerThan(winner)) {
        winner = v;
        winnerIndex = i;
      }
    }
    cluster.settle();
    for (KvStore s : stores) {
      Optional<Versioned> got = s.getVersioned("contended");
      assertThat(got).as("contended on %s", id(s)).isPresent();
      assertThat(got.get().version()).as("winning version on %s", id(s)).isEqualTo(winner);
      assertThat(got.get().valueAsString()).isEqualTo("from-" + winnerIndex);
    }
    assertIdenticalReplicas();
  }

  @Test
  void when_putAndDeleteRace_then_theHigherVersionWinsEverywhere() {
    List<KvStore> stores = cluster.stores();
    CompletableFuture<Version> put0 = stores.get(0).putAsync("race", bytes("a"),
        WriteOptions.defaults());
    Version delete = deleteAndCaptureVersion(stores.get(1), "race");
    CompletableFuture<Version> put2 = stores.get(2).putAsync("race", bytes("c"),
        WriteOptions.defaults());
    Version v0 = cluster.await(put0);
    Version v2 = cluster.await(put2);
    cluster.settle();
    Version max = v0;
    String expected = "a";
    if (delete.isNewerThan(max)) {
      max = delete;
      expected = null;
    }
    if (v2.isNewerThan(max)) {
      max = v2;
      expected = "c";
    }
    for (int i = 0; i < stores.size(); i++) {
      assertThat(heldVersion(cluster.replicaStore(i), "race")).contains(max);
      if (expected == null) {
        assertThat(stores.get(i).get("race")).as("race on %s", id(stores.get(i))).isEmpty();
      } else {
        assertThat(stores.get(i).getString("race")).as("race on %s", id(stores.get(i)))
            .contains(expected);
      }
    }
  }

  // ---- TTL -------------------------------------------------------------------------------------

  @Test
  void when_ttlPasses_then_keyExpiresOnEveryNodeAtTheSameInstant() {
    List<KvStore> stores = cluster.stores();
    Version v = cluster.await(stores.get(0).putAsync("session", bytes("s"),
        WriteOptions.defaults().withTtl(Duration.ofSeconds(30))));
    cluster.settle();
    Instant expiry = Instant.ofEpochMilli(v.physicalMillis() + 30_000);
    for (KvStore s : stores) {
      Optional<Versioned> got = s.getVersioned("session");
      assertThat(got).as("session on %s before expiry", id(s)).isPresent();
      assertThat(got.get().expiresAt()).as("expiry on %s", id(s)).contains(expiry);
    }
    cluster.advanceClocks(Duration.ofSeconds(31));
    for (KvStore s : stores) {
      assertThat(s.get("session")).as("session on %s after expiry", id(s)).isEmpty();
    }
    cluster.settle();
    assertIdenticalReplicas();
  }

  // ---- write concerns --------------------------------------------------------------------------

  @Test
  void when_writeConcernAllCompletes_then_everyReplicaHoldsTheWrite() {
    List<KvStore> stores = cluster.stores();
    Version v = cluster.await(stores.get(0).putAsync("all", bytes("x"),
        WriteOptions.concern(WriteConcern.ALL)));
    for (int i = 0; i < stores.size(); i++) {
      assertThat(holds(i, "all", v)).as("%s holds the ALL write when it completes", id(stores.get(i)))
          .isTrue();
    }
  }

  @Test
  void when_writeConcernQuorumCompletes_then_aMajorityHoldsTheWrite() {
    List<KvStore> stores = cluster.stores();
    Version v = cluster.await(stores.get(1).putAsync("quorum", bytes("x"),
        WriteOptions.concern(WriteConcern.QUORUM)));
    int holders = 0;
    for (int i = 0; i < stores.size(); i++) {
      holders += holds(i, "quorum", v) ? 1 : 0;
    }
    assertThat(holders).as("replicas holding the QUORUM write when it completed")
        .isGreaterThanOrEqualTo(WriteConcern.QUORUM.requiredAcks(stores.size()));
  }

  @Test
  void when_deleteWithConcernAllCompletes_then_everyReplicaHoldsTheTombstone() {
    List<KvStore> stores = cluster.stores();
    cluster.await(stores.get(0).putAsync("gone", bytes("x"), WriteOptions.defaults()));
    cluster.settle();
    Version delete = deleteAndCaptureVersion(stores.get(2), "gone",
        WriteOptions.concern(WriteConcern.ALL));
    for (int i = 0; i < stores.size(); i++) {
      assertThat(heldVersion(cluster.replicaStore(i), "gone")).as("tombstone on %s",
          id(stores.get(i))).contains(delete);
      assertThat(stores.get(i).get("gone")).isEmpty();
    }
  }

  @Test
  void when_aReplicaIsPartitioned_then_writeConcernAllFailsWithWriteConcernException() {
    assumeThat(cluster.supportsPartitions()).as("fixture supports partitions").isTrue();
    List<KvStore> stores = cluster.stores();
    KvStore cutOff = stores.get(stores.size() - 1);
    cluster.partition(List.of(Set.of(id(cutOff))));
    CompletableFuture<Version> write = stores.get(0).putAsync("all", bytes("x"),
        WriteOptions.concern(WriteConcern.ALL).withTimeout(failingWriteTimeout()));
    assertThatThrownBy(() -> cluster.await(write))
        .isInstanceOfSatisfying(WriteConcernException.class, e -> {
          assertThat(e.concern()).isEqualTo(WriteConcern.ALL);
          assertThat(e.required()).isEqualTo(stores.size());
          assertThat(e.acknowledged()).isBetween(1, stores.size() - 1);
        });
    assertThat(cutOff.get("all")).as("the partitioned node never saw the write").isEmpty();
    assertThat(stores.get(0).getString("all")).as("the write is not rolled back").contains("x");
    cluster.heal();
    cluster.settle();
    for (KvStore s : stores) {
      assertThat(s.getString("all")).as("the failed write still spreads to %s", id(s)).contains("x");
    }
  }

  @Test
  void when_majorityIsUnreachable_then_quorumFails_butWriteConcernOneSucceeds() {
    assumeThat(cluster.supportsPartitions()).as("fixture supports partitions").isTrue();
    List<KvStore> stores = cluster.stores();
    List<Set<String>> alone = new ArrayList<>();
    for (KvStore s : stores) {
      alone.add(Set.of(id(s)));
    }
    cluster.partition(alone);
    CompletableFuture<Version> quorum = stores.get(0).putAsync("q", bytes("1"),
        WriteOptions.concern(WriteConcern.QUORUM).withTimeout(failingWriteTimeout()));
    assertThatThrownBy(() -> cluster.await(quorum))
        .isInstanceOfSatisfying(WriteConcernException.class, e -> {
          assertThat(e.concern()).isEqualTo(WriteConcern.QUORUM);
          assertThat(e.required()).isEqualTo(WriteConcern.QUORUM.requiredAcks(stores.size()));
          assertThat(e.acknowledged()).isEqualTo(1);
        });
    Version one = cluster.await(stores.get(0).putAsync("q", bytes("2"),
        WriteOptions.concern(WriteConcern.ONE)));
    for (int i = 1; i < stores.size(); i++) {
      assertThat(stores.get(i).get("q")).as("isolated %s", id(stores.get(i))).isEmpty();
    }
    cluster.heal();
    cluster.settle();
    for (int i = 0; i < stores.size(); i++) {
      assertThat(heldVersion(cluster.replicaStore(i), "q")).contains(one);
    }
  }

  @Test
  void when_minorityIsPartitioned_then_quorumSucceedsOnTheMajoritySide() {
    assumeThat(cluster.supportsPartitions()).as("fixture supports partitions").isTrue();
    List<KvStore> stores = cluster.stores();
    cluster.partition(List.of(Set.of(id(stores.get(stores.size() - 1)))));
    Version v = cluster.await(stores.get(0).putAsync("q", bytes("1"),
        WriteOptions.concern(WriteConcern.QUORUM)));
    int holders = 0;
    for (int i = 0; i < stores.size(); i++) {
      holders += holds(i, "q", v) ? 1 : 0;
    }
    assertThat(holders).isGreaterThanOrEqualTo(WriteConcern.QUORUM.requiredAcks(stores.size()));
    assertThat(stores.get(stores.size() - 1).get("q")).as("the minority missed it").isEmpty();
  }

  // ---- idempotence -----------------------------------------------------------------------------

  @Test
  void when_mutationIsAppliedAgain_then_nothingChanges() {
    List<KvStore> stores = cluster.stores();
    Version v = cluster.await(stores.get(0).putAsync("idem", bytes("once"), WriteOptions.defaults()));
    cluster.settle();
    Mutation m = cluster.replicaStore(0).mutations(List.of("idem")).get(0);
    List<Digest> before = digests();
    AtomicInteger events = new AtomicInteger();
    List<Registration> regs = new ArrayList<>();
    for (KvStore s : stores) {
      regs.add(s.addListener("", e -> events.incrementAndGet()));
    }
    try {
      Mutation older = Mutation.put("idem", bytes("older"), Version.of(v.timestamp() - 1, v.nodeId()), 0);
      Mutation olderDelete = Mutation.delete("idem", Version.of(v.timestamp() - 1, "zzz-other"));
      for (int i = 0; i < stores.size(); i++) {
        ReplicaStore r = cluster.replicaStore(i);
        assertThat(r.apply(m)).as("re-applying on %s", id(stores.get(i))).isEqualTo(ApplyResult.IGNORED);
        assertThat(r.apply(m)).isEqualTo(ApplyResult.IGNORED);
        assertThat(r.apply(older)).isEqualTo(ApplyResult.IGNORED);
        assertThat(r.apply(olderDelete)).isEqualTo(ApplyResult.IGNORED);
      }
      cluster.settle();
      assertThat(digests()).isEqualTo(before);
      assertThat(events).as("change events fired by duplicates").hasValue(0);
      for (KvStore s : stores) {
        assertThat(s.getVersioned("idem").map(Versioned::version)).contains(v);
        assertThat(s.getString("idem")).contains("once");
      }
    } finally {
      regs.forEach(Registration::close);
    }
  }

  // ---- catching up -----------------------------------------------------------------------------

  @Test
  void when_emptyNodeJoinsLate_then_antiEntropyCatchesItUp_tombstonesIncluded() {
    List<KvStore> stores = new ArrayList<>(cluster.stores());
    for (int i = 0; i < 60; i++) {
      KvStore writer = stores.get(i % stores.size());
      cluster.await(writer.putAsync("late-" + i, bytes("v" + i), WriteOptions.defaults()));
    }
    for (int i = 0; i < 60; i += 4) {
      deleteAndCaptureVersion(stores.get((i + 1) % stores.size()), "late-" + i);
    }
    cluster.settle();
    KvStore late = cluster.addNode();
    int lateIndex = cluster.stores().size() - 1;
    assertThat(cluster.stores().get(lateIndex)).isSameAs(late);
    cluster.settle();
    assertThat(fullState(cluster.replicaStore(lateIndex)))
        .as("the late node's keys and versions, tombstones included")
        .isEqualTo(fullState(cluster.replicaStore(0)));
    for (int i = 0; i < 60; i++) {
      if (i % 4 == 0) {
        assertThat(late.get("late-" + i)).as("deleted late-%d on the late node", i).isEmpty();
      } else {
        assertThat(late.getString("late-" + i)).as("late-%d on the late node", i).contains("v" + i);
      }
    }
    assertIdenticalReplicas();
  }

  // ---- membership ------------------------------------------------------------------------------

  @Test
  void clusterView_listsSelfAndEveryMember_andAddsNewMembers() {
    List<KvStore> stores = cluster.stores();
    List<String> ids = new ArrayList<>();
    for (KvStore s : stores) {
      ids.add(id(s));
    }
    ids.sort(null);
    cluster.awaitUntil("every view is ready and lists every member", () -> {
      for (KvStore s : stores) {
        if (!s.cluster().isReady() || !memberIds(s).equals(ids)) {
          return false;
        }
      }
      return true;
    });
    for (KvStore s : stores) {
      assertThat(s.cluster().self().nodeId()).isEqualTo(id(s));
      assertThat(s.cluster().self().status()).isEqualTo(Member.Status.ALIVE);
      assertThat(memberIds(s)).as("members of %s, ordered by node id", id(s)).isEqualTo(ids);
    }
    List<MembershipEvent> seen = new CopyOnWriteArrayList<>();
    Registration registration = stores.get(0).cluster().addListener(seen::add);
    try {
      KvStore added = cluster.addNode();
      List<String> grown = new ArrayList<>(ids);
      grown.add(id(added));
      grown.sort(null);
      cluster.awaitUntil("every view lists the new member", () -> {
        for (KvStore s : cluster.stores()) {
          if (!memberIds(s).equals(grown)) {
            return false;
          }
        }
        return true;
      });
      cluster.awaitUntil("an ADDED event for the new member",
          () -> seen.stream().anyMatch(e -> e.type() == MembershipEvent.Type.ADDED
              && e.member().nodeId().equals(id(added))));
    } finally {
      registration.close();
    }
  }

  // ---- helpers ---------------------------------------------------------------------------------

  /** Deletes with the default options and returns the tombstone's version, seen by a LOCAL listener. */
  protected final Version deleteAndCaptureVersion(KvStore store, String key) {
    return deleteAndCaptureVersion(store, key, WriteOptions.defaults());
  }

  /**
   * Deletes and returns the tombstone's version, captured by a listener for this node's own changes.
   *
   * @param store where to delete
   * @param key the key
   * @param options write options
   * @return the delete's version
   */
  protected final Version deleteAndCaptureVersion(KvStore store, String key, WriteOptions options) {
    AtomicReference<Version> version = new AtomicReference<>();
    Registration registration = store.addListener(key, e -> {
      if (e.origin() == ChangeEvent.Origin.LOCAL && e.type() == ChangeEvent.Type.DELETE
          && e.key().equals(key)) {
        version.compareAndSet(null, e.version());
      }
    });
    CompletableFuture<Boolean> f;
    try {
      f = store.deleteAsync(key, options);
    } finally {
      registration.close();
    }
    assertThat(version.get()).as("the delete fired a LOCAL change event").isNotNull();
    cluster.await(f);
    return version.get();
  }

  /** Whether replica {@code index} holds {@code version} of the key or a newer one. */
  private boolean holds(int index, String key, Version version) {
    return heldVersion(cluster.replicaStore(index), key).map(h -> h.compareTo(version) >= 0)
        .orElse(false);
  }

  /**
   * The version a replica holds for a key, live, deleted or expired.
   *
   * @param replica the replica
   * @param key the key
   * @return the version, or empty if the replica has never seen the key
   */
  protected static Optional<Version> heldVersion(ReplicaStore replica, String key) {
    return Replicas.heldVersion(replica, key);
  }

  /**
   * Every key a replica holds (live, deleted or expired) with its version.
   *
   * @param replica the replica
   * @return key to version, by key
   */
  protected static SortedMap<String, Version> fullState(ReplicaStore replica) {
    return Replicas.keyVersions(replica);
  }

  private List<Digest> digests() {
    List<Digest> out = new ArrayList<>();
    for (int i = 0; i < cluster.stores().size(); i++) {
      out.add(cluster.replicaStore(i).digest());
    }
    return out;
  }

  /** Every replica holds the same keys at the same versions, and the same digest. */
  protected final void assertIdenticalReplicas() {
    SortedMap<String, Version> first = fullState(cluster.replicaStore(0));
    Digest firstDigest = cluster.replicaStore(0).digest();
    for (int i = 1; i < cluster.stores().size(); i++) {
      assertThat(fullState(cluster.replicaStore(i))).as("state of %s vs %s",
          id(cluster.stores().get(i)), id(cluster.stores().get(0))).isEqualTo(first);
      assertThat(cluster.replicaStore(i).digest()).isEqualTo(firstDigest);
    }
  }

  private static List<String> memberIds(KvStore s) {
    List<String> out = new ArrayList<>();
    for (Member m : s.cluster().members()) {
      out.add(m.nodeId());
    }
    return out;
  }

  private static String id(KvStore s) {
    return s.config().nodeId();
  }

  private static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }
}
