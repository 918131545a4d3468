package io.kvstore.cluster;

import io.kvstore.core.spi.Digest;
import io.kvstore.core.KvStore;
import io.kvstore.core.spi.ReplicaStore;
import io.kvstore.core.testing.ReplicatorContract;
import io.kvstore.core.testing.SeedInFailures;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The replicator contract over the real engine on the simulated network ({@link SimNetwork}), driven
 * by virtual time, with duplication, delays and reordering (no loss: the write-concern tests expect
 * healthy links to ack). {@code -Dkvstore.sim.seed=N} changes the seed (default 42).
 */
class SimReplicatorContractTest extends ReplicatorContract {
  static final long SEED = Long.getLong(EngineSimulation.SEED_PROPERTY, 42L);
  private static final long MAX_WAIT_MILLIS = 120_000;

  @RegisterExtension
  static final SeedInFailures SEED_IN_FAILURES = new SeedInFailures(SEED);

  @Override
  protected Fixture createFixture(int nodes) {
    return new SimFixture(nodes);
  }

  /** Stores on one simulated network. */
  static final class SimFixture implements Fixture {
    private final SimNetwork net = new SimNetwork(SEED, SimNetwork.smallSettings(),
        ReplicationEngine.Bug.NONE, b -> b);
    private final List<SimNetwork.SimNode> nodes = new ArrayList<>();
    private long offsetMillis;

    SimFixture(int count) {
      net.faults = SimNetwork.Faults.of(0, 0.2, 1, 3, 0.2, 5);
      for (int i = 0; i < count; i++) {
        addNode();
      }
      settle();
    }

    @Override
    public List<KvStore> stores() {
      List<KvStore> out = new ArrayList<>();
      for (SimNetwork.SimNode n : nodes) {
        out.add(n.store);
      }
      return out;
    }

    @Override
    public ReplicaStore replicaStore(int index) {
      return nodes.get(index).replica;
    }

    @Override
    public KvStore addNode() {
      SimNetwork.SimNode n = net.addNode("c" + (nodes.size() + 1), 0);
      n.offsetMillis = offsetMillis;
      nodes.add(n);
      return n.store;
    }

    @Override
    public void settle() {
      awaitUntil("every replica holds the same keys at the same versions", () -> {
        Digest first = nodes.get(0).replica.digest();
        for (SimNetwork.SimNode n : nodes) {
          if (!n.replica.digest().equals(first)) {
            return false;
          }
        }
        return true;
      });
    }

    @Override
    public <T> T await(CompletableFuture<T> future) {
      if (!net.clock.runUntil(future::isDone, MAX_WAIT_MILLIS)) {
        throw new AssertionError("the future did not complete within " + MAX_WAIT_MILLIS
            + " ms of virtual time");
      }
      try {
        return future.get();
      } catch (ExecutionException | CompletionException e) {
        if (e.getCause() instanceof RuntimeException r) {
          throw r;
        }
        throw new AssertionError(e.getCause());
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new AssertionError(e);
      }
    }

    @Override
    public void awaitUntil(String description, BooleanSupplier condition) {
      if (!net.clock.runUntil(condition, MAX_WAIT_MILLIS)) {
        throw new AssertionError(description + ": not within " + MAX_WAIT_MILLIS
            + " ms of virtual time");
      }
    }

    @Override
    public void advanceClocks(Duration duration) {
      offsetMillis += duration.toMillis();
      for (SimNetwork.SimNode n : nodes) {
        n.offsetMillis += duration.toMillis();
      }
    }

    @Override
    public boolean supportsPartitions() {
      return true;
    }

    @Override
    public void partition(List<Set<String>> groups) {
      net.heal();
      net.partition(groups);
    }

    @Override
    public void heal() {
      net.heal();
    }

    @Override
    public void close() {
      net.close();
    }
  }
}
