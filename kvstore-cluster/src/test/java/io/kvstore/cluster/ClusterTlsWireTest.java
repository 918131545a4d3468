package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.kvstore.core.KvStore;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteOptions;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Confidentiality on the wire: node A reaches node B only through a recording TCP proxy (B binds
 * 127.0.0.2 and advertises 127.0.0.3, where the proxy listens, for both planes). A QUORUM write on A
 * must be acknowledged by B, so its value certainly crossed the proxy. Without TLS the value, key and
 * cluster name are in the recorded bytes (the control: the check can fail); with TLS, alone or with a
 * keyring, none of them is.
 */
@Timeout(value = 90, unit = TimeUnit.SECONDS)
class ClusterTlsWireTest {
  private static final String NODE_B = "wire-node-bravo";
  private static final String NODE_A = "wire-node-alpha";
  private static final String CLUSTER = "wiretapped-cluster";
  @TempDir
  static Path dir;
  private static TestPki pki;

  @BeforeAll
  static void setUp() {
    for (String host : new String[] {"127.0.0.2", "127.0.0.3"}) {
      try (ServerSocket probe = new ServerSocket(0, 1, InetAddress.getByName(host))) {
        Assumptions.assumeTrue(probe.isBound(), host + " must be a local address (Linux loopback)");
      } catch (IOException e) {
        Assumptions.abort(host + " is not a local address here: " + e);
      }
    }
    pki = TestPki.create(dir, "wire", NODE_A, NODE_B);
  }

  /** What crossed the wire from A to B and back while A wrote {@code key = value} at QUORUM. */
  private static String capture(UnaryOperator<KvClusterBuilder> a, UnaryOperator<KvClusterBuilder> b,
      String key, String value) throws IOException {
    try (KvStore nodeB = node(NODE_B, "127.0.0.2", b).advertiseHost("127.0.0.3").build()) {
      ClusterReplicator rb = java.util.Objects.requireNonNull(ClusterReplicator.owning(nodeB.cluster()));
      int membershipPort = port(rb.membershipAddress());
      try (WireTap tap = new WireTap("127.0.0.3", "127.0.0.2", membershipPort,
          port(rb.dataAddress()));
           KvStore nodeA = node(NODE_A, TestCluster.HOST, a)
               .seeds("127.0.0.3:" + membershipPort).build()) {
        await().atMost(Duration.ofSeconds(20)).until(() -> nodeA.cluster().members().size() == 2
            && nodeB.cluster().members().size() == 2 && nodeA.cluster().isReady());
        nodeA.put(key, value.getBytes(StandardCharsets.UTF_8),
            WriteOptions.concern(WriteConcern.QUORUM).withTimeout(Duration.ofSeconds(10)));
        assertThat(nodeB.getString(key)).hasValue(value);
        byte[] wire = tap.bytes();
        assertThat(wire.length).as("bytes through the tap").isGreaterThan(1000);
        // ISO-8859-1 maps every byte to one char, so a byte sequence search is a string search.
        return new String(wire, StandardCharsets.ISO_8859_1);
      }
    }
  }

  private static KvClusterBuilder node(String id, String host, UnaryOperator<KvClusterBuilder> extra) {
    return extra.apply(KvCluster.builder().nodeId(id).clusterName(CLUSTER).host(host)
        .membershipPort(0).dataPort(0).leaveTimeout(Duration.ofSeconds(1)));
  }

  private static int port(String address) {
    return Integer.parseInt(address.substring(address.lastIndexOf(':') + 1));
  }

  private static String token(String what) {
    return what + "-" + UUID.randomUUID();
  }

  @Test
  void withoutTls_keysValuesAndNamesCrossTheWireInPlaintext() throws IOException {
    String key = token("key");
    String value = token("value");
    String wire = capture(b -> b, b -> b, key, value);
    assertThat(wire).contains(value, key, CLUSTER, NODE_A, NODE_B);
  }

  @Test
  void withTls_noKeyValueOrNameCrossesTheWireInPlaintext() throws IOException {
    String key = token("key");
    String value = token("value");
    String wire = capture(b -> b.tls(pki.tls(NODE_A)), b -> b.tls(pki.tls(NODE_B)), key, value);
    assertThat(wire).doesNotContain(value).doesNotContain(key).doesNotContain(CLUSTER)
        .doesNotContain(NODE_A).doesNotContain(NODE_B);
  }

  @Test
  void withTlsAndAKeyring_nodesReplicate_andNothingCrossesInPlaintext() throws IOException {
    ClusterKeyring keyring = ClusterKeyring.of("wire-key", ClusterKeyringTest.secret(3));
    String key = token("key");
    String value = token("value");
    String wire = capture(b -> b.tls(pki.tls(NODE_A)).keyring(keyring),
        b -> b.tls(pki.tls(NODE_B)).keyring(keyring), key, value);
    assertThat(wire).doesNotContain(value).doesNotContain(key).doesNotContain(CLUSTER)
        .doesNotContain("wire-key");
  }
}
