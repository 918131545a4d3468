package io.kvstore.cluster;

import io.kvstore.core.spi.Digest;
import io.kvstore.core.spi.KeyVersion;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.ReplicaStore;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteConcernException;
import io.netty.buffer.ByteBuf;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
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
 * <p><b>Partitioned mode</b> ({@link #setPlacement} with rf below the node count; null or a
 * full-replication placement behaves exactly as before): a write goes only to the live links of its
 * key's owners, and ONE / QUORUM / ALL count acks among those owners only (1 / majority of rf / rf;
 * this node's apply counts only if it is an owner; a non-owner's ack never counts). If fewer owners
 * are live than the concern needs, the write is still queued for those that are and fails at once.
 * Anti-entropy runs only with co-owners (nodes sharing a partition) and with owners this node has
 * data to hand off to, and compares only buckets of the partitions concerned (a digest bucket
 * {@code b} belongs to partition {@code b & 1023}). Each side applies its <em>own</em> view of the
 * placement, because two nodes may briefly disagree on it:
 * <ul>
 *   <li>the initiator compares the partitions both own and, to hand off, its non-empty buckets of
 *       partitions the peer owns and it does not ({@link Ownership#initiatorMask}); it pulls only
 *       partitions it owns, so a handoff is push only;</li>
 *   <li>the responder answers only for partitions it owns, and of those only the ones the initiator
 *       owns too or holds data in ({@link Ownership#responderMask}); it applies an anti-entropy push
 *       only for partitions it owns, and hands out keys (AE_PULL) only of partitions both own.</li>
 * </ul>
 * So anti-entropy moves a key only to a node that both sides think owns it; when the views disagree,
 * the partitions in dispute simply wait for the views to agree (no data moves wrongly, nothing is
 * lost: whoever holds a key keeps it). Fan-out is applied by its receiver whatever its own view,
 * because a coordinator that already knows a newer placement must be able to reach the new owners.
 * Handoff: after each placement change and on each anti-entropy tick, the engine scans its digest
 * for non-owned buckets whose content changed and marks each owner of those partitions for a
 * handoff round (a round that also pushes those buckets) until one with it finds nothing more to
 * move; every {@value #HANDOFF_RETRY_TICKS} ticks it marks them all again, because an owner whose
 * view lagged refuses a handoff without saying so (its buckets look merely equal). Only marked
 * peers get the handoff buckets, so data already handed off costs nothing per round. The engine
 * evicts (never deletes) that data once, for {@value #EVICT_GRACE_TICKS} ticks in a row, the
 * handoff was done and every owner was connected, on this node's map and not pulling it.
 *
 * <p><b>Pending owners</b> ({@link PendingPulls}): a node that gains a partition takes its writes at
 * once but pulls it from every live peer before it serves reads or decides conditional writes of
 * it; STATUS frames tell peers what it still pulls, READ answers say when it is not authoritative.
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
   * What a responder lists at most per round: {@link #MAX_KEYS_PER_ROUND}, lowered by tests that need
   * rounds that leave buckets out.
   */
  static volatile int keysPerRound = MAX_KEYS_PER_ROUND;

  /**
   * Whether pull rounds ask for the partitions this node holds nothing of to be streamed
   * ({@link PendingPulls}); tests turn it off to check that the ordinary pull alone is correct.
   */
  static volatile boolean streamPulls = true;

  /**
   * A round's budget is {@link #keysPerRound} listed keys, or twice as many streamed entries (they
   * need no compare and no pull, and a round walks the whole store once, so a join wants few
   * rounds; 200,000 entries of 100-byte values put ~28 MB in the connection's buffer at most).
   */
  static final int LISTED_WEIGHT = 2;

  /**
   * A node that just started waits until its map has not changed for this long before it pulls
   * (its first maps come from a partial view of the members, see {@link #setPlacement}).
   */
  static final long FRESH_SETTLE_MILLIS = 500;

  /** The least {@code antiEntropyBytesPerSecond} at which pulls are streamed (16 MiB/s). */
  static final long MIN_STREAM_RATE = 16L << 20;
  /**
   * Partitioned mode: every this many anti-entropy ticks, every owner of data this node holds
   * without owning it gets a handoff round again, even if that data did not change: an owner whose
   * view of the placement lagged may have refused the last one.
   */
  static final int HANDOFF_RETRY_TICKS = 20;
  /**
   * Partitioned mode: data this node holds for a partition it does not own is evicted once, for
   * this many anti-entropy ticks in a row, its handoff was done and every owner was connected,
   * reported this node's map version and was not pulling the partition.
   */
  static final int EVICT_GRACE_TICKS = 10;

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
    AE_DROPS_TOMBSTONES,
    /** Partitioned mode: the fan-out also goes to non-owners (their acks do not count). */
    FAN_OUT_TO_NON_OWNERS,
    /** Partitioned mode: the fan-out also goes to non-owners and their acks count (sloppy quorum). */
    COUNT_NON_OWNER_ACKS,
    /** Partitioned mode: anti-entropy ignores the placement (every peer, every bucket). */
    AE_IGNORES_PLACEMENT,
    /** Partitioned mode: data of partitions this node no longer owns is never handed off. */
    NO_HANDOFF,
    /** Partitioned mode: a pending owner never pulls (it serves a gained partition at once). */
    NO_PULL,
    /** Partitioned mode: data of a partition this node lost is evicted at once, handed off or not. */
    EVICT_EARLY
  }

  /** The protocol's limits and timing. */
  record Settings(long maxInFlightBytesPerPeer, int maxBatchBytes, Duration antiEntropyInterval,
      Duration antiEntropyTimeout, long antiEntropyBytesPerSecond) {
    /** Settings with no anti-entropy rate limit. */
    Settings(long maxInFlightBytesPerPeer, int maxBatchBytes, Duration antiEntropyInterval,
        Duration antiEntropyTimeout) {
      this(maxInFlightBytesPerPeer, maxBatchBytes, antiEntropyInterval, antiEntropyTimeout, 0);
    }

    static Settings of(KvClusterConfig c) {
      return new Settings(c.maxInFlightBytesPerPeer(), c.maxBatchBytes(), c.antiEntropyInterval(),
          c.antiEntropyTimeout(), c.antiEntropyBytesPerSecond());
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
  /** The client side of forwarded writes and remote reads (partitioned mode). */
  final PartitionRouter router;
  /** The byte rate of this node's anti-entropy rounds (pushes and pulls). */
  final Throttle throttle;
  private volatile boolean closing;
  /** This node's close() began a graceful leave ({@link #beginLeave}). */
  private volatile boolean leaving;
  /** Forwarded writes this node runs that have not been answered yet. */
  private final AtomicInteger forwardsRunning = new AtomicInteger();
  /**
   * When (nanoTime) a peer last sent this node a fan-out batch flagged {@link Frames#FLAG_BACKLOG}
   * (its fan-out to this node is behind); long ago at first.
   */
  private volatile long backlogReceivedNanos;
  /**
   * A periodic round with a peer is deferred at most this many anti-entropy intervals after the
   * last round started with it, however long fan-out between the two stays behind (30 s at the
   * default interval). Not 5: such an overdue round lists and compares every key of the differing
   * buckets on both nodes, and under the ONE burst (every bucket differs) those rounds, one per
   * pair every 5 s, ran 1-4 s each and the last ones landed on the drain after the burst
   * (docs/BENCHMARKS.md §3a⁶). With the send window the fan-out drops nothing at its limit, so what
   * an overdue round repairs is rare (a write a peer refused, an injected fault).
   */
  static final int MAX_DEFERRED_INTERVALS = 30;
  /** As last set; null = full replication. */
  private volatile Placement placement;
  /** This node's view of a partitioned placement; null in full replication. */
  private volatile Ownership ownership;

  // Confined to the control thread.
  private final ArrayDeque<PeerLink> urgent = new ArrayDeque<>();
  private AntiEntropyRound currentRound;
  private boolean started;
  /**
   * Partitioned mode: the owners this node has data to hand off to (it holds keys of partitions they
   * own and it does not), each with the {@link #handoffGeneration} it was last added at; a round with
   * the node that started after that and found nothing more to move removes it.
   */
  private final Map<String, Long> handoffPending = new HashMap<>();
  /** {@link #handoffPending}'s nodes as last published, for other threads. */
  private volatile Set<String> handoffView = Set.of();
  private long handoffGeneration;
  /** The digest of each non-owned bucket when last scanned for handoff (partitioned mode). */
  private long[] orphanSeen;
  private int ticksSinceHandoffRetry;
  /** Per partition: ticks in a row it has been evictable (see {@link #EVICT_GRACE_TICKS}). */
  private final int[] evictableTicks = new int[Placement.PARTITIONS];
  private boolean evicting;
  /** Partitioned mode: what this node still has to pull, per peer (see {@link PendingPulls}). */
  private final PendingPulls pulls = new PendingPulls();
  /** Partitioned mode: this node has not yet held all its partitions since it started. */
  private boolean fresh = true;
  /** When the placement last changed while {@link #fresh} (nanoTime), or 0. Control thread. */
  private long freshMapChangedNanos;
  private boolean settleRetryScheduled;

  /** This node's pending partitions as last published (a copy; never modified). Any thread. */
  private volatile BitSet pendingView = new BitSet();
  /** The last {@link Frames.Status} each peer node sent: its map version and pending partitions. */
  private final Map<String, Frames.Status> peerStatus = new java.util.concurrent.ConcurrentHashMap<>();

  ReplicationEngine(Context ctx) {
    this.ctx = Objects.requireNonNull(ctx, "ctx");
    this.roundIds = new AtomicLong(ctx.random().nextLong() >>> 2);
    this.router = new PartitionRouter(this);
    this.throttle = new Throttle(ctx.settings().antiEntropyBytesPerSecond(), ctx.nanoTime());
    this.backlogReceivedNanos = ctx.nanoTime().getAsLong() - Long.MAX_VALUE / 4; // long ago
  }

  /**
   * Whether the fan-out may still send the key to the node: always with full replication; in
   * partitioned mode only while the node owns the key under this node's current placement (a key
   * queued for an owner that lost it since is not sent: the queue reads the store's newest version,
   * which may be a write made after the change). Any thread.
   */
  boolean mayFanOut(String nodeId, String key) {
    Ownership own = ownership;
    return own == null || own.ownsKey(nodeId, key) || ctx.bug() == Bug.FAN_OUT_TO_NON_OWNERS
        || ctx.bug() == Bug.COUNT_NON_OWNER_ACKS;
  }

  /**
   * A write queued for a peer that lost the key in a map change before it was sent: the writes
   * waiting for that peer's ack are queued for the key's current owners (other than this node and
   * that peer) instead, so a QUORUM write that started just before a join or leave can still be met
   * by the owners the map has now (Cassandra's "pending owners count" rule in another form: the
   * coordinator's target set follows the map). An owner that already acknowledged is counted once
   * ({@link WriteTracker} counts nodes). Any thread.
   */
  void retarget(String key, List<WriteTracker> trackers, String lostOwner) {
    Ownership own = ownership;
    if (trackers.isEmpty() || own == null) {
      return;
    }
    Mutation m = ctx.store().mutation(key);
    if (m == null) {
      return;
    }
    int size = Frames.mutationSize(m);
    List<String> owners = own.ownersOf(key);
    for (PeerLink l : live.links()) {
      if (l.nodeId.equals(lostOwner) || !owners.contains(l.nodeId) || l.isClosed()) {
        continue;
      }
      for (WriteTracker t : trackers) {
        t.addTarget();
        l.enqueue(m, size, t);
      }
    }
  }

  /**
   * The configured replication factor (0 when unset), the least number of replicas a write concern
   * counts against under full replication. Set once, before start.
   */
  private volatile int minReplicas;

  void setConfiguredReplicationFactor(int rf) {
    this.minReplicas = Math.max(0, rf);
  }

  /** The live peers' links. Any thread; do not modify. */
  PeerLink[] liveLinks() {
    return live.links();
  }

  /** A live link to the node with an established connection, or null. Any thread. */
  PeerLink readyLink(String nodeId) {
    for (PeerLink l : live.links()) {
      if (l.nodeId.equals(nodeId) && l.isReady()) {
        return l;
      }
    }
    return null;
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
    pulls.retainPeers(nodes);
    peerStatus.keySet().retainAll(nodes);
    publishPending();
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

  // ---- placement (control thread) --------------------------------------------------------------

  /**
   * Sets where keys live. Null, or a placement with rf at least its node count, is full replication:
   * every live peer gets every write, exactly as without a placement. Otherwise writes go to the
   * key's owners only and anti-entropy runs between co-owners, per partition (see the class
   * comment). Control thread.
   *
   * @param placement the map over stable node ids, or null
   * @throws IllegalArgumentException in partitioned mode if the store's digest has fewer than
   *     {@value Placement#PARTITIONS} buckets (nothing changes then)
   */
  void setPlacement(Placement placement) {
    Ownership own = null;
    if (placement != null && !placement.isFullReplication()) {
      int buckets = ctx.store().digest().bucketCount();
      if (buckets < Placement.PARTITIONS) {
        throw new IllegalArgumentException("partitioned mode (replication factor "
            + placement.replicationFactor() + " of " + placement.nodes().size()
            + " nodes) needs digestBuckets of at least " + Placement.PARTITIONS
            + " (a power of two) so that digest buckets nest in partitions; node " + ctx.nodeId()
            + " has " + buckets + " (set digestBuckets to 1024 or more on every node)");
      }
      own = new Ownership(placement, ctx.nodeId());
    }
    Placement old = this.placement;
    Ownership oldOwn = this.ownership;
    this.placement = placement;
    this.ownership = own;
    if (own == null) {
      pulls.clear();
    } else {
      // Entering partitioned mode, everything owned is pending (this node may have started empty);
      // afterwards, what it gains. Pulled from every live peer (see PendingPulls).
      // While it never had all its partitions, every owned one is pending again from whoever is
      // live now: a node that just started may compute maps from a partial view of the cluster and
      // must not count a pull from the few nodes it knew then. Still-pending partitions get the new
      // live peers as sources too.
      BitSet gained = own.owned();
      if (oldOwn != null && !fresh) {
        gained.andNot(oldOwn.owned());
      }
      pulls.retainOwned(own.owned());
      gained.or(pulls.pending());
      if (ctx.bug() != Bug.NO_PULL) {
        pulls.add(gained, liveNodeIds(), emptyPartitions());
      }
    }
    publishPending();
    if (own != null && (old == null || old.fingerprint() != placement.fingerprint())) {
      log.debug("node {}: partitioned placement {}: this node owns {} partitions with {} co-owners",
          ctx.nodeId(), placement, placement.partitionCount(ctx.nodeId()), own.coOwners().size());
    }
    orphanSeen = null;
    handoffPending.clear();
    handoffView = Set.of();
    if (placement != null && fresh
        && (old == null || old.fingerprint() != placement.fingerprint())) {
      // A node that just started learns the members one by one: its first maps come from a
      // partial view (with rf or fewer nodes it is even full replication, and a catch-up would
      // copy every key), and what it pulls under them it may not own a moment later. It waits
      // until the map has been quiet for FRESH_SETTLE_MILLIS, and a round started under an older
      // map ends.
      freshMapChangedNanos = ctx.nanoTime().getAsLong();
      AntiEntropyRound r = currentRound;
      if (r != null) {
        r.fail("the placement changed while this node was still joining");
      }
    }
    if (own != null) {
      for (PeerLink l : live.links()) {
        if (pulls.hasWork(l.nodeId) && !urgent.contains(l)) {
          urgent.add(l);
        }
      }
      scanForHandoff(own);
      maybeStartRound(false);
    }
  }

  /**
   * A peer finished pulling: a handoff to it that waited for that ({@link Ownership#defersHandoff})
   * runs now rather than on a later tick. Any thread.
   */
  private void handoffAfterPull(String peer) {
    ctx.control().execute(() -> {
      if (!handoffPending.containsKey(peer)) {
        return;
      }
      for (PeerLink l : live.links()) {
        if (l.nodeId.equals(peer) && !urgent.contains(l)) {
          urgent.add(l);
        }
      }
      maybeStartRound(false);
    });
  }

  /**
   * Whether {@code antiEntropyBytesPerSecond} is below {@link #MIN_STREAM_RATE}: a streamed round
   * arrives as one burst (up to its budget, ~28 MB) and the rate only delays the next step, so a
   * low rate, set to spare the network, pulls frame by frame instead.
   */
  private boolean throttlesStreams() {
    long rate = ctx.settings().antiEntropyBytesPerSecond();
    return rate > 0 && rate < MIN_STREAM_RATE;
  }

  /**
   * The partitions {@code peer} last reported it still pulls from this node (pushing them would
   * send their data twice; a handoff of them waits); maybe empty. A partition it pulls only from
   * others any more (a source that is down) is not among them: this node's data of it is there.
   */
  private BitSet peerPulling(String peer) {
    Frames.Status st = peerStatus.get(peer);
    return st == null || ctx.bug() == Bug.AE_IGNORES_PLACEMENT ? new BitSet() : st.fromYou();
  }

  /** The partitions of which this node holds no entry (every bucket's hash is 0). */
  private BitSet emptyPartitions() {
    long[] buckets = ctx.store().digest().toArray();
    BitSet empty = new BitSet(Placement.PARTITIONS);
    empty.set(0, Placement.PARTITIONS);
    for (int b = 0; b < buckets.length; b++) {
      if (buckets[b] != 0) {
        empty.clear(Ownership.partitionOfBucket(b));
      }
    }
    return empty;
  }

  private Set<String> liveNodeIds() {
    Set<String> ids = new HashSet<>();
    for (PeerLink l : live.links()) {
      ids.add(l.nodeId);
    }
    ids.remove(ctx.nodeId());
    return ids;
  }

  /**
   * Publishes this node's pending partitions: to readers of {@link #pendingPartitions} and, when
   * they changed, to every connected peer as a STATUS frame; returns whether they changed. Control
   * thread.
   */
  private boolean publishPending() {
    BitSet now = pulls.pending();
    if (now.isEmpty() && ownership != null) {
      fresh = false;
    }
    if (now.equals(pendingView)) {
      return false;
    }
    int before = pendingView.cardinality();
    pendingView = now;
    if (now.isEmpty()) {
      log.info("node {}: every partition it owns is pulled; it serves them all ({} were pending)",
          ctx.nodeId(), before);
    } else if (before == 0) {
      log.info("node {}: {} partitions pending (pulling them from its peers before serving reads)",
          ctx.nodeId(), now.cardinality());
    }
    for (PeerLink l : live.links()) {
      sendStatus(l);
    }
    return true;
  }

  /** Sends the peer this node's STATUS: its pending partitions, and which it pulls from that peer. */
  private void sendStatus(PeerLink l) {
    Placement p = placement;
    if (p != null && ownership != null && l.isReady()) {
      BitSet fromYou = pulls.from(l.nodeId);
      fromYou.and(pendingView);
      l.sendAe(Frames.status(io.netty.buffer.ByteBufAllocator.DEFAULT, p.fingerprint(),
          pendingView, fromYou));
    }
  }

  /** This node's pending partitions (owned, not yet pulled): do not modify. Any thread. */
  BitSet pendingPartitions() {
    return pendingView;
  }

  /** Whether this node still pulls the key's partition (partitioned mode only). Any thread. */
  boolean isPending(String key) {
    BitSet p = pendingView;
    return !p.isEmpty() && p.get(Placement.partitionOf(key));
  }

  /**
   * Whether this node's copy of the key decides a read or a condition for a partitioned-mode peer:
   * it owns the key in its own view and is not pulling its partition. A node in full replication
   * (its view may be partial: it just started) or with another view of the key's owners answers
   * such requests as pending, so the asker tries another owner. Any thread.
   */
  boolean isAuthoritative(String key) {
    Ownership own = ownership;
    return own != null && own.ownsKey(key) && !isPending(key);
  }

  /**
   * Whether {@code nodeId} said it still pulls the key's partition (its last STATUS frame); false
   * when it said nothing yet. Any thread.
   */
  boolean isPeerPending(String nodeId, String key) {
    Frames.Status st = peerStatus.get(nodeId);
    return st != null && st.pending().get(Placement.partitionOf(key));
  }

  /**
   * Why stopping this node now could make data unavailable or lose it, or null when it cannot: this
   * node pulls nothing, its fan-out is acknowledged, its handoffs are done, and every other owner of
   * each partition it owns is connected, said it uses the same map, and pulls nothing of it. Under
   * full replication: at least one other node is connected and the fan-out is acknowledged. Any
   * thread (a snapshot of state that keeps changing).
   */
  String shutdownBlocker() {
    return blocker(false);
  }

  /**
   * What a graceful leave should still wait for: the part of {@link #shutdownBlocker} that waiting
   * can clear while this node is still up (its fan-out to connected peers unacknowledged, a handoff
   * to a connected owner not done, a connected co-owner still pulling a partition both own, which
   * it may be pulling from this node). Null when nothing. Any thread.
   */
  String leaveBlocker() {
    return blocker(true);
  }

  private String blocker(boolean leaving) {
    int forwards = forwardsRunning.get();
    if (leaving && forwards > 0) {
      return forwards + " forwarded writes still run here";
    }
    BitSet mine = pendingView;
    if (!leaving && !mine.isEmpty()) {
      return "this node still pulls " + mine.cardinality() + " partitions it owns";
    }
    for (PeerLink l : live.links()) {
      long bytes = l.unacknowledgedBytes();
      if (bytes > 0 && l.isReady() && (ownership == null || isOwnerPeer(l.nodeId))) {
        return bytes + " bytes of writes to " + l.nodeId + " are not acknowledged yet";
      }
    }
    Ownership own = ownership;
    if (own == null) {
      return leaving || connectedPeers() > 0 ? null
          : "no other node is connected: stopping this one takes its data offline";
    }
    for (String to : handoffView) {
      if (readyLink(to) != null) {
        return "data of partitions this node no longer owns is not handed off yet to " + to;
      }
    }
    long version = own.placement.fingerprint();
    for (String peer : own.coOwners()) {
      if (readyLink(peer) == null) {
        if (leaving) {
          continue;
        }
        return "co-owner " + peer + " is not connected";
      }
      Frames.Status st = peerStatus.get(peer);
      if (st == null || st.mapVersion() != version) {
        if (leaving) {
          continue;
        }
        return "co-owner " + peer + " has not confirmed partition map " + Long.toHexString(version);
      }
      BitSet shared = own.partitionsOf(peer);
      shared.and(own.owned());
      // A leave waits only while the co-owner pulls from this node (what it still pulls from a
      // source that is down, say a crashed joiner not yet removed, waiting would not bring);
      // a shutdown while it pulls from anyone.
      BitSet pulling = leaving ? st.fromYou() : st.pending();
      if (shared.intersects(pulling)) {
        shared.and(pulling);
        return "co-owner " + peer + " still pulls " + shared.cardinality()
            + " partitions this node owns" + (leaving ? " from it" : "") + " (first: "
            + shared.nextSetBit(0) + ")";
      }
    }
    if (!leaving && own.placement.replicationFactor() == 1) {
      long[] d = ctx.store().digest().toArray();
      for (int b = 0; b < d.length; b++) {
        if (d[b] != 0 && own.ownsPartition(Ownership.partitionOfBucket(b))) {
          return "replication factor 1: partition " + Ownership.partitionOfBucket(b)
              + " has no other owner, so its data would be lost or unavailable";
        }
      }
    }
    return null;
  }

  private boolean isOwnerPeer(String nodeId) {
    Ownership own = ownership;
    return own == null || own.coOwners().contains(nodeId);
  }

  /** Each peer's last STATUS (map version and pending partitions). Any thread. */
  Map<String, Frames.Status> peerStatus() {
    return Collections.unmodifiableMap(peerStatus);
  }

  /** The placement last set; null for full replication. Any thread. */
  Placement placement() {
    return placement;
  }

  /**
   * Finds the non-owned buckets whose content changed since the last scan (this node holds data of
   * partitions it does not own: it owned them under an older placement, or a coordinator with an
   * older view sent it a write) and marks their owners for a handoff round.
   */
  private void scanForHandoff(Ownership own) {
    if (ctx.bug() == Bug.NO_HANDOFF) {
      return;
    }
    long[] d = ctx.store().digest().toArray();
    if (orphanSeen == null || orphanSeen.length != d.length) {
      orphanSeen = new long[d.length];
    }
    boolean added = false;
    for (int b = 0; b < d.length; b++) {
      int p = Ownership.partitionOfBucket(b);
      if (d[b] != orphanSeen[b] && !own.ownsPartition(p)) {
        orphanSeen[b] = d[b];
        if (d[b] != 0) {
          for (String owner : own.placement.owners(p)) {
            handoffPending.put(owner, handoffGeneration + 1);
            handoffView = Set.copyOf(handoffPending.keySet());
            added = true;
          }
        }
      }
    }
    if (added) {
      handoffGeneration++;
      for (PeerLink l : live.links()) {
        if (handoffPending.containsKey(l.nodeId) && !urgent.contains(l)) {
          urgent.add(l);
        }
      }
    }
  }

  /**
   * Evicts the data this node holds for partitions it does not own once that has been safe for
   * {@value #EVICT_GRACE_TICKS} ticks in a row (see {@link #evictable}). The keys are listed and
   * evicted on the anti-entropy executor, each only at the exact version listed
   * ({@link ReplicaStore#evict}), so a write that arrives meanwhile stays and is handed off later.
   * Control thread.
   */
  private void maybeEvict(Ownership own) {
    if (evicting || ctx.bug() == Bug.NO_HANDOFF || orphanSeen == null) {
      return;
    }
    // The buckets as the handoff last saw them: only content the handoff knew about is evicted.
    long[] d = orphanSeen.clone();
    BitSet held = new BitSet(Placement.PARTITIONS);
    for (int b = 0; b < d.length; b++) {
      if (d[b] != 0) {
        held.set(Ownership.partitionOfBucket(b));
      }
    }
    BitSet evict = new BitSet(Placement.PARTITIONS);
    for (int p = 0; p < Placement.PARTITIONS; p++) {
      if (own.ownsPartition(p) || !held.get(p)) {
        evictableTicks[p] = 0;
      } else if (ctx.bug() == Bug.EVICT_EARLY || evictable(own, p)) {
        if (++evictableTicks[p] >= EVICT_GRACE_TICKS || ctx.bug() == Bug.EVICT_EARLY) {
          evict.set(p);
          evictableTicks[p] = 0;
        }
      } else {
        evictableTicks[p] = 0;
      }
    }
    if (evict.isEmpty()) {
      return;
    }
    evicting = true;
    BitSet buckets = new BitSet(d.length);
    for (int b = 0; b < d.length; b++) {
      if (evict.get(Ownership.partitionOfBucket(b))) {
        buckets.set(b);
      }
    }
    try {
      ctx.antiEntropy().execute(() -> {
        long n = 0;
        try {
          List<KeyVersion> listed = ctx.store().keyVersions(buckets);
          // A bucket that changed since the handoff saw it (a late write) is left for the next
          // handoff; a write after this check is kept by evict's exact-version match.
          long[] now = ctx.store().digest().toArray();
          List<KeyVersion> entries = new ArrayList<>(listed.size());
          for (KeyVersion kv : listed) {
            int b = Digest.bucketOf(kv.key(), now.length);
            if (ownership == own && now.length == d.length && now[b] == d[b]) {
              entries.add(kv);
            }
          }
          n = ctx.store().evict(entries);
          ctx.stats().keysEvicted.add(n);
        } catch (RuntimeException e) {
          log.warn("node {}: evicting handed-off data failed", ctx.nodeId(), e);
        } finally {
          long evicted = n;
          ctx.control().execute(() -> {
            evicting = false;
            if (evicted > 0) {
              log.info("node {}: evicted {} keys of {} partitions it no longer owns (their owners"
                  + " hold them)", ctx.nodeId(), evicted, evict.cardinality());
            }
          });
        }
      });
    } catch (RejectedExecutionException e) {
      evicting = false;
    }
  }

  /**
   * Whether this node may drop its data of partition {@code p}, which it does not own: every owner
   * is connected, reported this node's map version and does not pull {@code p}, and the handoff to
   * each is done.
   */
  private boolean evictable(Ownership own, int p) {
    long version = own.placement.fingerprint();
    for (String o : own.placement.owners(p)) {
      if (o.equals(ctx.nodeId()) || handoffPending.containsKey(o) || readyLink(o) == null) {
        return false;
      }
      Frames.Status st = peerStatus.get(o);
      if (st == null || st.mapVersion() != version || st.pending().get(p)) {
        return false;
      }
    }
    return true;
  }

  /** Whether this node starts rounds with the peer: any peer, or in partitioned mode a co-owner or
   * an owner it has data to hand off to. */
  private boolean isRoundPeer(Ownership own, PeerLink l) {
    return own == null || ctx.bug() == Bug.AE_IGNORES_PLACEMENT
        || own.coOwners().contains(l.nodeId) || handoffPending.containsKey(l.nodeId)
        || pulls.hasWork(l.nodeId);
  }

  // ---- fan-out ---------------------------------------------------------------------------------

  /**
   * Queues a mutation, already applied locally, for every live peer and tracks acknowledgements per
   * the write concern. Never blocks, never throws.
   */
  CompletableFuture<Void> replicate(Mutation mutation, WriteConcern concern, Duration timeout) {
    Ownership own = ownership;
    if (own != null) {
      return replicateToOwners(own, mutation, concern, timeout);
    }
    try {
      Live snapshot = live;
      PeerLink[] links = snapshot.links();
      if (links.length == 0 && minReplicas <= 1) {
        return DONE;
      }
      // With a replication factor configured, a node that sees fewer nodes (it just started, or is
      // cut off) still counts the concern against rf: QUORUM means a majority of rf copies, never
      // this node's copy alone because it knows no one else.
      int replicas = Math.max(snapshot.peerNodes() + 1, minReplicas);
      int required = concern.requiredAcks(replicas);
      int size = Frames.mutationSize(mutation);
      if (required > snapshot.peerNodes() + 1) {
        for (PeerLink link : links) {
          link.enqueue(mutation, size, null);
        }
        return CompletableFuture.failedFuture(new WriteConcernException(concern, required, 1,
            "only " + (snapshot.peerNodes() + 1) + " node(s) are live in this node's view and the"
                + " replication factor is " + minReplicas));
      }
      WriteTracker tracker = required > 1 ? new WriteTracker(concern, required, replicas,
          links.length, timeout, this::runCallback) : null;
      for (PeerLink link : links) {
        link.enqueue(mutation, size, tracker);
      }
      return armed(tracker, timeout);
    } catch (RuntimeException e) {
      return failed(mutation, e);
    }
  }

  /** Starts the tracker's timeout and returns its future; DONE without a tracker. */
  private CompletableFuture<Void> armed(WriteTracker tracker, Duration timeout) {
    if (tracker == null) {
      return DONE;
    }
    tracker.setTimer(ctx.control().schedule(tracker::onTimeout, Math.max(0, timeout.toMillis())));
    return tracker.future();
  }

  private CompletableFuture<Void> failed(Mutation mutation, RuntimeException e) {
    log.error("node {}: replicating {} failed", ctx.nodeId(), mutation, e);
    return CompletableFuture.failedFuture(e);
  }

  /**
   * Partitioned mode: queues the mutation for the live links of the key's owners only and counts acks
   * among the owners (this node's apply counts only if it is one); fails at once, after queueing, if
   * fewer owners are live than the concern needs.
   */
  private CompletableFuture<Void> replicateToOwners(Ownership own, Mutation mutation,
      WriteConcern concern, Duration timeout) {
    try {
      PeerLink[] links = live.links();
      List<String> owners = own.ownersOf(mutation.key());
      boolean toAll = ctx.bug() == Bug.FAN_OUT_TO_NON_OWNERS
          || ctx.bug() == Bug.COUNT_NON_OWNER_ACKS;
      boolean sloppy = ctx.bug() == Bug.COUNT_NON_OWNER_ACKS;
      int local = owners.contains(ctx.nodeId()) ? 1 : 0;
      int rf = owners.size();
      int required = concern.requiredAcks(rf);
      List<PeerLink> targets = new ArrayList<>(Math.min(links.length, rf));
      List<PeerLink> others = toAll ? new ArrayList<>() : List.of();
      Set<String> reachable = new HashSet<>();
      for (PeerLink link : links) {
        if (sloppy || owners.contains(link.nodeId)) {
          targets.add(link);
          reachable.add(link.nodeId);
        } else if (toAll) {
          others.add(link);
        }
      }
      int possible = local + reachable.size();
      WriteTracker tracker = required > local && possible >= required
          ? new WriteTracker(concern, required, rf, local, targets.size(), timeout,
              this::runCallback)
          : null;
      int size = Frames.mutationSize(mutation);
      for (PeerLink link : targets) {
        link.enqueue(mutation, size, tracker);
      }
      for (PeerLink link : others) {
        link.enqueue(mutation, size, null);
      }
      if (possible < required) {
        List<String> missing = new ArrayList<>(owners);
        missing.remove(ctx.nodeId());
        missing.removeAll(reachable);
        return CompletableFuture.failedFuture(new WriteConcernException(concern,
            required, local, "only " + possible + " of the " + rf + " owners of partition "
                + Placement.partitionOf(mutation.key()) + " are reachable from node "
                + ctx.nodeId() + "; not live: " + missing));
      }
      return armed(tracker, timeout);
    } catch (RuntimeException e) {
      return failed(mutation, e);
    }
  }

  void runCallback(Runnable r) {
    try {
      ctx.callbacks().execute(r);
    } catch (RejectedExecutionException e) {
      r.run();
    }
  }

  // ---- anti-entropy scheduling (control thread) ------------------------------------------------

  /**
   * A graceful leave begins (partitioned mode, before the leave is announced): from now on this node
   * refuses new forwarded writes as FORWARD_PENDING (nothing runs; the coordinator asks the key's next
   * owner), so that none is still running here, its outcome unknown to its coordinator, when the
   * leave arrives there; {@link #leaveBlocker} waits for those already running. It still applies
   * fan-out and serves anti-entropy and reads. Any thread.
   */
  void beginLeave() {
    leaving = true;
  }

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
      if (!link.isClosed()) {
        sendStatus(link);
        router.onLinkReady(link);
      }
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
      Ownership own = ownership;
      if (own != null) {
        if (++ticksSinceHandoffRetry >= HANDOFF_RETRY_TICKS) {
          ticksSinceHandoffRetry = 0;
          orphanSeen = null;
        }
        scanForHandoff(own);
        maybeEvict(own);
        // Re-sent each tick: a STATUS lost with a connection must not leave a peer's view stale.
        for (PeerLink l : live.links()) {
          sendStatus(l);
        }
      }
      AntiEntropyRound running = currentRound;
      if (running != null && fanOutBehind(running.link(), ctx.nanoTime().getAsLong())) {
        running.yieldToFanOut(); // only a round that started before it was behind stops
      }
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
    if (fresh && placement != null && freshMapChangedNanos != 0) {
      long quiet = (ctx.nanoTime().getAsLong() - freshMapChangedNanos) / 1_000_000;
      if (quiet < FRESH_SETTLE_MILLIS) {
        if (!settleRetryScheduled) {
          settleRetryScheduled = true;
          ctx.control().schedule(() -> {
            settleRetryScheduled = false;
            maybeStartRound(false);
          }, FRESH_SETTLE_MILLIS - quiet);
        }
        return;
      }
    }
    Ownership own = ownership;
    PeerLink target = null;
    boolean fromTick = false;
    while (target == null && !urgent.isEmpty()) {
      PeerLink l = urgent.poll();
      if (!l.isClosed() && l.isReady() && isRoundPeer(own, l)) {
        target = l;
      }
    }
    if (target == null && periodic) {
      List<PeerLink> candidates = new ArrayList<>();
      List<PeerLink> toPullFrom = new ArrayList<>();
      long now = ctx.nanoTime().getAsLong();
      int deferred = 0;
      for (PeerLink l : live.links()) {
        if (l.isReady() && isRoundPeer(own, l)) {
          if (own != null && pulls.hasWork(l.nodeId)) {
            toPullFrom.add(l);
          } else if (!handoffPending.containsKey(l.nodeId) && isBehind(l, now)) {
            deferred++;
            continue;
          }
          candidates.add(l);
        }
      }
      if (!toPullFrom.isEmpty()) {
        candidates = toPullFrom; // a pending partition is served by nobody here: pull it first
      }
      if (candidates.isEmpty()) {
        if (deferred > 0) {
          ctx.stats().aeRoundsDeferred.increment();
        }
        return;
      }
      target = candidates.get(ctx.random().nextInt(candidates.size()));
      fromTick = true;
    }
    if (target != null) {
      startRound(target, fromTick);
    }
  }

  /**
   * Whether a periodic round with the link's peer waits: within the last anti-entropy interval
   * this node's fan-out to the peer was behind, or some peer's fan-out to this node was (a batch
   * flagged {@link Frames#FLAG_BACKLOG} sent to the peer, or received from anyone). A round would
   * then mostly find writes still on their way, and spend both nodes' CPU listing, comparing and
   * pushing them while the live path carries them anyway: under a ONE burst on one node its two
   * replicas differ in whatever each has yet to apply, so their rounds with each other are as
   * wasted as those with the writer (a 1 ms-sampled profile of a replica: anti-entropy took 188
   * samples next to the fan-out apply's 339, docs/BENCHMARKS.md §3a⁵). Never longer than
   * {@value #MAX_DEFERRED_INTERVALS} intervals since the last round with the peer started, so a
   * write the live path lost is still repaired under a sustained overload. Control thread.
   */
  private boolean isBehind(PeerLink l, long now) {
    long interval = ctx.settings().antiEntropyInterval().toNanos();
    return now - l.roundStartedNanos < MAX_DEFERRED_INTERVALS * interval && fanOutBehind(l, now);
  }

  /**
   * Whether, within the last anti-entropy interval, this node's fan-out to the link's peer or
   * some peer's fan-out to this node was behind. Any thread.
   */
  private boolean fanOutBehind(PeerLink l, long now) {
    long interval = ctx.settings().antiEntropyInterval().toNanos();
    return now - l.backlogSentNanos < interval || now - backlogReceivedNanos < interval;
  }

  private void startRound(PeerLink link, boolean periodic) {
    link.roundStartedNanos = ctx.nanoTime().getAsLong();
    Ownership own = ctx.bug() == Bug.AE_IGNORES_PLACEMENT ? null : ownership;
    long generation = handoffGeneration;
    AntiEntropyRound round = new AntiEntropyRound(ctx, roundIds.incrementAndGet(), link, own,
        own != null && ctx.bug() != Bug.NO_HANDOFF && handoffPending.containsKey(link.nodeId),
        own == null ? new BitSet() : pulls.from(link.nodeId),
        own == null || !streamPulls || throttlesStreams() ? new BitSet()
            : pulls.streamFrom(link.nodeId),
        peerPulling(link.nodeId), throttle,
        () -> fanOutBehind(link, ctx.nanoTime().getAsLong()), periodic);
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
    outcome.whenComplete((o, e) -> ctx.control().execute(
        () -> roundDone(link, round, own, generation, o, e)));
  }

  private void roundDone(PeerLink link, AntiEntropyRound round, Ownership own, long generation,
      AntiEntropyRound.Outcome o, Throwable e) {
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
      stats.aeKeysHandedOff.add(o.handedOff());
      if (o.pushed() + o.pulled() > 0) {
        log.debug("node {}: anti-entropy with {} pushed {} ({} handed off) and pulled {} keys{}",
            ctx.nodeId(), link.nodeId, o.pushed(), o.handedOff(), o.pulled(),
            o.more() ? "; more differ" : "");
      }
      if (own != null && !round.pulls().isEmpty()) {
        // Every pulled partition none of whose buckets the peer left out is complete from it,
        // even when other buckets (writes in flight elsewhere) keep the round saying "more".
        BitSet done = (BitSet) round.pulls().clone();
        done.andNot(round.leftOutPartitions());
        if (!done.isEmpty()) {
          pulls.pulled(link.nodeId, done, round.streamedPartitions());
          if (!publishPending()) {
            sendStatus(link); // still pending elsewhere, but no longer from this peer: it may leave
          }
        }
      }
      if (o.yielded()) {
        stats.aeRoundsDeferred.increment();
      } else if (o.more()) {
        urgent.addFirst(link);
      } else {
        Long added = handoffPending.get(link.nodeId);
        if (own != null && own == ownership && added != null && added <= generation
            && !o.handoffDeferred()) {
          handoffPending.remove(link.nodeId);
          handoffView = Set.copyOf(handoffPending.keySet());
        }
        ctx.onSynced().run(); // young differences skipped are on their way by the fan-out
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
    /**
     * Rounds the peer stopped (AE_ABORT: its fan-out became behind) whose digest may still wait
     * for the anti-entropy executor: they are not listed. The newest few; read on that executor.
     */
    private final Set<Long> abortedRounds = java.util.concurrent.ConcurrentHashMap.newKeySet();
    /**
     * The partitions the peer asked to pull in its rounds (AE_PULL_REQUEST), by round id; the two
     * newest rounds at most (a peer runs one round at a time with this node). Read on the
     * anti-entropy executor, so a concurrent map.
     */
    private final Map<Long, Frames.AePullRequest> pullRequests =
        new java.util.concurrent.ConcurrentHashMap<>();
    private final AtomicInteger aeTasks = new AtomicInteger();
    /** The peer's cluster-wide listener subscriptions (channel thread only). */
    private final Map<Long, io.kvstore.core.Registration> subscriptions = new HashMap<>();
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
        } else if (frame instanceof Frames.Forward fwd) {
          runForwarded(fwd);
        } else if (frame instanceof Frames.Scan scan) {
          submit(() -> answerScan(scan));
        } else if (frame instanceof Frames.Read read) {
          channel.send(Frames.readResult(channel.alloc(), read.requestId(),
              ctx.store().mutation(read.key()), !isAuthoritative(read.key())), true);
        } else if (frame instanceof Frames.AePullRequest req) {
          if (pullRequests.size() >= 2) {
            pullRequests.keySet().removeIf(id -> id < req.roundId());
          }
          pullRequests.put(req.roundId(), req);
        } else if (frame instanceof Frames.Status st) {
          Frames.Status before = peerStatus.put(peer, st);
          if (st.fromYou().isEmpty() && before != null && !before.fromYou().isEmpty()) {
            handoffAfterPull(peer);
          }
        } else if (frame instanceof Frames.AeAbort abort) {
          if (abortedRounds.size() >= 4) {
            abortedRounds.removeIf(id -> id < abort.roundId());
          }
          abortedRounds.add(abort.roundId());
        } else if (frame instanceof Frames.Subscribe sub) {
          subscribe(sub);
        } else if (frame instanceof Frames.Unsubscribe un) {
          io.kvstore.core.Registration r = subscriptions.remove(un.subscriptionId());
          if (r != null) {
            r.close();
          }
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
      subscriptions.values().forEach(io.kvstore.core.Registration::close);
      subscriptions.clear();
    }

    /**
     * Serves a peer's cluster-wide listener: each change this node applies of a key with the
     * prefix, of a partition this node owns and the peer does not (in this node's view), goes to
     * the peer as an EVENT. The store's listener runs on this connection's thread, which then reads
     * the key's newest mutation (it carries the TTL the event lacks).
     */
    private void subscribe(Frames.Subscribe sub) {
      if (subscriptions.size() >= Frames.MAX_SUBSCRIPTIONS_PER_CONNECTION
          && !subscriptions.containsKey(sub.subscriptionId())) {
        fail("more than " + Frames.MAX_SUBSCRIPTIONS_PER_CONNECTION + " subscriptions from "
            + peer);
        return;
      }
      io.kvstore.core.Registration old = subscriptions.remove(sub.subscriptionId());
      if (old != null) {
        old.close(); // a repeat (the peer reconnected): one registration per id
      }
      io.kvstore.core.Registration r = ctx.store().listen(sub.prefix(), event -> {
        Ownership own = ownership;
        if (own == null || !own.ownsKey(event.key()) || own.ownsKey(peer, event.key())) {
          return;
        }
        Mutation m = ctx.store().mutation(event.key());
        if (m != null) {
          channel.send(Frames.event(channel.alloc(), sub.subscriptionId(), m), true);
        }
      }, task -> {
        try {
          channel.execute(task);
        } catch (RejectedExecutionException e) {
          // the connection is closing; its subscriptions end with it
        }
      });
      subscriptions.put(sub.subscriptionId(), r);
    }

    private void fail(String problem) {
      failed = true;
      protocolError(channel, problem);
    }

    private void applyBatch(Frames.MutationBatch batch) {
      ReplicaStore store = ctx.store();
      List<Mutation> ms = batch.mutations();
      if ((batch.flags() & Frames.FLAG_BACKLOG) != 0 && !batch.isAntiEntropy()) {
        backlogReceivedNanos = ctx.nanoTime().getAsLong(); // see isBehind
      }
      if (ctx.bug() == Bug.ACK_BEFORE_APPLY && !batch.isAntiEntropy()) {
        BitSet all = new BitSet(ms.size());
        all.set(0, ms.size());
        channel.send(Frames.ack(channel.alloc(), batch.batchId(), ms.size(), all), true);
        ctx.control().schedule(() -> ms.forEach(store::apply), 10);
        return;
      }
      BitSet held = new BitSet(ms.size());
      // Partitioned mode: an anti-entropy push of a partition this node does not own (the peer's
      // view differs) is refused; fan-out is applied whatever this node's view (see the class
      // comment).
      Ownership own = batch.isAntiEntropy() && ctx.bug() != Bug.AE_IGNORES_PLACEMENT
          ? ownership : null;
      for (int i = 0; i < ms.size(); i++) {
        if (own != null && !own.ownsKey(ms.get(i).key())) {
          continue;
        }
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

    /**
     * Runs a write a non-owner forwarded here as this node's own local write, and answers once it
     * completed (the concern met or failed); never forwarded again.
     */
    private void runForwarded(Frames.Forward fwd) {
      CompletableFuture<io.kvstore.core.spi.WriteResult> done;
      io.kvstore.core.spi.WriteRequest req = fwd.request();
      // A forward comes from a node that thinks this one owns the key. Refused (nothing runs, the
      // sender tries the next owner) when this node does not own it in its own map (it is still
      // joining and knows too few nodes, or the maps differ for a moment: it would count the
      // concern against the wrong owners), and, for a conditional write, while it still pulls the
      // partition (its copy cannot decide the condition).
      // Counted before leaving is read (beginLeave sets it before leaveBlocker reads the count),
      // so a write is either refused or waited for by the leave.
      forwardsRunning.incrementAndGet();
      Ownership own = ownership;
      boolean conditional = req.ifAbsent() || req.expectedVersion() != null;
      String refusal = leaving
          ? "node " + ctx.nodeId() + " is leaving the cluster"
          : own == null || !own.ownsKey(req.key())
          ? "node " + ctx.nodeId() + " does not own partition " + Placement.partitionOf(req.key())
              + " in its own map (still joining, or the maps differ)"
          : conditional && isPending(req.key())
              ? "node " + ctx.nodeId() + " is still pulling partition "
                  + Placement.partitionOf(req.key()) + " and does not decide conditional writes on"
                  + " it yet"
              : null;
      if (refusal != null) {
        channel.send(Frames.forwardResult(channel.alloc(), fwd.requestId(), Frames.FORWARD_PENDING,
            null, false, 0, 0, refusal), true);
        forwardsRunning.decrementAndGet();
        return;
      }
      try {
        done = ctx.store().write(req);
      } catch (RuntimeException e) {
        done = CompletableFuture.failedFuture(e);
      }
      done.whenComplete((result, failure) -> {
        ByteBuf answer = forwardAnswer(channel, fwd.requestId(), result, failure);
        try {
          channel.execute(() -> {
            channel.send(answer, true);
            forwardsRunning.decrementAndGet();
          });
        } catch (RejectedExecutionException e) {
          answer.release(); // the connection is gone, and so is the answer
          forwardsRunning.decrementAndGet();
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
      if (abortedRounds.remove(roundId)) {
        return; // the peer no longer waits for this round's keys
      }
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
      Frames.AePullRequest req = pullRequests.get(roundId);
      BitSet pullAsked = req == null ? null : req.partitions();
      BitSet streamAsked = req == null ? new BitSet() : req.stream();
      Ownership own = ctx.bug() == Bug.AE_IGNORES_PLACEMENT ? null : ownership;
      if (own != null) {
        diff = masked(diff, own.responderMask(peer, theirs.hashes, pullAsked));
      }
      BitSet covered = new BitSet(mine.bucketCount());
      for (int b : diff) {
        covered.set(b);
      }
      List<KeyVersion> keys = diff.length == 0 ? List.of() : store.keyVersions(covered);
      boolean more = false;
      BitSet leftOut = new BitSet();
      // A listed key counts LISTED_WEIGHT, a streamed entry 1 (it needs no compare and no pull).
      long cap = (long) keysPerRound * LISTED_WEIGHT;
      long weight = weight(keys, streamAsked);
      if (weight > cap) {
        // Keep whole buckets, chosen at random, up to the limit; the rest waits for the next round.
        Map<Integer, List<KeyVersion>> byBucket = new HashMap<>();
        for (KeyVersion kv : keys) {
          byBucket.computeIfAbsent(Digest.bucketOf(kv.key(), mine.bucketCount()),
              b -> new ArrayList<>()).add(kv);
        }
        List<Integer> order = new ArrayList<>();
        List<Integer> rest = new ArrayList<>();
        for (int b : diff) {
          // The buckets of partitions the initiator pulls (it serves them only once it has them)
          // go first; the rest in random order.
          boolean pulled = pullAsked != null && pullAsked.get(Ownership.partitionOfBucket(b));
          (pulled ? order : rest).add(b);
        }
        Collections.shuffle(order, ctx.random());
        Collections.shuffle(rest, ctx.random());
        order.addAll(rest);
        covered.clear();
        List<KeyVersion> kept = new ArrayList<>();
        long keptWeight = 0;
        for (int b : order) {
          List<KeyVersion> inBucket = byBucket.getOrDefault(b, List.of());
          long w = (long) inBucket.size()
              * (streamAsked.get(Ownership.partitionOfBucket(b)) ? 1 : LISTED_WEIGHT);
          if (!kept.isEmpty() && keptWeight + w > cap) {
            more = true;
            leftOut.set(b);
            continue;
          }
          covered.set(b);
          kept.addAll(inBucket);
          keptWeight += w;
        }
        keys = kept;
      }
      int streamed = 0;
      if (!streamAsked.isEmpty()) {
        // Streamed buckets: their entries first, in frames of up to maxBatchBytes; not listed. The
        // AE_DIFF that follows says how many, so a lost frame cannot pass for a complete stream.
        List<String> toStream = new ArrayList<>();
        List<KeyVersion> listed = new ArrayList<>(keys.size());
        for (KeyVersion kv : keys) {
          if (streamAsked.get(Placement.partitionOf(kv.key()))) {
            toStream.add(kv.key());
          } else {
            listed.add(kv);
          }
        }
        for (int from = 0; from < toStream.size(); ) {
          Chunker.Mutations m = Chunker.mutations(ctx, toStream, from);
          if (!m.mutations().isEmpty()) {
            channel.send(Frames.aeStream(channel.alloc(), roundId, m.mutations(), m.bytes()), true);
            streamed += m.mutations().size();
          }
          from = m.next();
        }
        keys = listed;
      }
      channel.send(Frames.aeDiff(channel.alloc(), roundId, mine.bucketCount(), more, covered,
          leftOut, req != null, streamed), true);
      Chunker.chunk(keys, Frames::keyVersionSize, ctx.settings().maxBatchBytes(),
          (chunk, bytes, last) -> channel.send(Frames.aeKeys(channel.alloc(), roundId, last, chunk,
              bytes), true));
    }

    /** This node's part of a cluster scan, bounded in bytes (anti-entropy executor). */
    private void answerScan(Frames.Scan scan) {
      List<Mutation> all = ctx.store().scanLocal(scan.prefix(), scan.startAfter(),
          Math.min(scan.limit(), MAX_KEYS_PER_ROUND));
      List<Mutation> kept = new ArrayList<>(all.size());
      int bytes = 0;
      boolean truncated = false;
      for (Mutation m : all) {
        int size = Frames.mutationSize(m);
        if (bytes + size > Frames.MAX_SCAN_RESULT_BYTES) {
          truncated = true;
          break;
        }
        kept.add(m);
        bytes += size;
      }
      channel.send(Frames.scanResult(channel.alloc(), scan.requestId(), truncated, kept, bytes),
          true);
    }

    private void answerPull(Frames.AePull pull) {
      // Partitioned mode: hand out only keys of partitions both this node and the peer own, in this
      // node's view; the others are skipped (and covered), never sent to a node this one thinks is
      // not their owner.
      Ownership own = ctx.bug() == Bug.AE_IGNORES_PLACEMENT ? null : ownership;
      // A pull round also gets keys of the partitions it asked for (AE_PULL_REQUEST) whoever owns
      // them: the peer is taking them over and this node may be their old owner.
      Frames.AePullRequest req = pullRequests.get(pull.roundId());
      BitSet asked = req == null ? null : req.partitions();
      Chunker.Mutations m = Chunker.mutations(ctx, pull.keys(), 0,
          own == null ? null : k -> (own.ownsKey(k) && own.ownsKey(peer, k))
              || (asked != null && asked.get(Placement.partitionOf(k))));
      channel.send(Frames.aePullResponse(channel.alloc(), pull.roundId(), m.next(), m.mutations(),
          m.bytes()), true);
    }
  }

  /** The FORWARD_RESULT frame for a forwarded write's outcome; no stack traces cross the wire. */
  static ByteBuf forwardAnswer(PeerChannel channel, long requestId,
      io.kvstore.core.spi.WriteResult result, Throwable failure) {
    Throwable f = failure instanceof java.util.concurrent.CompletionException c
        && c.getCause() != null ? c.getCause() : failure;
    if (f == null) {
      return Frames.forwardResult(channel.alloc(), requestId, Frames.FORWARD_OK, result.version(),
          result.wasLive(), 0, 0, "");
    }
    if (f instanceof io.kvstore.core.ConditionFailedException c) {
      return Frames.forwardResult(channel.alloc(), requestId, Frames.FORWARD_CONDITION_FAILED,
          c.current().orElse(null), false, 0, 0, c.getMessage());
    }
    if (f instanceof io.kvstore.core.WriteConcernException w) {
      return Frames.forwardResult(channel.alloc(), requestId, Frames.FORWARD_CONCERN_FAILED, null,
          false, w.required(), w.acknowledged(), w.getMessage());
    }
    int status = f instanceof IllegalArgumentException ? Frames.FORWARD_INVALID
        : Frames.FORWARD_UNAVAILABLE;
    return Frames.forwardResult(channel.alloc(), requestId, status, null, false, 0, 0,
        String.valueOf(f.getMessage()));
  }

  /** Listed keys count {@link #LISTED_WEIGHT}, streamed entries 1, against a round's budget. */
  private static long weight(List<KeyVersion> keys, BitSet streamed) {
    if (streamed.isEmpty()) {
      return (long) keys.size() * LISTED_WEIGHT;
    }
    long w = 0;
    for (KeyVersion kv : keys) {
      w += streamed.get(Placement.partitionOf(kv.key())) ? 1 : LISTED_WEIGHT;
    }
    return w;
  }

  /** The buckets of {@code diff} (ascending) that are in {@code mask}. */
  private static int[] masked(int[] diff, BitSet mask) {
    int n = 0;
    int[] out = new int[diff.length];
    for (int b : diff) {
      if (mask.get(b)) {
        out[n++] = b;
      }
    }
    return Arrays.copyOf(out, n);
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
