package io.kvstore.cluster;

import static io.kvstore.cluster.TestCluster.list;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.kvstore.core.KvStore;
import io.kvstore.core.Version;
import io.kvstore.core.Versioned;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteOptions;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Network partitions of both planes, and of the data plane alone. Bounds checked (see
 * docs/CLUSTER.md): after a heal, membership re-merges within {@link #REMERGE} and every replica holds
 * the same data within {@link #CONVERGE}.
 */
@Timeout(value = 150, unit = TimeUnit.SECONDS)
class PartitionTest {
  private static final Logger log = LoggerFactory.getLogger(PartitionTest.class);
  static final Duration REMERGE = Duration.ofSeconds(10);
  static final Duration CONVERGE = Duration.ofSeconds(15);
  private static TestCluster cluster;

  @BeforeAll
  static void startCluster() {
    cluster = TestCluster.start("partition", "p", 3);
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
    cluster.awaitFullMembership(Duration.ofSeconds(30));
  }

  private static KvStore store(String id) {
    return cluster.node(id).store();
  }

  private static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  /** Live keys under a prefix with their versions, as one node sees them. */
  private static Map<String, Version> contents(KvStore s, String prefix) {
    Map<String, Version> out = new HashMap<>();
    for (Versioned v : s.scan(prefix, 10_000)) {
      out.put(v.key(), v.version());
    }
    return out;
  }

  @Test
  void when_partitionHeals_then_replicasConverge_lwwWinnersHold_andNoDeletedKeyReturns() {
    String p = "split/";
    KvStore a1 = store("p1");
    KvStore a2 = store("p2");
    KvStore b = store("p3");
    for (int i = 0; i < 60; i++) {
      a1.put(p + "k" + i, bytes("v0-" + i), WriteOptions.concern(WriteConcern.ALL));
    }

    cluster.network.partition(list("p1", "p2"), list("p3"));
    long cut = System.nanoTime();
    await().atMost(Duration.ofSeconds(20)).untilAsserted(() -> {
      assertThat(cluster.node("p1").memberIds()).containsExactly("p1", "p2");
      assertThat(cluster.node("p2").memberIds()).containsExactly("p1", "p2");
      assertThat(cluster.node("p3").memberIds()).containsExactly("p3");
    });
    log.info("partition split membership after {} ms", (System.nanoTime() - cut) / 1_000_000);

    // Both sides keep accepting writes.
    Map<String, Version> expectedWinner = new HashMap<>();
    for (int i = 0; i < 20; i++) {
      a1.delete(p + "k" + i); // deleted on side A only; side B keeps its older copies
    }
    for (int i = 0; i < 10; i++) {
      a2.put(p + "a" + i, bytes("side-a"));
      b.put(p + "b" + i, bytes("side-b"));
    }
    Version lastA = null;
    for (int i = 40; i < 60; i++) {
      lastA = a2.put(p + "k" + i, bytes("a-wins-" + i));
      expectedWinner.put(p + "k" + i, lastA);
    }
    for (int i = 0; i < 10; i++) {
      Version va = a1.put(p + "c" + i, bytes("conflict-a"));
      Version vb = b.put(p + "c" + i, bytes("conflict-b"));
      expectedWinner.put(p + "c" + i, va.compareTo(vb) > 0 ? va : vb);
    }
    // Side B deletes keys side A updated: B's deletes come later in time, so they must win.
    Version last = lastA;
    await().until(() -> System.currentTimeMillis() > last.physicalMillis());
    for (int i = 50; i < 60; i++) {
      b.delete(p + "k" + i);
      expectedWinner.remove(p + "k" + i);
    }

    cluster.network.heal();
    long healed = System.nanoTime();
    await().atMost(REMERGE).untilAsserted(() -> {
      for (TestCluster.Node n : cluster.nodes()) {
        assertThat(n.memberIds()).as("members of %s", n.id()).containsExactly("p1", "p2", "p3");
      }
    });
    long remergeMillis = (System.nanoTime() - healed) / 1_000_000;
    await().atMost(CONVERGE.minusMillis(remergeMillis)).untilAsserted(() -> {
      Map<String, Version> reference = contents(a1, p);
      assertThat(contents(a2, p)).isEqualTo(reference);
      assertThat(contents(b, p)).isEqualTo(reference);
    });
    log.info("after the heal: membership re-merged in {} ms, data converged in {} ms", remergeMillis,
        (System.nanoTime() - healed) / 1_000_000);

    assertConvergedState(p, expectedWinner);
    // Further anti-entropy rounds change nothing: in particular no deleted key comes back.
    long rounds = cluster.node("p3").stats().antiEntropyRounds();
    await().atMost(Duration.ofSeconds(10))
        .until(() -> cluster.node("p3").stats().antiEntropyRounds() >= rounds + 2);
    assertConvergedState(p, expectedWinner);
  }

  private static void assertConvergedState(String p, Map<String, Version> expectedWinner) {
    for (TestCluster.Node n : cluster.nodes()) {
      KvStore s = n.store();
      for (int i = 0; i < 20; i++) {
        assertThat(s.getString(p + "k" + i)).as("deleted on side A, read on %s", n.id()).isEmpty();
      }
      for (int i = 20; i < 40; i++) {
        assertThat(s.getString(p + "k" + i)).hasValue("v0-" + i);
      }
      for (int i = 50; i < 60; i++) {
        assertThat(s.getString(p + "k" + i)).as("deleted on side B, read on %s", n.id()).isEmpty();
      }
      for (int i = 0; i < 10; i++) {
        assertThat(s.getString(p + "a" + i)).hasValue("side-a");
        assertThat(s.getString(p + "b" + i)).hasValue("side-b");
      }
      for (Map.Entry<String, Version> e : expectedWinner.entrySet()) {
        assertThat(s.getVersioned(e.getKey()).map(Versioned::version))
            .as("LWW winner of %s on %s", e.getKey(), n.id()).hasValue(e.getValue());
      }
    }
  }

  @Test
  void when_onlyTheDataPlaneIsCut_then_writesFlowAgainAfterTheHeal() {
    String p = "dataonly/";
    cluster.network.cutDataPlane("p1", "p3");
    cluster.network.cutDataPlane("p2", "p3");
    for (int i = 0; i < 50; i++) {
      store("p1").put(p + i, bytes("from-p1"));
      store("p3").put(p + "x" + i, bytes("from-p3"));
    }
    assertThat(store("p3").getString(p + "0")).isEmpty();
    assertThat(cluster.node("p3").memberIds()).isEqualTo(Set.copyOf(list("p1", "p2", "p3")));
    cluster.network.heal();
    await().atMost(CONVERGE).untilAsserted(() -> {
      Map<String, Version> reference = contents(store("p1"), p);
      assertThat(reference).hasSize(100);
      for (String id : List.of("p2", "p3")) {
        assertThat(contents(store(id), p)).isEqualTo(reference);
      }
    });
  }
}
