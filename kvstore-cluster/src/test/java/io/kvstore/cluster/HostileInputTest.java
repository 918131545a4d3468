package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.kvstore.core.spi.Mutation;
import io.kvstore.core.Version;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.scalecube.cluster.transport.api.JdkMessageCodec;
import io.scalecube.cluster.transport.api.Message;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Bytes from strangers: garbage, oversized frames, protocol violations and peers of another cluster
 * are refused on the data port without effect and counted; garbage on the membership port leaves the
 * node healthy. Each test checks its own keys and counter deltas on a shared 2-node cluster.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class HostileInputTest {
  private static final ByteBufAllocator ALLOC = ByteBufAllocator.DEFAULT;
  private static final String CLUSTER = "hostile";
  private static TestCluster cluster;

  @BeforeAll
  static void startCluster() {
    cluster = TestCluster.start(CLUSTER, "h", 2, b -> b.handshakeTimeout(Duration.ofSeconds(2)));
  }

  @AfterAll
  static void stopCluster() {
    if (cluster != null) {
      cluster.close();
    }
  }

  private static TestCluster.Node target() {
    return cluster.node("h1");
  }

  private static RawPeer dataPeer() throws IOException {
    return new RawPeer(target().replicator().dataAddress());
  }

  private static ByteBuf hello(String clusterName, String nodeId) {
    return Frames.hello(ALLOC, clusterName, nodeId, new byte[Frames.NONCE_BYTES]);
  }

  private static ByteBuf mutation(String key) {
    Mutation m = Mutation.put(key, "evil".getBytes(StandardCharsets.UTF_8),
        Version.of(System.currentTimeMillis(), 0, "intruder"), 0);
    return Frames.mutations(ALLOC, 1, 0, List.of(m), Frames.mutationSize(m));
  }

  private static long refusals(ReplicationStats s) {
    return s.malformedFrames() + s.handshakeFailures();
  }

  @Test
  void garbage_onTheDataPort_closesTheConnection_isCounted_andChangesNothing() throws IOException {
    ReplicationStats before = target().stats();
    long size = target().store().size();
    byte[] junk = new byte[200];
    new Random(42).nextBytes(junk);
    try (RawPeer peer = dataPeer()) {
      peer.sendFrame(junk);
      assertThat(peer.closedByPeer()).isTrue();
    }
    assertThat(refusals(target().stats())).isGreaterThan(refusals(before));
    assertThat(target().store().size()).isEqualTo(size);
  }

  @Test
  void oversizedLengthPrefix_isRefusedWithoutReadingTheBody() throws IOException {
    ReplicationStats before = target().stats();
    try (RawPeer peer = dataPeer()) {
      peer.sendRaw(new byte[] {0x7f, (byte) 0xff, (byte) 0xff, (byte) 0xf0, 1, 2, 3});
      assertThat(peer.closedByPeer()).isTrue();
    }
    assertThat(target().stats().malformedFrames()).isGreaterThan(before.malformedFrames());
  }

  @Test
  void peerOfAnotherCluster_isRejected_andItsPipelinedWritesIgnored() throws IOException {
    ReplicationStats before = target().stats();
    try (RawPeer peer = dataPeer()) {
      peer.send(hello("other-cluster", "stranger"), mutation("from-other-cluster"));
      Frames.Frame answer = peer.read();
      assertThat(answer).isInstanceOfSatisfying(Frames.HelloReject.class,
          r -> assertThat(r.reason()).isEqualTo(Frames.RejectReason.CLUSTER_MISMATCH));
      assertThat(peer.closedByPeer()).isTrue();
    }
    assertThat(target().stats().handshakeFailures()).isGreaterThan(before.handshakeFailures());
    assertThat(target().store().getString("from-other-cluster")).isEmpty();
  }

  @Test
  void unsupportedProtocolVersion_isRejected() throws IOException {
    ByteBuf hello = hello(CLUSTER, "from-the-future");
    hello.setShort(1 + 4, 90);
    hello.setShort(1 + 4 + 2, 99);
    try (RawPeer peer = dataPeer()) {
      peer.send(hello);
      assertThat(peer.read()).isInstanceOfSatisfying(Frames.HelloReject.class,
          r -> assertThat(r.reason()).isEqualTo(Frames.RejectReason.VERSION_MISMATCH));
      assertThat(peer.closedByPeer()).isTrue();
    }
  }

  /** Protocol 1 (no content fingerprints in anti-entropy) cannot talk to this build. */
  @Test
  void protocolVersion1Peer_isRejected() throws IOException {
    ByteBuf hello = hello(CLUSTER, "old-build");
    hello.setShort(1 + 4, 1);
    hello.setShort(1 + 4 + 2, 1);
    try (RawPeer peer = dataPeer()) {
      peer.send(hello);
      assertThat(peer.read()).isInstanceOfSatisfying(Frames.HelloReject.class,
          r -> assertThat(r.reason()).isEqualTo(Frames.RejectReason.VERSION_MISMATCH));
      assertThat(peer.closedByPeer()).isTrue();
    }
  }

  @Test
  void writesWithoutAHandshake_areNotApplied() throws IOException {
    ReplicationStats before = target().stats();
    try (RawPeer peer = dataPeer()) {
      peer.send(mutation("no-handshake"));
      assertThat(peer.closedByPeer()).isTrue();
    }
    assertThat(target().stats().handshakeFailures()).isGreaterThan(before.handshakeFailures());
    assertThat(target().store().getString("no-handshake")).isEmpty();
  }

  @Test
  void afterAValidHandshake_malformedAndUnknownFramesCloseTheConnection_validOnesApply()
      throws IOException {
    ReplicationStats before = target().stats();
    ByteBuf full = mutation("truncated");
    ByteBuf truncated = full.retainedSlice(0, full.readableBytes() - 3);
    full.release();
    try (RawPeer peer = dataPeer()) {
      peer.send(hello(CLUSTER, "raw-1"));
      assertThat(peer.read()).isInstanceOf(Frames.HelloOk.class);
      peer.send(truncated);
      assertThat(peer.closedByPeer()).isTrue();
    }
    try (RawPeer peer = dataPeer()) {
      peer.send(hello(CLUSTER, "raw-2"));
      assertThat(peer.read()).isInstanceOf(Frames.HelloOk.class);
      peer.sendFrame(new byte[] {0x7e, 1, 2, 3});
      assertThat(peer.closedByPeer()).isTrue();
    }
    assertThat(target().stats().malformedFrames()).isGreaterThanOrEqualTo(
        before.malformedFrames() + 2);
    assertThat(target().store().getString("truncated")).isEmpty();
    // The same client with a well-formed frame is heard: the refusals above were about the bytes.
    try (RawPeer peer = dataPeer()) {
      peer.send(hello(CLUSTER, "raw-3"));
      assertThat(peer.read()).isInstanceOf(Frames.HelloOk.class);
      peer.send(mutation("well-formed"));
      assertThat(peer.read()).isInstanceOfSatisfying(Frames.Ack.class,
          a -> assertThat(a.held().get(0)).isTrue());
    }
    assertThat(target().store().getString("well-formed")).hasValue("evil");
  }

  @Test
  void silentConnection_isClosedAtTheHandshakeTimeout() throws IOException {
    ReplicationStats before = target().stats();
    try (RawPeer peer = dataPeer()) {
      peer.sendRaw(new byte[] {0, 0});
      assertThat(peer.closedByPeer()).isTrue();
    }
    assertThat(target().stats().handshakeFailures()).isGreaterThan(before.handshakeFailures());
  }

  @Test
  void garbage_onTheMembershipPort_leavesTheNodeHealthy() throws Exception {
    String address = target().membershipAddress();
    long refusedBefore = target().stats().membershipMessagesRefused();
    ByteArrayOutputStream serialized = new ByteArrayOutputStream();
    new JdkMessageCodec().serialize(Message.withData("x").qualifier("sc/fdetector/ping").build(),
        serialized);
    String wrongType = "{\"v\":1,\"h\":{\"q\":\"sc/fdetector/ping\",\"sender\":\"" + address
        + "\"},\"t\":\"sync\",\"d\":{\"membership\":[]}}";
    byte[] junk = new byte[500];
    new Random(7).nextBytes(junk);
    // Each refused message closes the connection it came on, so each goes on its own connection.
    for (byte[] message : List.of(junk, serialized.toByteArray(),
        wrongType.getBytes(StandardCharsets.UTF_8),
        "{\"v\":1,\"h\":{\"q\":\"sc/fdetector/ping\"}}".getBytes(StandardCharsets.UTF_8))) {
      try (RawPeer peer = new RawPeer(address)) {
        peer.sendFrame(message);
        assertThat(peer.closedByPeer()).isTrue();
      }
    }
    await().atMost(Duration.ofSeconds(5)).until(
        () -> target().stats().membershipMessagesRefused() >= refusedBefore + 4);
    try (RawPeer peer = new RawPeer(address)) {
      peer.sendRaw(new byte[] {0x7f, (byte) 0xff, (byte) 0xff, (byte) 0xff, 0});
    }
    // The node still answers pings, syncs and metadata requests: a new node joins through it, stays
    // joined for several suspicion timeouts' worth of pings, and data flows both ways.
    TestCluster.Node joiner = cluster.startNode("h-joiner", address);
    try {
      await().atMost(Duration.ofSeconds(15)).until(() -> joiner.memberIds().size() == 3
          && target().memberIds().size() == 3 && joiner.store().cluster().isReady());
      await().during(Duration.ofSeconds(4)).atMost(Duration.ofSeconds(6)).until(
          () -> joiner.memberIds().size() == 3 && target().memberIds().size() == 3);
      joiner.store().put("through-the-noise", "ok");
      await().atMost(Duration.ofSeconds(10))
          .until(() -> target().store().getString("through-the-noise").isPresent());
    } finally {
      cluster.stop(joiner);
    }
  }
}
