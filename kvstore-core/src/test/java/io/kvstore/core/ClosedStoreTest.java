package io.kvstore.core;

import io.kvstore.core.spi.Replicator;
import io.kvstore.core.spi.ReplicaStore;
import io.kvstore.core.spi.Mutation;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.assertj.core.api.ThrowableAssert.ThrowingCallable;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Closing a store: the replicator is started and closed once, and later reads and writes fail. */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class ClosedStoreTest {
  private final ManualClock clock = new ManualClock();

  /** Counts lifecycle calls; otherwise a standalone replicator. */
  private static final class CountingReplicator implements Replicator {
    final AtomicInteger starts = new AtomicInteger();
    final AtomicInteger closes = new AtomicInteger();
    final Replicator delegate = new StandaloneReplicator(
            ClusterView.standalone(new Member("n1", null, null, Member.Status.ALIVE)));
    /** Runs inside close(), as a graceful leave that still serves its peers would. */
    volatile java.util.function.Consumer<ReplicaStore> duringClose = r -> { };
    volatile ReplicaStore replica;

    @Override
    public void start(ReplicaStore store) {
      starts.incrementAndGet();
      assertThat(store.nodeId()).isEqualTo("n1");
      replica = store;
    }

    @Override
    public CompletableFuture<Void> replicate(Mutation m, WriteConcern c, Duration t) {
      return delegate.replicate(m, c, t);
    }

    @Override
    public ClusterView clusterView() {
      return delegate.clusterView();
    }

    @Override
    public void close() {
      closes.incrementAndGet();
      duringClose.accept(replica);
    }
  }

  @Test
  void close_closesTheReplicatorOnce_evenWhenCalledTwice() {
    CountingReplicator replicator = new CountingReplicator();
    KvStore store = Stores.builder("n1", clock).replicator(replicator).build();
    assertThat(replicator.starts).hasValue(1);
    store.close();
    store.close();
    assertThat(replicator.closes).hasValue(1);
    assertThat(replicator.starts).hasValue(1);
  }

  @Test
  void afterClose_readsAndWritesThrowStoreClosedException() {
    KvStore store = Stores.open("n1", clock);
    Version v = store.put("k", "v");
    store.close();
    byte[] value = {1};
    List<ThrowingCallable> calls = List.of(
        () -> store.get("k"),
        () -> store.getString("k"),
        () -> store.getVersioned("k"),
        () -> store.scan("", 10),
        () -> store.scan("", "a", 10),
        () -> store.put("k", value),
        () -> store.put("k", "v"),
        () -> store.put("k", value, WriteOptions.defaults()),
        () -> store.putIfAbsent("k", value),
        () -> store.putIfVersion("k", value, v),
        () -> store.delete("k"),
        () -> store.delete("k", WriteOptions.defaults()),
        () -> store.deleteIfVersion("k", v));
    for (int i = 0; i < calls.size(); i++) {
      assertThatThrownBy(calls.get(i)).as("call #%d", i)
          .isInstanceOf(StoreClosedException.class)
          .hasMessageContaining("n1").hasMessageContaining("closed");
    }
    // The async forms fail their future instead: CoreRegressionTest.
  }

  /**
   * A partitioned-mode node's graceful leave waits for its peers inside the replicator's close();
   * it is still an owner meanwhile, so writes forwarded to it run, although its user already closed
   * the store. Once the replicator's close() returned, they fail as closed.
   */
  @Test
  void forwardedWrites_runWhileTheReplicatorCloses_andFailAfterwards() throws Exception {
    CountingReplicator replicator = new CountingReplicator();
    KvStore store = Stores.builder("n1", clock).replicator(replicator).build();
    List<Object> outcomes = new java.util.ArrayList<>();
    replicator.duringClose = replica -> {
      assertThatThrownBy(() -> store.put("user", "v")).isInstanceOf(StoreClosedException.class);
      outcomes.add(replica.write(new io.kvstore.core.spi.WriteRequest("fwd", new byte[] {7}, 0,
          false, null, WriteConcern.ONE, 1_000)).join().version());
      outcomes.add(replica.mutation("fwd").valueUnsafe().length);
    };
    store.close();
    assertThat(outcomes).as("the forwarded write inside close(), then its stored value length")
        .hasSize(2).element(1).isEqualTo(1);
    CompletableFuture<io.kvstore.core.spi.WriteResult> after = replicator.replica.write(
        new io.kvstore.core.spi.WriteRequest("fwd2", new byte[] {8}, 0, false, null,
            WriteConcern.ONE, 1_000));
    assertThat(after).failsWithin(Duration.ofSeconds(1)).withThrowableOfType(
        java.util.concurrent.ExecutionException.class)
        .withCauseInstanceOf(StoreClosedException.class);
  }

  @Test
  void afterClose_invalidInputIsStillReportedAsSuch() {
    KvStore store = Stores.open("n1", clock);
    store.close();
    assertThatThrownBy(() -> store.putAsync("", new byte[0], WriteOptions.defaults()))
        .isInstanceOf(IllegalArgumentException.class);
  }
}
