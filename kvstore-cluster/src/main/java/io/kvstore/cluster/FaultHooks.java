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

    /**
     * What happens to one fan-out frame (a MUTATIONS frame that is not an anti-entropy push, or the
     * ACK answering one) on the link from one node to another: one delay per delivered copy.
     *
     * @param fromNodeId the sender
     * @param toNodeId the receiver
     * @return delays in milliseconds, one per copy delivered: empty loses the frame, two or more
     *     duplicate it, {@code {0}} (the default) delivers it once, now
     */
    default long[] deliveries(String fromNodeId, String toNodeId) {
      return ONCE_NOW;
    }
  }

  /** One copy, no delay. Never modified. */
  private static final long[] ONCE_NOW = {0};
}
