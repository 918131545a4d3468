package io.kvstore.cluster;

import io.kvstore.core.spi.Digest;
import io.kvstore.core.spi.KeyVersion;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.ReplicaStore;
import io.kvstore.core.WriteConcern;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The replication protocol of one node, independent of any transport: the table of live peers, each
 * peer's fan-out queue with batching and its bounded in-flight bytes ({@link PeerLink}), write-concern
 * tracking ({@link WriteTracker}), the anti-entropy scheduler and the rounds it starts
 * ({@link AntiEntropyRound}), and the server side of every accepted connection ({@link Responder}:
 * applies fan-out batches and acknowledges them once durable, answers anti-entropy).
 *
 * <p>It speaks encoded {@link Frames} over {@link PeerChannel}s that an adapter hands it once a
 * connection is authenticated: the Netty data plane ({@link DataPlane}) in production, an in-memory
 * network with seeded faults and a virtual clock in the deterministic simulation. Everything it needs
 * comes in its {@link Context}; it holds no reference to its owner.
 *
 * <p><b>Threads:</b> the engine starts none. Peer-table changes and anti-entropy scheduling run on
 * the context's control scheduler; key scans and digest comparisons on its anti-entropy executor;
 * QUORUM/ALL futures complete on its callback executor; batches are flushed on each channel's own
 * thread; {@link #replicate} runs on the writer's thread and never blocks.
 */
final class ReplicationEngine {
  private static final Logger log = LoggerFactory.getLogger(ReplicationEngine.class);
  private static final CompletableFuture<Void> DONE = CompletableFuture.completedFuture(null);
  /** At most this many anti-entropy requests of one connection are answered at a time. */
  static final int MAX_AE_TASKS_PER_CONNECTION = 4;
  /** The most keys one anti-entropy answer lists; more differing buckets wait for the next round. */
  static final int MAX_KEYS_PER_ROUND = 100_000;

  /**
   * A deliberately broken variant, for proving that the simulation finds protocol bugs; production
   * always runs {@link #NONE}.
   */
  enum Bug {
    NONE,
    /** Counts a fan-out mutation as acknowledged by a peer as soon as it is sent, not when acked. */
    ACK_ON_SEND,
    /** A peer acknowledges a fan-out batch as held at once and applies it 10 ms later. */
    ACK_BEFORE_APPLY,
    /** Anti-entropy sends puts only: a tombstone never reaches a replica the fan-out missed. */
    AE_DROPS_TOMBSTONES
  }

  /** The protocol's limits and timing. */
  record Settings(long maxInFlightBytesPerPeer, int maxBatchBytes, Duration antiEntropyInterval,
      Duration antiEntropyTimeout) {
    static Settings of(KvClusterConfig c) {
      return new Settings(c.maxInFlightBytesPerPeer(), c.maxBatchBytes(), c.antiEntropyInterval(),
          c.antiEntropyTimeout());
    }
  }

  /**
   * What the engine runs with.
   *
   * @param nodeId this node's id
   * @param settings limits and timing
   * @param store the local replica
   * @param stats the counters it bumps
   * @param control its control thread and timers
   * @param antiEntropy runs digest comparisons and key scans (one task at a time is enough)
   * @param callbacks completes QUORUM/ALL futures, never a network thread
   * @param random jitter, peer choice, round ids
   * @param nanoTime a monotonic clock, for progress lines
   * @param onSynced called (on the control thread) whenever an anti-entropy round found nothing more
   *     to exchange
   * @param bug {@link Bug#NONE} outside tests
   */
  record Context(String nodeId, Settings settings, ReplicaStore store, Stats stats,
      EngineScheduler control, Executor antiEntropy, Executor callbacks, Random random,
      LongSupplier nanoTime, Runnable onSynced, Bug bug) {
    Context {
      Objects.requireNonNull(nodeId, "nodeId");
      Objects.requireNonNull(settings, "settings");
      Objects.requireNonNull(store, "store");
      Objects.requireNonNull(stats, "stats");
      Objects.requireNonNull(control, "control");
      Objects.requireNonNull(antiEntropy, "antiEntropy");
      Objects.requireNonNull(callbacks, "callbacks");
      Objects.requireNonNull(random, "random");
      Objects.requireNonNull(nanoTime, "nanoTime");
      Objects.requireNonNull(onSynced, "onSynced");
      Objects.requireNonNull(bug, "bug");
    }
  }

  /** The ALIVE peers' links and how many distinct node ids they are, published together. */
  private record Live(PeerLink[] links, int peerNodes) {}

  final Context ctx;
  private final RateLimitedLog warnings = new RateLimitedLog(log);
  private final AtomicLong roundIds;
  private volatile Live live = new Live(new PeerLink[0], 0);
  private volatile boolean closing;
  /**
   * STUB (task "nodeset"): the partition map, null for full replication. The real
   * {@code setPlacement} comes from the "owners" work, which routes by it; until then it is only
   * stored.
   */
  private volatile Placement placement;

  // Confined to the control thread.
  private final ArrayDeque<PeerLink> urgent = new ArrayDeque<>();
  private AntiEntropyRound currentRound;
  private boolean started;

  ReplicationEngine(Context ctx) {
    this.ctx = Objects.requireNonNull(ctx, "ctx");
    this.roundIds = new AtomicLong(ctx.random().nextLong() >>> 2);
  }

  String nodeId() {
    return ctx.nodeId();
  }

  /** Starts the periodic anti-entropy timer. Call once, on the control thread. */
  void start() {
    if (!started) {
      started = true;
      scheduleTick();
    }
  }

  // ---- the peer table (control thread) ---------------------------------------------------------

  /** A new link to a peer; it carries nothing until {@link #setLive} lists it and it connects. */
  PeerLink newLink(String memberId, String peerNodeId) {
    return new PeerLink(this, memberId, peerNodeId);
  }

  /** Sets the links writes fan out to (the ALIVE members'). Control thread. */
  void setLive(Collection<PeerLink> links) {
    Set<String> nodes = new HashSet<>();
    for (PeerLink l : links) {
      nodes.add(l.nodeId);
    }
    live = new Live(links.toArray(new PeerLink[0]), nodes.size());
  }

  /**
   * The partition map writes and anti-entropy follow; null means full replication (every node owns
   * every key, today's behaviour). Control thread. STUB: stored only, see the field.
   */
  void setPlacement(Placement placement) {
    this.placement = placement;
  }

  /** A link is closed for good (its peer left or was replaced). Control thread. */
  void forget(PeerLink link) {
    urgent.remove(link);
  }

  /** How many live peers have an established connection. Any thread. */
  int connectedPeers() {
    int n = 0;
    for (PeerLink l : live.links()) {
      if (l.isReady()) {
        n++;
      }
    }
    return n;
  }

  /** How many live peer links there are. Any thread. */
  int livePeers() {
    return live.links().length;
  }

  // ---- fan-out ---------------------------------------------------------------------------------

  /**
   * Queues a mutation, already applied locally, for every live peer and tracks acknowledgements per
   * the write concern. Never blocks, never throws.
   */
  CompletableFuture<Void> replicate(Mutation mutation, WriteConcern concern, Duration timeout) {
    try {
      Live snapshot = live;
      PeerLink[] links = snapshot.links();
      if (links.length == 0) {
        return DONE;
      }
      int replicas = snapshot.peerNodes() + 1;
      int required = concern.requiredAcks(replicas);
      WriteTracker tracker = required > 1 ? new WriteTracker(concern, required, replicas,
          links.length, timeout, this::runCallback) : null;
      int size = Frames.mutationSize(mutation);
      for (PeerLink link : links) {
        link.enqueue(new PeerLink.Outgoing(mutation, size, tracker));
      }
      if (tracker == null) {
        return DONE;
      }
      tracker.setTimer(ctx.control().schedule(tracker::onTimeout, Math.max(0, timeout.toMillis())));
      return tracker.future();
    } catch (RuntimeException e) {
      log.error("node {}: replicating {} failed", ctx.nodeId(), mutation, e);
      return CompletableFuture.failedFuture(e);
    }
  }

  private void runCallback(Runnable r) {
    try {
      ctx.callbacks().execute(r);
    } catch (RejectedExecutionException e) {
      r.run();
    }
  }

  // ---- anti-entropy scheduling (control thread) ------------------------------------------------

  /** Stops starting rounds and accepting connections: the node is closing. Any thread. */
  void beginClose() {
    closing = true;
  }

  /** Stops starting rounds and fails the one running. Control thread. */
  void close() {
    closing = true;
    AntiEntropyRound r = currentRound;
    if (r != null) {
      r.fail("node closing");
    }
  }

  boolean isClosing() {
    return closing;
  }

  /** A link finished its handshake: reconcile with that peer now. Any thread. */
  void onLinkReady(PeerLink link) {
    ctx.control().execute(() -> {
      if (!link.isClosed() && !urgent.contains(link)) {
        urgent.add(link);
        maybeStartRound(false);
      }
    });
  }

  private void scheduleTick() {
    ctx.control().schedule(this::antiEntropyTick,
        jittered(ctx.settings().antiEntropyInterval().toMillis()));
  }

  private void antiEntropyTick() {
    try {
      maybeStartRound(true);
    } finally {
      if (!closing) {
        scheduleTick();
      }
    }
  }

  /**
   * Starts a round unless one runs: with a peer waiting for one (just connected, or more to do), or,
   * on the periodic tick only, with a random ready peer.
   */
  private void maybeStartRound(boolean periodic) {
    if (closing || currentRound != null) {
      return;
    }
    PeerLink target = null;
    while (target == null && !urgent.isEmpty()) {
      PeerLink l = urgent.poll();
      if (!l.isClosed() && l.isReady()) {
        target = l;
      }
    }
    if (target == null && periodic) {
      List<PeerLink> candidates = new ArrayList<>();
      for (PeerLink l : live.links()) {
        if (l.isReady()) {
          candidates.add(l);
        }
      }
      if (candidates.isEmpty()) {
        return;
      }
      target = candidates.get(ctx.random().nextInt(candidates.size()));
    }
    if (target != null) {
      startRound(target);
    }
  }

  private void startRound(PeerLink link) {
    AntiEntropyRound round = new AntiEntropyRound(ctx, roundIds.incrementAndGet(), link);
    currentRound = round;
    link.setRound(round);
    CompletableFuture<AntiEntropyRound.Outcome> outcome;
    try {
      outcome = CompletableFuture.supplyAsync(round::run, ctx.antiEntropy()).thenCompose(f -> f);
    } catch (RejectedExecutionException e) {
      currentRound = null;
      link.setRound(null);
      return;
    }
    outcome.whenComplete((o, e) -> ctx.control().execute(() -> roundDone(link, round, o, e)));
  }

  private void roundDone(PeerLink link, AntiEntropyRound round, AntiEntropyRound.Outcome o,
      Throwable e) {
    link.setRound(null);
    if (currentRound == round) {
      currentRound = null;
    }
    Stats stats = ctx.stats();
    if (e != null) {
      stats.aeRoundsFailed.increment();
      log.debug("node {}: anti-entropy round with {} failed: {}", ctx.nodeId(), link.nodeId,
          e.toString());
    } else {
      stats.aeRounds.increment();
      stats.aeKeysPushed.add(o.pushed());
      stats.aeKeysPulled.add(o.pulled());
      if (o.pushed() + o.pulled() > 0) {
        log.debug("node {}: anti-entropy with {} pushed {} and pulled {} keys{}", ctx.nodeId(),
            link.nodeId, o.pushed(), o.pulled(), o.more() ? "; more differ" : "");
      }
      if (o.more()) {
        urgent.addFirst(link);
      } else {
        ctx.onSynced().run();
      }
    }
    maybeStartRound(false);
  }

  private long jittered(long millis) {
    return Math.max(1, (long) (millis * (0.8 + 0.4 * ctx.random().nextDouble())));
  }

  // ---- the server side of a connection ---------------------------------------------------------

  /** The engine's side of a connection a peer opened, once its handshake is done. */
  Responder accept(PeerChannel channel, String peerNodeId) {
    return new Responder(channel, peerNodeId);
  }

  /** Counts a broken frame or protocol step, logs it (rate-limited) and closes the channel. */
  void protocolError(PeerChannel channel, String problem) {
    ctx.stats().malformedFrames.increment();
    warnings.warn("node {}: {} on the data-plane connection with {}; closing it", ctx.nodeId(),
        problem, channel.remote());
    channel.close();
  }

  /**
   * The server side of one connection: applies MUTATIONS and acknowledges them once durable, and
   * answers anti-entropy requests on the anti-entropy executor, at most
   * {@value #MAX_AE_TASKS_PER_CONNECTION} at a time. Frames arrive on the channel's thread, in order.
   */
  final class Responder {
    private final PeerChannel channel;
    final String peer;
    private final Map<Long, DigestParts> digests = new HashMap<>();
    private final AtomicInteger aeTasks = new AtomicInteger();
    private boolean failed;

    private Responder(PeerChannel channel, String peer) {
      this.channel = channel;
      this.peer = peer;
    }

    /** A frame from the peer. Never throws. */
    void onFrame(Frames.Frame frame) {
      if (failed) {
        return;
      }
      try {
        if (frame instanceof Frames.MutationBatch batch) {
          applyBatch(batch);
        } else if (frame instanceof Frames.AeDigest digest) {
          onDigest(digest);
        } else if (frame instanceof Frames.AePull pull) {
          submit(() -> answerPull(pull));
        } else {
          fail("unexpected " + frame.getClass().getSimpleName() + " from " + peer);
        }
      } catch (RuntimeException e) {
        // A bug, or a frame that passed decoding but cannot be handled: never let it escape.
        fail("cannot handle " + frame.getClass().getSimpleName() + ": " + e);
      }
    }

    /** The connection ended. */
    void closed() {
      digests.clear();
    }

    private void fail(String problem) {
      failed = true;
      protocolError(channel, problem);
    }

    private void applyBatch(Frames.MutationBatch batch) {
      ReplicaStore store = ctx.store();
      List<Mutation> ms = batch.mutations();
      if (ctx.bug() == Bug.ACK_BEFORE_APPLY && !batch.isAntiEntropy()) {
        BitSet all = new BitSet(ms.size());
        all.set(0, ms.size());
        channel.send(Frames.ack(channel.alloc(), batch.batchId(), ms.size(), all), true);
        ctx.control().schedule(() -> ms.forEach(store::apply), 10);
        return;
      }
      BitSet held = new BitSet(ms.size());
      for (int i = 0; i < ms.size(); i++) {
        if (store.apply(ms.get(i)).isHeld()) {
          held.set(i);
        }
      }
      // Ack only once the applied mutations are durable (at once unless the store syncs); the
      // storage's sync thread completes it, so the channel's thread never waits for a disk.
      CompletableFuture<Void> durable = store.whenDurable().toCompletableFuture();
      if (durable.isDone() && !durable.isCompletedExceptionally()) {
        channel.send(Frames.ack(channel.alloc(), batch.batchId(), ms.size(), held), true);
        return;
      }
      durable.whenComplete((ignored, failure) -> {
        BitSet durableHeld = failure == null ? held : new BitSet(); // read-only now: ack nothing
        try {
          channel.execute(() -> channel.send(Frames.ack(channel.alloc(), batch.batchId(),
              ms.size(), durableHeld), true));
        } catch (RejectedExecutionException e) {
          // The connection's thread is shutting down: the connection is gone, and so is the ack.
        }
      });
    }

    private void onDigest(Frames.AeDigest d) {
      DigestParts parts = digests.get(d.roundId());
      if (parts == null) {
        if (d.from() != 0 || digests.size() >= 2) {
          fail("digest chunk out of order from " + peer);
          return;
        }
        parts = new DigestParts(d.format(), new long[d.bucketCount()]);
        digests.put(d.roundId(), parts);
      }
      if (parts.format != d.format() || parts.hashes.length != d.bucketCount()
          || d.from() != parts.next) {
        fail("inconsistent digest chunk from " + peer);
        return;
      }
      System.arraycopy(d.hashes(), 0, parts.hashes, d.from(), d.hashes().length);
      parts.next += d.hashes().length;
      if (!d.last()) {
        return;
      }
      digests.remove(d.roundId());
      if (parts.next != parts.hashes.length) {
        fail("digest from " + peer + " ended after " + parts.next + " of " + parts.hashes.length
            + " buckets");
        return;
      }
      DigestParts complete = parts;
      submit(() -> answerDigest(d.roundId(), complete));
    }

    private void submit(Runnable task) {
      if (aeTasks.incrementAndGet() > MAX_AE_TASKS_PER_CONNECTION) {
        aeTasks.decrementAndGet();
        fail("too many concurrent anti-entropy requests from " + peer);
        return;
      }
      try {
        ctx.antiEntropy().execute(() -> {
          try {
            task.run();
          } catch (RuntimeException e) {
            log.warn("node {}: answering anti-entropy from {} failed", ctx.nodeId(), peer, e);
            channel.close();
          } finally {
            aeTasks.decrementAndGet();
          }
        });
      } catch (RejectedExecutionException e) {
        aeTasks.decrementAndGet();
        channel.close();
      }
    }

    // ---- answering anti-entropy (on the anti-entropy executor) ---------------------------------

    private void answerDigest(long roundId, DigestParts theirs) {
      ReplicaStore store = ctx.store();
      Digest mine = store.digest();
      if (theirs.format != Digest.FORMAT || theirs.hashes.length != mine.bucketCount()) {
        String why = "digest format " + theirs.format + " with " + theirs.hashes.length
            + " buckets; this node uses format " + Digest.FORMAT + " with " + mine.bucketCount()
            + " (digestBuckets must be the same on every node)";
        warnings.warn("node {}: cannot compare digests: {}", ctx.nodeId(), why);
        channel.send(Frames.aeAbort(channel.alloc(), roundId, why), true);
        return;
      }
      int[] diff = mine.diff(Digest.of(theirs.hashes));
      BitSet covered = new BitSet(mine.bucketCount());
      for (int b : diff) {
        covered.set(b);
      }
      List<KeyVersion> keys = diff.length == 0 ? List.of() : store.keyVersions(covered);
      boolean more = false;
      if (keys.size() > MAX_KEYS_PER_ROUND) {
        // Keep whole buckets, chosen at random, up to the limit; the rest waits for the next round.
        Map<Integer, List<KeyVersion>> byBucket = new HashMap<>();
        for (KeyVersion kv : keys) {
          byBucket.computeIfAbsent(Digest.bucketOf(kv.key(), mine.bucketCount()),
              b -> new ArrayList<>()).add(kv);
        }
        List<Integer> order = new ArrayList<>();
        for (int b : diff) {
          order.add(b);
        }
        Collections.shuffle(order, ctx.random());
        covered.clear();
        List<KeyVersion> kept = new ArrayList<>();
        for (int b : order) {
          List<KeyVersion> inBucket = byBucket.getOrDefault(b, List.of());
          if (!kept.isEmpty() && kept.size() + inBucket.size() > MAX_KEYS_PER_ROUND) {
            more = true;
            continue;
          }
          covered.set(b);
          kept.addAll(inBucket);
        }
        keys = kept;
      }
      channel.send(Frames.aeDiff(channel.alloc(), roundId, mine.bucketCount(), more, covered),
          true);
      Chunker.chunk(keys, Frames::keyVersionSize, ctx.settings().maxBatchBytes(),
          (chunk, bytes, last) -> channel.send(Frames.aeKeys(channel.alloc(), roundId, last, chunk,
              bytes), true));
    }

    private void answerPull(Frames.AePull pull) {
      Chunker.Mutations m = Chunker.mutations(ctx, pull.keys(), 0);
      channel.send(Frames.aePullResponse(channel.alloc(), pull.roundId(), m.next(), m.mutations(),
          m.bytes()), true);
    }
  }

  /** A digest being received in chunks. */
  private static final class DigestParts {
    final int format;
    final long[] hashes;
    int next;

    DigestParts(int format, long[] hashes) {
      this.format = format;
      this.hashes = hashes;
    }
  }
}
