package io.kvstore.core.testing;

import java.util.Map;

/**
 * Counters of an {@link InMemoryNetwork} since it was created. Every message {@code sent} ends up
 * lost, dropped or delivered (possibly twice, when duplicated), or is still {@code inFlight}.
 *
 * @param sent messages handed to the network (a duplicated message counts once)
 * @param duplicated messages that got a second copy
 * @param lost copies dropped by the loss fault
 * @param droppedOverflow copies dropped because their link already held the maximum in flight
 * @param droppedPartition copies dropped at delivery because a partition or block separated the nodes
 * @param droppedNoNode copies dropped at delivery because the target had left the network
 * @param delivered copies handed to their target
 * @param inFlight copies queued now
 * @param sentByKind {@code sent} per kind
 * @param deliveredByKind {@code delivered} per kind
 */
public record NetworkStats(long sent, long duplicated, long lost, long droppedOverflow,
    long droppedPartition, long droppedNoNode, long delivered, long inFlight,
    Map<MessageKind, Long> sentByKind, Map<MessageKind, Long> deliveredByKind) {

  /**
   * Copies the maps.
   *
   * @param sent messages handed to the network
   * @param duplicated messages that got a second copy
   * @param lost copies dropped by the loss fault
   * @param droppedOverflow copies dropped by the per-link bound
   * @param droppedPartition copies dropped by a partition or block
   * @param droppedNoNode copies dropped because the target left
   * @param delivered copies delivered
   * @param inFlight copies queued now
   * @param sentByKind sent per kind
   * @param deliveredByKind delivered per kind
   */
  public NetworkStats {
    sentByKind = Map.copyOf(sentByKind);
    deliveredByKind = Map.copyOf(deliveredByKind);
  }

  /**
   * Messages of a kind handed to the network.
   *
   * @param kind the kind
   * @return the count
   */
  public long sent(MessageKind kind) {
    return sentByKind.getOrDefault(kind, 0L);
  }

  /**
   * Copies of a kind delivered.
   *
   * @param kind the kind
   * @return the count
   */
  public long delivered(MessageKind kind) {
    return deliveredByKind.getOrDefault(kind, 0L);
  }
}
