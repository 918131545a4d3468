package io.kvstore.cluster;

import java.util.concurrent.atomic.LongAdder;
import java.util.function.IntSupplier;

/** The live counters behind {@link ReplicationStats}; cheap to bump from any thread. */
final class Stats {
  final LongAdder framesSent = new LongAdder();
  final LongAdder framesReceived = new LongAdder();
  final LongAdder bytesSent = new LongAdder();
  final LongAdder bytesReceived = new LongAdder();
  final LongAdder mutationsSent = new LongAdder();
  final LongAdder mutationsAcked = new LongAdder();
  final LongAdder mutationsRefused = new LongAdder();
  final LongAdder mutationsDropped = new LongAdder();
  final LongAdder mutationsCoalesced = new LongAdder();
  final LongAdder mutationsCoalescedAcked = new LongAdder();
  final LongAdder aeRounds = new LongAdder();
  final LongAdder aeRoundsFailed = new LongAdder();
  final LongAdder aeRoundsDeferred = new LongAdder();
  final LongAdder aeKeysPushed = new LongAdder();
  final LongAdder aeKeysPulled = new LongAdder();
  final LongAdder aeKeysHandedOff = new LongAdder();
  final LongAdder keysEvicted = new LongAdder();
  final LongAdder malformedFrames = new LongAdder();
  final LongAdder handshakeFailures = new LongAdder();
  final LongAdder membershipMessagesRefused = new LongAdder();
  final LongAdder authenticationFailures = new LongAdder();
  final LongAdder tlsFailures = new LongAdder();
  final LongAdder inboundConnectionsRefused = new LongAdder();
  final LongAdder membershipConnectionsTimedOut = new LongAdder();
  private final IntSupplier connectedPeers;

  Stats(IntSupplier connectedPeers) {
    this.connectedPeers = connectedPeers;
  }

  void frameSent(int frameBytes) {
    framesSent.increment();
    bytesSent.add(frameBytes + Frames.LENGTH_FIELD_BYTES);
  }

  void frameReceived(int frameBytes) {
    framesReceived.increment();
    bytesReceived.add(frameBytes + Frames.LENGTH_FIELD_BYTES);
  }

  ReplicationStats snapshot() {
    return new ReplicationStats(framesSent.sum(), framesReceived.sum(), bytesSent.sum(),
        bytesReceived.sum(), mutationsSent.sum(), mutationsAcked.sum(), mutationsRefused.sum(),
        mutationsDropped.sum(), mutationsCoalesced.sum(), mutationsCoalescedAcked.sum(),
        aeRounds.sum(), aeRoundsFailed.sum(), aeRoundsDeferred.sum(), aeKeysPushed.sum(),
        aeKeysPulled.sum(), aeKeysHandedOff.sum(), keysEvicted.sum(), malformedFrames.sum(), handshakeFailures.sum(),
        membershipMessagesRefused.sum(), authenticationFailures.sum(), tlsFailures.sum(),
        inboundConnectionsRefused.sum(), membershipConnectionsTimedOut.sum(),
        connectedPeers.getAsInt());
  }
}
