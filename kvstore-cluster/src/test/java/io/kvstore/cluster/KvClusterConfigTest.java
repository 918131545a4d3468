package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(value = 30, unit = TimeUnit.SECONDS)
class KvClusterConfigTest {

  private static KvClusterConfig config(UnaryOperator<KvClusterBuilder> settings) {
    return settings.apply(KvCluster.builder().nodeId("n1")).config();
  }

  @Test
  void defaults_areTheDocumentedConstants() {
    KvClusterConfig c = config(b -> b);
    assertThat(c.clusterName()).isEqualTo(KvClusterConfig.DEFAULT_CLUSTER_NAME);
    assertThat(c.host()).isEqualTo("127.0.0.1");
    assertThat(c.advertiseHost()).isEqualTo("127.0.0.1");
    assertThat(c.membershipPort()).isEqualTo(KvClusterConfig.DEFAULT_MEMBERSHIP_PORT);
    assertThat(c.dataPort()).isEqualTo(KvClusterConfig.DEFAULT_DATA_PORT);
    assertThat(c.seeds()).isEmpty();
    assertThat(c.pingInterval()).isEqualTo(KvClusterConfig.DEFAULT_PING_INTERVAL);
    assertThat(c.pingTimeout()).isEqualTo(KvClusterConfig.DEFAULT_PING_TIMEOUT);
    assertThat(c.suspicionMultiplier()).isEqualTo(KvClusterConfig.DEFAULT_SUSPICION_MULTIPLIER);
    assertThat(c.syncInterval()).isEqualTo(KvClusterConfig.DEFAULT_SYNC_INTERVAL);
    assertThat(c.antiEntropyInterval()).isEqualTo(KvClusterConfig.DEFAULT_ANTI_ENTROPY_INTERVAL);
    assertThat(c.maxInFlightBytesPerPeer())
        .isEqualTo(KvClusterConfig.DEFAULT_MAX_IN_FLIGHT_BYTES_PER_PEER);
    assertThat(c.maxInboundConnections()).isEqualTo(256);
    assertThat(c.maxUnauthenticatedConnectionsPerAddress()).isEqualTo(16);
    assertThat(c.membershipIdleTimeout()).isEqualTo(Duration.ofSeconds(60));
    assertThat(c.replicationFactor()).isEqualTo(KvClusterConfig.FULL_REPLICATION);
    assertThat(c.removalDelay()).isEqualTo(Duration.ofMinutes(5))
        .isEqualTo(KvClusterConfig.DEFAULT_REMOVAL_DELAY);
  }

  @Test
  void replicationFactor_belowOne_isRejected_sayingHowToGetFullReplication() {
    for (int bad : new int[] {0, -1, Integer.MIN_VALUE}) {
      assertThatThrownBy(() -> config(b -> b.replicationFactor(bad)))
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessageContaining("replicationFactor must be at least 1, was " + bad)
          .hasMessageContaining("leave it unset for full replication");
    }
    assertThat(config(b -> b.replicationFactor(1)).replicationFactor()).isEqualTo(1);
    assertThat(config(b -> b.replicationFactor(3)).replicationFactor()).isEqualTo(3);
    // At or above any plausible node count: accepted, and simply full replication.
    assertThat(config(b -> b.replicationFactor(1000)).replicationFactor()).isEqualTo(1000);
  }

  @Test
  void configRecord_acceptsFullReplicationSentinel_butNotNegativeFactors() {
    KvClusterConfig c = config(b -> b);
    assertThatThrownBy(() -> withReplication(c, -2, c.removalDelay()))
        .hasMessageContaining("replicationFactor must be at least 1 (or FULL_REPLICATION");
    assertThat(withReplication(c, KvClusterConfig.FULL_REPLICATION, c.removalDelay())
        .replicationFactor()).isZero();
  }

  @Test
  void removalDelay_mustBePositive() {
    assertThatThrownBy(() -> config(b -> b.removalDelay(Duration.ZERO)))
        .hasMessageContaining("removalDelay must be a positive duration, was PT0S");
    assertThatThrownBy(() -> config(b -> b.removalDelay(Duration.ofSeconds(-1))))
        .hasMessageContaining("removalDelay");
    assertThatThrownBy(() -> config(b -> b.removalDelay(null))).hasMessageContaining("removalDelay");
    assertThat(config(b -> b.removalDelay(Duration.ofSeconds(2))).removalDelay())
        .isEqualTo(Duration.ofSeconds(2));
  }

