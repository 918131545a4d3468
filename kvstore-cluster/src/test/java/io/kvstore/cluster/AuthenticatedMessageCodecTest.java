package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import io.scalecube.cluster.transport.api.Message;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The membership envelope: only messages tagged with an accepted key, fresh and unseen, pass. */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class AuthenticatedMessageCodecTest {
  static final String PING = "{\"v\":1,\"h\":{\"q\":\"sc/fdetector/ping\",\"cid\":\"c1\"},\"t\":\"ping\","
      + "\"d\":{\"from\":{\"id\":\"n1-ab\",\"address\":\"127.0.0.1:7946\",\"namespace\":\"kv\"},"
      + "\"to\":{\"id\":\"n2-cd\",\"address\":\"127.0.0.1:7950\",\"namespace\":\"kv\"}}}";
  static final ClusterKeyring K1 = ClusterKeyring.of("k1", ClusterKeyringTest.secret(1));
  static final ClusterKeyring K2 = ClusterKeyring.of("k2", ClusterKeyringTest.secret(2));

  private final AtomicLong clock = new AtomicLong(1_700_000_000_000L);
  private final AtomicInteger failures = new AtomicInteger();

  private AuthenticatedMessageCodec codec(ClusterKeyring ring) {
    return codec(ring, "kv");
  }

  private AuthenticatedMessageCodec codec(ClusterKeyring ring, String cluster) {
    AtomicReference<ClusterKeyring> ref = new AtomicReference<>(ring);
    return new AuthenticatedMessageCodec(new ScaleCubeMessageCodec(), ref::get, cluster, clock::get,
        failures::incrementAndGet);
  }

  static Message ping() throws Exception {
    return new ScaleCubeMessageCodec().strictDeserialize(
        new ByteArrayInputStream(PING.getBytes(StandardCharsets.UTF_8)));
  }

  static byte[] encode(AuthenticatedMessageCodec codec, Message m) throws Exception {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    codec.serialize(m, out);
    return out.toByteArray();
  }

  private static Message decode(AuthenticatedMessageCodec codec, byte[] bytes) throws Exception {
    return codec.deserialize(new ByteArrayInputStream(bytes));
  }

  @Test
  void taggedMessage_roundTrips() throws Exception {
    byte[] wire = encode(codec(K1), ping());
    Message m = decode(codec(K1), wire);
    assertThat(m.qualifier()).isEqualTo("sc/fdetector/ping");
    assertThat(failures).hasValue(0);
  }

  @Test
  void wrongKey_unknownKeyId_plainJson_otherCluster_areRefused_andCounted() throws Exception {
    AuthenticatedMessageCodec receiver = codec(K1);
    byte[] wrongKey = encode(codec(ClusterKeyring.of("k1", ClusterKeyringTest.secret(7))), ping());
    byte[] unknownId = encode(codec(K2), ping());
    byte[] otherCluster = encode(codec(K1, "other"), ping());
    assertThat(decode(receiver, wrongKey)).isSameAs(ScaleCubeMessageCodec.REFUSED);
    assertThat(decode(receiver, unknownId)).isSameAs(ScaleCubeMessageCodec.REFUSED);
    assertThat(decode(receiver, PING.getBytes(StandardCharsets.UTF_8)))
        .isSameAs(ScaleCubeMessageCodec.REFUSED);
    assertThat(decode(receiver, otherCluster)).isSameAs(ScaleCubeMessageCodec.REFUSED);
    assertThat(decode(receiver, new byte[0])).isSameAs(ScaleCubeMessageCodec.REFUSED);
    assertThat(failures).hasValue(5);
  }

  @Test
  void everySingleBitFlip_isRefused() throws Exception {
    byte[] wire = encode(codec(K1), ping());
    for (int i = 0; i < wire.length; i++) {
      byte[] altered = wire.clone();
      altered[i] ^= 0x10;
      assertThat(codec(K1).check(altered)).as("flip in byte %d", i).isNotNull();
    }
    assertThat(codec(K1).check(java.util.Arrays.copyOf(wire, wire.length - 1))).isNotNull();
  }

  @Test
  void replayedMessage_isRefused_theSecondTime() throws Exception {
    AuthenticatedMessageCodec receiver = codec(K1);
    byte[] wire = encode(codec(K1), ping());
    assertThat(decode(receiver, wire).qualifier()).isEqualTo("sc/fdetector/ping");
    assertThat(receiver.check(wire)).contains("replayed");
    assertThat(decode(receiver, wire)).isSameAs(ScaleCubeMessageCodec.REFUSED);
  }

  @Test
  void messageOutsideTheClockWindow_isRefused() throws Exception {
    byte[] wire = encode(codec(K1), ping());
    long window = AuthenticatedMessageCodec.MAX_CLOCK_SKEW.toMillis();
    clock.addAndGet(window + 1);
    assertThat(codec(K1).check(wire)).contains("off this node's clock");
    clock.addAndGet(-2 * window - 2);
    assertThat(codec(K1).check(wire)).contains("off this node's clock");
    clock.addAndGet(window + 1);
    assertThat(codec(K1).check(wire)).isNull();
  }

  @Test
  void duringRotation_messagesUnderEitherAcceptedKeyPass_andTheSenderUsesItsPrimary()
      throws Exception {
    ClusterKeyring both = K1.withKey("k2", ClusterKeyringTest.secret(2));
    AuthenticatedMessageCodec receiver = codec(both);
    assertThat(decode(receiver, encode(codec(K1), ping()))).isNotSameAs(ScaleCubeMessageCodec.REFUSED);
    assertThat(decode(receiver, encode(codec(K2), ping()))).isNotSameAs(ScaleCubeMessageCodec.REFUSED);
    byte[] fromPromoted = encode(codec(both.withPrimary("k2")), ping());
    assertThat(codec(K1).check(fromPromoted)).contains("not in this node's keyring");
    assertThat(codec(K2).check(fromPromoted)).isNull();
  }

  @Test
  void oversizedInput_isRefusedBeforeParsing() throws Exception {
    byte[] huge = new byte[AuthenticatedMessageCodec.MAX_ENVELOPE_BYTES + 10];
    assertThat(decode(codec(K1), huge)).isSameAs(ScaleCubeMessageCodec.REFUSED);
    assertThat(failures).hasValue(1);
  }
}
