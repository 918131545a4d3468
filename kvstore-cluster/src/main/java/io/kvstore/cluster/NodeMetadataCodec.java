package io.kvstore.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvstore.core.NodeIds;
import io.scalecube.cluster.metadata.MetadataCodec;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Member metadata as a small JSON object, {@code {"v":1,"node":..,"data":"host:port","proto":1,
 * "cluster":..}}, instead of ScaleCube's default Java serialization. Unknown fields are ignored so a
 * later version may add some; anything else out of shape is refused.
 */
final class NodeMetadataCodec implements MetadataCodec {
  static final int MAX_BYTES = 4096;
  private static final int FORMAT = 1;

  private final ObjectMapper mapper = JsonMapper.builder(JsonSupport.boundedFactory(MAX_BYTES)).build();

  @Override
  public ByteBuffer serialize(Object metadata) {
    if (metadata == null) {
      return null;
    }
    if (!(metadata instanceof NodeMetadata md)) {
      throw new IllegalArgumentException("kvstore member metadata must be NodeMetadata, was "
          + metadata.getClass().getName());
    }
    ObjectNode node = mapper.createObjectNode();
    node.put("v", FORMAT);
    node.put("node", md.nodeId());
    node.put("data", md.dataAddress());
    node.put("proto", md.protocolVersion());
    node.put("cluster", md.clusterName());
    try {
      return ByteBuffer.wrap(mapper.writeValueAsBytes(node));
    } catch (IOException e) {
      throw new IllegalStateException("cannot encode member metadata", e);
    }
  }

  @Override
  public NodeMetadata deserialize(ByteBuffer buffer) {
    if (buffer == null || !buffer.hasRemaining()) {
      return null;
    }
    if (buffer.remaining() > MAX_BYTES) {
      throw new IllegalArgumentException("member metadata of " + buffer.remaining()
          + " bytes is over the limit of " + MAX_BYTES);
    }
    byte[] bytes = new byte[buffer.remaining()];
    buffer.duplicate().get(bytes);
    JsonNode root;
    try {
      root = mapper.readTree(bytes);
    } catch (IOException e) {
      throw new IllegalArgumentException("member metadata is not JSON: " + e.getMessage());
    }
    if (root == null || !root.isObject()) {
      throw new IllegalArgumentException("member metadata must be a JSON object");
    }
    long format = JsonSupport.integer(root, "v", 1, Integer.MAX_VALUE);
    if (format != FORMAT) {
      throw new IllegalArgumentException("member metadata format " + format + " is not supported");
    }
    String nodeId = NodeIds.validate(JsonSupport.text(root, "node", NodeIds.MAX_LENGTH, true));
    String data = JsonSupport.text(root, "data", 300, true);
    KvClusterConfig.requireAddress("data address", data);
    int proto = (int) JsonSupport.integer(root, "proto", 1, 65535);
    String cluster = JsonSupport.text(root, "cluster", 64, true);
    return new NodeMetadata(nodeId, data, proto, cluster);
  }
}