  private static KvClusterConfig withReplication(KvClusterConfig c, int rf, Duration delay) {
    return new KvClusterConfig(c.nodeId(), c.clusterName(), c.host(), c.advertiseHost(),
        c.membershipPort(), c.dataPort(), c.seeds(), c.pingInterval(), c.pingTimeout(),
        c.pingRequestMembers(), c.suspicionMultiplier(), c.syncInterval(), c.joinTimeout(),
        c.metadataTimeout(), c.gossipInterval(), c.antiEntropyInterval(), c.antiEntropyTimeout(),
        c.connectTimeout(), c.handshakeTimeout(), c.reconnectBackoffMin(), c.reconnectBackoffMax(),
        c.maxBatchBytes(), c.maxInFlightBytesPerPeer(), c.leaveTimeout(), c.maxInboundConnections(),
        c.maxUnauthenticatedConnectionsPerAddress(), c.membershipIdleTimeout(), c.keyring(),
        c.tls(), rf, delay, c.antiEntropyBytesPerSecond());
  }

  @Test
  void connectionBudget_isValidated_namingTheSetting() {
    assertThatThrownBy(() -> config(b -> b.maxInboundConnections(0)))
        .hasMessageContaining("maxInboundConnections");
    assertThatThrownBy(() -> config(b -> b.maxInboundConnections(8)
        .maxUnauthenticatedConnectionsPerAddress(9)))
        .hasMessageContaining("maxUnauthenticatedConnectionsPerAddress must be between 1 and 8");
    assertThatThrownBy(() -> config(b -> b.membershipIdleTimeout(Duration.ZERO)))
        .hasMessageContaining("membershipIdleTimeout");
    KvClusterConfig c = config(b -> b.maxInboundConnections(8)
        .maxUnauthenticatedConnectionsPerAddress(2).membershipIdleTimeout(Duration.ofSeconds(1)));
    assertThat(c.maxInboundConnections()).isEqualTo(8);
    assertThat(c.maxUnauthenticatedConnectionsPerAddress()).isEqualTo(2);
    assertThat(c.membershipIdleTimeout()).isEqualTo(Duration.ofSeconds(1));
  }

  @Test
  void defaultTimings_meetTheRemovalAndRemergeBudgets() {
    KvClusterConfig c = config(b -> b);
    // Removal of a killed member of a 3-node cluster: up to three ping intervals to suspect it, then
    // the suspicion timeout ScaleCube computes as mult * ceil(log2(members + 1)) * pingInterval.
    long suspicion3 = c.suspicionMultiplier() * 2L * c.pingInterval().toMillis();
    assertThat(3 * c.pingInterval().toMillis() + suspicion3).isLessThanOrEqualTo(6_000);
    // Up to 7 members the log term is 3.
    long suspicion7 = c.suspicionMultiplier() * 3L * c.pingInterval().toMillis();
    assertThat(3 * c.pingInterval().toMillis() + suspicion7).isLessThanOrEqualTo(8_000);
    assertThat(c.syncInterval().multipliedBy(4)).isLessThanOrEqualTo(Duration.ofSeconds(10));
    assertThat(c.antiEntropyInterval()).isLessThanOrEqualTo(Duration.ofSeconds(1));
  }

  @Test
  void nodeId_missing_isGeneratedOnceAndKept() {
    KvClusterBuilder b = KvCluster.builder();
    String id = b.config().nodeId();
    assertThat(id).startsWith("node-");
    assertThat(b.config().nodeId()).isEqualTo(id);
  }

  @Test
  void seeds_areCopied_andImmutable() {
    List<String> seeds = new ArrayList<>(List.of("127.0.0.1:7000"));
    KvClusterBuilder b = KvCluster.builder().nodeId("n1").seeds(seeds);
    seeds.add("127.0.0.1:7001");
    KvClusterConfig c = b.config();
    assertThat(c.seeds()).containsExactly("127.0.0.1:7000");
    assertThatThrownBy(() -> c.seeds().add("x:1")).isInstanceOf(UnsupportedOperationException.class);
  }

  @Test
  void invalidNodeId_isRejectedByName() {
    assertThatThrownBy(() -> config(b -> b.nodeId("bad id")))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("node id");
  }

