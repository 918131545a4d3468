package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.kvstore.core.KvStore;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteConcernException;
import io.kvstore.core.WriteOptions;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * QUORUM and ALL against replicas whose data plane is cut (membership still sees them alive, so they
 * count towards the cluster size): the write succeeds only when enough replicas really hold it, and
 * otherwise fails at its timeout saying how many did. Each test heals the network after itself.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class WriteConcernTest {
  private static final Duration TIMEOUT = Duration.ofMillis(1500);
  private static TestCluster cluster;
  private static final AtomicInteger keys = new AtomicInteger();

  @BeforeAll
  static void startCluster() {
    cluster = TestCluster.start("concerns", "w", 3);
  }

  @AfterAll
  static void stopCluster() {
    if (cluster != null) {
      cluster.close();
    }
  }

  @AfterEach
  void heal() {
    cluster.network.heal();
    await().atMost(Duration.ofSeconds(10)).until(
        () -> cluster.nodes().stream().allMatch(n -> n.stats().connectedPeers() == 2));
  }

  private static KvStore store(String id) {
    return cluster.node(id).store();
  }

  private static String key() {
    return "wc-" + keys.incrementAndGet();
  }

  private static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  private static WriteOptions options(WriteConcern concern) {
    return WriteOptions.concern(concern).withTimeout(TIMEOUT);
  }

  @Test
  void all_withOneReplicaUnreachable_timesOutSayingTwoOfThreeAcknowledged() {
    // Cut from both: otherwise w2's anti-entropy would hand it the write (w1 still would not know).
    cluster.network.cutDataPlane("w1", "w3");
    cluster.network.cutDataPlane("w2", "w3");
    String key = key();
    long start = System.nanoTime();
    assertThatThrownBy(() -> store("w1").put(key, bytes("v"), options(WriteConcern.ALL)))
        .isInstanceOfSatisfying(WriteConcernException.class, e -> {
          assertThat(e.concern()).isEqualTo(WriteConcern.ALL);
          assertThat(e.required()).isEqualTo(3);
          assertThat(e.acknowledged()).isEqualTo(2);
          assertThat(e.getMessage()).contains("timed out").contains("may still spread");
        });
    long elapsedMillis = (System.nanoTime() - start) / 1_000_000;
    assertThat(elapsedMillis).isBetween(TIMEOUT.toMillis() - 50, TIMEOUT.toMillis() + 3_000);
    // Not rolled back: held where it was acknowledged, missing where it could not go.
    assertThat(store("w1").getString(key)).hasValue("v");
    assertThat(store("w2").getString(key)).hasValue("v");
    assertThat(store("w3").getString(key)).isEmpty();
    // ...and it spreads once the network heals.
    cluster.network.heal();
    await().atMost(Duration.ofSeconds(10)).until(() -> store("w3").getString(key).isPresent());
  }

  @Test
  void quorum_withOneReplicaUnreachable_succeedsOnTheOtherTwo() {
    cluster.network.cutDataPlane("w1", "w3");
    String key = key();
    store("w1").put(key, bytes("q"), options(WriteConcern.QUORUM));
    assertThat(store("w2").getString(key)).hasValue("q");
  }

  @Test
  void quorum_withBothReplicasUnreachable_timesOutSayingOneOfTwoNeeded() {
    cluster.network.cutDataPlane("w1", "w2");
    cluster.network.cutDataPlane("w1", "w3");
    String key = key();
    CompletableFuture<?> write = store("w1").putAsync(key, bytes("lonely"),
        options(WriteConcern.QUORUM));
    assertThatThrownBy(write::join).isInstanceOf(CompletionException.class)
        .cause().isInstanceOfSatisfying(WriteConcernException.class, e -> {
          assertThat(e.required()).isEqualTo(2);
          assertThat(e.acknowledged()).isEqualTo(1);
        });
    assertThat(store("w1").getString(key)).hasValue("lonely");
    assertThat(store("w2").getString(key)).isEmpty();
    assertThat(store("w3").getString(key)).isEmpty();
  }

  @Test
  void one_completesAfterTheLocalApply_evenWithEveryPeerUnreachable() {
    cluster.network.cutDataPlane("w2", "w1");
    cluster.network.cutDataPlane("w2", "w3");
    String key = key();
    store("w2").put(key, bytes("solo"), options(WriteConcern.ONE));
    assertThat(store("w2").getString(key)).hasValue("solo");
  }

  @Test
  void all_afterHealing_succeedsAndEveryReplicaHoldsIt() {
    cluster.network.cutDataPlane("w2", "w3");
    cluster.network.heal();
    String key = key();
    store("w3").put(key, bytes("everywhere"), WriteOptions.concern(WriteConcern.ALL)
        .withTimeout(Duration.ofSeconds(10)));
    for (TestCluster.Node n : cluster.nodes()) {
      assertThat(n.store().getString(key)).hasValue("everywhere");
    }
  }

  @Test
  void delete_withAll_reachesEveryReplicaBeforeReturning() {
    String key = key();
    store("w1").put(key, bytes("x"), WriteOptions.concern(WriteConcern.ALL));
    assertThat(store("w2").delete(key, WriteOptions.concern(WriteConcern.ALL))).isTrue();
    for (TestCluster.Node n : cluster.nodes()) {
      assertThat(n.store().getString(key)).isEmpty();
    }
  }
}
