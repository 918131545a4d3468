package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.scalecube.cluster.fdetector.FailureDetectorImpl;
import io.scalecube.cluster.gossip.GossipProtocolImpl;
import io.scalecube.cluster.membership.MembershipProtocolImpl;
import io.scalecube.cluster.metadata.MetadataStoreImpl;
import io.scalecube.cluster.transport.api.JdkMessageCodec;
import io.scalecube.cluster.transport.api.Message;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The JSON codecs of the membership plane: what ScaleCube sends round-trips; nothing else passes. */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class MembershipCodecTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final String M1 =
      "{\"id\":\"n1-ab\",\"alias\":\"n1\",\"address\":\"127.0.0.1:7946\",\"namespace\":\"kv\"}";
  private static final String M2 =
      "{\"id\":\"n2-cd\",\"address\":\"127.0.0.1:7950\",\"namespace\":\"kv\"}";
  private static final String RECORD = "{\"member\":" + M1 + ",\"status\":\"SUSPECT\",\"incarnation\":3}";

  private final ScaleCubeMessageCodec codec = new ScaleCubeMessageCodec();

  private Message decode(String json) throws Exception {
    return codec.strictDeserialize(new ByteArrayInputStream(json.getBytes(StandardCharsets.UTF_8)));
  }

  private String encode(Message m) throws Exception {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    codec.serialize(m, out);
    return out.toString(StandardCharsets.UTF_8);
  }

  private void assertRoundTrips(String json) throws Exception {
    Message m = decode(json);
    JsonNode again = JSON.readTree(encode(m));
    assertThat(again).isEqualTo(JSON.readTree(json));
  }

  @Test
  void qualifiers_matchScaleCubes() {
    assertThat(ScaleCubeMessageCodec.PING).isEqualTo(FailureDetectorImpl.PING);
    assertThat(ScaleCubeMessageCodec.PING_REQ).isEqualTo(FailureDetectorImpl.PING_REQ);
    assertThat(ScaleCubeMessageCodec.PING_ACK).isEqualTo(FailureDetectorImpl.PING_ACK);
    assertThat(ScaleCubeMessageCodec.SYNC).isEqualTo(MembershipProtocolImpl.SYNC);
    assertThat(ScaleCubeMessageCodec.SYNC_ACK).isEqualTo(MembershipProtocolImpl.SYNC_ACK);
    assertThat(ScaleCubeMessageCodec.MEMBERSHIP_GOSSIP)
        .isEqualTo(MembershipProtocolImpl.MEMBERSHIP_GOSSIP);
    assertThat(ScaleCubeMessageCodec.GOSSIP_REQ).isEqualTo(GossipProtocolImpl.GOSSIP_REQ);
    assertThat(ScaleCubeMessageCodec.GET_METADATA_REQ).isEqualTo(MetadataStoreImpl.GET_METADATA_REQ);
    assertThat(ScaleCubeMessageCodec.GET_METADATA_RESP)
        .isEqualTo(MetadataStoreImpl.GET_METADATA_RESP);
  }

  @Test
  void everyProtocolMessage_roundTrips() throws Exception {
    assertRoundTrips("{\"v\":1,\"h\":{\"q\":\"sc/fdetector/ping\",\"cid\":\"c1\",\"sender\":"
        + "\"127.0.0.1:7946\"},\"t\":\"ping\",\"d\":{\"from\":" + M1 + ",\"to\":" + M2 + "}}");
    assertRoundTrips("{\"v\":1,\"h\":{\"q\":\"sc/fdetector/pingAck\",\"cid\":\"c1\"},\"t\":\"ping\","
        + "\"d\":{\"from\":" + M1 + ",\"to\":" + M2 + ",\"originalIssuer\":" + M1
        + ",\"ackType\":\"DEST_GONE\"}}");
    assertRoundTrips("{\"v\":1,\"h\":{\"q\":\"sc/membership/syncAck\",\"cid\":null},\"t\":\"sync\","
        + "\"d\":{\"membership\":[" + RECORD + "," + RECORD.replace("SUSPECT", "LEAVING") + "]}}");
    assertRoundTrips("{\"v\":1,\"h\":{\"q\":\"sc/gossip/req\"},\"t\":\"gossip\",\"d\":{\"gossips\":"
        + "[{\"gossiperId\":\"n1-ab\",\"message\":{\"v\":1,\"h\":{\"q\":\"sc/membership/gossip\"},"
        + "\"t\":\"record\",\"d\":" + RECORD + "},\"sequenceId\":12}],\"from\":\"n1-ab\"}}");
    assertRoundTrips("{\"v\":1,\"h\":{\"q\":\"sc/metadata/req\",\"cid\":\"x\"},\"t\":\"mdreq\","
        + "\"d\":{\"member\":" + M2 + "}}");
    String md = Base64.getEncoder().encodeToString("{\"v\":1}".getBytes(StandardCharsets.UTF_8));
    assertRoundTrips("{\"v\":1,\"h\":{\"q\":\"sc/metadata/resp\",\"cid\":\"x\"},\"t\":\"mdresp\","
        + "\"d\":{\"member\":" + M2 + ",\"metadata\":\"" + md + "\"}}");
  }

  @Test
  void javaSerializedMessages_areRefused() throws Exception {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    new JdkMessageCodec().serialize(Message.withData("payload").qualifier("sc/fdetector/ping").build(),
        out);
    assertThatThrownBy(() -> codec.strictDeserialize(new ByteArrayInputStream(out.toByteArray())))
        .isInstanceOf(Exception.class);
  }

  @Test
  void refusedMessages_becomeAnInertMarker_andAreCounted() throws Exception {
    java.util.concurrent.atomic.AtomicInteger refused = new java.util.concurrent.atomic.AtomicInteger();
    ScaleCubeMessageCodec counting = new ScaleCubeMessageCodec(refused::incrementAndGet);
    Message m = counting.deserialize(new ByteArrayInputStream(new byte[] {1, 2, 3}));
    assertThat(m).isSameAs(ScaleCubeMessageCodec.REFUSED);
    assertThat(m.correlationId()).isNull();
    assertThat(m.qualifier()).doesNotStartWith("sc/");
    assertThat(m.<Object>data()).isNull();
    assertThat(refused).hasValue(1);
  }

  @ParameterizedTest
  @ValueSource(strings = {
      // wrong data type for the qualifier: ScaleCube's handler would cast and die
      "{\"v\":1,\"h\":{\"q\":\"sc/fdetector/ping\"},\"t\":\"sync\",\"d\":{\"membership\":[]}}",
      // a required member missing: the handler would dereference null
      "{\"v\":1,\"h\":{\"q\":\"sc/fdetector/ping\"},\"t\":\"ping\",\"d\":{\"from\":" + M1 + "}}",
      // no data at all
      "{\"v\":1,\"h\":{\"q\":\"sc/fdetector/ping\"}}",
      // a class name instead of a tag
      "{\"v\":1,\"h\":{\"q\":\"sc/fdetector/ping\"},\"t\":\"java.lang.ProcessBuilder\",\"d\":{}}",
      // unknown qualifier (kvstore sends no user messages on this plane)
      "{\"v\":1,\"h\":{\"q\":\"user/hello\"},\"t\":\"ping\",\"d\":{\"from\":" + M1 + ",\"to\":" + M1
          + "}}",
      // unknown field, unknown enum, bad address, wrong format version, wrong types
      "{\"v\":1,\"h\":{\"q\":\"sc/metadata/req\"},\"t\":\"mdreq\",\"d\":{\"member\":" + M1
          + ",\"extra\":1}}",
      "{\"v\":1,\"h\":{\"q\":\"sc/membership/sync\"},\"t\":\"sync\",\"d\":{\"membership\":["
          + "{\"member\":" + M1 + ",\"status\":\"ZOMBIE\",\"incarnation\":1}]}}",
      "{\"v\":1,\"h\":{\"q\":\"sc/metadata/req\"},\"t\":\"mdreq\",\"d\":{\"member\":"
          + "{\"id\":\"x\",\"address\":\"no-port\",\"namespace\":\"kv\"}}}",
      "{\"v\":2,\"h\":{\"q\":\"sc/metadata/req\"},\"t\":\"mdreq\",\"d\":{\"member\":" + M1 + "}}",
      "{\"v\":1,\"h\":{\"q\":7},\"t\":\"mdreq\",\"d\":{\"member\":" + M1 + "}}",
      "{\"v\":1,\"h\":{\"q\":\"sc/membership/sync\"},\"t\":\"sync\",\"d\":{\"membership\":{}}}",
      "{\"v\":1,\"h\":{\"q\":\"sc/membership/sync\"},\"t\":\"sync\",\"d\":{\"membership\":["
          + "{\"member\":" + M1 + ",\"status\":\"ALIVE\",\"incarnation\":\"1\"}]}}",
      // inside gossip only membership records may travel
      "{\"v\":1,\"h\":{\"q\":\"sc/gossip/req\"},\"t\":\"gossip\",\"d\":{\"gossips\":"
          + "[{\"gossiperId\":\"a\",\"message\":{\"v\":1,\"h\":{\"q\":\"sc/fdetector/ping\"},"
          + "\"t\":\"ping\",\"d\":{\"from\":" + M1 + ",\"to\":" + M1 + "}},\"sequenceId\":1}],"
          + "\"from\":\"a\"}}",
      // metadata that is not base64, duplicate keys, not JSON at all
      "{\"v\":1,\"h\":{\"q\":\"sc/metadata/resp\"},\"t\":\"mdresp\",\"d\":{\"member\":" + M1
          + ",\"metadata\":\"***\"}}",
      "{\"v\":1,\"v\":1,\"h\":{\"q\":\"sc/metadata/req\"},\"t\":\"mdreq\",\"d\":{\"member\":" + M1 + "}}",
      "\u0000\u0001garbage",
      ""
  })
  void malformedOrUnexpectedMessages_areRefused(String json) {
    assertThatThrownBy(() -> decode(json)).isInstanceOf(Exception.class);
  }

  @Test
  void deepNestingAndHugeArrays_areRefused() {
    String deep = "{\"v\":1,\"h\":" + "[".repeat(5_000) + "]".repeat(5_000) + "}";
    assertThatThrownBy(() -> decode(deep)).isInstanceOf(Exception.class);
    StringBuilder many = new StringBuilder("{\"v\":1,\"h\":{\"q\":\"sc/membership/sync\"},\"t\":\"sync\","
        + "\"d\":{\"membership\":[");
    for (int i = 0; i < 10_001; i++) {
      many.append(i == 0 ? "" : ",").append("{}");
    }
    many.append("]}}");
    assertThatThrownBy(() -> decode(many.toString())).isInstanceOf(Exception.class)
        .hasMessageContaining("at most");
  }

  @Test
  void sendingAnythingButProtocolData_isRefused() {
    assertThatThrownBy(() -> encode(Message.withData("hello").qualifier("x").build()))
        .hasMessageContaining("refusing to send");
  }

  @Test
  void metadata_roundTrips_andRejectsBadInput() {
    NodeMetadataCodec md = new NodeMetadataCodec();
    NodeMetadata in = new NodeMetadata("n1", "127.0.0.1:7947", 1, "kv");
    assertThat(md.deserialize(md.serialize(in))).isEqualTo(in);
    assertThat(md.deserialize(ByteBuffer.allocate(0))).isNull();
    assertThat(md.serialize(null)).isNull();
    // a later version may add fields
    assertThat(md.deserialize(utf8("{\"v\":1,\"node\":\"n1\",\"data\":\"h:1\",\"proto\":2,"
        + "\"cluster\":\"kv\",\"zone\":\"eu\"}")).protocolVersion()).isEqualTo(2);
    for (String bad : new String[] {"nope", "[]", "{\"v\":2}",
        "{\"v\":1,\"node\":\"bad id\",\"data\":\"h:1\",\"proto\":1,\"cluster\":\"kv\"}",
        "{\"v\":1,\"node\":\"n1\",\"data\":\"h\",\"proto\":1,\"cluster\":\"kv\"}",
        "{\"v\":1,\"node\":\"n1\",\"data\":\"h:1\",\"proto\":0,\"cluster\":\"kv\"}",
        "{\"v\":1,\"node\":\"n1\",\"data\":\"h:1\",\"proto\":1}"}) {
      assertThatThrownBy(() -> md.deserialize(utf8(bad)), bad)
          .isInstanceOf(IllegalArgumentException.class);
    }
    assertThatThrownBy(() -> md.deserialize(ByteBuffer.allocate(NodeMetadataCodec.MAX_BYTES + 1)))
        .hasMessageContaining("over the limit");
    assertThatThrownBy(() -> md.serialize("a string")).isInstanceOf(IllegalArgumentException.class);
  }

  private static ByteBuffer utf8(String s) {
    return ByteBuffer.wrap(s.getBytes(StandardCharsets.UTF_8));
  }
}
