package io.kvstore.examples.server;

import io.kvstore.cluster.KvCluster;
import io.kvstore.cluster.ReplicationStats;
import io.kvstore.core.KvStore;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.binder.MeterBinder;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.RecordComponent;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Supplier;
import java.util.stream.Collectors;

/**
 * Publishes a clustered store's {@link ReplicationStats} as {@code kvstore_replication_*} meters.
 *
 * <p>The meters are generated from the record's components, so a counter added to
 * {@link ReplicationStats} cannot be forgotten on /metrics: {@link #METERS} names every component once
 * (its meter name, help text and kind), and the constructor fails when a component has no entry or an
 * entry names no component. Meter names are part of the operator's dashboards and stay stable; that is
 * why they are listed here rather than derived from the Java names.
 */
final class ReplicationMetrics implements MeterBinder {
  enum Kind { COUNTER, GAUGE }

  record Meter(String name, String help, Kind kind) {}

  /** Record component name to its meter, in the record's order. */
  static final Map<String, Meter> METERS = meters();

  private static Map<String, Meter> meters() {
    Map<String, Meter> m = new LinkedHashMap<>();
    counter(m, "framesSent", "frames.sent", "data-plane frames written to peers");
    counter(m, "framesReceived", "frames.received", "data-plane frames read from peers");
    counter(m, "bytesSent", "bytes.sent", "data-plane bytes written");
    counter(m, "bytesReceived", "bytes.received", "data-plane bytes read");
    counter(m, "mutationsSent", "mutations.sent", "mutations fanned out to peers");
    counter(m, "mutationsAcked", "mutations.acked", "fanned-out mutations peers acknowledged");
    counter(m, "mutationsRefused", "mutations.refused", "fanned-out mutations peers refused");
    counter(m, "mutationsDropped", "mutations.dropped", "fanned-out mutations left to anti-entropy");
    counter(m, "mutationsCoalesced", "mutations.coalesced",
        "queued mutations superseded by a newer version of their key before being sent");
    counter(m, "mutationsCoalescedAcked", "mutations.coalesced.acked",
        "coalesced mutations whose superseding version a peer acknowledged");
    counter(m, "antiEntropyRounds", "antientropy.rounds", "anti-entropy rounds completed");
    counter(m, "antiEntropyRoundsFailed", "antientropy.rounds.failed", "anti-entropy rounds failed");
    counter(m, "antiEntropyRoundsDeferred", "antientropy.rounds.deferred",
        "periodic anti-entropy rounds deferred while fan-out with the peer was behind");
    counter(m, "antiEntropyKeysPushed", "antientropy.keys.pushed", "keys pushed by anti-entropy");
    counter(m, "antiEntropyKeysPulled", "antientropy.keys.pulled", "keys pulled by anti-entropy");
    counter(m, "antiEntropyKeysHandedOff", "antientropy.keys.handedoff",
        "keys of partitions this node no longer owns pushed to their owners (partitioned mode)");
    counter(m, "keysEvicted", "keys.evicted",
        "keys dropped (not deleted) from partitions this node no longer owns, after handoff");
    counter(m, "malformedFrames", "frames.malformed", "malformed frames (connection closed)");
    counter(m, "handshakeFailures", "handshake.failures",
        "refused or failed data-plane handshakes");
    counter(m, "membershipMessagesRefused", "membership.messages.refused",
        "membership messages refused unread");
    counter(m, "authenticationFailures", "authentication.failures",
        "failed cluster-secret checks, both planes");
    counter(m, "tlsFailures", "tls.failures",
        "failed cluster TLS handshakes and TLS errors, both planes");
    counter(m, "inboundConnectionsRefused", "connections.refused",
        "inbound cluster connections closed on arrival (caps)");
    counter(m, "membershipConnectionsTimedOut", "membership.connections.timedout",
        "inbound membership connections closed for sending no valid message in time");
    m.put("connectedPeers", new Meter("peers.connected",
        "peers with a working outgoing connection", Kind.GAUGE));
    return Collections.unmodifiableMap(m);
  }

  private static void counter(Map<String, Meter> m, String component, String name, String help) {
    if (m.put(component, new Meter(name, help, Kind.COUNTER)) != null) {
      throw new IllegalStateException("two meters for " + component);
    }
  }

  private final KvStore store;
  private final Supplier<Optional<ReplicationStats>> stats;
  private final Map<String, Method> accessors = new LinkedHashMap<>();

  ReplicationMetrics(KvStore store) {
    this(store, () -> KvCluster.stats(store));
  }

  ReplicationMetrics(KvStore store, Supplier<Optional<ReplicationStats>> stats) {
    this.store = store;
    this.stats = stats;
    checkCoverage(METERS);
    for (RecordComponent c : ReplicationStats.class.getRecordComponents()) {
      accessors.put(c.getName(), c.getAccessor());
    }
  }

  /**
   * Fails unless {@code meters} has exactly one entry per {@link ReplicationStats} component.
   *
   * @throws IllegalStateException naming the components without a meter and the stale entries
   */
  static void checkCoverage(Map<String, Meter> meters) {
    Set<String> components = Arrays.stream(ReplicationStats.class.getRecordComponents())
        .map(RecordComponent::getName).collect(Collectors.toCollection(TreeSet::new));
    Set<String> missing = new TreeSet<>(components);
    missing.removeAll(meters.keySet());
    Set<String> stale = new TreeSet<>(meters.keySet());
    stale.removeAll(components);
    if (!missing.isEmpty() || !stale.isEmpty()) {
      throw new IllegalStateException("ReplicationMetrics.METERS out of date with ReplicationStats:"
          + " components without a meter " + missing + ", entries without a component " + stale);
    }
  }

  private double read(Method accessor) {
    return stats.get().map(s -> {
      try {
        return ((Number) accessor.invoke(s)).doubleValue();
      } catch (IllegalAccessException | InvocationTargetException e) {
        throw new IllegalStateException("cannot read " + accessor.getName(), e);
      }
    }).orElse(0.0);
  }

  @Override
  public void bindTo(MeterRegistry r) {
    for (Map.Entry<String, Meter> e : METERS.entrySet()) {
      Method accessor = accessors.get(e.getKey());
      Meter meter = e.getValue();
      String name = "kvstore.replication." + meter.name();
      if (meter.kind() == Kind.COUNTER) {
        FunctionCounter.builder(name, this, m -> m.read(accessor))
            .description(meter.help()).register(r);
      } else {
        Gauge.builder(name, this, m -> m.read(accessor)).description(meter.help()).register(r);
      }
    }
    Gauge.builder("kvstore.cluster.members", store, s -> s.cluster().members().size())
        .description("members this node knows, itself included").register(r);
  }
}
