package io.kvstore.cluster;

import java.io.Serializable;

/**
 * What a node publishes about itself through ScaleCube: read by every member when it joins.
 *
 * <p>{@link Serializable} only because ScaleCube insists on it when no codec is registered through
 * {@code ServiceLoader}; it always travels through {@link NodeMetadataCodec}, never Java
 * serialization.
 *
 * @param nodeId the kvstore node id
 * @param dataAddress {@code host:port} of the data plane
 * @param protocolVersion the data-plane protocol version the node speaks
 * @param clusterName the cluster the node belongs to
 */
record NodeMetadata(String nodeId, String dataAddress, int protocolVersion, String clusterName)
    implements Serializable {
  private static final long serialVersionUID = 1L;
}
