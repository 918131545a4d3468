package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.LengthFieldBasedFrameDecoder;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Per-frame tags on an authenticated data-plane connection, on Netty's embedded channel. */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class FrameAuthenticatorTest {
  private static final ClusterKeyring RING = AuthenticatedMessageCodecTest.K1;
  private final AtomicReference<ClusterKeyring> clientRing = new AtomicReference<>(RING);
  private final AtomicReference<ClusterKeyring> serverRing = new AtomicReference<>(RING);
  private final Stats clientStats = new Stats(() -> 0);
  private final Stats serverStats = new Stats(() -> 0);
  private final EmbeddedChannel client = new EmbeddedChannel(
      new FrameAuthenticator("c", clientStats, clientRing::get));
  private final EmbeddedChannel server = new EmbeddedChannel(
      new FrameAuthenticator("s", serverStats, serverRing::get));

  private static byte[] transcript(byte[] serverNonce) {
    return FrameAuthenticator.transcript(1, "kv", "c", "s", new byte[16], serverNonce, "k1");
  }

  private void activate() {
    byte[] t = transcript(new byte[16]);
    client.pipeline().get(FrameAuthenticator.class).activate(RING.primary(), t, true);
    server.pipeline().get(FrameAuthenticator.class).activate(RING.primary(), t, false);
  }

  private static ByteBuf text(String s) {
    return Unpooled.copiedBuffer(s, StandardCharsets.UTF_8);
  }

  /** What the client puts on the wire for a frame. */
  private byte[] sent(String s) {
    client.writeOutbound(text(s));
    ByteBuf out = client.readOutbound();
    try {
      return ByteBufUtil.getBytes(out);
    } finally {
      out.release();
    }
  }

  private String received() {
    ByteBuf in = server.readInbound();
    try {
      return in.toString(StandardCharsets.UTF_8);
    } finally {
      in.release();
    }
  }

  @Test
  void beforeActivation_framesPassUnchanged() {
    assertThat(new String(sent("hello"), StandardCharsets.UTF_8)).isEqualTo("hello");
  }

  @Test
  void taggedFrames_arriveStripped_inOrder() {
    activate();
    byte[] a = sent("first");
    byte[] b = sent("second");
    assertThat(a).hasSize(5 + FrameAuthenticator.TAG_BYTES);
    server.writeInbound(Unpooled.wrappedBuffer(a));
    server.writeInbound(Unpooled.wrappedBuffer(b));
    assertThat(received()).isEqualTo("first");
    assertThat(received()).isEqualTo("second");
    assertThat(server.isOpen()).isTrue();
    assertThat(serverStats.authenticationFailures.sum()).isZero();
  }

  @Test
  void alteredFrame_closesTheConnection_andIsCounted() {
    activate();
    byte[] a = sent("mutation");
    a[2] ^= 1;
    server.writeInbound(Unpooled.wrappedBuffer(a));
    Object nothing = server.readInbound();
    assertThat(nothing).isNull();
    assertThat(server.isOpen()).isFalse();
    assertThat(serverStats.authenticationFailures.sum()).isEqualTo(1);
  }

  @Test
  void replayedFrame_isRefused() {
    activate();
    byte[] a = sent("mutation");
    server.writeInbound(Unpooled.wrappedBuffer(a));
    assertThat(received()).isEqualTo("mutation");
    server.writeInbound(Unpooled.wrappedBuffer(a.clone()));
    assertThat(server.isOpen()).isFalse();
  }

  @Test
  void reorderedFrames_areRefused() {
    activate();
    sent("first");
    byte[] b = sent("second");
    server.writeInbound(Unpooled.wrappedBuffer(b));
    assertThat(server.isOpen()).isFalse();
  }

  @Test
  void frameForTheOtherDirection_isRefused() {
    activate();
    server.writeOutbound(text("ack"));
    ByteBuf fromServer = server.readOutbound();
    // Reflect the server's own frame back at it.
    EmbeddedChannel other = new EmbeddedChannel(new FrameAuthenticator("s2", serverStats,
        serverRing::get));
    other.pipeline().get(FrameAuthenticator.class).activate(RING.primary(), transcript(new byte[16]),
        false);
    other.writeInbound(fromServer);
    assertThat(other.isOpen()).isFalse();
  }

  @Test
  void sessionOfAnotherHandshake_doesNotVerify() {
    byte[] other = new byte[16];
    other[0] = 1;
    client.pipeline().get(FrameAuthenticator.class).activate(RING.primary(), transcript(other), true);
    server.pipeline().get(FrameAuthenticator.class).activate(RING.primary(), transcript(new byte[16]),
        false);
    server.writeInbound(Unpooled.wrappedBuffer(sent("x")));
    assertThat(server.isOpen()).isFalse();
  }

  @Test
  void tooShortFrame_isRefused() {
    activate();
    server.writeInbound(Unpooled.wrappedBuffer(new byte[FrameAuthenticator.TAG_BYTES]));
    assertThat(server.isOpen()).isFalse();
  }

  @Test
  void frameUnderAKeyRemovedFromTheKeyring_isRefused() {
    activate();
    server.writeInbound(Unpooled.wrappedBuffer(sent("before")));
    assertThat(received()).isEqualTo("before");
    serverRing.set(ClusterKeyring.of("k2", ClusterKeyringTest.secret(2)));
    server.writeInbound(Unpooled.wrappedBuffer(sent("after")));
    assertThat(server.isOpen()).isFalse();
    assertThat(serverStats.authenticationFailures.sum()).isEqualTo(1);
  }

  /**
   * Regression: after a failed check the authenticator dropped its receive state, so the frames the
   * decoder still held from the same read passed unchecked (an untagged MUTATIONS frame pipelined
   * behind a bad one was applied).
   */
  @Test
  void afterAFailedCheck_laterFramesOfTheSameRead_areDropped() {
    activate();
    FrameAuthenticator checker = new FrameAuthenticator("s", serverStats, serverRing::get);
    EmbeddedChannel decoding = new EmbeddedChannel(
        new LengthFieldBasedFrameDecoder(Frames.MAX_FRAME_BYTES, 0, 4, 0, 4), checker);
    checker.activate(RING.primary(), transcript(new byte[16]), false);
    ByteBuf read = Unpooled.buffer();
    for (byte[] body : new byte[][] {sent("tagged"), new byte[8],
        "untagged".getBytes(StandardCharsets.UTF_8), sent("tagged-after")}) {
      read.writeInt(body.length).writeBytes(body);
    }
    decoding.writeInbound(read);
    ByteBuf first = decoding.readInbound();
    assertThat(first.toString(StandardCharsets.UTF_8)).isEqualTo("tagged");
    first.release();
    Object leaked = decoding.readInbound();
    assertThat(leaked).as("a frame behind the failed one").isNull();
    assertThat(decoding.isOpen()).isFalse();
    assertThat(serverStats.authenticationFailures.sum()).isEqualTo(1);
  }
}
