package io.kvstore.cluster;

import static org.awaitility.Awaitility.await;

import io.kvstore.core.ChangeEvent;
import io.kvstore.core.spi.Digest;
import io.kvstore.core.Durability;
import io.kvstore.core.spi.KeyVersion;
import io.kvstore.core.KvStore;
import io.kvstore.core.Member;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.ReplicaStore;
import io.kvstore.core.Version;
import io.kvstore.core.testing.PowerLossDisk;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.time.InstantSource;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.UnaryOperator;
import java.util.stream.Collectors;

/**
 * Real nodes of a Jepsen run in this JVM (ScaleCube + Netty on loopback, ephemeral ports), wired
 * through a {@link FaultNetwork}, each with its own skewable clock. A node can be killed (cut off,
 * then closed without a leave, like kill -9) and restarted under the same node id: empty for a
 * memory-only cluster, on its data directory for a durable one.
 *
 * <p><b>Durable clusters</b> ({@code dataRoot} set): every node keeps its data in
 * {@code dataRoot/<id>} at the given durability, on a {@link PowerLossDisk} (a new one, with its own
 * seed, per incarnation). A kill then crashes the disk first, so nothing more is written or synced
 * (kill -9), and the restart recovers the directory. {@link #crashAll} stops every node at once, by
 * kill -9 or by a power loss (unsynced writes dropped or torn), and {@link #restartAll} brings them
 * all back on their directories.
 *
 * <p>Every node is seeded with every node started before it, so a healed partition always has a seed
 * across the cut; a restarted node is seeded with every running node. A change listener on every
 * store captures, on the writing thread, the version each local write was stamped with
 * ({@link #lastLocalVersion}), so even a write whose concern failed is identified exactly.
 *
 * <p><b>Membership changes</b> (memory-only clusters with extra settings, e.g. partitioned mode):
 * {@link #join} starts a node under a new id, {@link #beginStop}/{@link #finishStop} stop one
 * gracefully (its leave is announced, nothing is cut), and the kill above is the crash: cut off on
 * both planes first, then closed, so no LEAVING ever reaches a peer and the failure detector and
 * the removal delay have to notice it.
 */
final class JepsenCluster implements AutoCloseable {
  static final String HOST = "127.0.0.1";
  private static final ThreadLocal<Version> LAST_LOCAL = new ThreadLocal<>();

  /** A clock some offset away from the system clock; the offset changes while the node runs. */
  static final class SkewedClock implements InstantSource {
    final AtomicLong offsetMillis = new AtomicLong();

    @Override
    public Instant instant() {
      return Instant.ofEpochMilli(millis());
    }

    @Override
    public long millis() {
      return System.currentTimeMillis() + offsetMillis.get();
    }
  }

  /** One incarnation of a node; {@code disk} is null for a memory-only node. */
  record Node(String id, KvStore store, ClusterReplicator replicator, PowerLossDisk disk) {
    ReplicaStore replica() {
      return replicator.store();
    }
  }

  final FaultNetwork network;
  final Duration maxClockDrift;
  private final String clusterName;
  private final List<String> ids = new CopyOnWriteArrayList<>();
  private final Map<String, Node> running = new ConcurrentHashMap<>();
  private final Map<String, SkewedClock> clocks = new ConcurrentHashMap<>();
  private final List<Node> killed = new CopyOnWriteArrayList<>();
  private final Path dataRoot;
  private final Durability durability;
  private final Duration syncInterval;
  private final long diskSeed;
  private final AtomicLong incarnations = new AtomicLong();
  private final UnaryOperator<KvClusterBuilder> settings;

  /** A memory-only cluster: a restarted node comes back empty. */
  JepsenCluster(String clusterName, FaultNetwork network, Duration maxClockDrift) {
    this(clusterName, network, maxClockDrift, null, null, null, 0);
  }

