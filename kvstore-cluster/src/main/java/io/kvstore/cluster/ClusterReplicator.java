package io.kvstore.cluster;

import io.kvstore.core.ClusterView;
import io.kvstore.core.Member;
import io.kvstore.core.MembershipEvent;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.Registration;
import io.kvstore.core.spi.ReplicaStore;
import io.kvstore.core.spi.Replicator;
import io.kvstore.core.WriteConcern;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
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
final class ClusterReplicator implements Replicator {
  private static final Logger log = LoggerFactory.getLogger(ClusterReplicator.class);
  private static final CompletableFuture<Void> DONE = CompletableFuture.completedFuture(null);

  private final KvClusterConfig config;
  private final FaultHooks faults;
  private final Stats stats = new Stats(this::connectedPeers);
  private final ClusterNode handle = new ClusterNode(this);
  private final View view = new View();
  private final CopyOnWriteArrayList<Consumer<MembershipEvent>> listeners =
      new CopyOnWriteArrayList<>();
  private final AtomicBoolean started = new AtomicBoolean();
  private final AtomicBoolean closeCalled = new AtomicBoolean();
  private final RateLimitedLog warnings = new RateLimitedLog(log);

  // Read from any thread.
  private volatile ReplicationEngine engine;
  private volatile List<Member> members;
  private volatile Member self;
  private volatile boolean ready;
  private volatile boolean closing;
  private volatile ClusterKeyring keyring;
  /** The partition map from {@link #placementNodes}; this node alone until start. */
  private volatile Placement placement;

