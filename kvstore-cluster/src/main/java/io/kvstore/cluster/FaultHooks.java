package io.kvstore.cluster;

import io.scalecube.cluster.transport.api.Transport;
import java.util.function.UnaryOperator;

/**
 * Test-only fault injection into both planes; production nodes use {@link #NONE}. Not reachable
 * through the public API: tests in this package set it through the package-private
 * {@code KvClusterBuilder.faultHooks}.
 *
 * @param membershipTransport wraps the ScaleCube transport, for example to drop messages
 * @param dataPlane decides whether data-plane traffic may flow between two node ids
 */
record FaultHooks(UnaryOperator<Transport> membershipTransport, DataPlaneFilter dataPlane) {
  static final FaultHooks NONE = new FaultHooks(UnaryOperator.identity(), (from, to) -> true);

  /** Whether data-plane frames may travel from one node to another right now. */
  @FunctionalInterface
  interface DataPlaneFilter {
    /**
     * @param fromNodeId the sender
     * @param toNodeId the receiver
     * @return false to behave as if the network between them were cut
     */
    boolean allows(String fromNodeId, String toNodeId);
  }
}