  /**
   * @param dataRoot parent of the nodes' data directories, or null for a memory-only cluster
   * @param durability the nodes' durability (with a data root)
   * @param syncInterval the sync period of INTERVAL nodes, or null for the default
   * @param diskSeed seeds the power-loss disks (each incarnation's disk gets its own seed from it)
   */
  JepsenCluster(String clusterName, FaultNetwork network, Duration maxClockDrift, Path dataRoot,
      Durability durability, Duration syncInterval, long diskSeed) {
    this(clusterName, network, maxClockDrift, dataRoot, durability, syncInterval, diskSeed, b -> b);
  }

  /**
   * A memory-only cluster whose nodes get extra builder settings (replication factor, removal
   * delay, faster failure detection...), applied after the harness's own.
   */
  JepsenCluster(String clusterName, FaultNetwork network, Duration maxClockDrift,
      UnaryOperator<KvClusterBuilder> settings) {
    this(clusterName, network, maxClockDrift, null, null, null, 0, settings);
  }

  private JepsenCluster(String clusterName, FaultNetwork network, Duration maxClockDrift,
      Path dataRoot, Durability durability, Duration syncInterval, long diskSeed,
      UnaryOperator<KvClusterBuilder> settings) {
    this.settings = Objects.requireNonNull(settings);
    this.clusterName = clusterName;
    this.network = network;
    this.maxClockDrift = maxClockDrift;
    this.dataRoot = dataRoot;
    this.durability = dataRoot == null ? null : Objects.requireNonNull(durability);
    this.syncInterval = syncInterval;
    this.diskSeed = diskSeed;
  }

  /** Whether the nodes keep their data across a restart. */
  boolean durable() {
    return dataRoot != null;
  }

  /** Starts nodes {@code <prefix>1..n} and waits until each sees all and is ready. */
  void start(String prefix, int n) {
    List<String> seeds = new ArrayList<>();
    for (int i = 1; i <= n; i++) {
      String id = prefix + i;
      ids.add(id);
      Node node = startNode(id, seeds);
      seeds.add(node.replicator().membershipAddress());
    }
    awaitFullMembership(Duration.ofSeconds(60));
  }

  private Node startNode(String id, List<String> seeds) {
    SkewedClock clock = clocks.computeIfAbsent(id, x -> new SkewedClock());
    PowerLossDisk disk = dataRoot == null ? null
        : PowerLossDisk.create(diskSeed * 1_000_003 + incarnations.incrementAndGet());
    KvStore store = settings.apply(KvCluster.builder()
        .nodeId(id)
        .clusterName(clusterName)
        .host(HOST)
        .membershipPort(0)
        .dataPort(0)
        .seeds(seeds)
        // A killed node is cut off, so its leave can never be answered: the close would wait the
        // whole timeout. 300 ms is ample for the graceful leave at the end of a run on loopback.
        .leaveTimeout(Duration.ofMillis(300))
        .store(b -> {
          b.clock(clock).maxClockDrift(maxClockDrift);
          if (disk != null) {
            disk.install(b.dataDir(dataRoot.resolve(id)).durability(durability));
            if (syncInterval != null) {
              b.syncInterval(syncInterval);
            }
          }
        })
        .faultHooks(network.hooksFor(id)))
        .build();
    store.addListener("", JepsenCluster::capture);
    ClusterReplicator replicator = java.util.Objects.requireNonNull(ClusterReplicator.owning(store.cluster()));
    network.register(id, replicator.membershipAddress());
    Node node = new Node(id, store, replicator, disk);
    running.put(id, node);
    return node;
  }

  private static void capture(ChangeEvent e) {
    if (e.origin() == ChangeEvent.Origin.LOCAL) {
      LAST_LOCAL.set(e.version());
    }
  }

  /** Forgets the version captured on this thread; call before a write. */
  static void clearLocalVersion() {
    LAST_LOCAL.remove();
  }

  /** The version of the last local write made on this thread since {@link #clearLocalVersion}. */
  static Version lastLocalVersion() {
    return LAST_LOCAL.get();
  }

  List<String> ids() {
    return List.copyOf(ids);
  }

  /** The running incarnation of a node, or null while it is down. */
  Node node(String id) {
    return running.get(id);
  }

