package io.kvstore.cluster;

import io.kvstore.core.spi.Mutation;
import io.netty.buffer.ByteBuf;
import io.netty.util.ReferenceCountUtil;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The engine's side of this node's outgoing connection to one peer: the write fan-out queue,
 * batching, acks, and the channel the anti-entropy rounds this node starts with the peer travel on.
 * The transport connects it ({@link #connected}), feeds it the frames the peer answers with
 * ({@link #onFrame}), tells it when the connection ends ({@link #disconnected}) and reconnects while
 * it is not {@link #isClosed() closed}.
 *
 * <p><b>Queue and memory:</b> {@link #enqueue} queues at most one not-yet-sent mutation per key
 * (a map by key, plus a lock-free queue of keys in the order they were first queued) and counts the
 * mutation's encoded size against {@code maxInFlightBytesPerPeer} until the peer acknowledges it;
 * past the limit a mutation of a key not yet queued is dropped for this peer (counted, and left to
 * anti-entropy), so a slow or unreachable peer costs bounded memory. Enqueueing never blocks.
 *
 * <p><b>Coalescing:</b> a mutation of a key that is already queued (not yet sent) is merged with the
 * queued one, also at the limit: the higher version is kept (LWW: a peer holding it holds "at least"
 * the other), the other is counted in {@code mutationsCoalesced}, and the write trackers of both ride
 * on the one kept. A tracker counts "the peer holds the key at the write's version or newer"
 * ({@link WriteTracker#ack}), so the ack of the kept, newer mutation acknowledges every write it
 * superseded; if the peer refuses the kept one, all of them are nacked (a false failure at worst,
 * never a false success). When the peer acknowledges the kept one, the mutations it superseded are
 * counted in {@code mutationsCoalescedAcked}.
 *
 * <p><b>Batching:</b> the first enqueue after a flush schedules one flush task on the channel's
 * thread; the task drains the queue into frames of up to {@code maxBatchBytes} while the channel is
 * writable, so mutations written close together share a frame and a syscall. Unacknowledged batches
 * wait in {@code inflight} by batch id.
 *
 * <p><b>Reconnection:</b> a lost connection puts its unacknowledged mutations back in the queue
 * (applying twice is harmless). The link stops for good only when the peer leaves the membership
 * ({@link #close}), failing what is left.
 */
final class PeerLink {
  private static final Logger log = LoggerFactory.getLogger(PeerLink.class);

  /**
   * One mutation on its way to the peer, the writes waiting for its ack (of it or of a mutation it
   * superseded), and how many queued mutations of its key it superseded.
   */
  record Outgoing(Mutation mutation, int size, List<WriteTracker> trackers, int superseded) {
    Outgoing(Mutation mutation, int size, WriteTracker tracker) {
      this(mutation, size, tracker == null ? List.of() : List.of(tracker), 0);
    }

    /** The higher version of the two (this one on a tie), carrying both's trackers. */
    Outgoing merge(Outgoing other) {
      Outgoing kept = mutation.version().compareTo(other.mutation.version()) >= 0 ? this : other;
      List<WriteTracker> all;
      if (other.trackers.isEmpty()) {
        all = trackers;
      } else if (trackers.isEmpty()) {
        all = other.trackers;
      } else {
        all = new ArrayList<>(trackers.size() + other.trackers.size());
        all.addAll(trackers);
        all.addAll(other.trackers);
      }
      return new Outgoing(kept.mutation, kept.size, all, superseded + other.superseded + 1);
    }

    void ack(String nodeId) {
      for (WriteTracker t : trackers) {
        t.ack(nodeId);
      }
    }

    void nack(String nodeId, String problem) {
      for (WriteTracker t : trackers) {
        t.nack(nodeId, problem);
      }
    }
  }

  /** What {@link #enqueue} did with a mutation. */
  private enum Queued { ADDED, COALESCED, OVER_LIMIT }

  /** A sent frame awaiting its ack: fan-out mutations, or an anti-entropy push. */
  private record Batch(List<Outgoing> items, long bytes, CompletableFuture<Frames.Ack> aeAck) {}

  final String memberId;
  final String nodeId;
  private final ReplicationEngine engine;
  private final Stats stats;
  private final String self;
  private final RateLimitedLog warnings = new RateLimitedLog(log);

  /** Keys with a queued mutation, in the order first queued; each is in {@link #queued} too. */
  private final ConcurrentLinkedQueue<String> queue = new ConcurrentLinkedQueue<>();
  /** The one not-yet-sent mutation per key. */
  private final ConcurrentHashMap<String, Outgoing> queued = new ConcurrentHashMap<>();
  private final AtomicLong pendingBytes = new AtomicLong();
  private final AtomicBoolean flushScheduled = new AtomicBoolean();
  private final Map<Long, Batch> inflight = new ConcurrentHashMap<>();
  private final AtomicLong batchIds = new AtomicLong();
  private final long maxPendingBytes;
  private final int maxBatchBytes;

  private volatile PeerChannel channel;
  private volatile boolean closed;
  private volatile AntiEntropyRound round;

  PeerLink(ReplicationEngine engine, String memberId, String nodeId) {
    this.engine = engine;
    this.memberId = memberId;
    this.nodeId = nodeId;
    this.stats = engine.ctx.stats();
    this.self = engine.nodeId();
    this.maxPendingBytes = engine.ctx.settings().maxInFlightBytesPerPeer();
    this.maxBatchBytes = engine.ctx.settings().maxBatchBytes();
  }

  boolean isReady() {
    return channel != null;
  }

  boolean isClosed() {
    return closed;
  }

  // ---- the connection --------------------------------------------------------------------------

  /** The transport established (and authenticated) a connection to the peer. */
  void connected(PeerChannel ch) {
    if (closed) {
      ch.close();
      return;
    }
    channel = ch;
    log.debug("node {}: data-plane link to {} at {} is up", self, nodeId, ch.remote());
    scheduleFlush();
    engine.onLinkReady(this);
  }

  /** The connection ended; the transport reconnects unless the link is closed. */
  void disconnected(PeerChannel ch) {
    if (channel != ch) {
      return;
    }
    channel = null;
    // Unacknowledged fan-out goes back in the queue; anti-entropy pushes fail with their round.
    endInflight("connection to " + nodeId + " lost", this::requeue);
    if (closed) {
      failQueued("left the cluster");
    }
  }

  /** The channel's outgoing buffer has room again. */
  void writable() {
    scheduleFlush();
  }

  /** Whether an ACK answers a fan-out batch (not an anti-entropy push), for fault injection. */
  boolean isFanOutAck(Frames.Ack ack) {
    Batch b = inflight.get(ack.batchId());
    return b != null && b.aeAck == null;
  }

  /** A frame the peer sent on this connection (on the channel's thread). */
  void onFrame(PeerChannel ch, Frames.Frame frame) {
    if (frame instanceof Frames.Ack ack) {
      onAck(ack);
    } else if (frame instanceof Frames.AeDiff || frame instanceof Frames.AeKeys
        || frame instanceof Frames.AePullResponse || frame instanceof Frames.AeAbort) {
      AntiEntropyRound r = round;
      if (r != null) {
        r.onFrame(frame);
      }
    } else {
      engine.protocolError(ch, "unexpected " + frame.getClass().getSimpleName() + " from "
          + nodeId);
    }
  }

  // ---- fan-out ---------------------------------------------------------------------------------

  /** Queues a mutation for the peer; never blocks. */
  void enqueue(Outgoing o) {
    if (closed) {
      stats.mutationsDropped.increment();
      o.nack(nodeId, "left the cluster");
      return;
    }
    Queued[] what = new Queued[1];
    String key = o.mutation.key();
    queued.compute(key, (k, cur) -> {
      if (cur == null) {
        if (pendingBytes.addAndGet(o.size) > maxPendingBytes) {
          pendingBytes.addAndGet(-o.size);
          what[0] = Queued.OVER_LIMIT;
          return null;
        }
        what[0] = Queued.ADDED;
        return o;
      }
      Outgoing merged = cur.merge(o);
      long delta = merged.size - cur.size;
      if (pendingBytes.addAndGet(delta) > maxPendingBytes && delta > 0) {
        pendingBytes.addAndGet(-delta);
        what[0] = Queued.OVER_LIMIT;
        return cur;
      }
      what[0] = Queued.COALESCED;
      return merged;
    });
    switch (what[0]) {
      case ADDED -> {
        queue.add(key);
        scheduleFlush();
      }
      case COALESCED -> stats.mutationsCoalesced.increment();
      case OVER_LIMIT -> {
        stats.mutationsDropped.increment();
        warnings.warn("node {}: dropped a mutation for {}: {} bytes are already waiting for it "
            + "(maxInFlightBytesPerPeer); anti-entropy will repair it", self, nodeId,
            pendingBytes.get());
        o.nack(nodeId, "dropped it: its in-flight limit was reached");
        return;
      }
    }
    if (closed) {
      failQueued("left the cluster");
    }
  }

  /**
   * Queues again a mutation whose bytes are already counted (sent but unacknowledged when the
   * connection ended, or taken from the queue but not sent); coalesces like {@link #enqueue}.
   */
  private void requeue(Outgoing o) {
    boolean[] added = new boolean[1];
    String key = o.mutation.key();
    queued.compute(key, (k, cur) -> {
      if (cur == null) {
        added[0] = true;
        return o;
      }
      Outgoing merged = cur.merge(o);
      pendingBytes.addAndGet(merged.size - cur.size - o.size);
      return merged;
    });
    if (added[0]) {
      queue.add(key);
    } else {
      stats.mutationsCoalesced.increment();
    }
  }

  /** Takes the queued mutation of the next queued key, or null when none is queued. */
  private Outgoing poll() {
    String key;
    while ((key = queue.poll()) != null) {
      Outgoing o = queued.remove(key);
      if (o != null) {
        return o;
      }
    }
    return null;
  }

  private void scheduleFlush() {
    PeerChannel ch = channel;
    if (ch != null && flushScheduled.compareAndSet(false, true)) {
      ch.execute(() -> flush(ch));
    }
  }

  /** Runs on the channel's thread. */
  private void flush(PeerChannel ch) {
    flushScheduled.set(false);
    if (ch != channel) {
      return;
    }
    boolean wrote = false;
    Outgoing next = null; // taken from the queue but did not fit the previous batch
    while (ch.isWritable()) {
      List<Outgoing> items = new ArrayList<>();
      List<Mutation> batch = new ArrayList<>();
      int bytes = 0;
      while (bytes < maxBatchBytes) {
        Outgoing o = next != null ? next : poll();
        next = null;
        if (o == null) {
          break;
        }
        if (!items.isEmpty() && bytes + o.size > maxBatchBytes) {
          next = o;
          break;
        }
        items.add(o);
        batch.add(o.mutation);
        bytes += o.size;
      }
      if (items.isEmpty()) {
        break;
      }
      long id = batchIds.incrementAndGet();
      inflight.put(id, new Batch(items, bytes, null));
      if (!ch.send(Frames.mutations(ch.alloc(), id, 0, batch, bytes), false)) {
        if (next != null) {
          requeue(next); // the batch itself goes back with the connection's end (disconnected)
        }
        return;
      }
      stats.mutationsSent.add(items.size());
      if (engine.ctx.bug() == ReplicationEngine.Bug.ACK_ON_SEND) {
        for (Outgoing sent : items) {
          sent.ack(nodeId);
        }
      }
      wrote = true;
    }
    if (next != null) {
      requeue(next);
    }
    if (wrote) {
      ch.flush();
    }
  }

  private void onAck(Frames.Ack ack) {
    Batch b = inflight.remove(ack.batchId());
    if (b == null) {
      return;
    }
    if (b.aeAck != null) {
      b.aeAck.complete(ack);
      return;
    }
    for (int i = 0; i < b.items.size(); i++) {
      Outgoing o = b.items.get(i);
      pendingBytes.addAndGet(-o.size);
      if (i < ack.count() && ack.held().get(i)) {
        stats.mutationsAcked.increment();
        stats.mutationsCoalescedAcked.add(o.superseded);
        o.ack(nodeId);
      } else {
        stats.mutationsRefused.increment();
        o.nack(nodeId, "refused it (invalid for its limits, or its clock drift check failed)");
      }
    }
  }

  // ---- anti-entropy ----------------------------------------------------------------------------

  void setRound(AntiEntropyRound r) {
    round = r;
  }

  /** Sends an anti-entropy frame; false when the link is down (the buffer is released). */
  boolean sendAe(ByteBuf frame) {
    PeerChannel ch = channel;
    if (ch == null) {
      ReferenceCountUtil.release(frame);
      return false;
    }
    return ch.send(frame, true);
  }

  /** Pushes mutations for anti-entropy; completes with the peer's ack. */
  CompletableFuture<Frames.Ack> pushAe(List<Mutation> mutations, int bytes) {
    PeerChannel ch = channel;
    CompletableFuture<Frames.Ack> acked = new CompletableFuture<>();
    if (ch == null) {
      acked.completeExceptionally(new IllegalStateException("no connection to " + nodeId));
      return acked;
    }
    long id = batchIds.incrementAndGet();
    inflight.put(id, new Batch(List.of(), bytes, acked));
    if (!ch.send(Frames.mutations(ch.alloc(), id, Frames.FLAG_ANTI_ENTROPY, mutations, bytes),
        true)) {
      inflight.remove(id);
      acked.completeExceptionally(new IllegalStateException("connection to " + nodeId + " lost"));
    }
    return acked;
  }

  // ---- closing ---------------------------------------------------------------------------------

  /** Stops for good: the peer left, or this node is closing. Fails whatever still waits. */
  void close() {
    closed = true;
    PeerChannel ch = channel;
    if (ch != null) {
      ch.close();
    }
    endInflight("peer " + nodeId + " left", o -> drop(o, "left the cluster"));
    failQueued("left the cluster");
  }

  /**
   * Ends every sent batch still waiting for its ack, and the round: anti-entropy pushes fail, each
   * fan-out mutation goes to {@code fanOut}.
   */
  private void endInflight(String why, Consumer<Outgoing> fanOut) {
    for (Iterator<Map.Entry<Long, Batch>> it = inflight.entrySet().iterator(); it.hasNext(); ) {
      Batch b = it.next().getValue();
      it.remove();
      if (b.aeAck != null) {
        b.aeAck.completeExceptionally(new IllegalStateException(why));
      } else {
        b.items.forEach(fanOut);
      }
    }
    AntiEntropyRound r = round;
    if (r != null) {
      r.fail(why);
    }
  }

  private void failQueued(String why) {
    Outgoing o;
    while ((o = poll()) != null) {
      drop(o, why);
    }
  }

  private void drop(Outgoing o, String why) {
    pendingBytes.addAndGet(-o.size);
    stats.mutationsDropped.increment();
    o.nack(nodeId, why);
  }

  @Override
  public String toString() {
    PeerChannel ch = channel;
    return "PeerLink{" + nodeId + (ch != null ? ", ready via " + ch.remote() : "")
        + (closed ? ", closed" : "") + "}";
  }
}