  // Confined to the control thread.
  private final Map<String, Peer> peers = new HashMap<>();
  private boolean aloneAllowed;
  private boolean synced;
  private long sequence;
  private PlacementNodes placementNodes;

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
    this.placement = PlacementNodes.placementOf(java.util.Set.of(config.nodeId()),
        config.replicationFactor());
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
    int buckets = store.digest().bucketCount();
    if (config.replicationFactor() != KvClusterConfig.FULL_REPLICATION
        && buckets < Placement.PARTITIONS) {
      throw new IllegalArgumentException("replicationFactor " + config.replicationFactor()
          + " (partitioned mode) needs digestBuckets of at least " + Placement.PARTITIONS
          + " so that digest buckets nest in partitions; the store has " + buckets);
    }
    if (!started.compareAndSet(false, true)) {
      throw new IllegalStateException("this replicator was already started; build one per store");
    }
    String id = config.nodeId();
    control = new ScheduledThreadPoolExecutor(1, daemon("kvstore-cluster-" + id));
    control.setRemoveOnCancelPolicy(true);
    antiEntropy = Executors.newSingleThreadExecutor(daemon("kvstore-ae-" + id));
    events = Executors.newSingleThreadExecutor(daemon("kvstore-membership-events-" + id));
    callbackPool = Executors.newSingleThreadExecutor(daemon("kvstore-callbacks-" + id));
    try {
      ReplicationEngine e = new ReplicationEngine(new ReplicationEngine.Context(id,
          ReplicationEngine.Settings.of(config), store, stats, this::schedule, antiEntropy,
          callbackPool, new Random(), System::nanoTime, this::onSynced, ReplicationEngine.Bug.NONE));
      e.setConfiguredReplicationFactor(config.replicationFactor());
      engine = e;
      placementNodes = new PlacementNodes(id, config.replicationFactor(),
          config.removalDelay().toMillis(), this::schedule, () -> System.nanoTime() / 1_000_000,
          this::onPlacement);
      dataPlane = new DataPlane(config, new Handshakes.Env(id, config.clusterName(),
          config.handshakeTimeout(), stats, this::keyring, faults, e::isClosing), tls, dataGuard, e,
          this::schedule);
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
      execute(e::start);
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
      if (engine != null) {
        engine.beginClose();
      }
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
    ReplicationEngine e = engine;
    return e == null ? DONE : e.replicate(mutation, concern, timeout);
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
   * Where keys live: every key is local with full replication (the default); in partitioned mode
   * the engine's placement decides and foreign keys are forwarded or read remotely.
   */
  @Override
  public io.kvstore.core.spi.Router router() {
    return engine.router;
  }

  /**
   * In partitioned mode first waits, at most {@link KvClusterConfig#leaveTimeout()}, until peers no
   * longer need this node's data (see {@code awaitSafeLeave}); then announces a graceful leave
   * (waiting at most {@link KvClusterConfig#leaveTimeout()} again), fails writes
   * still waiting for acknowledgements, closes connections and stops the threads. Never throws.
   */
  @Override
  public void close() {
    if (!closeCalled.compareAndSet(false, true)) {
      return;
    }
    ReplicationEngine running = engine;
    if (started.get()) {
      if (running != null && running.placement() != null) {
        running.beginLeave(); // forwarded writes go to other owners from now on
      }
      awaitSafeLeave(running); // still fully running: peers may be pulling from this node
    }
    closing = true;
    if (running != null) {
      running.beginClose();
    }
    if (!started.get()) {
      return;
    }
    execute(() -> {
      if (placementNodes != null) {
        placementNodes.selfLeaving();
      }
    });
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

  /**
   * Partitioned mode: before announcing the leave, waits (at most {@code leaveTimeout}) until
   * nothing this node still holds is needed: its writes acknowledged, its handoffs done, no
   * connected co-owner still pulling a partition both own. A co-owner that is gone or on another map
   * is not waited for (waiting would not help); {@link ClusterNode#isSafeToShutdown()} is the
   * operator's stricter check.
   */
  private void awaitSafeLeave(ReplicationEngine e) {
    if (e == null || e.placement() == null) {
      return;
    }
    long start = System.nanoTime();
    long deadline = start + config.leaveTimeout().toNanos();
    String blocker = e.leaveBlocker();
    if (blocker == null) {
      return;
    }
    log.info("node {}: waiting at most {} ms before leaving: {}", config.nodeId(),
        config.leaveTimeout().toMillis(), blocker);
    while (blocker != null && System.nanoTime() < deadline) {
      java.util.concurrent.locks.LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(20));
      blocker = e.leaveBlocker();
    }
    if (blocker != null) {
      log.warn("node {}: leaving after {} ms although {}", config.nodeId(),
          config.leaveTimeout().toMillis(), blocker);
    } else {
      log.info("node {}: peers no longer need its data after {} ms; leaving", config.nodeId(),
          (System.nanoTime() - start) / 1_000_000);
    }
  }

  private void shutdown() {
    try {
      if (control != null) {
        control.submit(() -> {
          for (Peer p : peers.values()) {
            p.link.close();
          }
          if (engine != null) {
            engine.close();
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

  /** The current partition map (full replication until other nodes join); any thread. */
  Placement placement() {
    return placement;
  }

  /** How many partitions this node owns and still pulls (0 outside partitioned mode); any thread. */
  int pendingPartitions() {
    ReplicationEngine e = engine;
    return e == null ? 0 : e.pendingPartitions().cardinality();
  }

  /**
   * Pending partitions per node id: this node's, and each peer's as its last STATUS said (peers that
   * sent none yet are left out). Any thread.
   */
  java.util.Map<String, Integer> pendingByNode() {
    java.util.Map<String, Integer> out = new java.util.TreeMap<>();
    ReplicationEngine e = engine;
    if (e == null) {
      return out;
    }
    out.put(config.nodeId(), e.pendingPartitions().cardinality());
    e.peerStatus().forEach((node, st) -> out.put(node, st.pending().cardinality()));
    return out;
  }

  /** Why stopping this node now could lose data or make it unavailable; null when it cannot. */
  String shutdownBlocker() {
    ReplicationEngine e = engine;
    if (e == null) {
      return "the node is not started";
    }
    if (e.isClosing()) {
      return "the node is closing";
    }
    return e.shutdownBlocker();
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

  // ---- for tests ---------------------------------------------------------------------------------

  InboundGuard dataGuard() {
    return dataGuard;
  }

  InboundGuard membershipGuard() {
    return membershipGuard;
  }

  /** The local replica; null before start. */
  ReplicaStore store() {
    ReplicationEngine e = engine;
    return e == null ? null : e.ctx.store();
  }

  /** A link outside the membership, connected to a data-plane address (for protocol tests). */
  PeerLink connectLink(String memberId, String peerNodeId, String dataAddress) {
    PeerLink link = engine.newLink(memberId, peerNodeId);
    dataPlane.connect(link, dataAddress);
    return link;
  }

  private Cancellable schedule(Runnable task, long delayMillis) {
    try {
      ScheduledFuture<?> f = control.schedule(() -> runSafely(task), delayMillis,
          TimeUnit.MILLISECONDS);
      return () -> f.cancel(false);
    } catch (RejectedExecutionException e) {
      return Cancellable.NONE; // closing
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

  private int connectedPeers() {
    ReplicationEngine e = engine;
    return e == null ? 0 : e.connectedPeers();
  }

  // ---- membership (control thread) -------------------------------------------------------------

  private void onChange(Membership.Change c) {
    switch (c.type()) {
      case ADDED, UPDATED -> onAlive(c);
      case LEAVING -> {
        Peer p = peers.get(c.memberId());
        if (p != null) {
          placementNodes.leaving(p.memberId, p.metadata.nodeId());
        }
        if (p != null && p.status != Member.Status.LEAVING) {
          p.status = Member.Status.LEAVING;
          p.link.closeAfterAnswers(); // its answers to requests already sent are still to come
          rebuild();
          fire(MembershipEvent.Type.LEAVING, p);
        }
      }
      case REMOVED -> {
        Peer p = peers.remove(c.memberId());
        if (p != null) {
          placementNodes.removed(p.memberId, p.metadata.nodeId());
          p.link.close();
          engine.forget(p.link);
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
      p.link = engine.newLink(c.memberId(), md.nodeId());
      peers.put(p.memberId, p);
      dataPlane.connect(p.link, md.dataAddress());
      type = MembershipEvent.Type.ADDED;
    } else {
      if (!md.equals(p.metadata) || p.link.isClosed()) {
        p.link.close();
        engine.forget(p.link);
        p.link = engine.newLink(c.memberId(), md.nodeId());
        dataPlane.connect(p.link, md.dataAddress());
      }
      p.metadata = md;
      p.status = Member.Status.ALIVE;
      type = MembershipEvent.Type.UPDATED;
    }
    rebuild();
    placementNodes.alive(p.memberId, md.nodeId());
    fire(type, p);
  }

  /** The placement node set changed (control thread). */
  private void onPlacement(Placement next) {
    placement = next;
    // Full replication (rf unset, or at least the node count) is today's behaviour: no map.
    engine.setPlacement(next.isFullReplication() ? null : next);
  }

  private void rebuild() {
    List<PeerLink> links = new ArrayList<>();
    Map<String, Peer> byNode = new HashMap<>();
    for (Peer p : peers.values()) {
      if (p.status == Member.Status.ALIVE) {
        links.add(p.link);
      }
      byNode.merge(p.metadata.nodeId(), p, (a, b) -> better(a, b) ? a : b);
    }
    engine.setLive(links);
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
    // Partitioned mode: a node becomes ready once it also pulled every partition it owns (after
    // that, partitions it gains in a rebalance do not make it unready: they are served by the
    // other owners meanwhile).
    if ((synced || (aloneAllowed && engine.livePeers() == 0))
        && engine.pendingPartitions().isEmpty()) {
      ready = true;
      log.info("node {} is ready ({})", config.nodeId(),
          synced ? "synchronised with a peer" : "no peer found; running alone");
    }
  }

  /** An anti-entropy round found nothing more to exchange (control thread). */
  private void onSynced() {
    synced = true;
    evaluateReady();
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
  /** The public handle of this node ({@link KvCluster#node}). */
  ClusterNode handle() {
    return handle;
  }

  static ClusterReplicator owning(ClusterView view) {
    return view instanceof View v ? v.owner() : null;
  }
}
