package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.kvstore.core.KvStore;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.Version;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteOptions;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A cluster with a secret against nodes and raw clients without it: a rogue node with no key or the
 * wrong key never joins; whatever a stranger sends on the data plane (writes, deletes, anti-entropy
 * requests, before or instead of proving the key) changes nothing on any node and returns no data;
 * every attempt is counted; garbage on either port leaves the cluster healthy.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class ClusterSecurityTest {
  private static final ByteBufAllocator ALLOC = ByteBufAllocator.DEFAULT;
  private static final String CLUSTER = "secure";
  static final ClusterKeyring KEYRING = ClusterKeyring.of("k1", ClusterKeyringTest.secret(1));
  private static TestCluster cluster;

  @BeforeAll
  static void startCluster() {
    cluster = TestCluster.start(CLUSTER, "s", 3, b -> b.keyring(KEYRING)
        .handshakeTimeout(Duration.ofSeconds(2)));
    cluster.node("s1").store().put("secret-data", "only for members");
    await().atMost(Duration.ofSeconds(10)).until(() -> cluster.nodes().stream()
        .allMatch(n -> n.store().getString("secret-data").isPresent()));
  }

  @AfterAll
  static void stopCluster() {
    if (cluster != null) {
      cluster.close();
    }
  }

  private static TestCluster.Node s1() {
    return cluster.node("s1");
  }

  private static long authFailures() {
    return cluster.nodes().stream().mapToLong(n -> n.stats().authenticationFailures()).sum();
  }

  private static void assertAbsentEverywhere(String... keys) {
    for (TestCluster.Node n : cluster.nodes()) {
      for (String key : keys) {
        assertThat(n.store().getString(key)).as("%s on %s", key, n.id()).isEmpty();
      }
    }
  }

  private static KvStore rogue(String id, UnaryOperator<KvClusterBuilder> keySetting) {
    return keySetting.apply(KvCluster.builder().nodeId(id).clusterName(CLUSTER)
        .host(TestCluster.HOST).membershipPort(0).dataPort(0).seeds(s1().membershipAddress())
        .joinTimeout(Duration.ofSeconds(1)).leaveTimeout(Duration.ofSeconds(1))).build();
  }

  private static void assertRogueStaysOut(KvStore rogue, String id) {
    long before = authFailures();
    await().atMost(Duration.ofSeconds(10)).until(() -> authFailures() > before);
    rogue.put("rogue-write-" + id, "x");
    rogue.delete("secret-data");
    // One window in which every condition must hold at every poll: the rogue keeps knocking (SWIM
    // retries its sync) and its write and delete are waiting to be spread.
    await().during(Duration.ofSeconds(3)).atMost(Duration.ofSeconds(5)).until(() ->
        cluster.nodes().stream().allMatch(n -> n.memberIds().equals(Set.of("s1", "s2", "s3"))
            && n.store().getString("secret-data").isPresent()
            && n.store().getString("rogue-write-" + id).isEmpty())
            && rogue.cluster().members().size() == 1);
    assertAbsentEverywhere("rogue-write-" + id);
    assertThat(rogue.getString("secret-data")).isEmpty();
  }

  @Test
  void rogueNodeWithoutASecret_cannotJoin_readOrWrite_andIsCounted() {
    try (KvStore rogue = rogue("rogue-open", b -> b)) {
      assertRogueStaysOut(rogue, "open");
    }
  }

  @Test
  void rogueNodeWithTheWrongKey_underTheRightKeyId_cannotJoin() {
    ClusterKeyring wrong = ClusterKeyring.of("k1", ClusterKeyringTest.secret(666));
    try (KvStore rogue = rogue("rogue-wrong", b -> b.keyring(wrong))) {
      assertRogueStaysOut(rogue, "wrong");
    }
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

  private static ByteBuf pull(String key) {
    return Frames.aePull(ALLOC, 9, List.of(key), Frames.stringSize(key));
  }

  private static ByteBuf hello(int scheme, String keyId) {
    return Frames.hello(ALLOC, CLUSTER, "intruder", new byte[Frames.NONCE_BYTES], scheme,
        keyId.getBytes(StandardCharsets.US_ASCII));
  }

  /** Every frame the node sends until it closes the connection. */
  private static List<Frames.Frame> answers(RawPeer peer) {
    List<Frames.Frame> frames = new ArrayList<>();
    try {
      while (true) {
        frames.add(peer.read());
      }
    } catch (IOException | MalformedFrameException e) {
      return frames;
    }
  }

  @Test
  void strangerWithoutASecret_isRefused_andItsPipelinedWritesDeletesAndPullsDoNothing()
      throws IOException {
    for (TestCluster.Node target : cluster.nodes()) {
      long before = target.stats().authenticationFailures();
      try (RawPeer peer = new RawPeer(target.replicator().dataAddress())) {
        peer.send(hello(Frames.AUTH_NONE, ""), mutation("injected-" + target.id()),
            deletion("secret-data"), pull("secret-data"));
        List<Frames.Frame> got = answers(peer);
        assertThat(got).hasSize(1).first().isInstanceOfSatisfying(Frames.HelloReject.class,
            r -> assertThat(r.reason()).isEqualTo(Frames.RejectReason.AUTH_FAILED));
      }
      assertThat(target.stats().authenticationFailures()).isGreaterThan(before);
    }
    assertAbsentEverywhere("injected-s1", "injected-s2", "injected-s3");
    assertThat(s1().store().getString("secret-data")).hasValue("only for members");
  }

  @Test
  void strangerNamingTheKeyId_butNotProvingIt_changesNothing_andGetsNoData() throws IOException {
    TestCluster.Node target = cluster.node("s2");
    long before = target.stats().authenticationFailures();
    // 1: skips AUTH and sends data frames at once.
    try (RawPeer peer = new RawPeer(target.replicator().dataAddress())) {
      peer.send(hello(Frames.AUTH_HMAC_SHA256, "k1"), mutation("skipped-auth"), pull("secret-data"));
      List<Frames.Frame> got = answers(peer);
      assertThat(got).first().isInstanceOf(Frames.HelloOk.class);
      assertThat(got).noneMatch(f -> f instanceof Frames.AePullResponse || f instanceof Frames.Ack);
    }
    // 2: sends an AUTH it made up (random and replayed-looking bytes), then data frames.
    byte[] fake = new byte[32];
    new Random(1).nextBytes(fake);
    try (RawPeer peer = new RawPeer(target.replicator().dataAddress())) {
      peer.send(hello(Frames.AUTH_HMAC_SHA256, "k1"), Frames.auth(ALLOC, fake),
          mutation("fake-auth"), deletion("secret-data"), pull("secret-data"));
      List<Frames.Frame> got = answers(peer);
      assertThat(got).noneMatch(f -> f instanceof Frames.AePullResponse || f instanceof Frames.Ack);
    }
    // 3: names a key id the cluster does not have.
    try (RawPeer peer = new RawPeer(target.replicator().dataAddress())) {
      peer.send(hello(Frames.AUTH_HMAC_SHA256, "k-unknown"), mutation("unknown-key"));
      assertThat(answers(peer)).hasSize(1).first().isInstanceOf(Frames.HelloReject.class);
    }
    assertThat(target.stats().authenticationFailures()).isGreaterThanOrEqualTo(before + 3);
    assertAbsentEverywhere("skipped-auth", "fake-auth", "unknown-key");
    for (TestCluster.Node n : cluster.nodes()) {
      assertThat(n.store().getString("secret-data")).hasValue("only for members");
    }
  }

  @Test
  void garbage_onEachPortOfEachNode_closesThatConnection_andTheClusterStaysHealthy()
      throws IOException {
    Random random = new Random(99);
    for (TestCluster.Node n : cluster.nodes()) {
      for (String address : List.of(n.replicator().dataAddress(), n.membershipAddress())) {
        byte[] junk = new byte[300];
        random.nextBytes(junk);
        try (RawPeer peer = new RawPeer(address)) {
          peer.sendFrame(junk);
          assertThat(peer.closedByPeer()).as("connection to %s closed", address).isTrue();
        }
      }
    }
    cluster.node("s3").store().put("after-garbage", "v1".getBytes(StandardCharsets.UTF_8),
        WriteOptions.concern(WriteConcern.ALL).withTimeout(Duration.ofSeconds(10)));
    for (TestCluster.Node n : cluster.nodes()) {
      assertThat(n.store().getString("after-garbage")).hasValue("v1");
      assertThat(n.memberIds()).containsExactly("s1", "s2", "s3");
    }
  }

  private static byte[] bytes(ByteBuf frame) {
    try {
      return ByteBufUtil.getBytes(frame);
    } finally {
      frame.release();
    }
  }

  /** A frame as the side activated on {@code tagger} puts it on the wire: body plus tag. */
  private static byte[] tagged(EmbeddedChannel tagger, ByteBuf frame) {
    tagger.writeOutbound(frame);
    return bytes(tagger.readOutbound());
  }

  private static EmbeddedChannel tagger(byte[] transcript, boolean client) {
    EmbeddedChannel tagger = new EmbeddedChannel(new FrameAuthenticator("test", new Stats(() -> 0),
        () -> KEYRING));
    tagger.pipeline().get(FrameAuthenticator.class).activate(KEYRING.primary(), transcript, client);
    return tagger;
  }

  /**
   * Regression (server side): after a frame failed its tag check, the frames behind it in the same
   * TCP write passed unchecked; an untagged MUTATIONS frame was applied and replicated.
   */
  @Test
  void when_aFrameFailsItsTag_then_theUntaggedFrameBehindItInTheSameWrite_isDropped_serverSide()
      throws IOException {
    TestCluster.Node target = cluster.node("s3");
    long before = target.stats().authenticationFailures();
    byte[] nonce = new byte[Frames.NONCE_BYTES];
    new Random(7).nextBytes(nonce);
    try (RawPeer peer = new RawPeer(target.replicator().dataAddress())) {
      peer.send(Frames.hello(ALLOC, CLUSTER, "intruder", nonce, Frames.AUTH_HMAC_SHA256,
          "k1".getBytes(StandardCharsets.US_ASCII)));
      Frames.HelloOk ok = (Frames.HelloOk) peer.read();
      byte[] transcript = FrameAuthenticator.transcript(ok.version(), CLUSTER, "intruder",
          ok.nodeId(), nonce, ok.nonce(), "k1");
      byte[] auth = bytes(Frames.auth(ALLOC, FrameAuthenticator.clientProof(KEYRING.primary(),
          transcript)));
      EmbeddedChannel tagger = tagger(transcript, true);
      peer.sendFrames(auth, tagged(tagger, mutation("poison-tagged")), new byte[8],
          bytes(mutation("poison-untagged")));
      assertThat(peer.closedByPeer()).isTrue();
    }
    await().atMost(Duration.ofSeconds(10)).until(() ->
        target.store().getString("poison-tagged").isPresent());
    await().during(Duration.ofMillis(500)).atMost(Duration.ofSeconds(2)).until(() ->
        cluster.nodes().stream().allMatch(n -> n.store().getString("poison-untagged").isEmpty()));
    assertThat(target.stats().authenticationFailures()).isGreaterThan(before);
  }

  /**
   * Regression (client side): the same bypass on a node's outgoing link: an untagged ACK behind a
   * frame with a bad tag was taken as the peer's acknowledgement.
   */
  @Test
  void when_aFrameFailsItsTag_then_theUntaggedAckBehindItInTheSameRead_isDropped_clientSide()
      throws Exception {
    ClusterReplicator node = s1().replicator();
    long acked = node.stats().mutationsAcked();
    long failures = node.stats().authenticationFailures();
    try (ServerSocket fake = new ServerSocket(0, 4, InetAddress.getByName(TestCluster.HOST))) {
      PeerLink link = node.connectLink("fake-member", "fake",
          TestCluster.HOST + ":" + fake.getLocalPort());
      try {
        try (RawPeer peer = new RawPeer(fake.accept())) {
          Frames.Hello hello = (Frames.Hello) peer.read();
          byte[] nonce = new byte[Frames.NONCE_BYTES];
          new Random(8).nextBytes(nonce);
          byte[] transcript = FrameAuthenticator.transcript(Frames.PROTOCOL_VERSION, CLUSTER,
              hello.nodeId(), "fake", hello.nonce(), nonce, "k1");
          peer.send(Frames.helloOk(ALLOC, Frames.PROTOCOL_VERSION, "fake", nonce,
              Frames.AUTH_HMAC_SHA256, FrameAuthenticator.serverProof(KEYRING.primary(),
                  transcript)));
          assertThat(peer.read()).isInstanceOf(Frames.Auth.class);
          await().atMost(Duration.ofSeconds(5)).until(link::isReady);
          Mutation m = Mutation.put("poison-ack", "v".getBytes(StandardCharsets.UTF_8),
              Version.of(System.currentTimeMillis(), 0, "s1"), 0);
          // The link sends what the store holds for a queued key.
          io.kvstore.core.ReplicaViews.of(s1().store()).apply(m);
          link.enqueue(m, Frames.mutationSize(m), null);
          Frames.MutationBatch batch = null;
          while (batch == null) { // skip the anti-entropy round the link starts when it is up
            byte[] sent = peer.readBody();
            if (Frames.decode(Unpooled.wrappedBuffer(sent, 0, sent.length
                - FrameAuthenticator.TAG_BYTES)) instanceof Frames.MutationBatch b
                && !b.isAntiEntropy()) {
              batch = b;
            }
          }
          BitSet held = new BitSet();
          held.set(0);
          EmbeddedChannel tagger = tagger(transcript, false);
          peer.sendFrames(tagged(tagger, Frames.ack(ALLOC, 999_999, 0, new BitSet())), new byte[8],
              bytes(Frames.ack(ALLOC, batch.batchId(), 1, held)));
          assertThat(peer.closedByPeer()).isTrue();
        }
        await().atMost(Duration.ofSeconds(5)).until(() ->
            node.stats().authenticationFailures() > failures);
        await().during(Duration.ofMillis(500)).atMost(Duration.ofSeconds(2)).until(() ->
            node.stats().mutationsAcked() == acked);
      } finally {
        link.close();
      }
    }
  }

  /**
   * Regression: HELLO_REJECT told a peer without the key the cluster's name ("this node to
   * 'secure'") and whether the key id it named exists. With a keyring every refusal is one generic
   * answer; the reason is in the node's log only.
   */
  @Test
  void when_aPeerHasNotProvedTheKey_then_everyRefusalIsTheSameGenericAnswer() throws IOException {
    TestCluster.Node target = cluster.node("s1");
    List<ByteBuf[]> attempts = List.of(
        new ByteBuf[] {hello(Frames.AUTH_NONE, "")},
        new ByteBuf[] {hello(Frames.AUTH_HMAC_SHA256, "k-unknown")},
        new ByteBuf[] {Frames.hello(ALLOC, "other-cluster", "intruder", new byte[Frames.NONCE_BYTES],
            Frames.AUTH_HMAC_SHA256, "k1".getBytes(StandardCharsets.US_ASCII))},
        new ByteBuf[] {Frames.hello(ALLOC, CLUSTER, "s1", new byte[Frames.NONCE_BYTES],
            Frames.AUTH_HMAC_SHA256, "k1".getBytes(StandardCharsets.US_ASCII))},
        new ByteBuf[] {hello(Frames.AUTH_HMAC_SHA256, "k1"), Frames.auth(ALLOC, new byte[32])});
    for (ByteBuf[] frames : attempts) {
      try (RawPeer peer = new RawPeer(target.replicator().dataAddress())) {
        peer.send(frames);
        List<Frames.Frame> got = answers(peer);
        assertThat(got).last().isInstanceOfSatisfying(Frames.HelloReject.class, r -> {
          assertThat(r.reason()).isEqualTo(Frames.RejectReason.AUTH_FAILED);
          assertThat(r.message()).isEqualTo(DataPlane.GENERIC_REFUSAL);
        });
      }
    }
  }
}
