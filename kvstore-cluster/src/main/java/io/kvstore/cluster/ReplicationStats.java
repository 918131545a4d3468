package io.kvstore.cluster;

/**
 * A snapshot of one node's replication counters since it started. Counters only grow; rates are the
 * difference between two snapshots.
 *
 * @param framesSent data-plane frames written to peers
 * @param framesReceived data-plane frames read from peers
 * @param bytesSent data-plane bytes written, length fields included
 * @param bytesReceived data-plane bytes read, length fields included
 * @param mutationsSent mutations written to peers by the write fan-out
 * @param mutationsAcked fan-out mutations a peer acknowledged holding
 * @param mutationsRefused fan-out mutations a peer acknowledged but refused (invalid, or its clock
 *     drift check failed); anti-entropy will not fix these either
 * @param mutationsDropped fan-out mutations not delivered because the peer's in-flight limit was
 *     reached or it left; anti-entropy repairs them
 * @param mutationsCoalesced fan-out mutations superseded, before they were sent, by a mutation of the
 *     same key at a higher version queued for the same peer (LWW: the peer needs only the newest);
 *     counted once per peer when superseded, and not counted as sent, acked, refused or dropped
 * @param mutationsCoalescedAcked of those, the ones whose superseding mutation the peer then
 *     acknowledged holding: delivered live, since the peer holds the key at their version or newer
 *     ({@code mutationsAcked + mutationsCoalescedAcked} is the live-delivered fan-out)
 * @param antiEntropyRounds anti-entropy rounds this node started and completed
 * @param antiEntropyRoundsFailed anti-entropy rounds this node started that timed out or broke off
 * @param antiEntropyRoundsDeferred periodic anti-entropy ticks at which this node started no round
 *     because fan-out with every peer it could pick was behind (such a round would find mostly
 *     writes still on their way; a peer is passed over at most {@code 5 x antiEntropyInterval}
 *     after the last round with it), plus rounds that stopped early when fan-out became behind
 *     (also counted in {@code antiEntropyRounds})
 * @param antiEntropyKeysPushed keys this node sent to peers in its anti-entropy rounds
 * @param antiEntropyKeysPulled keys this node fetched from peers in its anti-entropy rounds
 * @param antiEntropyKeysHandedOff in partitioned mode, of the keys pushed, those of partitions this
 *     node does not own (it owned them under an older placement) that their owner took: the handoff
 *     to the current owners (also counted in {@code antiEntropyKeysPushed}); the keys stay on this
 *     node for now
 * @param keysEvicted in partitioned mode, keys dropped from this node (not deleted) because it no
 *     longer owns their partition and every owner had pulled it, a grace period after the handoff
 * @param malformedFrames frames that broke the wire format or the protocol (the connection was closed)
 * @param handshakeFailures data-plane handshakes refused or failed, in either direction
 * @param membershipMessagesRefused messages on the membership port that were not exactly one of
 *     ScaleCube's protocol messages (garbage, Java serialization, wrong shapes, or failing
 *     authentication); dropped unread
 * @param authenticationFailures attempts that failed the cluster-secret check on either plane: membership
 *     messages without a valid tag (also counted as refused), data-plane handshakes without a valid
 *     proof (also counted as handshake failures), data-plane frames with a bad tag or sent under a key
 *     that is no longer in the keyring
 * @param tlsFailures with {@link ClusterTls}, on either plane and in either direction: TLS handshakes
 *     that failed (no certificate, one not signed by the cluster CA or expired, a peer not speaking
 *     TLS at all, a timeout, a connection closed mid-handshake) and TLS connections broken by a TLS error afterwards (an alert, a record
 *     that does not decrypt); each closed its connection
 * @param inboundConnectionsRefused inbound connections on either cluster port closed on arrival
 *     because {@code maxInboundConnections} or {@code maxUnauthenticatedConnectionsPerAddress} was
 *     reached
 * @param membershipConnectionsTimedOut inbound membership connections closed because no valid
 *     message arrived within {@code handshakeTimeout} of connecting or within
 *     {@code membershipIdleTimeout} of the last one (data-plane handshake timeouts count as
 *     {@code handshakeFailures})
 * @param connectedPeers peers this node currently has a working outgoing connection to
 */
public record ReplicationStats(
    long framesSent,
    long framesReceived,
    long bytesSent,
    long bytesReceived,
    long mutationsSent,
    long mutationsAcked,
    long mutationsRefused,
    long mutationsDropped,
    long mutationsCoalesced,
    long mutationsCoalescedAcked,
    long antiEntropyRounds,
    long antiEntropyRoundsFailed,
    long antiEntropyRoundsDeferred,
    long antiEntropyKeysPushed,
    long antiEntropyKeysPulled,
    long antiEntropyKeysHandedOff,
    long keysEvicted,
    long malformedFrames,
    long handshakeFailures,
    long membershipMessagesRefused,
    long authenticationFailures,
    long tlsFailures,
    long inboundConnectionsRefused,
    long membershipConnectionsTimedOut,
    int connectedPeers) {}
