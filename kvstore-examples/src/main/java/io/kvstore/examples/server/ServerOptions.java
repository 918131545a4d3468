package io.kvstore.examples.server;

import java.util.List;
import java.util.Set;

/**
 * The standalone server's settings after parsing and defaulting: every flag resolved.
 *
 * @param nodeId the node id
 * @param host bind and advertise host
 * @param httpPort HTTP port (0 = any free port)
 * @param clusterPort membership (SWIM) port (0 = any free port)
 * @param dataPort data-plane port (0 = any free port)
 * @param join membership addresses of existing nodes, {@code host:port}
 * @param clusterName the cluster's name; nodes only join a cluster of the same name
 * @param authTokens bearer tokens the HTTP API accepts; empty for an open API
 * @param maxValueBytes the largest value accepted, in bytes
 */
public record ServerOptions(
    String nodeId,
    String host,
    int httpPort,
    int clusterPort,
    int dataPort,
    List<String> join,
    String clusterName,
    Set<String> authTokens,
    int maxValueBytes) {

  /**
   * Copies the collections.
   *
   * @param nodeId the node id
   * @param host bind and advertise host
   * @param httpPort HTTP port
   * @param clusterPort membership port
   * @param dataPort data-plane port
   * @param join seeds
   * @param clusterName cluster name
   * @param authTokens bearer tokens
   * @param maxValueBytes largest value
   */
  public ServerOptions {
    join = List.copyOf(join);
    authTokens = Set.copyOf(authTokens);
  }

  @Override
  public String toString() {
    // Never print the tokens.
    return "ServerOptions{nodeId=" + nodeId + ", host=" + host + ", httpPort=" + httpPort
        + ", clusterPort=" + clusterPort + ", dataPort=" + dataPort + ", join=" + join
        + ", clusterName=" + clusterName + ", authTokens=" + authTokens.size() + " configured"
        + ", maxValueBytes=" + maxValueBytes + "}";
  }
}
