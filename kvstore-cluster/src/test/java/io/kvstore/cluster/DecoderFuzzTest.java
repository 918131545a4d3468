package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.scalecube.cluster.transport.api.Message;
import java.io.ByteArrayInputStream;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Jazzer fuzz targets for everything kvstore-cluster decodes from the network: data-plane frames,
 * the per-frame authenticator, membership JSON and its authentication envelope. Under
 * {@code ./mvnw verify} each target replays its committed regression inputs (src/test/resources/
 * io/kvstore/cluster/DecoderFuzzTestInputs/&lt;target&gt;/) and an empty input, in well under a
 * second; {@code JAZZER_FUZZ=1 ./mvnw -pl kvstore-cluster test -Dtest=DecoderFuzzTest#<target>}
 * fuzzes one target for real (see docs/SECURITY.md). The invariant everywhere: bad input is
 * refused with the decoder's own error type (or marker), never another exception, a hang or an
 * allocation beyond what the input's size allows.
 */
class DecoderFuzzTest {
  private static final ClusterKeyring RING = ClusterKeyring.of("k1", ClusterKeyringTest.secret(1));

  @FuzzTest(maxDuration = "30s")
  void dataPlaneFrame(byte[] data) {
    ByteBuf in = Unpooled.wrappedBuffer(data);
    try {
      Frames.Frame f = Frames.decode(in);
      assertThat(f).isNotNull();
    } catch (MalformedFrameException expected) {
      // refused: fine
    }
  }

  @FuzzTest(maxDuration = "30s")
  void authenticatedFrame(byte[] data) {
    Stats stats = new Stats(() -> 0);
    EmbeddedChannel ch = new EmbeddedChannel(new FrameAuthenticator("n", stats, () -> RING));
    ch.pipeline().get(FrameAuthenticator.class).activate(RING.primary(),
        FrameAuthenticator.transcript(1, "kv", "a", "b", new byte[16], new byte[16], "k1"), false);
    ch.writeInbound(Unpooled.wrappedBuffer(data));
    // Without the key nobody forges a tag: every fuzzed frame is refused and the channel closed.
    Object passed = ch.readInbound();
    assertThat(passed).isNull();
    assertThat(ch.isOpen()).isFalse();
    assertThat(stats.authenticationFailures.sum()).isEqualTo(1);
  }

  @FuzzTest(maxDuration = "30s")
  void membershipMessage(byte[] data) {
    Message m = new ScaleCubeMessageCodec().deserialize(new ByteArrayInputStream(data));
    assertThat(m).isNotNull();
    ScaleCubeMessageCodec.takeRefused();
  }

  @FuzzTest(maxDuration = "30s")
  void membershipEnvelope(byte[] data) throws Exception {
    AtomicLong failures = new AtomicLong();
    AuthenticatedMessageCodec codec = new AuthenticatedMessageCodec(new ScaleCubeMessageCodec(),
        () -> RING, "kv", System::currentTimeMillis, failures::incrementAndGet);
    Message m = codec.deserialize(new ByteArrayInputStream(data));
    // Without the key nothing passes the tag check.
    assertThat(m).isSameAs(ScaleCubeMessageCodec.REFUSED);
    assertThat(failures).hasValue(1);
    ScaleCubeMessageCodec.takeRefused();
  }
}
