package io.kvstore.cluster;

import com.fasterxml.jackson.annotation.JsonAutoDetect.Visibility;
import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.PropertyAccessor;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.databind.DeserializationContext;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonDeserializer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.JsonSerializer;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.SerializerProvider;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.module.SimpleModule;
import io.scalecube.cluster.transport.api.Message;
import io.scalecube.cluster.transport.api.MessageCodec;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.util.Base64;
import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The membership plane's message codec: JSON through Jackson, never Java serialization.
 *
 * <p>A message is {@code {"v":1,"h":{headers},"t":"<type>","d":{data}}}. Only ScaleCube's own protocol
 * messages are accepted: each known qualifier must carry exactly the data type ScaleCube's handler will
 * cast it to, named by a short tag from a fixed allowlist (no class names on the wire, no polymorphic
 * typing). The data is checked field by field on the parsed tree (required fields present, strings and
 * arrays bounded, enums known, addresses well formed) before it is bound. This matters beyond
 * deserialization safety: ScaleCube's handlers cast and dereference without checks, and one exception
 * in a handler cancels its subscription for good, so a message of the wrong shape reaching them would
 * silently disable failure detection. Parser limits cap nesting, token and document sizes. A refused
 * message becomes the inert {@link #REFUSED} marker, is counted, and is logged at most every 10 s.
 */
final class ScaleCubeMessageCodec implements MessageCodec {
  static final int WIRE_FORMAT = 1;
  /** Must not exceed the membership transport's frame limit. */
  static final int MAX_MESSAGE_BYTES = 1024 * 1024;
  private static final int MAX_HEADERS = 16;
  private static final int MAX_ID_CHARS = 256;
  private static final int MAX_ADDRESS_CHARS = 300;
  private static final int MAX_LIST = 10_000;

  // ScaleCube's qualifiers (public constants in its implementation classes, repeated to stay explicit).
  static final String PING = "sc/fdetector/ping";
  static final String PING_REQ = "sc/fdetector/pingReq";
  static final String PING_ACK = "sc/fdetector/pingAck";
  static final String SYNC = "sc/membership/sync";
  static final String SYNC_ACK = "sc/membership/syncAck";
  static final String MEMBERSHIP_GOSSIP = "sc/membership/gossip";
  static final String GOSSIP_REQ = "sc/gossip/req";
  static final String GET_METADATA_REQ = "sc/metadata/req";
  static final String GET_METADATA_RESP = "sc/metadata/resp";

  private enum Type {
    PING_DATA("ping", "io.scalecube.cluster.fdetector.PingData"),
    SYNC_DATA("sync", "io.scalecube.cluster.membership.SyncData"),
    MEMBERSHIP_RECORD("record", "io.scalecube.cluster.membership.MembershipRecord"),
    GOSSIP_REQUEST("gossip", "io.scalecube.cluster.gossip.GossipRequest"),
    METADATA_REQUEST("mdreq", "io.scalecube.cluster.metadata.GetMetadataRequest"),
    METADATA_RESPONSE("mdresp", "io.scalecube.cluster.metadata.GetMetadataResponse");

    final String tag;
    final Class<?> type;

    Type(String tag, String className) {
      this.tag = tag;
      try {
        this.type = Class.forName(className, false, ScaleCubeMessageCodec.class.getClassLoader());
      } catch (ClassNotFoundException e) {
        throw new ExceptionInInitializerError("this ScaleCube version lacks " + className
            + "; kvstore-cluster supports the version named in its pom");
      }
    }
  }

  /** Top-level qualifiers and the one data type each may carry. */
  private static final Map<String, Type> TOP_LEVEL = Map.of(
      PING, Type.PING_DATA,
      PING_REQ, Type.PING_DATA,
      PING_ACK, Type.PING_DATA,
      SYNC, Type.SYNC_DATA,
      SYNC_ACK, Type.SYNC_DATA,
      GOSSIP_REQ, Type.GOSSIP_REQUEST,
      GET_METADATA_REQ, Type.METADATA_REQUEST,
      GET_METADATA_RESP, Type.METADATA_RESPONSE);

  /** Messages carried inside gossip: only membership records. */
  private static final Map<String, Type> IN_GOSSIP = Map.of(MEMBERSHIP_GOSSIP, Type.MEMBERSHIP_RECORD);

  private static final Map<Class<?>, Type> BY_CLASS = new HashMap<>();

  static {
    for (Type t : Type.values()) {
      BY_CLASS.put(t.type, t);
    }
  }

  private static final Set<String> MEMBER_FIELDS = Set.of("id", "alias", "address", "namespace");
  private static final Set<String> STATUSES = Set.of("ALIVE", "SUSPECT", "LEAVING", "DEAD");
  private static final Set<String> ACK_TYPES = Set.of("DEST_OK", "DEST_GONE");

  /**
   * What a refused message decodes to: no ScaleCube handler reacts to this qualifier, and without a
   * correlation id it answers no request. Throwing instead would make ScaleCube log an error with a
   * stack trace for every piece of garbage anyone sends to the port.
   */
  static final Message REFUSED = Message.withQualifier("kvstore/refused").build();

  /**
   * Set on the decoding thread when a message is refused, so the transport's receiver (which decodes
   * synchronously on the connection's event loop) can close the connection it came from.
   */
  private static final ThreadLocal<Boolean> REFUSED_HERE = ThreadLocal.withInitial(() -> false);

  /** Marks the current thread's last decode as refused. */
  static void markRefused() {
    REFUSED_HERE.set(true);
  }

  /** Whether a message was refused on this thread since the last call; clears the mark. */
  static boolean takeRefused() {
    boolean refused = REFUSED_HERE.get();
    if (refused) {
      REFUSED_HERE.set(false);
    }
    return refused;
  }

  private static final Logger log = LoggerFactory.getLogger(ScaleCubeMessageCodec.class);
  private final RateLimitedLog warnings = new RateLimitedLog(log);
  private final ObjectMapper mapper;
  private final Runnable onRefused;

  ScaleCubeMessageCodec() {
    this(() -> { });
  }

  /** @param onRefused called once per refused incoming message (to count it) */
  ScaleCubeMessageCodec(Runnable onRefused) {
    this.onRefused = onRefused;
    SimpleModule module = new SimpleModule("kvstore-scalecube");
    module.addSerializer(Message.class, new MessageSerializer());
    module.addDeserializer(Message.class, new NestedMessageDeserializer());
    this.mapper = JsonMapper.builder(JsonSupport.boundedFactory(MAX_MESSAGE_BYTES))
        .visibility(PropertyAccessor.ALL, Visibility.NONE)
        .visibility(PropertyAccessor.FIELD, Visibility.ANY)
        .defaultPropertyInclusion(JsonInclude.Value.construct(JsonInclude.Include.NON_NULL,
            JsonInclude.Include.NON_NULL))
        .disable(SerializationFeature.FAIL_ON_EMPTY_BEANS)
        .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
        .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
        .enable(DeserializationFeature.FAIL_ON_READING_DUP_TREE_KEY)
        .addModule(module)
        .build();
  }

  @Override
  public void serialize(Message message, OutputStream stream) throws IOException {
    mapper.writeValue(stream, message);
  }

  /**
   * Decodes a message, or returns {@link #REFUSED} (counted, logged at most every 10 s) for anything
   * that is not exactly one of ScaleCube's protocol messages.
   */
  @Override
  public Message deserialize(InputStream stream) {
    try {
      return strictDeserialize(stream);
    } catch (IOException | RuntimeException e) {
      onRefused.run();
      markRefused();
      warnings.warn("refused a membership message: {}", e.getMessage());
      return REFUSED;
    }
  }

  /** Decodes a message or throws saying what is wrong with it. */
  Message strictDeserialize(InputStream stream) throws IOException {
    JsonNode root = mapper.readTree(stream);
    if (root == null || root.isMissingNode()) {
      throw new IllegalArgumentException("empty membership message");
    }
    return toMessage(root, TOP_LEVEL);
  }

  private Message toMessage(JsonNode node, Map<String, Type> allowed) throws IOException {
    if (!node.isObject()) {
      throw new IllegalArgumentException("a membership message must be a JSON object");
    }
    onlyFields(node, Set.of("v", "h", "t", "d"), "message");
    long format = JsonSupport.integer(node, "v", 0, Integer.MAX_VALUE);
    if (format != WIRE_FORMAT) {
      throw new IllegalArgumentException("membership wire format " + format + " is not supported");
    }
    Message.Builder builder = Message.builder();
    JsonNode headers = node.get("h");
    if (headers != null) {
      if (!headers.isObject() || headers.size() > MAX_HEADERS) {
        throw new IllegalArgumentException("headers must be an object of at most " + MAX_HEADERS);
      }
      for (Map.Entry<String, JsonNode> h : headers.properties()) {
        builder.header(h.getKey(), JsonSupport.text(headers, h.getKey(), MAX_ADDRESS_CHARS, false));
      }
    }
    String qualifier = headers == null ? null : JsonSupport.text(headers, Message.HEADER_QUALIFIER,
        MAX_ADDRESS_CHARS, false);
    Type expected = qualifier == null ? null : allowed.get(qualifier);
    if (expected == null) {
      throw new IllegalArgumentException("unexpected membership message qualifier " + qualifier);
    }
    String tag = JsonSupport.text(node, "t", 16, true);
    if (!expected.tag.equals(tag)) {
      throw new IllegalArgumentException(qualifier + " must carry '" + expected.tag + "', not '"
          + tag + "'");
    }
    JsonNode data = node.get("d");
    if (data == null || !data.isObject()) {
      throw new IllegalArgumentException(qualifier + " carries no data object");
    }
    validate(expected, data);
    return builder.data(mapper.treeToValue(data, expected.type)).build();
  }

  private static void validate(Type type, JsonNode d) {
    switch (type) {
      case PING_DATA -> {
        onlyFields(d, Set.of("from", "to", "originalIssuer", "ackType"), "ping");
        member(d, "from", true);
        member(d, "to", true);
        member(d, "originalIssuer", false);
        String ack = JsonSupport.text(d, "ackType", 16, false);
        if (ack != null && !ACK_TYPES.contains(ack)) {
          throw new IllegalArgumentException("unknown ack type " + ack);
        }
      }
      case SYNC_DATA -> {
        onlyFields(d, Set.of("membership"), "sync");
        for (JsonNode r : array(d, "membership")) {
          record(r);
        }
      }
      case MEMBERSHIP_RECORD -> record(d);
      case GOSSIP_REQUEST -> {
        onlyFields(d, Set.of("gossips", "from"), "gossip request");
        JsonSupport.text(d, "from", MAX_ID_CHARS, true);
        for (JsonNode g : array(d, "gossips")) {
          if (!g.isObject()) {
            throw new IllegalArgumentException("a gossip must be an object");
          }
          onlyFields(g, Set.of("gossiperId", "message", "sequenceId"), "gossip");
          JsonSupport.text(g, "gossiperId", MAX_ID_CHARS, true);
          JsonSupport.integer(g, "sequenceId", Long.MIN_VALUE, Long.MAX_VALUE);
          if (g.get("message") == null || !g.get("message").isObject()) {
            throw new IllegalArgumentException("a gossip must carry a message");
          }
          // The nested message itself is checked by NestedMessageDeserializer while binding.
        }
      }
      case METADATA_REQUEST -> {
        onlyFields(d, Set.of("member"), "metadata request");
        member(d, "member", true);
      }
      case METADATA_RESPONSE -> {
        onlyFields(d, Set.of("member", "metadata"), "metadata response");
        member(d, "member", true);
        String b64 = JsonSupport.text(d, "metadata", (NodeMetadataCodec.MAX_BYTES + 2) / 3 * 4, true);
        try {
          Base64.getDecoder().decode(b64);
        } catch (IllegalArgumentException e) {
          throw new IllegalArgumentException("metadata is not base64");
        }
      }
      default -> throw new IllegalStateException(type.name());
    }
  }

  private static void record(JsonNode r) {
    if (!r.isObject()) {
      throw new IllegalArgumentException("a membership record must be an object");
    }
    onlyFields(r, Set.of("member", "status", "incarnation"), "membership record");
    member(r, "member", true);
    String status = JsonSupport.text(r, "status", 16, true);
    if (!STATUSES.contains(status)) {
      throw new IllegalArgumentException("unknown member status " + status);
    }
    JsonSupport.integer(r, "incarnation", Integer.MIN_VALUE, Integer.MAX_VALUE);
  }

  private static void member(JsonNode parent, String field, boolean required) {
    JsonNode m = parent.get(field);
    if (m == null || m.isNull()) {
      if (required) {
        throw new IllegalArgumentException("'" + field + "' is missing");
      }
      return;
    }
    if (!m.isObject()) {
      throw new IllegalArgumentException("'" + field + "' must be a member object");
    }
    onlyFields(m, MEMBER_FIELDS, "member");
    JsonSupport.text(m, "id", MAX_ID_CHARS, true);
    JsonSupport.text(m, "alias", MAX_ID_CHARS, false);
    JsonSupport.text(m, "namespace", MAX_ID_CHARS, true);
    KvClusterConfig.requireAddress("member address",
        JsonSupport.text(m, "address", MAX_ADDRESS_CHARS, true));
  }

  private static Iterable<JsonNode> array(JsonNode parent, String field) {
    JsonNode a = parent.get(field);
    if (a == null || !a.isArray() || a.size() > MAX_LIST) {
      throw new IllegalArgumentException("'" + field + "' must be an array of at most " + MAX_LIST);
    }
    return a;
  }

  private static void onlyFields(JsonNode node, Set<String> allowed, String what) {
    for (Iterator<String> it = node.fieldNames(); it.hasNext(); ) {
      String name = it.next();
      if (!allowed.contains(name)) {
        throw new IllegalArgumentException("unexpected field '" + name + "' in " + what);
      }
    }
  }

  /** Writes a message; refuses data types outside the allowlist so nothing else is ever sent. */
  private static final class MessageSerializer extends JsonSerializer<Message> {
    @Override
    public void serialize(Message message, JsonGenerator gen, SerializerProvider provider)
        throws IOException {
      gen.writeStartObject();
      gen.writeNumberField("v", WIRE_FORMAT);
      gen.writeObjectFieldStart("h");
      for (Map.Entry<String, String> h : message.headers().entrySet()) {
        if (h.getValue() == null) {
          gen.writeNullField(h.getKey());
        } else {
          gen.writeStringField(h.getKey(), h.getValue());
        }
      }
      gen.writeEndObject();
      Object data = message.data();
      if (data != null) {
        Type type = BY_CLASS.get(data.getClass());
        if (type == null) {
          throw new IllegalArgumentException("refusing to send membership data of type "
              + data.getClass().getName());
        }
        gen.writeStringField("t", type.tag);
        gen.writeFieldName("d");
        provider.defaultSerializeValue(data, gen);
      }
      gen.writeEndObject();
    }
  }

  /** Binds the message inside a gossip, with the same checks as a top-level one. */
  private final class NestedMessageDeserializer extends JsonDeserializer<Message> {
    @Override
    public Message deserialize(JsonParser p, DeserializationContext ctxt) throws IOException {
      JsonNode node = p.readValueAsTree();
      return toMessage(node, IN_GOSSIP);
    }
  }
}
