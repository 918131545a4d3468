package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.kvstore.core.KvStore;
import io.kvstore.core.Member;
import io.kvstore.core.MembershipEvent;
import io.kvstore.core.Version;
import io.kvstore.core.Versioned;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteOptions;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.LongStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Replication in a healthy 3-node cluster shared by the tests of this class. Each test uses its own
 * key prefix and leaves the network as it found it, so none depends on another.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ReplicationTest {
  private static final Duration SPREAD = Duration.ofSeconds(10);
  private static TestCluster cluster;
  private static final AtomicInteger prefixes = new AtomicInteger();

  @BeforeAll
  static void startCluster() {
    cluster = TestCluster.start("replication", "r", 3);
  }

  @AfterAll
  static void stopCluster() {
    if (cluster != null) {
      cluster.close();
    }
  }

  static LongStream seeds() {
    String fixed = System.getProperty("kvstore.seed");
    return fixed != null ? LongStream.of(Long.parseLong(fixed)) : LongStream.of(new Random().nextLong());
  }

  private static String prefix(TestInfo info) {
    return info.getTestMethod().orElseThrow().getName() + "-" + prefixes.incrementAndGet() + "/";
  }

  private static List<KvStore> stores() {
    return cluster.nodes().stream().map(TestCluster.Node::store).toList();
  }

  @Test
  void writeOnAnyNode_isVisibleOnAll(TestInfo info) {
    String p = prefix(info);
    for (TestCluster.Node n : cluster.nodes()) {
      n.store().put(p + "from-" + n.id(), "hello from " + n.id());
    }
    await().atMost(SPREAD).untilAsserted(() -> {
      for (KvStore s : stores()) {
        for (TestCluster.Node writer : cluster.nodes()) {
          assertThat(s.getString(p + "from-" + writer.id())).hasValue("hello from " + writer.id());
        }
      }
    });
  }

  @Test
  void largeValue_nearTheLimit_replicates(TestInfo info) {
    String key = prefix(info) + "big";
    byte[] value = new byte[1024 * 1024];
    new Random(1).nextBytes(value);
    cluster.node("r2").store().put(key, value, WriteOptions.concern(WriteConcern.ALL));
    for (KvStore s : stores()) {
      assertThat(s.get(key)).hasValueSatisfying(v -> assertThat(v).isEqualTo(value));
    }
  }

  @Test
  void delete_propagatesToAll(TestInfo info) {
    String key = prefix(info) + "doomed";
    cluster.node("r1").store().put(key, "v");
    await().atMost(SPREAD).until(() -> stores().stream().allMatch(s -> s.getString(key).isPresent()));
    assertThat(cluster.node("r3").store().delete(key)).isTrue();
    await().atMost(SPREAD).untilAsserted(() -> {
      for (KvStore s : stores()) {
        assertThat(s.getString(key)).isEmpty();
      }
    });
  }

  @Test
  void ttlExpiry_agreesEverywhere(TestInfo info) {
    String key = prefix(info) + "session";
    Version v = cluster.node("r2").store().put(key, "short-lived".getBytes(StandardCharsets.UTF_8),
        WriteOptions.defaults().withTtl(Duration.ofMillis(1500)));
    await().atMost(SPREAD).untilAsserted(() -> {
      for (KvStore s : stores()) {
        Optional<Versioned> got = s.getVersioned(key);
        assertThat(got).isPresent();
        assertThat(got.get().version()).isEqualTo(v);
        assertThat(got.get().expiresAt()).hasValue(java.time.Instant.ofEpochMilli(v.physicalMillis() + 1500));
      }
    });
    await().atMost(Duration.ofSeconds(5)).untilAsserted(() -> {
      for (KvStore s : stores()) {
        assertThat(s.getString(key)).isEmpty();
      }
    });
    // Once swept, every replica keeps the same expired tombstone: a later anti-entropy round moves
    // nothing for this key (a late duplicate of the put cannot revive it anywhere).
    for (KvStore s : stores()) {
      s.runMaintenance();
    }
    for (KvStore s : stores()) {
      assertThat(s.getString(key)).isEmpty();
    }
  }

  @ParameterizedTest(name = "seed {0}")
  @MethodSource("seeds")
  void concurrentWritesToSameKeys_convergeToTheSameLwwWinner(long seed, TestInfo info) {
    String p = prefix(info);
    Random random = new Random(seed);
    int keys = 40;
    Map<String, Version> highest = new ConcurrentHashMap<>();
    Map<Version, String> written = new ConcurrentHashMap<>();
    List<CompletableFuture<Void>> writers = new ArrayList<>();
    for (TestCluster.Node n : cluster.nodes()) {
      long writerSeed = random.nextLong();
      writers.add(CompletableFuture.runAsync(() -> {
        Random r = new Random(writerSeed);
        for (int i = 0; i < 300; i++) {
          String key = p + r.nextInt(keys);
          String value = n.id() + "-" + i;
          Version v;
          if (r.nextInt(10) == 0) {
            n.store().delete(key);
            continue;
          }
          v = n.store().put(key, value);
          written.put(v, value);
          highest.merge(key, v, (a, b) -> a.compareTo(b) >= 0 ? a : b);
        }
      }));
    }
    writers.forEach(CompletableFuture::join);
    await().atMost(SPREAD).untilAsserted(() -> {
      Map<String, Optional<Version>> reference = new HashMap<>();
      for (int k = 0; k < keys; k++) {
        String key = p + k;
        reference.put(key, stores().get(0).getVersioned(key).map(Versioned::version));
      }
      for (KvStore s : stores()) {
        for (int k = 0; k < keys; k++) {
          String key = p + k;
          assertThat(s.getVersioned(key).map(Versioned::version))
              .as("seed %d, key %s on %s", seed, key, s.config().nodeId())
              .isEqualTo(reference.get(key));
        }
      }
    });
    // Where the winner is a put, it is the highest version any writer made, with that writer's value.
    for (int k = 0; k < keys; k++) {
      String key = p + k;
      Optional<Versioned> winner = stores().get(0).getVersioned(key);
      if (winner.isPresent()) {
        assertThat(winner.get().version()).as("seed %d, key %s", seed, key)
            .isEqualTo(highest.get(key));
        assertThat(new String(winner.get().value(), StandardCharsets.UTF_8))
            .isEqualTo(written.get(winner.get().version()));
      }
    }
  }

  @Test
  void all_returnsOnlyOnceEveryReplicaHoldsTheWrite(TestInfo info) {
    String p = prefix(info);
    for (int i = 0; i < 20; i++) {
      Version v = cluster.node("r" + (1 + i % 3)).store().put(p + i,
          ("v" + i).getBytes(StandardCharsets.UTF_8), WriteOptions.concern(WriteConcern.ALL));
      for (KvStore s : stores()) {
        assertThat(s.getVersioned(p + i)).as("replica %s right after ALL returned",
            s.config().nodeId()).hasValueSatisfying(got -> assertThat(got.version()).isEqualTo(v));
      }
    }
  }

  @Test
  void quorum_returnsOnlyOnceAMajorityHoldsTheWrite(TestInfo info) {
    String p = prefix(info);
    for (int i = 0; i < 20; i++) {
      Version v = cluster.node("r" + (1 + i % 3)).store().put(p + i,
          ("v" + i).getBytes(StandardCharsets.UTF_8), WriteOptions.concern(WriteConcern.QUORUM));
      String key = p + i;
      long holding = stores().stream()
          .filter(s -> s.getVersioned(key).map(Versioned::version).filter(v::equals).isPresent())
          .count();
      assertThat(holding).as("replicas holding %s right after QUORUM returned", key)
          .isGreaterThanOrEqualTo(2);
    }
  }

  @Test
  void view_listsEveryMemberWithTheRealBoundPorts() {
    for (TestCluster.Node n : cluster.nodes()) {
      List<Member> members = n.store().cluster().members();
      assertThat(members).extracting(Member::nodeId).containsExactly("r1", "r2", "r3");
      assertThat(n.store().cluster().self().nodeId()).isEqualTo(n.id());
      assertThat(n.store().cluster().isReady()).isTrue();
      for (Member m : members) {
        TestCluster.Node owner = cluster.node(m.nodeId());
        assertThat(m.status()).isEqualTo(Member.Status.ALIVE);
        assertThat(m.membershipAddress()).isEqualTo(owner.replicator().membershipAddress())
            .startsWith(TestCluster.HOST + ":").doesNotEndWith(":0");
        assertThat(m.dataAddress()).isEqualTo(owner.replicator().dataAddress())
            .startsWith(TestCluster.HOST + ":").doesNotEndWith(":0");
      }
    }
  }

  @Test
  void stats_countTheFanOut(TestInfo info) {
    TestCluster.Node writer = cluster.node("r1");
    ReplicationStats before = writer.stats();
    writer.store().put(prefix(info) + "counted", "x".getBytes(StandardCharsets.UTF_8),
        WriteOptions.concern(WriteConcern.ALL));
    ReplicationStats after = writer.stats();
    assertThat(after.mutationsSent() - before.mutationsSent()).isEqualTo(2);
    assertThat(after.mutationsAcked() - before.mutationsAcked()).isEqualTo(2);
    assertThat(after.framesSent()).isGreaterThan(before.framesSent());
    assertThat(after.bytesSent()).isGreaterThan(before.bytesSent());
    assertThat(after.connectedPeers()).isEqualTo(2);
    assertThat(after.malformedFrames()).isZero();
    assertThat(after.handshakeFailures()).isZero();
    assertThat(KvCluster.stats(writer.store())).isPresent();
    assertThat(KvCluster.stats(KvStore.builder().nodeId("alone").build())).isEmpty();
  }

  @Test
  void burstOfWrites_isBatchedIntoFewerFramesThanMutations(TestInfo info) {
    String p = prefix(info);
    TestCluster.Node writer = cluster.node("r3");
    ReplicationStats before = writer.stats();
    List<CompletableFuture<Version>> writes = new ArrayList<>();
    for (int i = 0; i < 5_000; i++) {
      writes.add(writer.store().putAsync(p + i, new byte[16], WriteOptions.defaults()));
    }
    writes.forEach(CompletableFuture::join);
    await().atMost(SPREAD).until(() -> writer.stats().mutationsAcked()
        >= before.mutationsAcked() + 10_000);
    ReplicationStats after = writer.stats();
    long mutations = after.mutationsSent() - before.mutationsSent();
    long frames = after.framesSent() - before.framesSent();
    assertThat(mutations).isEqualTo(10_000);
    assertThat(frames).as("frames for %d mutations", mutations).isLessThan(mutations);
  }

  @Test
  void antiEntropy_runsPeriodically() {
    ReplicationStats before = cluster.node("r2").stats();
    await().atMost(Duration.ofSeconds(5)).until(
        () -> cluster.node("r2").stats().antiEntropyRounds() >= before.antiEntropyRounds() + 2);
    assertThat(cluster.node("r2").stats().antiEntropyRoundsFailed())
        .isEqualTo(before.antiEntropyRoundsFailed());
  }

  @Test
  void membershipListener_isToldOfJoinsAndLeaves() {
    List<MembershipEvent> seen = new java.util.concurrent.CopyOnWriteArrayList<>();
    io.kvstore.core.Registration registration =
        cluster.node("r1").store().cluster().addListener(seen::add);
    try {
      TestCluster.Node guest = cluster.startNode("r-guest", cluster.node("r1").membershipAddress());
      await().atMost(SPREAD).until(() -> seen.stream().anyMatch(
          e -> e.type() == MembershipEvent.Type.ADDED && e.member().nodeId().equals("r-guest")));
      MembershipEvent added = seen.stream().filter(e -> e.type() == MembershipEvent.Type.ADDED)
          .findFirst().orElseThrow();
      assertThat(added.member().dataAddress()).isEqualTo(guest.replicator().dataAddress());
      cluster.stop(guest);
      await().atMost(SPREAD).until(() -> seen.stream().anyMatch(
          e -> e.type() == MembershipEvent.Type.LEAVING && e.member().nodeId().equals("r-guest")));
      assertThat(cluster.node("r1").store().cluster().members()).extracting(Member::nodeId)
          .contains("r-guest");
    } finally {
      registration.close();
    }
    await().atMost(Duration.ofSeconds(15)).until(
        () -> cluster.nodes().stream().allMatch(n -> n.memberIds().size() == 3));
  }
}
