package io.kvstore.examples.server;

import io.kvstore.cluster.KvCluster;
import io.kvstore.cluster.ReplicationStats;
import io.kvstore.core.KvStore;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.binder.MeterBinder;
import java.util.function.ToDoubleFunction;

/** Publishes a clustered store's {@link ReplicationStats} as {@code kvstore_replication_*} meters. */
final class ReplicationMetrics implements MeterBinder {
  private final KvStore store;

  ReplicationMetrics(KvStore store) {
    this.store = store;
  }

  private double read(ToDoubleFunction<ReplicationStats> field) {
    return KvCluster.stats(store).map(field::applyAsDouble).orElse(0.0);
  }

  private void counter(MeterRegistry r, String name, String help,
      ToDoubleFunction<ReplicationStats> field) {
    FunctionCounter.builder("kvstore.replication." + name, this, m -> m.read(field))
        .description(help).register(r);
  }

  @Override
  public void bindTo(MeterRegistry r) {
    counter(r, "frames.sent", "data-plane frames written to peers", s -> s.framesSent());
    counter(r, "frames.received", "data-plane frames read from peers", s -> s.framesReceived());
    counter(r, "bytes.sent", "data-plane bytes written", s -> s.bytesSent());
    counter(r, "bytes.received", "data-plane bytes read", s -> s.bytesReceived());
    counter(r, "mutations.sent", "mutations fanned out to peers", s -> s.mutationsSent());
    counter(r, "mutations.acked", "fanned-out mutations peers acknowledged", s -> s.mutationsAcked());
    counter(r, "mutations.refused", "fanned-out mutations peers refused", s -> s.mutationsRefused());
    counter(r, "mutations.dropped", "fanned-out mutations left to anti-entropy",
        s -> s.mutationsDropped());
    counter(r, "antientropy.rounds", "anti-entropy rounds completed", s -> s.antiEntropyRounds());
    counter(r, "antientropy.rounds.failed", "anti-entropy rounds failed",
        s -> s.antiEntropyRoundsFailed());
    counter(r, "antientropy.keys.pushed", "keys pushed by anti-entropy",
        s -> s.antiEntropyKeysPushed());
    counter(r, "antientropy.keys.pulled", "keys pulled by anti-entropy",
        s -> s.antiEntropyKeysPulled());
    counter(r, "frames.malformed", "malformed frames (connection closed)", s -> s.malformedFrames());
    counter(r, "handshake.failures", "refused or failed data-plane handshakes",
        s -> s.handshakeFailures());
    counter(r, "tls.failures", "failed cluster TLS handshakes and TLS errors, both planes",
        s -> s.tlsFailures());
    counter(r, "membership.messages.refused", "membership messages refused unread",
        s -> s.membershipMessagesRefused());
    counter(r, "authentication.failures", "failed cluster-secret checks, both planes",
        s -> s.authenticationFailures());
    counter(r, "connections.refused", "inbound cluster connections closed on arrival (caps)",
        s -> s.inboundConnectionsRefused());
    counter(r, "membership.connections.timedout",
        "inbound membership connections closed for sending no valid message in time",
        s -> s.membershipConnectionsTimedOut());
    Gauge.builder("kvstore.replication.peers.connected", this,
            m -> m.read(s -> s.connectedPeers()))
        .description("peers with a working outgoing connection").register(r);
    Gauge.builder("kvstore.cluster.members", store, s -> s.cluster().members().size())
        .description("members this node knows, itself included").register(r);
  }
}
