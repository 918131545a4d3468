package io.kvstore.core.spi;

import io.kvstore.core.ClusterView;
import io.kvstore.core.KvStore;
import io.kvstore.core.KvStoreBuilder;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteConcernException;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;

/**
 * Carries a store's mutations to other nodes and other nodes' mutations to it: the SPI between
 * kvstore-core and a replication layer (kvstore-cluster, or the simulation in its tests). A store
 * without one (the default of {@link KvStoreBuilder}) runs alone.
 *
 * <h2>Lifecycle</h2>
 * {@link #start(ReplicaStore)} is called once, by {@link KvStoreBuilder#build()}, before any other call
 * and before the store is returned to the user. {@link #close()} is called once by {@link KvStore#close()};
 * after it the store makes no more calls.
 *
 * <h2>Threads and blocking</h2>
 * {@link #replicate(Mutation, WriteConcern, Duration)} is called on the writer's thread, concurrently
 * from many threads. It must not block and must not throw: it queues the mutation for sending and returns
 * a future; any failure goes into that future. {@link #clusterView()} is called from any thread and must
 * be cheap. A replicator may call {@link ReplicaStore} from any of its own threads at any time after
 * {@code start}.
 *
 * <h2>Ordering and delivery</h2>
 * No ordering is promised or needed: mutations of one key may reach a peer in any order, duplicated or
 * not at all, because {@link ReplicaStore#apply(Mutation)} merges last-writer-wins idempotently.
 * Delivery is best effort; anti-entropy ({@link Digest}, {@link ReplicaStore#keyVersions},
 * {@link AntiEntropy}) repairs whatever the fan-out loses. Memory used for unsent mutations must stay
 * bounded: a peer that cannot keep up is left to anti-entropy.
 *
 * <h2>Write concerns</h2>
 * {@code replicate} is called after the mutation is applied locally, which counts as the first
 * acknowledgement. The future completes normally once {@link WriteConcern#requiredAcks(int)} replicas of
 * the current membership hold the mutation or a newer version of its key (an {@link ApplyResult#isHeld()}
 * answer), and fails with {@link WriteConcernException} when the timeout passes first or the cluster is
 * too small. For {@link WriteConcern#ONE} it may complete at once. A failed future never means the write
 * was undone: it is applied locally and may still spread.
 */
public interface Replicator extends AutoCloseable {
  /**
   * Starts replicating for a store; called once.
   *
   * @param store the local store
   */
  void start(ReplicaStore store);

  /**
   * Hands out a local mutation that is already applied and visible locally.
   *
   * @param mutation the mutation
   * @param concern replicas that must hold it before the future completes
   * @param timeout how long to wait for acknowledgements
   * @return completes per the write concern; never null
   */
  java.util.concurrent.CompletableFuture<Void> replicate(Mutation mutation, WriteConcern concern,
      Duration timeout);

  /**
   * The cluster as this node sees it.
   *
   * @return the view
   */
  ClusterView clusterView();

  /**
   * Where keys live, when this replicator partitions them; the store consults it on every read and
   * write. Called once, after {@link #start}.
   *
   * @return the router, or null when every node holds every key (the default)
   */
  default Router router() {
    return null;
  }

  /** Leaves the cluster and releases resources. Called once; must not throw. */
  @Override
  void close();
}
