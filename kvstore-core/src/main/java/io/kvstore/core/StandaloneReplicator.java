package io.kvstore.core;

import io.kvstore.core.spi.ReplicaStore;
import io.kvstore.core.spi.Replicator;
import io.kvstore.core.spi.Mutation;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;

/**
 * The replicator of a store without a cluster: every write concern is met by the local apply. The
 * store recognises it and skips building the mutation it would hand over, since nothing consumes it.
 */
final class StandaloneReplicator implements Replicator {
  static final CompletableFuture<Void> DONE = CompletableFuture.completedFuture(null);

  private final ClusterView view;

  StandaloneReplicator(ClusterView view) {
    this.view = view;
  }

  @Override
  public void start(ReplicaStore store) {}

  @Override
  public CompletableFuture<Void> replicate(Mutation mutation, WriteConcern concern,
      Duration timeout) {
    return DONE;
  }

  @Override
  public ClusterView clusterView() {
    return view;
  }

  @Override
  public void close() {}
}
