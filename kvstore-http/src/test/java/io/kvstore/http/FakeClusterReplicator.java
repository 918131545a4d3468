package io.kvstore.http;

import io.kvstore.core.ClusterView;
import io.kvstore.core.Member;
import io.kvstore.core.MembershipEvent;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.ReplicaStore;
import io.kvstore.core.Registration;
import io.kvstore.core.spi.Replicator;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteConcernException;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.function.Consumer;

/**
 * A replicator for a node that believes it has one peer which never acknowledges: write concern ONE
 * succeeds, QUORUM and ALL fail as a real replicator's would. Readiness is set by the test.
 */
final class FakeClusterReplicator implements Replicator {
  private final Member self;
  private final Member peer = new Member("node-2", "127.0.0.1:7002", "127.0.0.1:7102",
      Member.Status.ALIVE);
  private volatile boolean ready = true;

  FakeClusterReplicator(String nodeId) {
    this.self = new Member(nodeId, "127.0.0.1:7001", "127.0.0.1:7101", Member.Status.ALIVE);
  }

  void ready(boolean ready) {
    this.ready = ready;
  }

  @Override
  public void start(ReplicaStore store) {}

  @Override
  public CompletableFuture<Void> replicate(Mutation mutation, WriteConcern concern,
      Duration timeout) {
    if (concern == WriteConcern.ONE) {
      return CompletableFuture.completedFuture(null);
    }
    return CompletableFuture.failedFuture(new WriteConcernException(concern,
        concern.requiredAcks(2), 1, "node-2 did not answer within " + timeout));
  }

  @Override
  public ClusterView clusterView() {
    return new ClusterView() {
      @Override
      public Member self() {
        return self;
      }

      @Override
      public List<Member> members() {
        return List.of(self, peer);
      }

      @Override
      public boolean isReady() {
        return ready;
      }

      @Override
      public Registration addListener(Consumer<MembershipEvent> listener) {
        return () -> { };
      }
    };
  }

  @Override
  public void close() {}
}
