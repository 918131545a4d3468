package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.kvstore.core.ReplicaViews;
import io.kvstore.core.KvStore;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.ReplicaStore;
import io.kvstore.core.Version;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteOptions;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.io.IOException;
import java.io.InputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A 3-node cluster with TLS and no keyring: it replicates and converges; a node with a certificate of
 * another CA, or without TLS, never joins, and whatever it sends on either port changes nothing on any
 * node (its attempts are counted); garbage on the TLS ports closes the connection and leaves the
 * cluster healthy.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ClusterTlsTest {
  private static final ByteBufAllocator ALLOC = ByteBufAllocator.DEFAULT;
  private static final String CLUSTER = "tls";
  @TempDir
  static Path dir;
  private static TestPki pki;
  private static TestPki rogueCa;
  private static TestCluster cluster;

  @BeforeAll
  static void startCluster() {
    pki = TestPki.create(dir, "cluster", "t1", "t2", "t3");
    rogueCa = TestPki.create(dir, "rogue", "r1");
    cluster = TestCluster.startEach(CLUSTER, "t", 3, b -> b.handshakeTimeout(Duration.ofSeconds(2)),
        id -> b -> b.tls(pki.tls(id)));
    cluster.node("t1").store().put("members-only", "kept");
    await().atMost(Duration.ofSeconds(10)).until(() -> cluster.nodes().stream()
        .allMatch(n -> n.store().getString("members-only").isPresent()));
  }

  @AfterAll
  static void stopCluster() {
    if (cluster != null) {
      cluster.close();
    }
  }

  private static long tlsFailures() {
    return cluster.nodes().stream().mapToLong(n -> n.stats().tlsFailures()).sum();
  }

  private static void assertAbsentEverywhere(String... keys) {
    for (TestCluster.Node n : cluster.nodes()) {
      for (String key : keys) {
        assertThat(n.store().getString(key)).as("%s on %s", key, n.id()).isEmpty();
      }
    }
  }

  private static void assertUnchanged() {
    for (TestCluster.Node n : cluster.nodes()) {
      assertThat(n.store().getString("members-only")).as("on %s", n.id()).hasValue("kept");
      assertThat(n.memberIds()).as("members seen by %s", n.id()).containsExactly("t1", "t2", "t3");
    }
  }

  private static KvStore outsider(String id, UnaryOperator<KvClusterBuilder> settings) {
    return settings.apply(KvCluster.builder().nodeId(id).clusterName(CLUSTER)
        .host(TestCluster.HOST).membershipPort(0).dataPort(0)
        .seeds(cluster.node("t1").membershipAddress()).handshakeTimeout(Duration.ofSeconds(2))
        .joinTimeout(Duration.ofSeconds(1)).leaveTimeout(Duration.ofSeconds(1))).build();
  }

  /** The outsider's join attempts are refused and counted; it sees no one, and no one sees it. */
  private static void assertStaysOut(KvStore outsider, String id) {
    long before = tlsFailures();
    await().atMost(Duration.ofSeconds(10)).until(() -> tlsFailures() > before);
    outsider.put("outsider-write-" + id, "x");
    outsider.delete("members-only");
    await().during(Duration.ofSeconds(3)).atMost(Duration.ofSeconds(5)).until(() ->
        cluster.nodes().stream().allMatch(n -> n.memberIds().equals(Set.of("t1", "t2", "t3"))
            && n.store().getString("members-only").isPresent())
            && outsider.cluster().members().size() == 1);
    assertAbsentEverywhere("outsider-write-" + id);
    assertThat(outsider.getString("members-only")).isEmpty();
  }

  private static ByteBuf hello() {
    return Frames.hello(ALLOC, CLUSTER, "intruder", new byte[Frames.NONCE_BYTES]);
  }

  private static ByteBuf mutation(String key) {
    Mutation m = Mutation.put(key, "evil".getBytes(StandardCharsets.UTF_8),
        Version.of(System.currentTimeMillis(), 0, "intruder"), 0);
    return Frames.mutations(ALLOC, 1, 0, List.of(m), Frames.mutationSize(m));
  }

  private static ByteBuf deletion(String key) {
    Mutation m = Mutation.delete(key, Version.of(System.currentTimeMillis() + 1000, 0, "intruder"));
    return Frames.mutations(ALLOC, 2, 0, List.of(m), Frames.mutationSize(m));
  }

  @Test
  void tlsCluster_replicatesPutsAndDeletesAtQuorum_andConverges() {
    WriteOptions quorum = WriteOptions.concern(WriteConcern.QUORUM).withTimeout(Duration.ofSeconds(10));
    for (TestCluster.Node n : cluster.nodes()) {
      for (int i = 0; i < 20; i++) {
        n.store().put("q-" + n.id() + "-" + i, ("v" + i).getBytes(StandardCharsets.UTF_8), quorum);
      }
      for (int i = 0; i < 20; i += 4) {
        n.store().delete("q-" + n.id() + "-" + i, quorum);
      }
    }
    await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> {
      for (TestCluster.Node n : cluster.nodes()) {
        for (TestCluster.Node writer : cluster.nodes()) {
          for (int i = 0; i < 20; i++) {
            String key = "q-" + writer.id() + "-" + i;
            if (i % 4 == 0) {
              assertThat(n.store().getString(key)).as("%s on %s", key, n.id()).isEmpty();
            } else {
              assertThat(n.store().getString(key)).as("%s on %s", key, n.id()).hasValue("v" + i);
            }
          }
        }
        assertThat(ReplicaViews.of(n.store()).digest()).as("digest of %s", n.id())
            .isEqualTo(ReplicaViews.of(cluster.node("t1").store()).digest());
      }
    });
    for (TestCluster.Node n : cluster.nodes()) {
      assertThat(n.stats().connectedPeers()).as("peers of %s", n.id()).isEqualTo(2);
    }
  }

  @Test
  void nodeWithACertificateOfAnotherCa_neverJoins_andChangesNothing() {
    try (KvStore rogue = outsider("r1", b -> b.tls(rogueCa.tls("r1")))) {
      assertStaysOut(rogue, "r1");
    }
    assertUnchanged();
  }

  /**
   * A client that trusts the cluster's CA (so it accepts the node) but presents a certificate of
   * another CA: with TLS 1.3 its own side of the handshake completes, so it goes on to send a
   * handshake and writes; the node refuses its certificate and none of it is read.
   */
  @Test
  void clientCertificateOfAnotherCa_getsNoDataPlaneConnection_andItsFramesChangeNothing()
      throws Exception {
    KeyStore keys = KeyStore.getInstance("PKCS12");
    try (InputStream in = Files.newInputStream(rogueCa.keyStore("r1"))) {
      keys.load(in, TestPki.PASSWORD.toCharArray());
    }
    KeyStore trust = KeyStore.getInstance("PKCS12");
    try (InputStream in = Files.newInputStream(pki.trustStore())) {
      trust.load(in, TestPki.PASSWORD.toCharArray());
    }
    KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
    kmf.init(keys, TestPki.PASSWORD.toCharArray());
    TrustManagerFactory tmf = TrustManagerFactory.getInstance(
        TrustManagerFactory.getDefaultAlgorithm());
    tmf.init(trust);
    SSLContext ssl = SSLContext.getInstance("TLSv1.3");
    ssl.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);
    for (TestCluster.Node target : cluster.nodes()) {
      long before = target.stats().tlsFailures();
      SSLSocket socket = (SSLSocket) ssl.getSocketFactory().createSocket();
      RawPeer.connect(socket, target.replicator().dataAddress());
      try (RawPeer peer = new RawPeer(socket)) {
        try {
          socket.startHandshake();
          peer.send(hello(), mutation("rogue-tls-" + target.id()), deletion("members-only"));
        } catch (IOException e) {
          // The node may refuse before our writes go out: just as good.
        }
        assertThat(peer.closedByPeer()).as("connection to %s closed", target.id()).isTrue();
      }
      await().atMost(Duration.ofSeconds(5)).until(() -> target.stats().tlsFailures() > before);
    }
    assertAbsentEverywhere("rogue-tls-t1", "rogue-tls-t2", "rogue-tls-t3");
    assertUnchanged();
  }

  @Test
  void plaintextNode_cannotJoin_andItsRawFramesChangeNothing() throws IOException {
    try (KvStore plain = outsider("plain", b -> b)) {
      assertStaysOut(plain, "plain");
    }
    for (TestCluster.Node target : cluster.nodes()) {
      long before = target.stats().tlsFailures();
      try (RawPeer peer = new RawPeer(target.replicator().dataAddress())) {
        peer.send(hello(), mutation("plain-" + target.id()), deletion("members-only"));
        assertThat(peer.closedByPeer()).as("connection to %s closed", target.id()).isTrue();
      }
      await().atMost(Duration.ofSeconds(5)).until(() -> target.stats().tlsFailures() > before);
    }
    assertAbsentEverywhere("plain-t1", "plain-t2", "plain-t3");
    assertUnchanged();
  }

  /**
   * CA rotation: with both CAs in every node's bundle, a node whose certificate the old CA signed and
   * one whose certificate the new CA signed form a cluster and replicate.
   */
  @Test
  void caBundleWithTwoCas_letsNodesWithCertificatesOfEitherCaFormACluster() throws IOException {
    Path bundle = dir.resolve("old-and-new-ca.pem");
    Files.writeString(bundle, Files.readString(pki.caCertificate())
        + Files.readString(rogueCa.caCertificate()));
    try (TestCluster both = TestCluster.startEach("rotation", "ca", 2, b -> b,
        id -> b -> b.tls(id.equals("ca1")
            ? ClusterTls.pem(pki.certificate("t1"), pki.privateKey("t1"), bundle)
            : ClusterTls.pem(rogueCa.certificate("r1"), rogueCa.privateKey("r1"), bundle)))) {
      both.node("ca2").store().put("rotated", "yes".getBytes(StandardCharsets.UTF_8),
          WriteOptions.concern(WriteConcern.ALL).withTimeout(Duration.ofSeconds(10)));
      assertThat(both.node("ca1").store().getString("rotated")).hasValue("yes");
    }
  }

  @Test
  void garbage_onTheTlsDataAndMembershipPorts_closesTheConnection_andTheClusterStaysHealthy()
      throws IOException {
    Random random = new Random(7);
    for (TestCluster.Node n : cluster.nodes()) {
      for (String address : List.of(n.replicator().dataAddress(), n.membershipAddress())) {
        byte[] junk = new byte[300];
        random.nextBytes(junk);
        // Random bytes, and bytes that start like a TLS handshake record and then go wrong.
        byte[] tlsLike = junk.clone();
        System.arraycopy(new byte[] {0x16, 0x03, 0x01, 0x01, 0x00, 0x01}, 0, tlsLike, 0, 6);
        for (byte[] bytes : List.of(junk, tlsLike)) {
          try (Socket socket = RawPeer.connect(new Socket(), address);
               RawPeer peer = new RawPeer(socket)) {
            peer.sendRaw(bytes);
            assertThat(peer.closedByPeer()).as("connection to %s closed", address).isTrue();
          }
        }
      }
    }
    cluster.node("t3").store().put("after-garbage", "v1".getBytes(StandardCharsets.UTF_8),
        WriteOptions.concern(WriteConcern.ALL).withTimeout(Duration.ofSeconds(10)));
    for (TestCluster.Node n : cluster.nodes()) {
      assertThat(n.store().getString("after-garbage")).hasValue("v1");
    }
    assertUnchanged();
  }
}
