package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.kvstore.core.KvStore;
import io.kvstore.core.Version;
import io.kvstore.core.WriteOptions;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Anti-entropy brings nodes that missed writes up to date: restarted, late and early nodes. */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class CatchUpTest {
  private static final Logger log = LoggerFactory.getLogger(CatchUpTest.class);
  private static final Duration CATCH_UP = Duration.ofSeconds(30);

  private static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  /** Writes {@code n} keys through one store without waiting for each. */
  private static void writeKeys(KvStore store, String prefix, int from, int to) {
    List<CompletableFuture<Version>> writes = new ArrayList<>();
    for (int i = from; i < to; i++) {
      writes.add(store.putAsync(prefix + i, bytes("value-" + i), WriteOptions.defaults()));
    }
    writes.forEach(CompletableFuture::join);
  }

  @Test
  void when_nodeStopsWithoutLeavingAndRestartsEmpty_then_itCatchesUpTenThousandKeys() {
    try (TestCluster cluster = TestCluster.start("catchup", "c", 3)) {
      KvStore c1 = cluster.node("c1").store();
      writeKeys(c1, "k", 0, 10_000);
      for (int i = 0; i < 10_000; i += 100) {
        c1.delete("k" + i);
      }
      await().atMost(CATCH_UP).until(() -> cluster.nodes().stream()
          .allMatch(n -> n.store().size() == 9_900));

      cluster.crash(cluster.node("c3"));
      writeKeys(cluster.node("c2").store(), "late", 0, 500);

      long restart = System.nanoTime();
      TestCluster.Node c3 = cluster.startNode("c3", cluster.node("c1").membershipAddress());
      await().atMost(CATCH_UP).until(() -> c3.store().size() == 10_400);
      log.info("restarted node caught up 10,400 keys in {} ms ({} pulled, {} pushed to it)",
          (System.nanoTime() - restart) / 1_000_000, c3.stats().antiEntropyKeysPulled(),
          cluster.node("c1").stats().antiEntropyKeysPushed());
      await().atMost(CATCH_UP).until(() -> c3.store().cluster().isReady());
      for (int i = 0; i < 10_000; i += 37) {
        if (i % 100 == 0) {
          assertThat(c3.store().getString("k" + i)).as("deleted key k%d", i).isEmpty();
        } else {
          assertThat(c3.store().getString("k" + i)).hasValue("value-" + i);
        }
      }
      assertThat(c3.store().getString("late499")).hasValue("value-499");
    }
  }

  @Test
  void when_nodeJoinsLate_then_itCatchesUp_andIsReadyOnlyAfterwards() {
    try (TestCluster cluster = TestCluster.start("late", "l", 2)) {
      writeKeys(cluster.node("l1").store(), "key", 0, 3_000);
      // Ready means "caught up with a peer as of the round": make sure the peers hold it all.
      await().atMost(CATCH_UP).until(() -> cluster.node("l2").store().size() == 3_000);
      TestCluster.Node late = cluster.startNode("l3", cluster.node("l2").membershipAddress());
      await().atMost(CATCH_UP).until(() -> late.store().cluster().isReady());
      assertThat(late.store().size()).isEqualTo(3_000);
      assertThat(late.store().getString("key2999")).hasValue("value-2999");
      cluster.awaitFullMembership(CATCH_UP);
    }
  }

  @Test
  void when_nodeStartsBeforeItsSeed_then_itJoinsOnceTheSeedComesUp() throws IOException {
    int seedPort;
    try (ServerSocket probe = new ServerSocket(0, 1, InetAddress.getByName(TestCluster.HOST))) {
      seedPort = probe.getLocalPort();
    }
    try (TestCluster cluster = new TestCluster("early", b -> b)) {
      TestCluster.Node early = cluster.startNode("e1", TestCluster.HOST + ":" + seedPort);
      await().atMost(Duration.ofSeconds(15)).until(() -> early.store().cluster().isReady());
      early.store().put("written-alone", "before the seed existed");

      long seedStart = System.nanoTime();
      TestCluster.Node seed = cluster.startNode("e2", b -> b.membershipPort(seedPort));
      cluster.awaitFullMembership(Duration.ofSeconds(15));
      log.info("node joined its late seed {} ms after the seed started",
          (System.nanoTime() - seedStart) / 1_000_000);
      await().atMost(Duration.ofSeconds(10))
          .until(() -> seed.store().getString("written-alone").isPresent());
      seed.store().put("written-later", "after joining");
      await().atMost(Duration.ofSeconds(10))
          .until(() -> early.store().getString("written-later").isPresent());
    }
  }
}
