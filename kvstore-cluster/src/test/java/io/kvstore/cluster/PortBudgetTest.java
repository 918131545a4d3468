package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteOptions;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The pre-authentication budget of both cluster ports of a keyed node, against raw sockets without
 * the key: connection caps (in total and per address), the first-message and idle timeouts of the
 * membership port, and frames that declare more than a stranger may send. Regressions: before, the
 * membership port kept silent connections open for good and buffered a declared 1 MiB frame per
 * connection (230 of them ran a node out of direct memory and split the cluster), and neither port
 * capped connections.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class PortBudgetTest {
  private static final String CLUSTER = "budget";
  private static final Duration HANDSHAKE = Duration.ofSeconds(3);
  private static final Duration IDLE = Duration.ofSeconds(5);
  private static final int MAX_CONNECTIONS = 8;
  private static final int MAX_PER_ADDRESS = 4;
  private static final Duration PROMPTLY = Duration.ofMillis(1500);
  private static final AtomicInteger writes = new AtomicInteger();
  private static TestCluster cluster;

  @BeforeAll
  static void startCluster() {
    cluster = TestCluster.start(CLUSTER, "b", 2, b -> b.keyring(ClusterSecurityTest.KEYRING)
        .handshakeTimeout(HANDSHAKE).membershipIdleTimeout(IDLE)
        .maxInboundConnections(MAX_CONNECTIONS)
        .maxUnauthenticatedConnectionsPerAddress(MAX_PER_ADDRESS));
  }

  @AfterAll
  static void stopCluster() {
    if (cluster != null) {
      cluster.close();
    }
  }

  /** Whatever a test did, both nodes still see each other and a write reaches both. */
  @AfterEach
  void clusterStaysWhole() {
    String key = "whole-" + writes.incrementAndGet();
    cluster.node("b1").store().put(key, "v".getBytes(StandardCharsets.UTF_8),
        WriteOptions.concern(WriteConcern.ALL).withTimeout(Duration.ofSeconds(10)));
    for (TestCluster.Node n : cluster.nodes()) {
      assertThat(n.memberIds()).isEqualTo(Set.of("b1", "b2"));
      assertThat(n.store().getString(key)).hasValue("v");
    }
  }

  private static TestCluster.Node target() {
    return cluster.node("b1");
  }

  private static RawPeer from(String localHost, String address) throws IOException {
    Socket socket = new Socket();
    socket.bind(new InetSocketAddress(localHost, 0));
    return new RawPeer(RawPeer.connect(socket, address));
  }

  private static void closeAll(List<RawPeer> peers) throws IOException {
    for (RawPeer p : peers) {
      p.close();
    }
  }

  @Test
  void when_aPortHoldsItsCaps_then_theNextConnection_isClosedAtOnce_andCounted() throws Exception {
    ClusterReplicator node = target().replicator();
    for (String address : List.of(node.dataAddress(), node.membershipAddress())) {
      InboundGuard guard = address.equals(node.dataAddress()) ? node.dataGuard()
          : node.membershipGuard();
      long refused = node.stats().inboundConnectionsRefused();
      int members = guard.openConnections();
      List<RawPeer> held = new ArrayList<>();
      try {
        for (int i = 0; i < MAX_PER_ADDRESS; i++) {
          held.add(from("127.0.0.1", address));
        }
        // Accepted connections are set up on two event loops: wait until all four are counted.
        await().atMost(PROMPTLY).until(() ->
            guard.unauthenticatedFrom(InetAddress.getByName("127.0.0.1")) == MAX_PER_ADDRESS);
        try (RawPeer oneTooMany = from("127.0.0.1", address)) {
          assertThat(oneTooMany.closedWithin(PROMPTLY))
              .as("connection %d from one address to %s", MAX_PER_ADDRESS + 1, address).isTrue();
        }
        // MAX_CONNECTIONS more, at most 3 per address (under the per-address cap): with the four
        // above, at least four of them find the port full, whatever the members' own connections
        // do meanwhile.
        List<RawPeer> more = new ArrayList<>();
        for (int i = 0; i < MAX_CONNECTIONS; i++) {
          more.add(from("127.0.0." + (2 + i / 3), address));
        }
        held.addAll(more);
        await().atMost(PROMPTLY).until(() ->
            node.stats().inboundConnectionsRefused() >= refused + 1 + MAX_PER_ADDRESS);
        assertThat(guard.openConnections()).isLessThanOrEqualTo(MAX_CONNECTIONS);
        int closed = 0;
        for (RawPeer p : more) {
          closed += p.closedWithin(Duration.ofMillis(50)) ? 1 : 0;
        }
        assertThat(closed).as("connections over maxInboundConnections to %s", address)
            .isGreaterThanOrEqualTo(MAX_PER_ADDRESS);
      } finally {
        closeAll(held);
      }
      await().atMost(Duration.ofSeconds(5)).until(() -> guard.openConnections() <= members + 1);
    }
  }

  @Test
  void when_aMembershipConnectionSendsNothing_then_itIsClosedAfterTheHandshakeTimeout()
      throws Exception {
    ClusterReplicator node = target().replicator();
    long timedOut = node.stats().membershipConnectionsTimedOut();
    try (RawPeer silent = new RawPeer(node.membershipAddress())) {
      assertThat(silent.closedWithin(HANDSHAKE.plus(Duration.ofSeconds(3)))).isTrue();
    }
    assertThat(node.stats().membershipConnectionsTimedOut()).isGreaterThan(timedOut);
  }

  /** A valid ping under the cluster key, as a member would send it (its pong goes nowhere). */
  private static byte[] signedPing() throws Exception {
    String json = "{\"v\":1,\"h\":{\"q\":\"sc/fdetector/ping\",\"cid\":\"c1\"},\"t\":\"ping\","
        + "\"d\":{\"from\":{\"id\":\"x1-ab\",\"address\":\"127.0.0.1:1\",\"namespace\":\"" + CLUSTER
        + "\"},\"to\":{\"id\":\"x2-cd\",\"address\":\"127.0.0.1:1\",\"namespace\":\"" + CLUSTER
        + "\"}}}";
    io.scalecube.cluster.transport.api.Message ping = new ScaleCubeMessageCodec().strictDeserialize(
        new java.io.ByteArrayInputStream(json.getBytes(StandardCharsets.UTF_8)));
    AuthenticatedMessageCodec codec = new AuthenticatedMessageCodec(new ScaleCubeMessageCodec(),
        () -> ClusterSecurityTest.KEYRING, CLUSTER, System::currentTimeMillis, () -> { });
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    codec.serialize(ping, out);
    return out.toByteArray();
  }

  @Test
  void when_aMembershipConnectionFallsSilent_then_itIsClosedAfterTheIdleTimeout() throws Exception {
    ClusterReplicator node = target().replicator();
    long timedOut = node.stats().membershipConnectionsTimedOut();
    long refused = node.stats().membershipMessagesRefused();
    try (RawPeer peer = new RawPeer(node.membershipAddress())) {
      peer.sendFrame(signedPing());
      // Past the first-message timeout: the valid message counts, the connection stays.
      assertThat(peer.closedWithin(HANDSHAKE.plus(Duration.ofMillis(800)))).isFalse();
      assertThat(peer.closedWithin(IDLE)).isTrue();
    }
    assertThat(node.stats().membershipMessagesRefused()).isEqualTo(refused);
    assertThat(node.stats().membershipConnectionsTimedOut()).isGreaterThan(timedOut);
  }

  /** The start of a frame that declares 1 MiB, then 8 KiB of its body. */
  private static byte[] largeFrameStart(byte[] head) {
    ByteBuffer b = ByteBuffer.allocate(4 + head.length + 8192);
    b.putInt(1024 * 1024).put(head);
    return b.array();
  }

  @Test
  void when_aStrangerDeclaresALargeFrame_then_theConnectionIsClosedAfterAFewKiB_onBothPorts()
      throws Exception {
    ClusterReplicator node = target().replicator();
    long refused = node.stats().membershipMessagesRefused();
    long malformed = node.stats().malformedFrames();
    byte[] namesTheKeyId = ByteBuffer.allocate(7).putInt(AuthenticatedMessageCodec.MAGIC)
        .put((byte) 2).put("k1".getBytes(StandardCharsets.US_ASCII)).array();
    for (byte[] head : List.of(namesTheKeyId, "JUNK".getBytes(StandardCharsets.US_ASCII))) {
      try (RawPeer peer = new RawPeer(node.membershipAddress())) {
        peer.sendRaw(largeFrameStart(head));
        assertThat(peer.closedWithin(PROMPTLY)).as("membership port").isTrue();
      }
    }
    // Under the limit, but without the envelope: refused from its first bytes, body never read.
    try (RawPeer peer = new RawPeer(node.membershipAddress())) {
      peer.sendRaw(ByteBuffer.allocate(8).putInt(60_000).put("JUNK".getBytes(
          StandardCharsets.US_ASCII)).array());
      assertThat(peer.closedWithin(PROMPTLY)).as("membership port, unsigned header").isTrue();
    }
    try (RawPeer peer = new RawPeer(node.dataAddress())) {
      peer.sendRaw(largeFrameStart(new byte[] {Frames.HELLO}));
      assertThat(peer.closedWithin(PROMPTLY)).as("data port").isTrue();
    }
    assertThat(node.stats().membershipMessagesRefused()).isGreaterThanOrEqualTo(refused + 3);
    assertThat(node.stats().malformedFrames()).isGreaterThan(malformed);
  }
}
