package io.kvstore.cluster;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

/**
 * One established, authenticated connection to a peer, as the {@link ReplicationEngine} sees it: a
 * pipe of encoded {@link Frames}. The Netty data plane implements it over a TCP channel whose
 * handshake is done; the deterministic simulation over an in-memory link with seeded faults. Frames
 * travel in the order sent (the transport may lose the connection, but not reorder or alter frames on
 * it; a simulated network that does so tests the engine beyond that promise).
 *
 * <p>Inbound frames, and the end of the connection, reach the engine through the owner of this
 * channel ({@link PeerLink#onFrame}, {@link ReplicationEngine.Responder#onFrame}).
 */
interface PeerChannel {
  /** The allocator for frames sent on this channel. */
  ByteBufAllocator alloc();

  /**
   * Sends one frame, taking ownership of the buffer. Any thread; frames sent from one thread keep
   * their order.
   *
   * @param frame an encoded frame (without the length prefix)
   * @param flush whether to flush now, rather than at the next {@link #flush()}
   * @return false if the connection is down or cut (the buffer is then released)
   */
  boolean send(ByteBuf frame, boolean flush);

  /** Flushes frames sent without flushing. */
  void flush();

  /** Whether the transport's outgoing buffer has room; when it has again, the owner is told. */
  boolean isWritable();

  /** Runs a task on the connection's own thread (one task at a time, in order). */
  void execute(Runnable task);

  /** Closes the connection; the owner is told it ended. Idempotent. */
  void close();

  /** The remote end, for log lines. */
  String remote();
}
