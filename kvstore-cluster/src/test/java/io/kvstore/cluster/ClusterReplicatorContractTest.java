package io.kvstore.cluster;

import org.awaitility.Awaitility;

import io.kvstore.core.ReplicaViews;
import io.kvstore.core.KvStore;
import io.kvstore.core.spi.ReplicaStore;
import io.kvstore.core.testing.ManualClock;
import io.kvstore.core.testing.ReplicatorContract;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Timeout;

/**
 * core's {@link ReplicatorContract}, the same suite the in-memory replicator passes, against the real
 * replicator: ScaleCube membership and the Netty data plane on loopback, with partitions cut through
 * the test-only fault hooks of both planes. Each store runs on a {@link ManualClock} so TTL tests move
 * time without waiting; the membership protocol keeps real time.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ClusterReplicatorContractTest extends ReplicatorContract {
  private static final Instant START = Instant.parse("2026-01-01T00:00:00Z");

  @Override
  protected Fixture createFixture(int nodes) {
    return new RealClusterFixture(nodes);
  }

  /** N real nodes seeded with the first; every store on its own manual clock. */
  static final class RealClusterFixture implements Fixture {
    private final Map<String, ManualClock> clocks = new ConcurrentHashMap<>();
    private final TestCluster cluster;
    private int next;

    RealClusterFixture(int nodes) {
      cluster = new TestCluster("contract", b -> b);
      try {
        TestCluster.Node first = start();
        for (int i = 1; i < nodes; i++) {
          start(first.membershipAddress());
        }
        cluster.awaitFullMembership(Duration.ofSeconds(60));
      } catch (RuntimeException | Error e) {
        cluster.close();
        throw e;
      }
    }

    private TestCluster.Node start(String... seeds) {
      String id = "c" + (++next);
      ManualClock clock = new ManualClock(START);
      clocks.put(id, clock);
      return cluster.startNode(id, b -> b.store(s -> s.clock(clock)), seeds);
    }

    @Override
    public List<KvStore> stores() {
      return cluster.nodes().stream().map(TestCluster.Node::store).toList();
    }

    @Override
    public ReplicaStore replicaStore(int index) {
      // The store a KvCluster builds is core's engine, which is its replicator's ReplicaStore.
      return ReplicaViews.of(cluster.nodes().get(index).store());
    }

    @Override
    public KvStore addNode() {
      TestCluster.Node node = start(cluster.nodes().get(0).membershipAddress());
      cluster.awaitFullMembership(Duration.ofSeconds(60));
      return node.store();
    }

    @Override
    public void settle() {
      awaitUntil("every replica holds the same digest", () -> {
        List<TestCluster.Node> nodes = cluster.nodes();
        var first = ReplicaViews.of(nodes.get(0).store()).digest();
        return nodes.stream().allMatch(n -> ReplicaViews.of(n.store()).digest().equals(first));
      });
    }

    @Override
    public <T> T await(CompletableFuture<T> future) {
      try {
        return future.orTimeout(30, TimeUnit.SECONDS).join();
      } catch (CompletionException e) {
        // The contract expects what the future failed with, as the blocking API throws it.
        if (e.getCause() instanceof RuntimeException cause) {
          throw cause;
        }
        throw e;
      }
    }

    @Override
    public void awaitUntil(String description, BooleanSupplier condition) {
      Awaitility.await(description).atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(20))
          .until(condition::getAsBoolean);
    }

    @Override
    public void advanceClocks(Duration duration) {
      clocks.values().forEach(c -> c.advance(duration));
    }

    @Override
    public boolean supportsPartitions() {
      return true;
    }

    @Override
    public void partition(List<Set<String>> groups) {
      List<Set<String>> all = new ArrayList<>(groups);
      Set<String> rest = new HashSet<>(cluster.ids());
      groups.forEach(rest::removeAll);
      if (!rest.isEmpty()) {
        all.add(rest);
      }
      for (int i = 0; i < all.size(); i++) {
        for (int j = i + 1; j < all.size(); j++) {
          cluster.network.partition(all.get(i), all.get(j));
        }
      }
    }

    @Override
    public void heal() {
      cluster.network.heal();
    }

    @Override
    public void close() {
      cluster.close();
    }
  }
}
