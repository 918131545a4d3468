package io.kvstore.cluster;

import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.ReplicaStore;
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
import java.util.concurrent.atomic.AtomicIntegerFieldUpdater;
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
 * <p><b>Queue and memory:</b> the local store is the fan-out buffer. A mutation reaches
 * {@link #enqueue} only after it is applied locally, and the store keeps the newest version of every
 * key, so the link queues <i>keys</i>, not mutations: a map from each queued key to its
 * {@link Pending} entry (the writes waiting for it), plus a lock-free queue of keys in the order they
 * were first queued. The flush takes a key and sends the store's current mutation of it. A key's
 * estimated encoded size counts against {@code maxInFlightBytesPerPeer} from its first enqueue until
 * the peer acknowledges it (corrected to the real size when it is sent); past the limit a write of a
 * key not yet queued is dropped for this peer (counted, and left to anti-entropy), so a slow or
 * unreachable peer costs bounded memory. Enqueueing never blocks.
 *
 * <p><b>Coalescing:</b> a write of a key that is already queued (not yet sent) adds nothing to the
 * queue, also at the limit: what is sent is read from the store later, so it is that write's version
 * or a newer one (LWW: a peer holding it holds "at least" the write). It is counted in
 * {@code mutationsCoalesced}; a QUORUM/ALL write's tracker joins the queued entry's, and the ack of the
 * one mutation sent acknowledges them all ({@link WriteTracker#ack} means "the peer holds the key at
 * the write's version or newer"); if the peer refuses it, all of them are nacked (a false failure at
 * worst, never a false success). When the peer acknowledges it, the writes it covered are counted in
 * {@code mutationsCoalescedAcked}. A write at ONE that finds its key queued costs one map lookup: no
 * lock, no allocation, nothing retained, which keeps a burst's writers as fast as when the old queue
 * dropped most of their mutations (docs/BENCHMARKS.md §3a′).
 *
 * <p><b>Why reading the store is exact:</b> a writer applies its mutation to the store, then finds the
 * key queued; the flush removes the key from the map, then reads the store. Both maps are concurrent,
 * so if the writer saw the key still queued (before the removal), the flush's later read sees the
 * writer's apply or something newer; if it did not, the writer queues the key again. A key whose
 * entry the store no longer holds (a tombstone purged past its grace) is not sent; its waiting writes
 * are nacked.
 *
 * <p><b>Batching:</b> the first enqueue after a flush schedules one flush task on the channel's
 * thread; the task drains the queue into frames of up to {@code maxBatchBytes} while the channel is
 * writable, so mutations written close together share a frame and a syscall. Unacknowledged batches
 * wait in {@code inflight} by batch id.
 *
 * <p><b>Send window:</b> the flush also stops while {@value #WINDOW_BATCHES} x {@code maxBatchBytes}
 * of fan-out are sent and not yet acknowledged, and goes on when an ack frees room. A key stays in
 * the queue (where later writes coalesce into it) until the peer can take it, instead of waiting in
 * socket buffers as a version that is superseded before it arrives: under a burst that outruns the
 * peer, the link without a window had 7-16 MB per peer in buffers at the last write, which the peer
 * still had to apply after it, next to the queue itself. The window is large (at 8 x the peers
 * drained a burst at half the rate, waiting for acks: docs/BENCHMARKS.md §3a⁗). The peer
 * acknowledges in order, so the ack of a batch also stops counting the older batches still
 * unacknowledged (their frame or ack was lost: only the simulated network loses frames without
 * closing the connection); if no ack comes at all, a batch unacknowledged for {@value #WINDOW_EXPIRY_MILLIS} ms stops counting, so a lost ack
 * cannot stop the link. Either way the batch still waits in {@code inflight} for its ack. While the
 * flush is stopped (not writable, or the window full) it stays "scheduled": enqueues schedule nothing
 * until {@link #writable}, an ack or the expiry resumes it.
 *
 * <p><b>Reconnection:</b> a lost connection puts its unacknowledged mutations back in the queue
 * (applying twice is harmless). The link stops for good only when the peer leaves the membership
 * ({@link #close}), failing what is left.
 */
final class PeerLink {
  private static final Logger log = LoggerFactory.getLogger(PeerLink.class);

  /**
   * A queued key: the bytes reserved for it, the QUORUM/ALL writes waiting for it, and how many writes
   * of the key found it queued (and are covered by what will be sent). {@code trackers} changes only
   * inside the key's {@code queued.compute} (the map's bin lock), and is read once the entry is
   * removed from the map, so no one adds to it after it is read.
   */
  static final class Pending {
    private static final AtomicIntegerFieldUpdater<Pending> SUPERSEDED =
        AtomicIntegerFieldUpdater.newUpdater(Pending.class, "superseded");
    final int size;
    private List<WriteTracker> trackers;
    private volatile int superseded;

    Pending(int size, List<WriteTracker> trackers, int superseded) {
      this.size = size;
      this.trackers = trackers;
      this.superseded = superseded;
    }

    int superseded() {
      return superseded;
    }

    private void addTrackers(List<WriteTracker> more) {
      if (more.isEmpty()) {
        return;
      }
      if (trackers.isEmpty()) {
        trackers = more;
        return;
      }
      List<WriteTracker> all = new ArrayList<>(trackers.size() + more.size());
      all.addAll(trackers);
      all.addAll(more);
      trackers = all;
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

    List<WriteTracker> trackers() {
      return trackers;
    }
  }

  /** A mutation taken from the queue for sending (or sent), and the entry of the writes it covers. */
  private record Sent(Mutation mutation, int size, Pending pending) {}

  /** Fan-out batches of up to {@code maxBatchBytes} that may be sent and unacknowledged at once. */
  static final int WINDOW_BATCHES = 32;
  /** After this long unacknowledged, a batch no longer counts against the send window. */
  static final long WINDOW_EXPIRY_MILLIS = 5_000;

  /** A sent frame awaiting its ack: fan-out mutations, or an anti-entropy push. */
  private static final class Batch {
    final List<Sent> items;
    final long bytes;
    final CompletableFuture<Frames.Ack> aeAck;
    /** The window it counts against while {@link #counted}; null for an anti-entropy push. */
    final Window window;
    final long id;
    final long sentNanos;
    /** Whether its bytes still count against {@link #window} (the channel's thread only). */
    boolean counted;

    Batch(List<Sent> items, long bytes, CompletableFuture<Frames.Ack> aeAck, Window window,
        long id, long sentNanos) {
      this.items = items;
      this.id = id;
      this.bytes = bytes;
      this.aeAck = aeAck;
      this.window = window;
      this.sentNanos = sentNanos;
    }
  }

  /**
   * The send window of one connection: its fan-out batches sent and not yet acknowledged (nor
   * expired), oldest first. Used on the connection's thread only.
   */
  private static final class Window {
    final java.util.ArrayDeque<Batch> batches = new java.util.ArrayDeque<>();
    long bytes;
    /** The flush stopped (not writable, or the window full) and waits to be resumed. */
    boolean parked;

    void add(Batch b) {
      b.counted = true;
      bytes += b.bytes;
      batches.add(b);
    }

    /**
     * The batch was acknowledged. The peer acknowledges in order, so batches sent before it and
     * still unacknowledged lost their frame or their ack (the simulated network): they stop counting.
     */
    void release(Batch b) {
      if (b.counted) {
        drop(b.id, Long.MIN_VALUE);
      }
    }

    /** Stops counting the batches sent before {@code sentBefore}. */
    void expire(long sentBefore) {
      drop(Long.MIN_VALUE, sentBefore);
    }

    /** Drops from the head the batches acknowledged, up to id {@code upTo} or sent before. */
    private void drop(long upTo, long sentBefore) {
      Batch head;
      while ((head = batches.peek()) != null
          && (!head.counted || head.id <= upTo || head.sentNanos < sentBefore)) {
        batches.poll();
        if (head.counted) {
          head.counted = false;
          bytes -= head.bytes;
        }
      }
    }
  }

  final String memberId;
  final String nodeId;
  private final ReplicationEngine engine;
  private final Stats stats;
  private final String self;
  private final RateLimitedLog warnings = new RateLimitedLog(log);

  /** Keys with a queued mutation, in the order first queued; each is in {@link #queued} too. */
  private final ConcurrentLinkedQueue<String> queue = new ConcurrentLinkedQueue<>();
  /** The queued (not yet sent) keys. */
  private final ConcurrentHashMap<String, Pending> queued = new ConcurrentHashMap<>();
  private final AtomicLong pendingBytes = new AtomicLong();
  /** A flush is scheduled, running, or parked (stopped until resumed); see the class comment. */
  private final AtomicBoolean flushScheduled = new AtomicBoolean();
  private final AtomicBoolean expiryTimer = new AtomicBoolean();
  private final Map<Long, Batch> inflight = new ConcurrentHashMap<>();
  private final AtomicLong batchIds = new AtomicLong();
  private final long maxPendingBytes;
  private final int maxBatchBytes;
  private final long windowBytes;
  private final ReplicaStore store;

  private volatile PeerChannel channel;
  /** The current connection's send window (set before {@link #channel}). */
  private volatile Window window = new Window();
  private volatile boolean closed;
  private volatile AntiEntropyRound round;
  /**
   * When (engine nanoTime) this link last sent a fan-out batch with more queued behind it
   * ({@link Frames#FLAG_BACKLOG}); 0: never. Read by the anti-entropy scheduler.
   */
  volatile long backlogSentNanos;
  /** When this node last started an anti-entropy round with the peer (control thread). */
  long roundStartedNanos;

  PeerLink(ReplicationEngine engine, String memberId, String nodeId) {
    this.engine = engine;
    this.memberId = memberId;
    this.nodeId = nodeId;
    this.stats = engine.ctx.stats();
    this.self = engine.nodeId();
    this.maxPendingBytes = engine.ctx.settings().maxInFlightBytesPerPeer();
    this.maxBatchBytes = engine.ctx.settings().maxBatchBytes();
    this.windowBytes = (long) WINDOW_BATCHES * maxBatchBytes;
    this.store = engine.ctx.store();
    long never = engine.ctx.nanoTime().getAsLong() - Long.MAX_VALUE / 4; // long ago, no overflow
    this.backlogSentNanos = never;
    this.roundStartedNanos = never;
  }

  /** Whether new frames may go to the peer: connected, and the link not closed. */
  boolean isReady() {
    return channel != null && !closed;
  }

  /** Whether a connection is up, even one a closed link keeps for its last answers. */
  boolean isConnected() {
    return channel != null;
  }

  boolean isClosed() {
    return closed;
  }

  /** Fan-out bytes queued or sent and not yet acknowledged. Any thread. */
  long unacknowledgedBytes() {
    return pendingBytes.get();
  }

  // ---- the connection --------------------------------------------------------------------------

  /** The transport established (and authenticated) a connection to the peer. */
  void connected(PeerChannel ch) {
    if (closed) {
      ch.close();
      return;
    }
    window = new Window();
    channel = ch;
    log.debug("node {}: data-plane link to {} at {} is up", self, nodeId, ch.remote());
    flushScheduled.set(false); // the old connection's flush may have parked
    scheduleFlush();
    engine.onLinkReady(this);
  }

  /** The connection ended; the transport reconnects unless the link is closed. */
  void disconnected(PeerChannel ch) {
    if (channel != ch) {
      return;
    }
    channel = null;
    engine.router.peerLost(nodeId);
    // Unacknowledged fan-out goes back in the queue; anti-entropy pushes fail with their round.
    endInflight("connection to " + nodeId + " lost", this::requeue);
    if (closed) {
      failQueued("left the cluster");
    }
  }

  /** The channel's outgoing buffer has room again (on the channel's thread). */
  void writable() {
    resume(channel);
  }

  /** Runs a parked flush again; on {@code ch}'s thread. */
  private void resume(PeerChannel ch) {
    Window w = window;
    if (ch != null && ch == channel && w.parked) {
      w.parked = false;
      flush(ch);
    }
  }

  /** Whether an ACK answers a fan-out batch (not an anti-entropy push), for fault injection. */
  boolean isFanOutAck(Frames.Ack ack) {
    Batch b = inflight.get(ack.batchId());
    return b != null && b.aeAck == null;
  }

  /** A frame the peer sent on this connection (on the channel's thread). */
  void onFrame(PeerChannel ch, Frames.Frame frame) {
    if (frame instanceof Frames.Ack ack) {
      onAck(ch, ack);
    } else if (frame instanceof Frames.ForwardResult r) {
      engine.router.onAnswer(nodeId, r.requestId(), r);
    } else if (frame instanceof Frames.ReadResult r) {
      engine.router.onAnswer(nodeId, r.requestId(), r);
    } else if (frame instanceof Frames.ScanResult r) {
      engine.router.onAnswer(nodeId, r.requestId(), r);
    } else if (frame instanceof Frames.Event e) {
      engine.router.onEvent(nodeId, e);
    } else if (frame instanceof Frames.AeDiff || frame instanceof Frames.AeKeys
        || frame instanceof Frames.AePullResponse || frame instanceof Frames.AeStream
        || frame instanceof Frames.AeAbort) {
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

  /**
   * Queues a mutation, already applied to the local store, for the peer; never blocks.
   *
   * @param mutation the applied mutation (only its key is kept: the store's newest version is sent)
   * @param size its encoded size ({@link Frames#mutationSize}), reserved against the limit
   * @param tracker the QUORUM/ALL write waiting for the peer's ack, or null
   */
  void enqueue(Mutation mutation, int size, WriteTracker tracker) {
    if (closed) {
      stats.mutationsDropped.increment();
      if (tracker != null) {
        tracker.nack(nodeId, "left the cluster");
      }
      return;
    }
    String key = mutation.key();
    boolean added = tracker == null ? enqueueUntracked(key, size)
        : enqueueTracked(key, size, tracker);
    if (added) {
      queue.add(key);
      scheduleFlush();
    }
    if (closed) {
      failQueued("left the cluster");
    }
  }

  /** A write at ONE: one lookup when its key is queued already. Returns whether it added the key. */
  private boolean enqueueUntracked(String key, int size) {
    while (true) {
      Pending cur = queued.get(key);
      if (cur != null) {
        Pending.SUPERSEDED.incrementAndGet(cur);
        stats.mutationsCoalesced.increment();
        return false;
      }
      if (!reserve(key, size, null)) {
        return false;
      }
      if (queued.putIfAbsent(key, new Pending(size, List.of(), 0)) == null) {
        return true;
      }
      pendingBytes.addAndGet(-size); // queued meanwhile by another writer: coalesce with it
    }
  }

  /** A QUORUM/ALL write: its tracker joins the key's entry under the map's lock. */
  private boolean enqueueTracked(String key, int size, WriteTracker tracker) {
    boolean[] added = new boolean[1];
    boolean[] over = new boolean[1];
    List<WriteTracker> mine = List.of(tracker);
    queued.compute(key, (k, cur) -> {
      if (cur != null) {
        cur.addTrackers(mine);
        Pending.SUPERSEDED.incrementAndGet(cur);
        return cur;
      }
      if (pendingBytes.addAndGet(size) > maxPendingBytes) {
        pendingBytes.addAndGet(-size);
        over[0] = true;
        return null;
      }
      added[0] = true;
      return new Pending(size, mine, 0);
    });
    if (over[0]) {
      overLimit(tracker);
    } else if (!added[0]) {
      stats.mutationsCoalesced.increment();
    }
    return added[0];
  }

  /** Reserves a new key's bytes; false (the write dropped for this peer) past the limit. */
  private boolean reserve(String key, int size, WriteTracker tracker) {
    if (pendingBytes.addAndGet(size) <= maxPendingBytes) {
      return true;
    }
    pendingBytes.addAndGet(-size);
    overLimit(tracker);
    return false;
  }

  private void overLimit(WriteTracker tracker) {
    stats.mutationsDropped.increment();
    warnings.warn("node {}: dropped a mutation for {}: {} bytes are already waiting for it "
        + "(maxInFlightBytesPerPeer); anti-entropy will repair it", self, nodeId,
        pendingBytes.get());
    if (tracker != null) {
      tracker.nack(nodeId, "dropped it: its in-flight limit was reached");
    }
  }

  /**
   * Queues again a key taken from the queue (sent but unacknowledged when the connection ended, or
   * taken but not sent); its bytes are already counted. Coalesces like {@link #enqueue}.
   */
  private void requeue(Sent s) {
    boolean[] added = new boolean[1];
    Pending p = s.pending;
    queued.compute(s.mutation.key(), (k, cur) -> {
      if (cur == null) {
        added[0] = true;
        return new Pending(s.size, p.trackers, p.superseded);
      }
      cur.addTrackers(p.trackers);
      Pending.SUPERSEDED.addAndGet(cur, p.superseded + 1);
      pendingBytes.addAndGet(-s.size);
      return cur;
    });
    if (added[0]) {
      queue.add(s.mutation.key());
    } else {
      stats.mutationsCoalesced.increment();
    }
  }

  /**
   * Takes the next queued key and reads what to send for it from the store; null when none is
   * queued.
   */
  private Sent take() {
    String key;
    while ((key = queue.poll()) != null) {
      Pending p = queued.remove(key);
      if (p == null) {
        continue;
      }
      if (!engine.mayFanOut(nodeId, key)) {
        pendingBytes.addAndGet(-p.size);
        stats.mutationsDropped.increment();
        // Writes waiting for this peer's ack go to the key's current owners instead (before the
        // nack, so they do not fail for want of targets).
        engine.retarget(key, p.trackers(), nodeId);
        p.nack(nodeId, "no longer owns the key (the placement changed)");
        continue;
      }
      Mutation m = store.mutation(key);
      if (m == null) {
        pendingBytes.addAndGet(-p.size);
        stats.mutationsDropped.increment();
        p.nack(nodeId, "was not sent it: this node no longer holds the key (purged)");
        continue;
      }
      int size = Frames.mutationSize(m);
      pendingBytes.addAndGet(size - p.size);
      return new Sent(m, size, p);
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
    if (ch != channel) {
      flushScheduled.set(false);
      return;
    }
    Window w = window;
    boolean wrote = false;
    Sent next = null; // taken from the queue but did not fit the previous batch
    while (true) {
      if (ch != channel) {
        flushScheduled.set(false); // the connection ended meanwhile: hand over to the new one
        scheduleFlush();
        break;
      }
      if (!ch.isWritable() || !windowOpen(w)) {
        w.parked = true; // flushScheduled stays set: resumed by writable(), an ack or the expiry
        if (w.bytes >= windowBytes) {
          armExpiry(ch, w);
        }
        break;
      }
      List<Sent> items = new ArrayList<>();
      List<Mutation> batch = new ArrayList<>();
      int bytes = 0;
      while (bytes < maxBatchBytes) {
        Sent o = next != null ? next : take();
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
        // Drained. An enqueue that found the flag still set added its key before this: look again.
        flushScheduled.set(false);
        if (queue.isEmpty() || !flushScheduled.compareAndSet(false, true)) {
          break;
        }
        continue;
      }
      long id = batchIds.incrementAndGet();
      Batch sent = new Batch(items, bytes, null, w, id, engine.ctx.nanoTime().getAsLong());
      inflight.put(id, sent);
      w.add(sent);
      int flags = 0;
      if (next != null) { // full, and more waits: the peer learns that this link is behind
        flags = Frames.FLAG_BACKLOG;
        backlogSentNanos = sent.sentNanos;
      }
      if (!ch.send(Frames.mutations(ch.alloc(), id, flags, batch, bytes), false)) {
        if (next != null) {
          requeue(next); // the batch itself goes back with the connection's end (disconnected)
        }
        flushScheduled.set(false);
        return;
      }
      stats.mutationsSent.add(items.size());
      if (engine.ctx.bug() == ReplicationEngine.Bug.ACK_ON_SEND) {
        for (Sent s : items) {
          s.pending.ack(nodeId);
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

  /** Whether the window has room, after expiring the batches unacknowledged for too long. */
  private boolean windowOpen(Window w) {
    if (w.bytes < windowBytes) {
      return true;
    }
    w.expire(engine.ctx.nanoTime().getAsLong() - WINDOW_EXPIRY_MILLIS * 1_000_000);
    return w.bytes < windowBytes;
  }

  /** Resumes the parked flush once the window's oldest batch may expire (one timer at a time). */
  private void armExpiry(PeerChannel ch, Window w) {
    if (!expiryTimer.compareAndSet(false, true)) {
      return;
    }
    engine.ctx.control().schedule(() -> {
      expiryTimer.set(false);
      try {
        ch.execute(() -> resume(ch));
      } catch (java.util.concurrent.RejectedExecutionException e) {
        // the connection's thread is gone, and with it the connection
      }
    }, WINDOW_EXPIRY_MILLIS + 1); // the oldest batch is then older than the expiry
  }

  /** An ack that came on {@code ch}, on its thread. */
  private void onAck(PeerChannel ch, Frames.Ack ack) {
    Batch b = inflight.remove(ack.batchId());
    if (b == null) {
      return;
    }
    if (b.aeAck != null) {
      b.aeAck.complete(ack);
      return;
    }
    b.window.release(b);
    for (int i = 0; i < b.items.size(); i++) {
      Sent o = b.items.get(i);
      pendingBytes.addAndGet(-o.size);
      if (i < ack.count() && ack.held().get(i)) {
        stats.mutationsAcked.increment();
        stats.mutationsCoalescedAcked.add(o.pending.superseded());
        o.pending.ack(nodeId);
      } else {
        stats.mutationsRefused.increment();
        o.pending.nack(nodeId,
            "refused it (invalid for its limits, or its clock drift check failed)");
      }
    }
    resume(ch); // the ack freed room in the window (only ch's own flush, on its own thread)
  }

  // ---- anti-entropy ----------------------------------------------------------------------------

  void setRound(AntiEntropyRound r) {
    round = r;
  }

  /** Sends an anti-entropy frame; false when the link is down (the buffer is released). */
  boolean sendAe(ByteBuf frame) {
    PeerChannel ch = channel;
    if (ch == null || closed) {
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
    inflight.put(id, new Batch(List.of(), bytes, acked, null, id, 0));
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
    endInflight("peer " + nodeId + " left", o -> dropOrRetarget(o.mutation().key(), o.pending,
        o.size, "left the cluster"));
    failQueued("left the cluster");
  }

  /**
   * Stops for good because the peer announced a graceful leave: as {@link #close} (nothing new is
   * sent, fan-out waiting for the peer's ack is re-targeted or fails), except that the connection
   * stays open until the peer has answered every request this node sent it and still awaits
   * (forwarded writes, reads, scans; each also ends at its own timeout). A leaving node answers
   * every request it gets until it stops, runs no forwarded write once its leave began, and
   * announces the leave only after answering those it ran; but the announcement (gossip) and the
   * answer (this connection) travel apart. Closing at once would fail a forwarded write whose
   * answer is on its way with "outcome unknown", whether the leaver ran it or refused it (then the
   * next owner would have run it). Any thread.
   */
  void closeAfterAnswers() {
    closed = true;
    endInflight("peer " + nodeId + " left", o -> dropOrRetarget(o.mutation().key(), o.pending,
        o.size, "left the cluster"));
    failQueued("left the cluster");
    closeIfAnswered();
  }

  /**
   * Closes the connection a closed link kept open ({@link #closeAfterAnswers}) once no request to
   * the peer awaits its answer; the router calls it whenever a request to the peer ends. Any thread.
   */
  void closeIfAnswered() {
    PeerChannel ch = channel;
    if (closed && ch != null && !engine.router.awaitsAnswerOver(this)) {
      ch.close();
    }
  }

  /**
   * A write the peer will not acknowledge because its link closed for good: when the placement
   * already moved the key away from the peer (a graceful leave changes the map before the link to
   * the leaver closes), the writes waiting for its ack go to the key's current owners instead, as a
   * queued write does when its key moves ({@link #take}), so a QUORUM write in flight to a leaving
   * owner does not fail; otherwise (a crash, this node closing) they are nacked.
   */
  private void dropOrRetarget(String key, Pending p, int size, String why) {
    if (!engine.mayFanOut(nodeId, key)) {
      engine.retarget(key, p.trackers(), nodeId);
    }
    drop(p, size, why);
  }

  /**
   * Ends every sent batch still waiting for its ack, and the round: anti-entropy pushes fail, each
   * fan-out mutation goes to {@code fanOut}.
   */
  private void endInflight(String why, Consumer<Sent> fanOut) {
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

  /** Fails (or re-targets, see {@link #dropOrRetarget}) every queued write: the link closed. */
  private void failQueued(String why) {
    String key;
    while ((key = queue.poll()) != null) {
      Pending p = queued.remove(key);
      if (p != null) {
        dropOrRetarget(key, p, p.size, why);
      }
    }
  }

  private void drop(Pending p, int size, String why) {
    pendingBytes.addAndGet(-size);
    stats.mutationsDropped.increment();
    p.nack(nodeId, why);
  }

  @Override
  public String toString() {
    PeerChannel ch = channel;
    return "PeerLink{" + nodeId + (ch != null ? ", ready via " + ch.remote() : "")
        + (closed ? ", closed" : "") + "}";
  }
}
