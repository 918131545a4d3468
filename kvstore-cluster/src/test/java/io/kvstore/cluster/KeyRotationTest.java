package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.kvstore.core.KvStore;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteOptions;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Rotating the cluster secret on a running 3-node cluster while every node keeps writing: add the new
 * key everywhere, make it the primary everywhere, remove the old one everywhere. No write is lost
 * (every acknowledged write ends up on every node), membership never loses a member, the data-plane
 * connections authenticated with the old key are replaced, and afterwards the old key is worthless.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class KeyRotationTest {
  private static final ClusterKeyring OLD = ClusterKeyring.of("old", ClusterKeyringTest.secret(10));
  private static final byte[] NEW_SECRET = ClusterKeyringTest.secret(11);

  /** Writes through one node until stopped, remembering every key whose write was acknowledged. */
  private static final class Writer extends Thread {
    final KvStore store;
    final String prefix;
    final AtomicBoolean stop = new AtomicBoolean();
    final ConcurrentLinkedQueue<String> acknowledged = new ConcurrentLinkedQueue<>();
    final AtomicInteger failed = new AtomicInteger();
    final AtomicReference<Throwable> lastFailure = new AtomicReference<>();

    Writer(KvStore store, String prefix) {
      super("writer-" + prefix);
      this.store = store;
      this.prefix = prefix;
    }

    @Override
    public void run() {
      for (int i = 0; !stop.get(); i++) {
        String key = prefix + "-" + i;
        try {
          store.put(key, key.getBytes(StandardCharsets.UTF_8),
              WriteOptions.concern(WriteConcern.QUORUM).withTimeout(Duration.ofSeconds(10)));
          acknowledged.add(key);
        } catch (RuntimeException e) {
          failed.incrementAndGet();
          lastFailure.set(e);
        }
      }
    }
  }

  @Test
  void rotatingTheKey_underLoad_losesNoWrite_andRetiresTheOldKey() throws Exception {
    try (TestCluster cluster = TestCluster.start("rotate", "r", 3, b -> b.keyring(OLD))) {
      List<TestCluster.Node> nodes = cluster.nodes();
      List<Writer> writers = nodes.stream().map(n -> new Writer(n.store(), n.id())).toList();
      writers.forEach(Thread::start);
      try {
        awaitMoreWrites(writers);
        ClusterKeyring added = OLD.withKey("new", NEW_SECRET);
        for (TestCluster.Node n : nodes) {
          n.replicator().updateKeyring(added);            // step 1: accept both, still send old
        }
        awaitMoreWrites(writers);
        for (TestCluster.Node n : nodes) {
          n.replicator().updateKeyring(added.withPrimary("new")); // step 2: send with the new key
        }
        awaitMoreWrites(writers);
        long failuresBefore = totalAuthFailures(cluster);
        for (TestCluster.Node n : nodes) {
          n.replicator().updateKeyring(added.withPrimary("new").withoutKey("old")); // step 3
        }
        awaitMoreWrites(writers);
        // Links opened under the old key were refused and replaced by links under the new one.
        assertThat(totalAuthFailures(cluster)).isGreaterThan(failuresBefore);
        awaitMoreWrites(writers);
      } finally {
        writers.forEach(w -> w.stop.set(true));
        for (Writer w : writers) {
          w.join(30_000);
        }
      }
      for (Writer w : writers) {
        assertThat(w.failed).as("writes through %s that failed QUORUM; last: %s", w.prefix,
            w.lastFailure.get()).hasValue(0);
        assertThat(w.acknowledged).as("writes through %s", w.prefix).hasSizeGreaterThan(50);
      }
      await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> {
        for (TestCluster.Node n : nodes) {
          for (Writer w : writers) {
            for (String key : w.acknowledged) {
              assertThat(n.store().getString(key)).as("%s on %s", key, n.id()).hasValue(key);
            }
          }
        }
      });
      for (TestCluster.Node n : nodes) {
        assertThat(n.memberIds()).containsExactly("r1", "r2", "r3");
        assertThat(n.stats().connectedPeers()).isEqualTo(2);
      }
      // The retired key no longer opens the door.
      try (KvStore stale = KvCluster.builder().nodeId("stale").clusterName("rotate")
          .host(TestCluster.HOST).membershipPort(0).dataPort(0)
          .seeds(nodes.get(0).membershipAddress()).keyring(OLD).leaveTimeout(Duration.ofSeconds(1))
          .build()) {
        await().during(Duration.ofSeconds(3)).atMost(Duration.ofSeconds(5)).until(() ->
            stale.cluster().members().size() == 1 && nodes.stream().allMatch(
                n -> n.memberIds().equals(Set.of("r1", "r2", "r3"))));
      }
    }
  }

  /** Waits until every writer has had at least 20 more writes acknowledged. */
  private static void awaitMoreWrites(List<Writer> writers) {
    int[] before = writers.stream().mapToInt(w -> w.acknowledged.size()).toArray();
    await().atMost(Duration.ofSeconds(30)).until(() -> {
      for (int i = 0; i < before.length; i++) {
        if (writers.get(i).acknowledged.size() < before[i] + 20) {
          return false;
        }
      }
      return true;
    });
  }

  private static long totalAuthFailures(TestCluster cluster) {
    return cluster.nodes().stream().mapToLong(n -> n.stats().authenticationFailures()).sum();
  }
}
