package io.kvstore.cluster;

import org.awaitility.Awaitility;

import io.kvstore.core.ReplicaViews;
import io.kvstore.core.KvStore;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.ReplicaStore;
import io.kvstore.core.testing.ManualClock;
import io.kvstore.core.testing.ReplicatorContract;
import io.kvstore.core.testing.Replicas;
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
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.parallel.Execution;
import org.junit.jupiter.api.parallel.ExecutionMode;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * core's {@link ReplicatorContract}, the same suite the in-memory replicator passes, against the real
 * replicator: ScaleCube membership and the Netty data plane on loopback, with partitions cut through
 * the test-only fault hooks of both planes. Each store runs on a {@link ManualClock} so TTL tests move
 * time without waiting; the membership protocol keeps real time.
 *
 * <p><b>One cluster for many tests.</b> Starting and closing three real nodes costs ~1.8 s, most
 * of the class's time when every test had its own. The contract asks for a fresh fixture of empty
 * stores per test; a {@link SharedCluster} gives each test a view of one running cluster and, when
 * the test closes it, puts the cluster back as a new one would be: every partition healed, every
 * node seeing every other and ready, every replica holding the same (settled), every live key
 * deleted, then every clock moved past {@code tombstoneGrace} and every store swept until no
 * replica holds anything (no tombstone either, so a test that checks the absence of a key or the
 * full state of a replica sees exactly what a fresh cluster would show). The next test's view
 * checks that emptiness before it is handed out. What a reset cannot undo makes the cluster go: a
 * test that added a node ({@link Fixture#addNode}: the contract's node count is fixed) or a reset
 * that did not finish closes it, and the next test starts a new one. Time moved by a reset is
 * manual time only; the clocks of all nodes move together, as {@link Fixture#advanceClocks} does.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
@Execution(ExecutionMode.SAME_THREAD) // the shared cluster serves one test at a time
class ClusterReplicatorContractTest extends ReplicatorContract {
  private static final Logger log = LoggerFactory.getLogger(ClusterReplicatorContractTest.class);
  private static final Instant START = Instant.parse("2026-01-01T00:00:00Z");
  private static RealClusterFixture shared;
  private static int clustersStarted;

  @Override
  protected Fixture createFixture(int nodes) {
    if (shared != null && shared.size() != nodes) {
      shared.close();
      shared = null;
    }
    if (shared == null) {
      shared = new RealClusterFixture(nodes);
      clustersStarted++;
    }
    return new SharedCluster(shared);
  }

  @AfterAll
  static void stopSharedCluster() {
    log.info("contract suite: {} real cluster(s) started", clustersStarted);
    if (shared != null) {
      shared.close();
      shared = null;
    }
  }

  /**
   * One test's view of the shared cluster: everything delegates, except {@link #close}, which resets
   * the cluster for the next test (or retires it, see the class comment).
   */
  private static final class SharedCluster implements Fixture {
    private final RealClusterFixture real;
    private boolean grown;

    SharedCluster(RealClusterFixture real) {
      this.real = real;
      real.assertEmpty();
    }

    @Override
    public List<KvStore> stores() {
      return real.stores();
    }

    @Override
    public ReplicaStore replicaStore(int index) {
      return real.replicaStore(index);
    }

    @Override
    public KvStore addNode() {
      grown = true;
      return real.addNode();
    }

    @Override
    public void settle() {
      real.settle();
    }

    @Override
    public <T> T await(CompletableFuture<T> future) {
      return real.await(future);
    }

    @Override
    public void awaitUntil(String description, BooleanSupplier condition) {
      real.awaitUntil(description, condition);
    }

    @Override
    public void advanceClocks(Duration duration) {
      real.advanceClocks(duration);
    }

    @Override
    public boolean supportsPartitions() {
      return true;
    }

    @Override
    public void partition(List<Set<String>> groups) {
      real.partition(groups);
    }

    @Override
    public void heal() {
      real.heal();
    }

    @Override
    public void close() {
      if (grown) {
        retire();
        return;
      }
      try {
        real.reset();
      } catch (RuntimeException | Error e) {
        retire();
        throw e;
      }
    }

    private void retire() {
      if (shared == real) {
        shared = null;
      }
      real.close();
    }
  }

  /** N real nodes seeded with the first; every store on its own manual clock. */
  static final class RealClusterFixture implements Fixture {
    private final Map<String, ManualClock> clocks = new ConcurrentHashMap<>();
    private final TestCluster cluster;
    private final int size;
    /** What every clock shows (they only ever move together); a node added later starts there. */
    private volatile Instant now = START;
    private int next;

    RealClusterFixture(int nodes) {
      size = nodes;
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

    int size() {
      return size;
    }

    private TestCluster.Node start(String... seeds) {
      String id = "c" + (++next);
      ManualClock clock = new ManualClock(now);
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
      now = now.plus(duration);
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

    /**
     * Puts the running cluster back as a new one would be (see the class comment); throws if it
     * cannot within the fixture's bounds.
     */
    void reset() {
      heal();
      cluster.awaitFullMembership(Duration.ofSeconds(30));
      settle();
      KvStore writer = stores().get(0);
      for (Mutation m : Replicas.mutations(replicaStore(0)).values()) {
        if (!m.isDelete()) {
          writer.delete(m.key());
        }
      }
      settle();
      // A tombstone (a delete, or an expired value once swept) is purged tombstoneGrace after it
      // died; the newest died before now, so one step past the grace purges them all.
      advanceClocks(writer.config().tombstoneGrace().plusSeconds(1));
      awaitUntil("every replica purged every key", () -> {
        boolean empty = true;
        for (int i = 0; i < size; i++) {
          stores().get(i).runMaintenance();
          empty &= Replicas.keyVersions(replicaStore(i)).isEmpty();
        }
        return empty;
      });
      settle();
    }

    /** Fails unless every replica holds nothing: what the contract promises a new fixture. */
    void assertEmpty() {
      for (int i = 0; i < stores().size(); i++) {
        if (!Replicas.keyVersions(replicaStore(i)).isEmpty()) {
          throw new AssertionError("a reset cluster is not empty: " + stores().get(i).config().nodeId()
              + " holds " + Replicas.keyVersions(replicaStore(i)));
        }
      }
    }

    @Override
    public void close() {
      cluster.close();
    }
  }
}
