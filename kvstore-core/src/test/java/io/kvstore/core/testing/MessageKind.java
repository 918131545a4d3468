package io.kvstore.core.testing;

/**
 * The kinds of message the {@link InMemoryNetwork} carries; faults can target one kind (for example
 * losing every {@link #MUTATION} to show that anti-entropy alone converges).
 */
public enum MessageKind {
  /** Fan-out of one local write to one peer; carries a write id when the writer waits for acks. */
  MUTATION,
  /** A peer holds a fanned-out write (its {@code ApplyResult.isHeld()}); counts toward QUORUM/ALL. */
  ACK,
  /** Anti-entropy, step 1: the initiator's digest. */
  DIGEST,
  /** Anti-entropy, step 2: the responder's keys and versions of some differing buckets (one chunk). */
  KEY_VERSIONS,
  /** Anti-entropy, step 3: the initiator asks for keys where the responder is newer (one chunk). */
  PULL,
  /** Anti-entropy, step 3/4: mutations pushed or returned for a pull (one chunk); not acknowledged. */
  AE_MUTATIONS
}
