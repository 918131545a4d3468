package io.kvstore.examples.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.kvstore.cluster.ReplicationStats;
import io.kvstore.core.KvStore;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.lang.reflect.RecordComponent;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(30)
class ReplicationMetricsTest {

  /** A stats record whose i-th component holds i + 1, so a meter wired to the wrong one shows. */
  private static ReplicationStats distinctValues() throws Exception {
    RecordComponent[] components = ReplicationStats.class.getRecordComponents();
    Object[] args = new Object[components.length];
    Class<?>[] types = new Class<?>[components.length];
    for (int i = 0; i < components.length; i++) {
      types[i] = components[i].getType();
      args[i] = types[i] == int.class ? (Object) (i + 1) : (Object) (long) (i + 1);
    }
    return ReplicationStats.class.getDeclaredConstructor(types).newInstance(args);
  }

  @Test
  void everyReplicationStatsComponent_hasExactlyOneMeter() {
    ReplicationMetrics.checkCoverage(ReplicationMetrics.METERS);
    assertThat(ReplicationMetrics.METERS).hasSize(ReplicationStats.class.getRecordComponents().length);
    assertThat(ReplicationMetrics.METERS.values().stream().map(ReplicationMetrics.Meter::name))
        .doesNotHaveDuplicates();
  }

  @Test
  void aComponentWithoutAMeter_orAStaleEntry_failsTheCoverageCheck() {
    Map<String, ReplicationMetrics.Meter> missing = new LinkedHashMap<>(ReplicationMetrics.METERS);
    missing.remove("authenticationFailures");
    assertThatThrownBy(() -> ReplicationMetrics.checkCoverage(missing))
        .isInstanceOf(IllegalStateException.class).hasMessageContaining("[authenticationFailures]");

    Map<String, ReplicationMetrics.Meter> stale = new LinkedHashMap<>(ReplicationMetrics.METERS);
    stale.put("framesLost", new ReplicationMetrics.Meter("frames.lost", "x",
        ReplicationMetrics.Kind.COUNTER));
    assertThatThrownBy(() -> ReplicationMetrics.checkCoverage(stale))
        .isInstanceOf(IllegalStateException.class).hasMessageContaining("[framesLost]");
  }

  @Test
  void eachComponent_isExportedUnderItsName_withItsOwnValue() throws Exception {
    ReplicationStats stats = distinctValues();
    try (KvStore store = KvStore.builder().nodeId("metrics-test").build()) {
      SimpleMeterRegistry registry = new SimpleMeterRegistry();
      new ReplicationMetrics(store, () -> Optional.of(stats)).bindTo(registry);
      RecordComponent[] components = ReplicationStats.class.getRecordComponents();
      for (int i = 0; i < components.length; i++) {
        ReplicationMetrics.Meter meter = ReplicationMetrics.METERS.get(components[i].getName());
        Meter registered = registry.find("kvstore.replication." + meter.name()).meter();
        assertThat(registered).as(components[i].getName()).isNotNull();
        assertThat(registered.measure().iterator().next().getValue())
            .as(components[i].getName()).isEqualTo(i + 1.0);
      }
      assertThat(registry.find("kvstore.replication.authentication.failures").functionCounter())
          .isNotNull();
      assertThat(registry.find("kvstore.replication.membership.messages.refused").functionCounter())
          .isNotNull();
      assertThat(registry.find("kvstore.replication.peers.connected").gauge()).isNotNull();
    }
  }

  @Test
  void aStoreWithoutACluster_exportsZeros() {
    try (KvStore store = KvStore.builder().nodeId("metrics-test").build()) {
      SimpleMeterRegistry registry = new SimpleMeterRegistry();
      new ReplicationMetrics(store).bindTo(registry);
      assertThat(registry.find("kvstore.replication.frames.sent").functionCounter().count())
          .isZero();
      assertThat(registry.find("kvstore.cluster.members").gauge().value()).isEqualTo(1.0);
    }
  }
}