  @Test
  void invalidClusterNames_areRejected() {
    for (String name : new String[] {"", "x", "-abc", "abc-", "a b", "a/b", "a.b", "é".repeat(3),
        "a".repeat(65)}) {
      assertThatThrownBy(() -> config(b -> b.clusterName(name)), name)
          .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("clusterName");
    }
    assertThat(config(b -> b.clusterName("ab")).clusterName()).isEqualTo("ab");
    assertThat(config(b -> b.clusterName("prod_eu-1")).clusterName()).isEqualTo("prod_eu-1");
  }

  @Test
  void wildcardHost_needsAnAdvertiseHost() {
    assertThatThrownBy(() -> config(b -> b.host("0.0.0.0")))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("advertiseHost");
    KvClusterConfig c = config(b -> b.host("0.0.0.0").advertiseHost("10.1.2.3"));
    assertThat(c.host()).isEqualTo("0.0.0.0");
    assertThat(c.advertiseHost()).isEqualTo("10.1.2.3");
  }

  @Test
  void badHostsAndPorts_areRejectedByName() {
    assertThatThrownBy(() -> config(b -> b.host(" "))).hasMessageContaining("host");
    assertThatThrownBy(() -> config(b -> b.host("a/b"))).hasMessageContaining("host");
    assertThatThrownBy(() -> config(b -> b.membershipPort(-1))).hasMessageContaining("membershipPort");
    assertThatThrownBy(() -> config(b -> b.dataPort(65536))).hasMessageContaining("dataPort");
    assertThatThrownBy(() -> config(b -> b.membershipPort(7000).dataPort(7000)))
        .hasMessageContaining("must differ");
    assertThat(config(b -> b.membershipPort(0).dataPort(0)).dataPort()).isZero();
  }

  @Test
  void malformedSeeds_areRejected() {
    for (String seed : new String[] {"localhost", ":7000", "host:", "host:0", "host:70000", "host:x",
        "a b:1"}) {
      assertThatThrownBy(() -> config(b -> b.seeds(seed)), seed)
          .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("seed");
    }
    assertThatThrownBy(() -> config(b -> b.seeds((String) null)))
        .isInstanceOf(IllegalArgumentException.class);
    assertThat(config(b -> b.seeds("::1:7000")).seeds()).containsExactly("::1:7000");
  }

  @Test
  void inconsistentTimings_areRejectedWithBothValues() {
    assertThatThrownBy(() -> config(b -> b.pingInterval(Duration.ofMillis(500))
        .pingTimeout(Duration.ofMillis(500))))
        .hasMessageContaining("pingTimeout").hasMessageContaining("pingInterval");
    assertThatThrownBy(() -> config(b -> b.reconnectBackoff(Duration.ofSeconds(2),
        Duration.ofSeconds(1)))).hasMessageContaining("reconnectBackoffMax");
    assertThatThrownBy(() -> config(b -> b.syncInterval(Duration.ZERO)))
        .hasMessageContaining("syncInterval");
    assertThatThrownBy(() -> config(b -> b.antiEntropyInterval(Duration.ofMillis(-1))))
        .hasMessageContaining("antiEntropyInterval");
    assertThatThrownBy(() -> config(b -> b.leaveTimeout(null))).hasMessageContaining("leaveTimeout");
    assertThatThrownBy(() -> config(b -> b.suspicionMultiplier(0)))
        .hasMessageContaining("suspicionMultiplier");
  }

  @Test
  void memoryBounds_mustHoldTheLargestFrame() {
    assertThatThrownBy(() -> config(b -> b.maxInFlightBytesPerPeer(KvClusterConfig.MAX_FRAME_BYTES)))
        .hasMessageContaining("maxInFlightBytesPerPeer");
    assertThatThrownBy(() -> config(b -> b.maxBatchBytes(100))).hasMessageContaining("maxBatchBytes");
    assertThat(KvClusterConfig.MAX_FRAME_BYTES).isLessThan(2 * 1024 * 1024);
  }

  @Test
  void buildReplicator_withStoreOfAnotherNodeId_failsNamingBoth() {
    ClusterReplicator replicator = KvCluster.builder().nodeId("n1").membershipPort(0).dataPort(0)
        .buildClusterReplicator();
    assertThatThrownBy(() -> io.kvstore.core.KvStore.builder().nodeId("n2").replicator(replicator)
        .build())
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("'n2'").hasMessageContaining("'n1'");
  }
}
