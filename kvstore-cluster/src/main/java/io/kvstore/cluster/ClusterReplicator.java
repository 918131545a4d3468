package io.kvstore.cluster;

import io.kvstore.core.ClusterView;
import io.kvstore.core.Member;
import io.kvstore.core.MembershipEvent;
import io.kvstore.core.Mutation;
import io.kvstore.core.Registration;
import io.kvstore.core.ReplicaStore;
import io.kvstore.core.Replicator;
import io.kvstore.core.WriteConcern;
import io.netty.channel.Channel;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The {@link Replicator} of a clustered node: ScaleCube (SWIM) membership, and a Netty TCP data plane
 * that carries the write fan-out and anti-entropy. Build one with {@link KvCluster#builder()}; the
 * usual way is {@link KvClusterBuilder#build()}, which also builds the store.
 *
 * <h2>What it does</h2>
 * Every local mutation is queued for every live member (non-blocking, batched per peer, bounded in
 * memory per peer). Write concern ONE completes after the local apply; QUORUM and ALL complete once
 * that many replicas of the current membership (this node included) acknowledge holding the mutation,
 * and fail with {@link io.kvstore.core.WriteConcernException} after the timeout or as soon as too few
 * replicas remain able to acknowledge. Every {@link KvClusterConfig#antiEntropyInterval()}, and at once
 * when a peer joins or reconnects, the node compares digests with a peer and exchanges what differs;
 * that catches up late joiners and restarted nodes, heals partitions and repairs what the fan-out lost.
 *
 * <h2>Threads</h2>
 * {@link #replicate} runs on the writer's thread, never blocks and never throws. Network I/O runs on
 * two Netty event loops per node; incoming mutations are applied there (so change listeners
 * registered without an executor run there too: keep them short). Membership changes, timers and
 * reconnection run on one control thread; digest comparisons and key scans on one anti-entropy
 * thread; membership listeners on their own thread; QUORUM and ALL futures complete on a callback
 * thread, never on a network thread.
 *
 * <h2>Readiness</h2>
 * {@link ClusterView#isReady()} turns true, and stays true, once the node has completed an
 * anti-entropy round with a peer, or, finding no peer, once the initial join window has passed.
 */
public final class ClusterReplicator implements Replicator {
  private static final Logger log = LoggerFactory.getLogger(ClusterReplicator.class);
  private static final CompletableFuture<Void> DONE = CompletableFuture.completedFuture(null);

  private final KvClusterConfig config;
  private final FaultHooks faults;
  private final Stats stats = new Stats(this::connectedPeers);
  private final View view = new View();
  private final CopyOnWriteArrayList<Consumer<MembershipEvent>> listeners =
      new CopyOnWriteArrayList<>();
  private final AtomicBoolean started = new AtomicBoolean();
  private final AtomicBoolean closeCalled = new AtomicBoolean();
  private final RateLimitedLog warnings = new RateLimitedLog(log);
  private final AtomicLong roundIds = new AtomicLong(ThreadLocalRandom.current().nextLong() >>> 2);

  // Read from any thread.
  private volatile ReplicaStore store;
  /** The ALIVE members' links and how many distinct node ids they are, published together. */
  private record Live(PeerLink[] links, int peerNodes) {}

  private volatile Live live = new Live(new PeerLink[0], 0);
  private volatile List<Member> members;
  private volatile Member self;
  private volatile boolean ready;
  private volatile boolean closing;
  private volatile ClusterKeyring keyring;

  // Confined to the control thread.
  private final Map<String, Peer> peers = new HashMap<>();
  private final ArrayDeque<PeerLink> urgent = new ArrayDeque<>();
  private AntiEntropyRound currentRound;
  private boolean aloneAllowed;
  private boolean synced;
  private long sequence;

  private ScheduledThreadPoolExecutor control;
  private ExecutorService antiEntropy;
  private ExecutorService events;
  private ExecutorService callbackPool;
  private DataPlane dataPlane;
  private Membership membership;
  /** Null without TLS. */
  private final TlsChannels tls;
  private final InboundGuard membershipGuard;
  private final InboundGuard dataGuard;
  private volatile String dataAddress;

  /** A member known to the control thread. */
  private static final class Peer {
    final String memberId;
    final String membershipAddress;
    final long seq;
    NodeMetadata metadata;
    Member.Status status = Member.Status.ALIVE;
    PeerLink link;

    Peer(String memberId, String membershipAddress, long seq) {
      this.memberId = memberId;
      this.membershipAddress = membershipAddress;
      this.seq = seq;
    }

    Member toMember() {
      return new Member(metadata.nodeId(), membershipAddress, metadata.dataAddress(), status);
    }
  }

  ClusterReplicator(KvClusterConfig config, FaultHooks faults) {
    this.config = Objects.requireNonNull(config, "config");
    this.faults = Objects.requireNonNull(faults, "faults");
    this.keyring = config.keyring();
    this.tls = config.tls() == null ? null : new TlsChannels(config.tls(), config.nodeId(),
        config.handshakeTimeout(), stats.tlsFailures);
    this.membershipGuard = InboundGuard.membership(config, stats);
    this.dataGuard = InboundGuard.dataPlane(config, stats);
    this.self = new Member(config.nodeId(), null, null, Member.Status.ALIVE);
    this.members = List.of(self);
  }

  // ---- Replicator ------------------------------------------------------------------------------

  /**
   * Binds the data plane and the membership port, joins through the seeds (waiting at most
   * {@link KvClusterConfig#joinTimeout()} for them) and starts anti-entropy. Called once by the store.
   *
   * @param store the local store; its node id must equal {@link KvClusterConfig#nodeId()}
   * @throws IllegalArgumentException if the node ids differ
   * @throws IllegalStateException if already started, or a port cannot be bound
   */
  @Override
  public void start(ReplicaStore store) {
    Objects.requireNonNull(store, "store");
    if (!store.nodeId().equals(config.nodeId())) {
      throw new IllegalArgumentException("the store's node id '" + store.nodeId()
          + "' differs from the cluster config's '" + config.nodeId()
          + "'; build both with the same id (KvClusterBuilder.build() does)");
    }
    if (!started.compareAndSet(false, true)) {
      throw new IllegalStateException("this replicator was already started; build one per store");
    }
    this.store = store;
    String id = config.nodeId();
    control = new ScheduledThreadPoolExecutor(1, daemon("kvstore-cluster-" + id));
    control.setRemoveOnCancelPolicy(true);
    antiEntropy = Executors.newSingleThreadExecutor(daemon("kvstore-ae-" + id));
    events = Executors.newSingleThreadExecutor(daemon("kvstore-membership-events-" + id));
    callbackPool = Executors.newSingleThreadExecutor(daemon("kvstore-callbacks-" + id));
    try {
      dataPlane = new DataPlane(this);
      int port = dataPlane.bind(config.host(), config.dataPort());
      dataAddress = config.advertiseHost() + ":" + port;
      membership = new Membership(config,
          new NodeMetadata(id, dataAddress, Frames.PROTOCOL_VERSION, config.clusterName()), faults,
          stats.membershipMessagesRefused::increment, this::keyring,
          stats.authenticationFailures::increment, tls, membershipGuard);
      membership.start(change -> execute(() -> onChange(change)));
      self = new Member(id, membership.address(), dataAddress, Member.Status.ALIVE);
      execute(this::rebuild);
      if (config.seeds().isEmpty()) {
        // A node without seeds founds a cluster: there is nobody to catch up with.
        ready = true;
        execute(() -> aloneAllowed = true);
      } else {
        schedule(() -> {
          aloneAllowed = true;
          evaluateReady();
        }, config.metadataTimeout().toMillis());
      }
      schedule(this::antiEntropyTick, jittered(config.antiEntropyInterval().toMillis()));
      log.info("node {} started in cluster '{}': membership {}, data {}, seeds {}, {}", id,
          config.clusterName(), membership.address(), dataAddress, config.seeds(),
          security(config));
      if (isOpen(config)) {
        log.warn("node {}: cluster '{}' is OPEN: neither a cluster secret nor cluster TLS is "
            + "configured, so anyone who can reach ports {} and {} can join, write, delete and read "
            + "every key. Configure a cluster secret (KvClusterBuilder.keyring / "
            + "--cluster-secret-file) or cluster TLS (KvClusterBuilder.tls / --cluster-tls-*); see "
            + "docs/SECURITY.md", id, config.clusterName(), membership.address(), dataAddress);
      }
      if (config.tls() != null && config.tls().certificateExpiry().isBefore(
          Instant.now().plus(Duration.ofDays(14)))) {
        log.warn("node {}: its cluster TLS certificate '{}' expires at {}; restart the node with a "
            + "new one before then", id, config.tls().certificateSubject(),
            config.tls().certificateExpiry());
      }
    } catch (RuntimeException e) {
      closing = true;
      if (membership != null) {
        membership.leave();
      }
      shutdown();
      throw e;
    }
  }

  /**
   * Queues the mutation for every live member and tracks acknowledgements per the write concern.
   * Never blocks, never throws.
   *
   * @param mutation the mutation, already applied locally
   * @param concern replicas that must hold it, this node included
   * @param timeout how long to wait for them
   * @return completes per the write concern
   */
  @Override
  public CompletableFuture<Void> replicate(Mutation mutation, WriteConcern concern,
      Duration timeout) {
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
      try {
        tracker.setTimer(control.schedule(tracker::onTimeout, timeout.toNanos(),
            TimeUnit.NANOSECONDS));
      } catch (RejectedExecutionException e) {
        tracker.onTimeout();
      }
      return tracker.future();
    } catch (RuntimeException e) {
      log.error("node {}: replicating {} failed", config.nodeId(), mutation, e);
      return CompletableFuture.failedFuture(e);
    }
  }

  /**
   * This node's view of the cluster.
   *
   * @return the view; cheap, thread-safe
   */
  @Override
  public ClusterView clusterView() {
    return view;
  }

  /**
   * Announces a graceful leave (waiting at most {@link KvClusterConfig#leaveTimeout()}), fails writes
   * still waiting for acknowledgements, closes connections and stops the threads. Never throws.
   */
  @Override
  public void close() {
    if (!closeCalled.compareAndSet(false, true)) {
      return;
    }
    closing = true;
    if (!started.get()) {
      return;
    }
    try {
      if (membership != null) {
        membership.leave();
      }
    } catch (RuntimeException e) {
      log.warn("node {}: leaving failed", config.nodeId(), e);
    }
    shutdown();
    log.info("node {} closed", config.nodeId());
  }

  private void shutdown() {
    try {
      if (control != null) {
        control.submit(() -> {
          for (Peer p : peers.values()) {
            p.link.close();
          }
          AntiEntropyRound r = currentRound;
          if (r != null) {
            r.fail("node closing");
          }
        }).get(5, TimeUnit.SECONDS);
      }
    } catch (Exception e) {
      log.warn("node {}: closing peer links failed: {}", config.nodeId(), e.toString());
    }
    if (dataPlane != null) {
      dataPlane.close();
    }
    for (ExecutorService e : new ExecutorService[] {control, antiEntropy}) {
      if (e != null) {
        e.shutdownNow();
      }
    }
    // Writes failed by the closing links complete on the callback thread: let them run, so no
    // caller's future is left waiting; membership listeners get a moment to finish too.
    for (ExecutorService e : new ExecutorService[] {callbackPool, events}) {
      if (e != null) {
        e.shutdown();
        try {
          if (!e.awaitTermination(2, TimeUnit.SECONDS)) {
            e.shutdownNow();
          }
        } catch (InterruptedException ie) {
          Thread.currentThread().interrupt();
          e.shutdownNow();
        }
      }
    }
  }

  // ---- public extras ---------------------------------------------------------------------------

  /**
   * A snapshot of this node's replication counters.
   *
   * @return the counters
   */
  public ReplicationStats stats() {
    return stats.snapshot();
  }

  /**
   * The settings this replicator runs with.
   *
   * @return the config
   */
  public KvClusterConfig config() {
    return config;
  }

  /**
   * {@code host:port} of this node's membership endpoint, with the port actually bound; null before
   * start. Give it to other nodes as a seed.
   *
   * @return the advertised membership address
   */
  public String membershipAddress() {
    return self.membershipAddress();
  }

  /**
   * {@code host:port} of this node's data plane, with the port actually bound; null before start.
   *
   * @return the advertised data-plane address
   */
  public String dataAddress() {
    return dataAddress;
  }

  /**
   * Replaces this node's keyring while it runs, for rotating the cluster secret without downtime
   * (see {@link ClusterKeyring}). Takes effect at once: new membership messages and connections use
   * the new primary key; messages and frames authenticated with a key no longer in the keyring are
   * refused, which closes the data-plane connections that used it (they reconnect with the current
   * key and resend what was not acknowledged).
   *
   * @param newKeyring the new keyring
   * @throws IllegalStateException if this node was started without a keyring (an open node cannot
   *     become authenticated while it runs: restart it with one)
   */
  public void updateKeyring(ClusterKeyring newKeyring) {
    Objects.requireNonNull(newKeyring, "newKeyring");
    if (config.keyring() == null) {
      throw new IllegalStateException("node " + config.nodeId() + " was started without a cluster "
          + "secret; restart it with one to authenticate it");
    }
    ClusterKeyring old = keyring;
    keyring = newKeyring;
    log.info("node {}: keyring changed from {} to {}", config.nodeId(), old, newKeyring);
  }

  /**
   * The keyring this node currently authenticates with, null for an open cluster.
   *
   * @return the current keyring, or null
   */
  public ClusterKeyring keyring() {
    return keyring;
  }

  @Override
  public String toString() {
    return "ClusterReplicator{" + config.nodeId() + ", cluster " + config.clusterName()
        + ", membership " + membershipAddress() + ", data " + dataAddress + "}";
  }

  /** Whether nothing authenticates the cluster's nodes: no keyring and no TLS. */
  static boolean isOpen(KvClusterConfig config) {
    return config.keyring() == null && config.tls() == null;
  }

  private static String security(KvClusterConfig config) {
    if (isOpen(config)) {
      return "OPEN (no cluster secret, no TLS)";
    }
    return (config.keyring() == null ? "" : "authenticated with " + config.keyring())
        + (config.keyring() != null && config.tls() != null ? ", " : "")
        + (config.tls() == null ? "" : "over " + config.tls());
  }

  // ---- for the data plane ----------------------------------------------------------------------

  /** Installs TLS on a data-plane channel; does nothing without TLS. */
  void secure(Channel channel, boolean client) {
    if (tls != null) {
      tls.install(channel, "data", client);
    }
  }

  String nodeId() {
    return config.nodeId();
  }

  Stats counters() {
    return stats;
  }

  InboundGuard dataGuard() {
    return dataGuard;
  }

  InboundGuard membershipGuard() {
    return membershipGuard;
  }

  FaultHooks faults() {
    return faults;
  }

  ReplicaStore store() {
    return store;
  }

  DataPlane dataPlane() {
    return dataPlane;
  }

  ExecutorService antiEntropyExecutor() {
    return antiEntropy;
  }

  boolean isClosing() {
    return closing;
  }

  void schedule(Runnable task, long delayMillis) {
    try {
      control.schedule(() -> runSafely(task), delayMillis, TimeUnit.MILLISECONDS);
    } catch (RejectedExecutionException e) {
      // closing
    }
  }

  private void execute(Runnable task) {
    try {
      control.execute(() -> runSafely(task));
    } catch (RejectedExecutionException e) {
      // closing
    }
  }

  private void runSafely(Runnable task) {
    try {
      task.run();
    } catch (RuntimeException e) {
      log.error("node {}: internal task failed", config.nodeId(), e);
    }
  }

  private void runCallback(Runnable r) {
    try {
      callbackPool.execute(r);
    } catch (RejectedExecutionException e) {
      r.run();
    }
  }

  /** A link finished its handshake: reconcile with that peer now (from an event loop). */
  void onLinkReady(PeerLink link) {
    execute(() -> {
      if (!link.isClosed() && !urgent.contains(link)) {
        urgent.add(link);
        maybeStartRound(false);
      }
    });
  }

  private int connectedPeers() {
    int n = 0;
    for (PeerLink l : live.links()) {
      if (l.isReady()) {
        n++;
      }
    }
    return n;
  }

  // ---- membership (control thread) -------------------------------------------------------------

  private void onChange(Membership.Change c) {
    switch (c.type()) {
      case ADDED, UPDATED -> onAlive(c);
      case LEAVING -> {
        Peer p = peers.get(c.memberId());
        if (p != null && p.status != Member.Status.LEAVING) {
          p.status = Member.Status.LEAVING;
          p.link.close();
          rebuild();
          fire(MembershipEvent.Type.LEAVING, p);
        }
      }
      case REMOVED -> {
        Peer p = peers.remove(c.memberId());
        if (p != null) {
          p.link.close();
          urgent.remove(p.link);
          rebuild();
          fire(MembershipEvent.Type.REMOVED, p);
          evaluateReady();
        }
      }
      default -> { }
    }
  }

  private void onAlive(Membership.Change c) {
    NodeMetadata md = c.metadata();
    String problem = c.metadataProblem();
    if (md != null) {
      if (!md.clusterName().equals(config.clusterName())) {
        problem = "belongs to cluster '" + md.clusterName() + "'";
      } else if (md.protocolVersion() < Frames.MIN_PROTOCOL_VERSION) {
        problem = "speaks data-plane protocol " + md.protocolVersion();
      } else if (md.nodeId().equals(config.nodeId())) {
        problem = "claims this node's own id: node ids must be unique";
      }
    }
    if (problem != null) {
      warnings.warn("node {}: ignoring member {} at {}: {}", config.nodeId(), c.memberId(),
          c.membershipAddress(), problem);
      return;
    }
    Peer p = peers.get(c.memberId());
    MembershipEvent.Type type;
    if (p == null) {
      p = new Peer(c.memberId(), c.membershipAddress(), ++sequence);
      p.metadata = md;
      p.link = new PeerLink(this, c.memberId(), md.nodeId(), md.dataAddress());
      peers.put(p.memberId, p);
      p.link.start();
      type = MembershipEvent.Type.ADDED;
    } else {
      if (!md.equals(p.metadata) || p.link.isClosed()) {
        p.link.close();
        urgent.remove(p.link);
        p.link = new PeerLink(this, c.memberId(), md.nodeId(), md.dataAddress());
        p.link.start();
      }
      p.metadata = md;
      p.status = Member.Status.ALIVE;
      type = MembershipEvent.Type.UPDATED;
    }
    rebuild();
    fire(type, p);
  }

  private void rebuild() {
    List<PeerLink> links = new ArrayList<>();
    Set<String> nodes = new HashSet<>();
    Map<String, Peer> byNode = new HashMap<>();
    for (Peer p : peers.values()) {
      if (p.status == Member.Status.ALIVE) {
        links.add(p.link);
        nodes.add(p.metadata.nodeId());
      }
      byNode.merge(p.metadata.nodeId(), p, (a, b) -> better(a, b) ? a : b);
    }
    live = new Live(links.toArray(new PeerLink[0]), nodes.size());
    List<Member> ms = new ArrayList<>();
    ms.add(self);
    for (Peer p : byNode.values()) {
      ms.add(p.toMember());
    }
    ms.sort(Comparator.comparing(Member::nodeId));
    members = List.copyOf(ms);
  }

  private static boolean better(Peer a, Peer b) {
    if (a.status != b.status) {
      return a.status == Member.Status.ALIVE;
    }
    return a.seq > b.seq;
  }

  private void fire(MembershipEvent.Type type, Peer p) {
    MembershipEvent event = new MembershipEvent(type, p.toMember());
    log.info("node {}: member {} {} (membership {}, data {})", config.nodeId(),
        p.metadata.nodeId(), type, p.membershipAddress, p.metadata.dataAddress());
    for (Consumer<MembershipEvent> l : listeners) {
      try {
        events.execute(() -> {
          try {
            l.accept(event);
          } catch (RuntimeException e) {
            log.warn("node {}: membership listener threw on {}; ignored", config.nodeId(), event, e);
          }
        });
      } catch (RejectedExecutionException e) {
        return;
      }
    }
  }

  private void evaluateReady() {
    if (ready) {
      return;
    }
    if (synced || (aloneAllowed && live.links().length == 0)) {
      ready = true;
      log.info("node {} is ready ({})", config.nodeId(),
          synced ? "synchronised with a peer" : "no peer found; running alone");
    }
  }

  // ---- anti-entropy (control thread) -----------------------------------------------------------

  private void antiEntropyTick() {
    try {
      maybeStartRound(true);
    } finally {
      if (!closing) {
        schedule(this::antiEntropyTick, jittered(config.antiEntropyInterval().toMillis()));
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
      target = candidates.get(ThreadLocalRandom.current().nextInt(candidates.size()));
    }
    if (target != null) {
      startRound(target);
    }
  }

  private void startRound(PeerLink link) {
    AntiEntropyRound round = new AntiEntropyRound(config.nodeId(), roundIds.incrementAndGet(),
        link, store, antiEntropy, config.antiEntropyTimeout().toMillis(), config.maxBatchBytes());
    currentRound = round;
    link.setRound(round);
    CompletableFuture<AntiEntropyRound.Outcome> outcome;
    try {
      outcome = CompletableFuture.supplyAsync(round::run, antiEntropy).thenCompose(f -> f);
    } catch (RejectedExecutionException e) {
      currentRound = null;
      return;
    }
    outcome.whenComplete((o, e) -> execute(() -> roundDone(link, round, o, e)));
  }

  private void roundDone(PeerLink link, AntiEntropyRound round, AntiEntropyRound.Outcome o,
      Throwable e) {
    link.setRound(null);
    if (currentRound == round) {
      currentRound = null;
    }
    if (e != null) {
      stats.aeRoundsFailed.increment();
      log.debug("node {}: anti-entropy round with {} failed: {}", config.nodeId(), link.nodeId,
          e.toString());
    } else {
      stats.aeRounds.increment();
      stats.aeKeysPushed.add(o.pushed());
      stats.aeKeysPulled.add(o.pulled());
      if (o.pushed() + o.pulled() > 0) {
        log.debug("node {}: anti-entropy with {} pushed {} and pulled {} keys{}", config.nodeId(),
            link.nodeId, o.pushed(), o.pulled(), o.more() ? "; more differ" : "");
      }
      if (o.more()) {
        urgent.addFirst(link);
      } else {
        synced = true;
        evaluateReady();
      }
    }
    maybeStartRound(false);
  }

  private static long jittered(long millis) {
    return Math.max(1, (long) (millis * (0.8 + 0.4 * ThreadLocalRandom.current().nextDouble())));
  }

  private static ThreadFactory daemon(String name) {
    AtomicInteger n = new AtomicInteger();
    return r -> {
      Thread t = new Thread(r, n.getAndIncrement() == 0 ? name : name + "-" + n.get());
      t.setDaemon(true);
      return t;
    };
  }

  // ---- the view --------------------------------------------------------------------------------

  private final class View implements ClusterView {
    @Override
    public Member self() {
      return self;
    }

    @Override
    public List<Member> members() {
      return members;
    }

    @Override
    public boolean isReady() {
      return ready;
    }

    @Override
    public Registration addListener(Consumer<MembershipEvent> listener) {
      Objects.requireNonNull(listener, "listener");
      listeners.add(listener);
      return () -> listeners.remove(listener);
    }

    ClusterReplicator owner() {
      return ClusterReplicator.this;
    }
  }

  /** The replicator behind a view, for {@link KvCluster#replicator}. */
  static ClusterReplicator owning(ClusterView view) {
    return view instanceof View v ? v.owner() : null;
  }
}