  List<Node> runningNodes() {
    return ids.stream().map(running::get).filter(n -> n != null).toList();
  }

  /** Every killed incarnation, for diagnostics (their stores stay readable after close). */
  List<Node> killedNodes() {
    return List.copyOf(killed);
  }

  SkewedClock clock(String id) {
    return clocks.get(id);
  }

  /**
   * First half of a kill: takes the node out of the running set and cuts it off on both planes, so
   * nothing more reaches it or leaves it. Returns the incarnation to {@link #finishKill}.
   */
  Node cutOff(String id) {
    Node node = running.remove(id);
    if (node != null) {
      killed.add(node);
      network.partition(List.of(id), others(id));
    }
    return node;
  }

  /**
   * Second half of a kill: closes the cut-off incarnation (a durable one like kill -9: its disk
   * crashes first, so there is no final flush). Its links stay cut until {@link #restart}: cuts are
   * keyed by node id, and ScaleCube may still flush a message just after close returns.
   */
  void finishKill(Node node) {
    if (node.disk() != null) {
      node.disk().crash(node.store());
    } else {
      node.store().close();
    }
  }

  /**
   * Stops every running node at once: first every link is cut (nothing more flows between them),
   * then every disk crashes (kill -9) or loses its power, all in parallel, while clients may be
   * writing. Returns the stopped incarnations for {@link #markDown}; {@link #restartAll} brings the
   * cluster back.
   *
   * @param powerLoss a power loss (unsynced writes dropped or torn) instead of kill -9
   * @param lastMoment runs on each node's crashing thread right before its disk crashes
   */
  List<Node> crashAll(boolean powerLoss, java.util.function.Consumer<Node> lastMoment) {
    if (!durable()) {
      throw new IllegalStateException("a memory-only cluster would lose everything");
    }
    List<Node> nodes = new ArrayList<>(runningNodes());
    for (Node n : nodes) {
      network.partition(List.of(n.id()), others(n.id()));
    }
    List<Thread> stoppers = new ArrayList<>();
    List<Throwable> failures = new CopyOnWriteArrayList<>();
    for (Node n : nodes) {
      Thread t = new Thread(() -> {
        try {
          lastMoment.accept(n);
          if (powerLoss) {
            n.disk().losePower(n.store());
          } else {
            n.disk().crash(n.store());
          }
        } catch (RuntimeException | Error e) {
          failures.add(e);
        }
      }, "crash-" + n.id());
      t.start();
      stoppers.add(t);
    }
    for (Thread t : stoppers) {
      try {
        t.join(30_000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException(e);
      }
      if (t.isAlive()) {
        throw new IllegalStateException(t.getName() + " did not finish within 30 s");
      }
    }
    if (!failures.isEmpty()) {
      IllegalStateException e = new IllegalStateException("crashing the cluster failed");
      failures.forEach(e::addSuppressed);
      throw e;
    }
    return nodes;
  }

  /**
   * After {@link #crashAll}: takes the crashed incarnations out of the running set. Until then
   * clients may still reach them; their writes fail, as they would against a dead process.
   */
  void markDown(List<Node> nodes) {
    for (Node n : nodes) {
      running.remove(n.id(), n);
      killed.add(n);
    }
  }

  /**
   * Restarts every stopped node on its data directory, in id order, each seeded with the ones
   * restarted before it (as {@link #start} does); returns without waiting for membership.
   */
  List<Node> restartAll() {
    List<Node> started = new ArrayList<>();
    List<String> seeds = new ArrayList<>(runningNodes().stream()
        .map(n -> n.replicator().membershipAddress()).toList());
    for (String id : ids) {
      if (running.containsKey(id)) {
        continue;
      }
      network.restore(List.of(id), others(id));
      Node node = startNode(id, List.copyOf(seeds));
      seeds.add(node.replicator().membershipAddress());
      started.add(node);
    }
    return started;
  }

  /**
   * Starts a node under a new id (a join), seeded with every running node; returns without waiting
   * for membership.
   */
  Node join(String id) {
    if (ids.contains(id)) {
      throw new IllegalArgumentException(id + " is already a node of this cluster");
    }
    List<String> seeds = runningNodes().stream().map(n -> n.replicator().membershipAddress())
        .toList();
    ids.add(id);
    return startNode(id, seeds);
  }

  /**
   * First half of a graceful stop: takes the node out of the running set (clients stop choosing
   * it) without cutting any link. {@link #finishStop} closes it, announcing its leave; it can come
   * back with {@link #restart} under the same id.
   */
  Node beginStop(String id) {
    Node node = running.remove(id);
    if (node != null) {
      killed.add(node);
    }
    return node;
  }

  /** Second half of a graceful stop: {@code close()}, which gossips LEAVING before it returns. */
  void finishStop(Node node) {
    node.store().close();
  }

  /** The partition map version a running node computes now. */
  static long mapVersion(Node node) {
    return KvCluster.node(node.store()).orElseThrow().partitionMapVersion();
  }

  List<String> others(String id) {
    List<String> others = new ArrayList<>(ids);
    others.remove(id);
    return others;
  }

  /**
   * Restarts a killed node under the same id (empty, or on its data directory), seeded with every
   * running node.
   */
  Node restart(String id) {
    network.restore(List.of(id), others(id));
    List<String> seeds = runningNodes().stream().map(n -> n.replicator().membershipAddress())
        .toList();
    return startNode(id, seeds);
  }

  /** Waits until every running node lists exactly the running nodes and is ready. */
  void awaitFullMembership(Duration within) {
    await().atMost(within).pollInterval(Duration.ofMillis(100)).untilAsserted(() -> {
      Set<String> expected = new TreeSet<>(running.keySet());
      for (Node n : runningNodes()) {
        Set<String> seen = n.store().cluster().members().stream().map(Member::nodeId)
            .collect(Collectors.toCollection(TreeSet::new));
        if (!seen.equals(expected) || !n.store().cluster().isReady()) {
          throw new AssertionError(n.id() + " sees " + seen + " (ready "
              + n.store().cluster().isReady() + "), expected " + expected);
        }
      }
    });
  }

  /** Whether every running node has the same digest (a cheap first test of identical state). */
  boolean digestsAgree() {
    Digest first = null;
    for (Node n : runningNodes()) {
      Digest d = n.replica().digest();
      if (first == null) {
        first = d;
      } else if (!first.equals(d)) {
        return false;
      }
    }
    return true;
  }

  /** Every key (live, deleted or expired) of every running node, with its version and value. */
  Map<String, Map<String, HistoryChecker.Cell>> states() {
    Map<String, Map<String, HistoryChecker.Cell>> out = new TreeMap<>();
    for (Node n : runningNodes()) {
      ReplicaStore r = n.replica();
      BitSet all = new BitSet();
      all.set(0, r.digest().bucketCount());
      List<String> keys = r.keyVersions(all).stream().map(KeyVersion::key).toList();
      Map<String, HistoryChecker.Cell> cells = new TreeMap<>();
      for (Mutation m : r.mutations(keys)) {
        cells.put(m.key(), cell(m));
      }
      out.put(n.id(), cells);
    }
    return out;
  }

  /** What a node holds for one key (value, tombstone, or nothing). */
  static Optional<HistoryChecker.Cell> cellOf(Node n, String key) {
    List<Mutation> ms = n.replica().mutations(List.of(key));
    return ms.isEmpty() ? Optional.empty() : Optional.of(cell(ms.get(0)));
  }

  private static HistoryChecker.Cell cell(Mutation m) {
    return new HistoryChecker.Cell(m.version(), m.isDelete() || m.valueUnsafe() == null ? null
        : new String(m.valueUnsafe(), StandardCharsets.UTF_8));
  }

  @Override
  public void close() {
    List<Thread> closers = new ArrayList<>();
    for (Node n : runningNodes()) {
      Thread t = new Thread(() -> n.store().close(), "close-" + n.id());
      t.start();
      closers.add(t);
    }
    running.clear();
    for (Thread t : closers) {
      try {
        t.join(15_000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }
}
