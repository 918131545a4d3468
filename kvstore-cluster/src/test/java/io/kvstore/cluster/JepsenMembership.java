package io.kvstore.cluster;

import static org.awaitility.Awaitility.await;

import io.kvstore.core.KvStore;
import io.kvstore.core.ReadConcern;
import io.kvstore.core.ReadOptions;
import io.kvstore.core.Version;
import io.kvstore.core.Versioned;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteOptions;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.BiPredicate;
import java.util.function.Supplier;
import java.util.stream.Collectors;
import org.awaitility.core.ConditionTimeoutException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Membership nemeses against real in-JVM nodes in partitioned mode (rf below the node count, short
 * removal delay and anti-entropy interval): a node joins; a node leaves gracefully; a node crashes
 * right after a join changed the map, while partitions move; rf − 1 nodes crash at once; every node
 * is restarted in turn (graceful stop, a fresh memory-only node under the same id, wait until it is
 * safe, next). Clients write at QUORUM through random live nodes the whole time: new keys (deleted
 * later by their writer, at most once) and overwrites of a few shared keys. A node that has just
 * started acknowledges QUORUM alone until it is ready (the disabled case in
 * {@link JepsenMembershipTest}), also for writes forwarded to it, so clients wait while a node
 * starts until it is ready, and then use only ready nodes. The node the handoff kill crashed stays
 * down until a later join brings its id back; the double kill's victims restart empty once the map
 * has dropped them.
 *
 * <p><b>Checker.</b> After each nemesis the clients stop and every key ever written is read at
 * QUORUM (through one random live node after a round, through every live node at the end), polled
 * until the answers satisfy the rules or the budget runs out: a key whose last acknowledged write is
 * a put must read that put's value or a newer candidate's (LOST otherwise), an acknowledged delete
 * must read absent (RESURRECTED otherwise), and every value read must be one some write made
 * (UNEXPLAINED otherwise). At the end the nodes must also agree with each other key by key, and
 * every owner of every partition (in the agreed map) must hold the newest version any replica holds
 * (UNDER_REPLICATED otherwise). A figure, not a rule: right after each map change, QUORUM reads
 * of a sample of acknowledged writes count those that miss (a new owner serves before it holds its
 * partitions until pending owners exist).
 *
 * <p><b>Crashes and stops.</b> Client writes hold a read lock, the nemesis takes the write lock to
 * take nodes out of the running set; under it, every acknowledged write that no remaining node
 * holds is marked lost to that event. Losing one is allowed only when rf − 1 nodes went at once (the
 * double kill: both holders of a QUORUM write may be among them); anywhere else it is a violation
 * ({@code LOST_AT_STOP}). A QUORUM acknowledgement held by fewer than a majority of rf nodes right
 * after it is {@code QUORUM_UNDER_REPLICATED}. A node starts under the write lock too (it can
 * acknowledge as a replica before its build returns, when the harness cannot see it yet), which
 * pauses the clients for as long as the start takes.
 *
 * <p><b>Safe to stop.</b> The rolling restart waits, before each stop, for a {@code safeToStop}
 * predicate (node to stop, cluster): by default the product's {@code ClusterNode.isSafeToShutdown()}
 * ({@link #isSafeToShutdown}). {@link #ownersElsewhereHoldEverything} is the harness's own, stronger
 * oracle (every running node computes the same map, and every acknowledged write is held by every
 * other running owner of its key), kept for comparison runs.
 */
final class JepsenMembership {
  private static final Logger log = LoggerFactory.getLogger(JepsenMembership.class);
  private static final int SHARED_KEYS = 8;
  private static final ReadOptions QUORUM_READ = ReadOptions.concern(ReadConcern.QUORUM)
      .withTimeout(Duration.ofSeconds(2));

  /** What the nemesis does to the membership. */
  enum Nemesis { JOIN, LEAVE, KILL_DURING_HANDOFF, KILL_RF_MINUS_ONE, ROLLING_RESTART }

  /**
   * @param seed fixes the nemesis choices and every client's
   * @param nodes nodes at the start
   * @param rf replication factor
   * @param plan the nemeses, in order
   * @param clients client threads
   * @param opInterval pause between one client's operations
   * @param removalDelay the nodes' removal delay
   * @param antiEntropyInterval the nodes' anti-entropy interval
   * @param quiet how long clients write after each nemesis before the round's check
   * @param readBudget how long the checks poll QUORUM reads for the rules to hold
   * @param rollingWaits whether the rolling restart waits for its safety check and for the maps
   *     between nodes; false is the broken variant that shows the checker finds the loss
   */
  record Config(long seed, int nodes, int rf, List<Nemesis> plan, int clients, Duration opInterval,
      Duration removalDelay, Duration antiEntropyInterval, Duration quiet, Duration readBudget,
      boolean rollingWaits) {
    Config {
      plan = List.copyOf(plan);
    }

    /** Every nemesis once, in the order of the task: the run inside {@code verify}. */
    static Config shortRun(long seed) {
      return new Config(seed, 5, 3, List.of(Nemesis.values()), 4, Duration.ofMillis(20),
          Duration.ofMillis(1_500), Duration.ofMillis(250), Duration.ofMillis(300),
          Duration.ofSeconds(15), true);
    }

    /**
     * The broken variant: the rolling restart stops every node in turn, 100 ms apart, without
     * waiting until a stop is safe (and restarts none); reads polled for 3 s only.
     */
    static Config unsafeRollingRestart(long seed) {
      return new Config(seed, 5, 3, List.of(Nemesis.ROLLING_RESTART), 4, Duration.ofMillis(20),
          Duration.ofSeconds(2), Duration.ofMillis(250), Duration.ofMillis(300),
          Duration.ofSeconds(3), false);
    }

    /** {@code rounds} nemeses drawn at random (seeded), longer quiet phases. */
    static Config longRun(long seed, int rounds) {
      Random r = new Random(seed ^ 0x5eed);
      List<Nemesis> plan = new ArrayList<>();
      for (int i = 0; i < rounds; i++) {
        plan.add(Nemesis.values()[r.nextInt(Nemesis.values().length)]);
      }
      return new Config(seed, 5, 3, plan, 4, Duration.ofMillis(20), Duration.ofSeconds(2),
          Duration.ofMillis(250), Duration.ofSeconds(2), Duration.ofSeconds(15), true);
    }
  }

  /** One client write. Unique keys get one put and at most one delete; shared keys only puts. */
  static final class Op {
    enum Kind { PUT, DELETE }

    final long id;
    final String key;
    final Kind kind;
    final String value;
    final String via;
    final long startNanos;
    volatile long endNanos;
    volatile boolean pending = true;
    volatile boolean acked;
    /** A put's version, from its future (acknowledged puts only). */
    volatile Version version;
    volatile String error;
    volatile int holders;
    /** Which crash or stop left no other node holding this write. */
    volatile String lostTo;

    Op(long id, String key, Kind kind, String value, String via) {
      this.id = id;
      this.key = key;
      this.kind = kind;
      this.value = value;
      this.via = via;
      this.startNanos = System.nanoTime();
    }

    String describe(long origin) {
      return String.format("#%d %8.3f..%-8s %-6s %s%s via %s -> %s%s%s%s", id,
          (startNanos - origin) / 1e9, endNanos == 0 ? "?" : String.format("%.3f",
              (endNanos - origin) / 1e9), kind, key, value == null ? "" : "=" + value, via,
          pending ? "PENDING" : acked ? "OK" : "UNKNOWN", version == null ? "" : " v=" + version,
          acked ? " holders=" + holders : "",
          (lostTo != null ? " LOST-TO(" + lostTo + ")" : "") + (error != null ? " [" + error + "]"
              : ""));
    }
  }

  /** A violation of the rules, for one key. */
  record Violation(String kind, String key, String message) {}

  /** The outcome of a run. */
  record Report(Config config, List<Nemesis> done, List<String> log, List<Violation> violations,
      int writes,
      int acked, int unknown, int keys, Map<String, Integer> excusedByEvent, long finalConvergedMillis,
      int probeMissed, int probeReads, long elapsedMillis, String evidence) {
    boolean ok() {
      return violations.isEmpty();
    }

    String figures() {
      Map<String, Long> kinds = violations.stream().collect(Collectors.groupingBy(Violation::kind,
          TreeMap::new, Collectors.counting()));
      return String.format("seed %d, %d nodes at the start, rf %d, plan %s, %d s%n"
          + "writes %d (QUORUM acknowledged %d, unknown %d), keys %d%n"
          + "acknowledged writes no surviving node held, by event (allowed only for %s): %s%n"
          + "QUORUM reads right after a map change that missed an acknowledged write (reported, "
          + "not checked: a reader whose map lags may read a majority of the old owners, "
          + "docs/CLUSTER.md): %d of %d%n"
          + "violations %s; final convergence %d ms", config.seed(), config.nodes(), config.rf(),
          config.plan(), elapsedMillis / 1000, writes, acked, unknown, keys,
          Nemesis.KILL_RF_MINUS_ONE, excusedByEvent, probeMissed, probeReads, kinds,
          finalConvergedMillis);
    }

    String failureMessage() {
      return "Jepsen membership run failed: seed=" + config.seed() + " (replay: -Dkvstore.seed="
          + config.seed() + ")\n" + figures() + "\nschedule:\n  " + String.join("\n  ", log)
          + "\n" + evidence;
    }
  }

  /**
   * The safety check available today (see the class comment): the map agrees everywhere, and every
   * acknowledged write is held by every running owner of its key other than {@code node}.
   */
  final BiPredicate<JepsenCluster.Node, JepsenCluster> ownersElsewhereHoldEverything =
      (node, c) -> mapAgrees() && underReplicatedExcept(node.id(), 1).isEmpty();

  private final Config config;
  private final Random random;
  private final JepsenCluster cluster;
  private final BiPredicate<JepsenCluster.Node, JepsenCluster> safeToStop;
  private final ConcurrentLinkedQueue<Op> history = new ConcurrentLinkedQueue<>();
  private final AtomicLong opIds = new AtomicLong();
  private final ReentrantReadWriteLock stillPicture = new ReentrantReadWriteLock(true);
  private final List<String> faultLog = Collections.synchronizedList(new ArrayList<>());
  private final Map<String, Integer> excused = new LinkedHashMap<>();
  private final List<Violation> violations = Collections.synchronizedList(new ArrayList<>());
  /** Nodes stopping gracefully: out of the running set, still able to acknowledge until closed. */
  private final Set<JepsenCluster.Node> stopping = ConcurrentHashMap.newKeySet();
  private int rounds;
  private final List<Nemesis> done = new ArrayList<>();
  private final CountDownLatch abort = new CountDownLatch(1);
  private final AtomicInteger nextNode = new AtomicInteger();
  private static final int PROBE_KEYS = 200;
  private final Random probeRandom;
  private final AtomicInteger probeMissed = new AtomicInteger();
  private final AtomicInteger probeReads = new AtomicInteger();
  private long origin;

  /**
   * The product's own check: {@link ClusterNode#isSafeToShutdown()} on the node to stop (every
   * co-owner connected, on the same map and not pulling a shared partition, its own fan-out
   * acknowledged and handoffs done).
   */
  final BiPredicate<JepsenCluster.Node, JepsenCluster> isSafeToShutdown =
      (n, c) -> KvCluster.node(n.store()).orElseThrow().isSafeToShutdown();

  /** A run whose rolling restart waits for {@link ClusterNode#isSafeToShutdown()}. */
  JepsenMembership(Config config) {
    this(config, null);
  }

  /**
   * @param safeToStop what the rolling restart waits for before each stop; null for
   *     {@link #isSafeToShutdown}
   */
  JepsenMembership(Config config, BiPredicate<JepsenCluster.Node, JepsenCluster> safeToStop) {
    this.config = config;
    this.random = new Random(config.seed());
    this.probeRandom = new Random(config.seed() ^ 0x9e3779b97f4a7c15L);
    this.cluster = new JepsenCluster("jepsen-membership", new FaultNetwork(config.seed() * 31 + 7),
        Duration.ofSeconds(60), b -> b.replicationFactor(config.rf())
            .removalDelay(config.removalDelay())
            .antiEntropyInterval(config.antiEntropyInterval())
            // Faster failure detection than the defaults, so a crash reaches the map within a few
            // seconds: suspicion = 2 x ceil(log2(n + 1)) x 300 ms = 1.8 s for 4-7 nodes. It also
            // bounds a same-id restart after a graceful leave: the new incarnation is ignored
            // until every peer has removed the old one.
            .pingInterval(Duration.ofMillis(300))
            .pingTimeout(Duration.ofMillis(150))
            .suspicionMultiplier(2)
            // A restart is seeded with every running node; a seed that does not answer at once
            // (seen: the start then blocked ~2.2 s, holding the clients' lock) is retried later.
            .joinTimeout(Duration.ofSeconds(1))
            .metadataTimeout(Duration.ofSeconds(1))
            .connectTimeout(Duration.ofMillis(500)));
    this.safeToStop = !config.rollingWaits() ? (n, c) -> true
        : safeToStop != null ? safeToStop : isSafeToShutdown;
  }

  /** Runs the plan and returns the report; never throws for a violation. */
  Report run() {
    origin = System.nanoTime();
    long converged = -1;
    try {
      cluster.start("m", config.nodes());
      nextNode.set(config.nodes());
      awaitMap(Duration.ofSeconds(15), "start");
      for (Nemesis n : config.plan()) {
        if (!round(n)) {
          break;
        }
      }
      if (violations.isEmpty()) {
        converged = finalCheck();
      }
    } catch (RuntimeException | Error e) {
      violations.add(new Violation("HARNESS", "-", e.toString()));
      log.error("seed {}: the run failed", config.seed(), e);
    } finally {
      abort.countDown();
      cluster.close();
    }
    int acked = (int) history.stream().filter(o -> o.acked).count();
    Set<String> keys = history.stream().map(o -> o.key).collect(Collectors.toSet());
    return new Report(config, List.copyOf(done), List.copyOf(faultLog), List.copyOf(violations),
        history.size(),
        acked, history.size() - acked, keys.size(),
        Collections.unmodifiableMap(new LinkedHashMap<>(excused)), converged, probeMissed.get(),
        probeReads.get(),
        (System.nanoTime() - origin) / 1_000_000, evidence());
  }

  // ---- rounds -----------------------------------------------------------------------------------

  /**
   * The planned nemesis, or the one that keeps the cluster between rf + 2 and 8 nodes (a long run
   * draws at random): no leave or double kill below rf + 2 running nodes, no join above 7.
   */
  private Nemesis feasible(Nemesis planned) {
    int running = cluster.runningNodes().size();
    if ((planned == Nemesis.LEAVE || planned == Nemesis.KILL_RF_MINUS_ONE)
        && running < config.rf() + 2) {
      return Nemesis.JOIN;
    }
    if (planned == Nemesis.JOIN && running > 7) {
      return Nemesis.LEAVE;
    }
    return planned;
  }

  private boolean round(Nemesis planned) {
    Nemesis n = feasible(planned);
    List<Client> clients = new ArrayList<>();
    for (int c = 0; c < config.clients(); c++) {
      clients.add(new Client("c" + c, new Random(config.seed() * 1_000 + c * 7919L
          + rounds * 104_729L)));
    }
    ScheduledExecutorService pool = Executors.newScheduledThreadPool(clients.size(), r -> {
      Thread t = new Thread(r, "jepsen-membership-client");
      t.setDaemon(true);
      return t;
    });
    for (Client c : clients) {
      pool.scheduleWithFixedDelay(c::step, 0, config.opInterval().toMillis(), TimeUnit.MILLISECONDS);
    }
    rounds++;
    long t0 = System.nanoTime();
    note("start %s (running %s)", n, runningIds());
    try {
      switch (n) {
        case JOIN -> join();
        case LEAVE -> leave();
        case KILL_DURING_HANDOFF -> killDuringHandoff();
        case KILL_RF_MINUS_ONE -> killRfMinusOne();
        case ROLLING_RESTART -> rollingRestart();
        default -> throw new IllegalStateException("unknown nemesis " + n);
      }
      quiet(config.quiet().toMillis());
    } finally {
      pool.shutdown();
      try {
        if (!pool.awaitTermination(15, TimeUnit.SECONDS)) {
          throw new IllegalStateException("clients did not stop");
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException(e);
      }
    }
    done.add(n);
    note("end %s after %d ms; running %s", n, (System.nanoTime() - t0) / 1_000_000, runningIds());
    List<JepsenCluster.Node> running = cluster.runningNodes();
    if (running.isEmpty()) {
      note("round %s: no node left running to read through", n);
      return violations.isEmpty();
    }
    JepsenCluster.Node reader = running.get(random.nextInt(running.size()));
    long checked = awaitReads(List.of(reader), config.readBudget(), "round " + n);
    note("round %s: reads through %s satisfy the rules %d ms after the clients stopped", n,
        reader.id(), checked);
    return violations.isEmpty();
  }

  /** A node joins: a new id, or (when some are down) a down id restarted empty. */
  private void join() {
    List<String> down = downIds();
    String id = down.isEmpty() ? "m" + nextNode.incrementAndGet()
        : down.get(random.nextInt(down.size()));
    long t0 = System.nanoTime();
    lockedStart(() -> down.contains(id) ? cluster.restart(id) : cluster.join(id));
    awaitMap(Duration.ofSeconds(15), "join of " + id);
    probe("join of " + id);
    note("  %s joined; every map agrees %d ms after its start", id,
        (System.nanoTime() - t0) / 1_000_000);
  }

  /** A random running node leaves gracefully. */
  private void leave() {
    List<String> ids = runningIds();
    String id = ids.get(random.nextInt(ids.size()));
    long t0 = System.nanoTime();
    JepsenCluster.Node node = takeOut(List.of(id), "leave of " + id, false);
    stop(node);
    awaitMap(Duration.ofSeconds(15), "leave of " + id);
    probe("leave of " + id);
    note("  %s left; every map agrees %d ms after the stop began", id,
        (System.nanoTime() - t0) / 1_000_000);
  }

  /**
   * A node rejoins (a down id restarted empty, or a new id), and as soon as one node's map changed
   * a random other node crashes, while the partitions that changed owners are moving.
   */
  private void killDuringHandoff() {
    List<String> down = downIds();
    String joiner = down.isEmpty() ? "m" + nextNode.incrementAndGet()
        : down.get(random.nextInt(down.size()));
    Map<String, Long> before = new TreeMap<>();
    for (JepsenCluster.Node n : cluster.runningNodes()) {
      before.put(n.id(), JepsenCluster.mapVersion(n));
    }
    lockedStart(() -> down.contains(joiner) ? cluster.restart(joiner) : cluster.join(joiner));
    long t0 = System.nanoTime();
    await().atMost(Duration.ofSeconds(15)).pollInterval(Duration.ofMillis(5)).until(() ->
        cluster.runningNodes().stream().anyMatch(n -> before.containsKey(n.id())
            && JepsenCluster.mapVersion(n) != before.get(n.id())));
    List<String> victims = new ArrayList<>(before.keySet());
    String victim = victims.get(random.nextInt(victims.size()));
    JepsenCluster.Node dead = takeOut(List.of(victim), "kill of " + victim
        + " during the handoff to " + joiner, true);
    cluster.finishKill(dead);
    note("  %s (re)joined; %s killed %d ms after the first map changed", joiner, victim,
        (System.nanoTime() - t0) / 1_000_000);
    awaitMap(Duration.ofSeconds(20), "kill during handoff");
    probe("kill during handoff");
    note("  every map agrees again %d ms after the kill", (System.nanoTime() - t0) / 1_000_000);
  }

  /** rf − 1 random running nodes crash at once; once the map dropped them, they restart empty. */
  private void killRfMinusOne() {
    List<String> ids = runningIds();
    Collections.shuffle(ids, random);
    List<String> victims = List.copyOf(ids.subList(0, config.rf() - 1));
    long t0 = System.nanoTime();
    stillPicture.writeLock().lock();
    List<JepsenCluster.Node> dead = new ArrayList<>();
    try {
      for (String v : victims) {
        dead.add(cluster.cutOff(v));
      }
      markLost(victims, "kill of " + victims + " at once");
    } finally {
      stillPicture.writeLock().unlock();
    }
    dead.forEach(cluster::finishKill);
    awaitMap(Duration.ofSeconds(20), "kill of " + victims);
    note("  %s killed at once; every map dropped them %d ms later", victims,
        (System.nanoTime() - t0) / 1_000_000);
    for (String id : victims) {
      lockedStart(() -> cluster.restart(id));
    }
    awaitMap(Duration.ofSeconds(15), "restart of " + victims);
    probe("restart of " + victims);
    note("  %s restarted empty; every map agrees %d ms after the kill", victims,
        (System.nanoTime() - t0) / 1_000_000);
  }

  /**
   * Every running node in turn: wait until it is safe to stop, stop it gracefully, start a fresh
   * memory-only node under its id, wait until the maps agree, next.
   */
  private void rollingRestart() {
    if (!config.rollingWaits()) {
      rollingRestartWithoutWaiting();
      return;
    }
    for (String id : runningIds()) {
      long t0 = System.nanoTime();
      JepsenCluster.Node node = cluster.node(id);
      try {
        await().atMost(Duration.ofSeconds(20)).pollInterval(Duration.ofMillis(50))
            .until(() -> safeToStop.test(node, cluster));
      } catch (ConditionTimeoutException e) {
        violations.add(new Violation("NEVER_SAFE", "-", id + " was not safe to stop within 20 s: "
            + underReplicatedExcept(id, 5)));
        return;
      }
      long safe = System.nanoTime();
      JepsenCluster.Node stopped = null;
      // Re-checked under the lock, so no write is acknowledged between the check and the stop.
      for (int attempt = 0; stopped == null; attempt++) {
        stillPicture.writeLock().lock();
        try {
          if (safeToStop.test(node, cluster)) {
            stopped = cluster.beginStop(id);
            stopping.add(stopped);
            markLost(List.of(id), "rolling stop of " + id);
          }
        } finally {
          stillPicture.writeLock().unlock();
        }
        if (stopped == null) {
          if (attempt == 100) {
            violations.add(new Violation("NEVER_SAFE", "-", id + " safe without the lock, never"
                + " with it"));
            return;
          }
          quiet(20);
        }
      }
      stop(stopped);
      // At once: its start (ScaleCube's join, ~2 s late in a run) overlaps the peers' removal of
      // the old incarnation (which the new one waits for anyway).
      lockedStart(() -> cluster.restart(id));
      awaitMap(Duration.ofSeconds(15), "rolling restart of " + id);
      probe("rolling restart of " + id);
      note("  %s: safe after %d ms, stopped and back (empty), maps agree after %d ms", id,
          (safe - t0) / 1_000_000, (System.nanoTime() - safe) / 1_000_000);
    }
  }

  /**
   * The broken variant: every node stopped in turn, 100 ms apart, without waiting for anything
   * (each close runs aside), and none restarted: what a rolling restart that never waits until a
   * stop is safe comes down to when the stops outpace anti-entropy.
   */
  private void rollingRestartWithoutWaiting() {
    List<Thread> closes = new ArrayList<>();
    for (String id : runningIds()) {
      JepsenCluster.Node stopped = takeOut(List.of(id), "rolling stop of " + id, false);
      Thread t = new Thread(() -> stop(stopped), "stop-" + id);
      t.start();
      closes.add(t);
      quiet(100);
    }
    for (Thread t : closes) {
      try {
        t.join(30_000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException(e);
      }
    }
  }

  /** Closes a node taken out gracefully; it counts as a holder until its close returns. */
  private void stop(JepsenCluster.Node node) {
    try {
      cluster.finishStop(node);
    } finally {
      stopping.remove(node);
    }
  }

  /**
   * Right after a map change settled (clients still writing): QUORUM reads of up to
   * {@value #PROBE_KEYS} keys with an acknowledged write, through random ready nodes, counting those
   * that miss it. Not a violation: a new owner serves before it holds its partitions (no pending
   * owners yet, CLUSTER.md), so a read can meet a majority that lacks the write. A figure only.
   */
  private void probe(String event) {
    List<Op> acked = new ArrayList<>(newestAcked().values());
    Collections.shuffle(acked, probeRandom);
    List<Op> sample = acked.subList(0, Math.min(PROBE_KEYS, acked.size()));
    List<JepsenCluster.Node> readers = cluster.runningNodes().stream()
        .filter(n -> n.store().cluster().isReady()).toList();
    if (sample.isEmpty() || readers.isEmpty()) {
      return;
    }
    Map<Op, CompletableFuture<Optional<Versioned>>> reads = new LinkedHashMap<>();
    Map<Op, String> via = new LinkedHashMap<>();
    for (Op op : sample) {
      JepsenCluster.Node reader = readers.get(probeRandom.nextInt(readers.size()));
      via.put(op, reader.id());
      reads.put(op, reader.store().getAsync(op.key, QUORUM_READ));
    }
    reads.values().forEach(f -> f.handle((v, e) -> null).join());
    // A delete whose outcome is unknown (or that is still running) may have run: absent is then
    // no miss. Taken after the reads: a delete is in the history before it is issued.
    Set<String> deleted = history.stream().filter(o -> o.kind == Op.Kind.DELETE).map(o -> o.key)
        .collect(Collectors.toSet());
    int missed = 0;
    int failed = 0;
    String first = "";
    for (Map.Entry<Op, CompletableFuture<Optional<Versioned>>> r : reads.entrySet()) {
      Op op = r.getKey();
      Optional<Versioned> got = r.getValue().handle((v, e) -> v).join();
      if (got == null) {
        failed++;
      } else if (op.kind == Op.Kind.DELETE ? got.isPresent()
          : got.isEmpty() ? !deleted.contains(op.key)
              : got.get().version().compareTo(op.version) < 0) {
        if (missed++ == 0) {
          first = String.format("; first: %s via %s got %s, owners %s", op.describe(origin),
              via.get(op), got.map(v -> v.version() + "=" + v.valueAsString()).orElse("nothing"),
              Placement.of(runningIds(), config.rf()).ownersOf(op.key))
              + "; replicas now: " + replicasOf(op.key) + "; maps " + mapsNow();
        }
      }
    }
    probeMissed.addAndGet(missed);
    probeReads.addAndGet(sample.size());
    note("  probe after the %s: %d of %d QUORUM reads missed an acknowledged write (%d failed)%s",
        event, missed, sample.size(), failed, first);
  }

  /** What every running node's replica holds for a key, for diagnostics. */
  private String replicasOf(String key) {
    Map<String, String> out = new TreeMap<>();
    for (JepsenCluster.Node n : cluster.runningNodes()) {
      out.put(n.id(), JepsenCluster.cellOf(n, key).map(String::valueOf).orElse("-"));
    }
    return out.toString();
  }

  private String mapsNow() {
    Map<String, String> out = new TreeMap<>();
    for (JepsenCluster.Node n : cluster.runningNodes()) {
      out.put(n.id(), Long.toHexString(JepsenCluster.mapVersion(n)));
    }
    return out.toString();
  }

  /** Starts a node while no client write is under way (its acks must be visible to the checks). */
  private void lockedStart(Supplier<JepsenCluster.Node> start) {
    stillPicture.writeLock().lock();
    try {
      JepsenCluster.Node node = start.get();
      // Until it is ready, a new node acknowledges QUORUM alone (its placement set is itself:
      // the disabled case in JepsenMembershipTest), also for writes other nodes forward to it as
      // an owner. No client write runs before then; usually a few ms after its start returns.
      try {
        await().atMost(Duration.ofSeconds(10)).pollInterval(Duration.ofMillis(2))
            .until(() -> node.store().cluster().isReady());
      } catch (ConditionTimeoutException e) {
        note("  %s NOT ready 10 s after its start; clients go on", node.id());
      }
    } finally {
      stillPicture.writeLock().unlock();
    }
  }

  /** Takes nodes out of the running set (a crash cuts them off first) and marks what they took. */
  private JepsenCluster.Node takeOut(List<String> ids, String event, boolean crash) {
    stillPicture.writeLock().lock();
    try {
      JepsenCluster.Node node = null;
      for (String id : ids) {
        node = crash ? cluster.cutOff(id) : cluster.beginStop(id);
        if (!crash) {
          stopping.add(node);
        }
      }
      markLost(ids, event);
      return node;
    } finally {
      stillPicture.writeLock().unlock();
    }
  }

  /**
   * Under the write lock, the nodes already out of the running set: every acknowledged write that
   * no running node holds is lost to this event; allowed only when rf − 1 nodes went at once.
   */
  private void markLost(List<String> gone, String event) {
    int lost = 0;
    for (Op op : history) {
      if (!op.acked || op.lostTo != null) {
        continue;
      }
      boolean held = false;
      for (JepsenCluster.Node n : cluster.runningNodes()) {
        if (holds(n, op)) {
          held = true;
          break;
        }
      }
      if (!held) {
        op.lostTo = event;
        lost++;
        if (gone.size() < config.rf() - 1 || config.rf() < 2) {
          violations.add(new Violation("LOST_AT_STOP", op.key, "#" + op.id + " (acknowledged at "
              + "QUORUM) was held by no node left running after the " + event));
        }
      }
    }
    excused.merge(event, lost, Integer::sum);
    note("  %s: %d acknowledged write(s) held by no remaining node", event, lost);
  }

  /** Whether a node holds an acknowledged write: the put's version or newer, or the tombstone. */
  private static boolean holds(JepsenCluster.Node n, Op op) {
    Optional<HistoryChecker.Cell> c = JepsenCluster.cellOf(n, op.key);
    if (c.isEmpty()) {
      return false;
    }
    if (op.kind == Op.Kind.DELETE) {
      return c.get().value() == null;
    }
    return c.get().version().compareTo(op.version) >= 0;
  }

  // ---- checks -----------------------------------------------------------------------------------

  private List<String> runningIds() {
    return cluster.runningNodes().stream().map(JepsenCluster.Node::id)
        .collect(Collectors.toCollection(ArrayList::new));
  }

  private List<String> downIds() {
    List<String> down = new ArrayList<>(cluster.ids());
    down.removeAll(runningIds());
    return down;
  }

  private long expectedMap() {
    return Placement.of(runningIds(), config.rf()).fingerprint();
  }

  /** Whether every running node computes the map of exactly the running nodes. */
  private boolean mapAgrees() {
    long expected = expectedMap();
    return cluster.runningNodes().stream().allMatch(n -> n.store().cluster().isReady()
        && JepsenCluster.mapVersion(n) == expected);
  }

  private void awaitMap(Duration within, String after) {
    try {
      await().atMost(within).pollInterval(Duration.ofMillis(20)).until(this::mapAgrees);
    } catch (ConditionTimeoutException e) {
      Map<String, String> seen = new TreeMap<>();
      for (JepsenCluster.Node n : cluster.runningNodes()) {
        seen.put(n.id(), Long.toHexString(JepsenCluster.mapVersion(n)) + " "
            + KvCluster.node(n.store()).orElseThrow().partitionCounts().keySet());
      }
      throw new IllegalStateException("the partition maps did not agree on " + runningIds()
          + " within " + within + " after the " + after + ": " + seen);
    }
  }

  /**
   * Acknowledged writes (not lost to an event) that some running owner of their key, other than
   * {@code except}, does not hold; at most {@code limit}.
   */
  private List<String> underReplicatedExcept(String except, int limit) {
    List<String> ids = runningIds();
    Placement placement = Placement.of(ids, config.rf());
    List<String> out = new ArrayList<>();
    Map<String, Op> newest = newestAcked();
    for (Op op : newest.values()) {
      for (String owner : placement.ownersOf(op.key)) {
        JepsenCluster.Node n = cluster.node(owner);
        if (owner.equals(except) || n == null) {
          continue;
        }
        if (!holds(n, op)) {
          out.add(op.key + " not on " + owner);
          if (out.size() >= limit) {
            return out;
          }
        }
      }
    }
    return out;
  }

  /** Per key, the acknowledged write every owner must hold: the last one acknowledged. */
  private Map<String, Op> newestAcked() {
    Map<String, Op> newest = new TreeMap<>();
    for (Op op : history) {
      if (!op.acked || op.lostTo != null) {
        continue;
      }
      Op had = newest.get(op.key);
      if (had == null || supersedes(op, had)) {
        newest.put(op.key, op);
      }
    }
    return newest;
  }

  /** A delete beats a put of its (unique) key; between puts the higher version wins. */
  private static boolean supersedes(Op a, Op b) {
    if (a.kind != b.kind) {
      return a.kind == Op.Kind.DELETE;
    }
    return a.kind == Op.Kind.PUT && a.version.compareTo(b.version) > 0;
  }

  /** Polls QUORUM reads of every key through the readers until the rules hold; ms it took. */
  private long awaitReads(List<JepsenCluster.Node> readers, Duration within, String when) {
    long t0 = System.nanoTime();
    List<Violation> last = List.of();
    long deadline = t0 + within.toNanos();
    while (true) {
      last = readViolations(readers);
      if (last.isEmpty() || System.nanoTime() > deadline) {
        break;
      }
      quiet(100);
    }
    violations.addAll(last);
    if (!last.isEmpty()) {
      note("%s: %d violation(s) still there after %s", when, last.size(), within);
    }
    return (System.nanoTime() - t0) / 1_000_000;
  }

  private List<Violation> readViolations(List<JepsenCluster.Node> readers) {
    Map<String, List<Op>> byKey = new TreeMap<>();
    for (Op op : history) {
      byKey.computeIfAbsent(op.key, k -> new ArrayList<>()).add(op);
    }
    List<Violation> out = new ArrayList<>();
    Map<String, Map<String, String>> answers = new TreeMap<>();
    List<String> keys = new ArrayList<>(byKey.keySet());
    for (JepsenCluster.Node reader : readers) {
      Map<String, CompletableFuture<Optional<Versioned>>> reads = new LinkedHashMap<>();
      for (int i = 0; i < keys.size(); i++) {
        reads.put(keys.get(i), reader.store().getAsync(keys.get(i), QUORUM_READ));
        if (i % 256 == 255) {
          // Bounded in flight: wait for this chunk before issuing more.
          reads.values().forEach(f -> f.handle((v, e) -> null).join());
        }
      }
      for (Map.Entry<String, CompletableFuture<Optional<Versioned>>> r : reads.entrySet()) {
        Optional<Versioned> got;
        try {
          got = r.getValue().get(10, TimeUnit.SECONDS);
        } catch (ExecutionException | TimeoutException e) {
          out.add(new Violation("READ_FAILED", r.getKey(), "QUORUM read through " + reader.id()
              + " failed: " + (e.getCause() != null ? e.getCause() : e)));
          continue;
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new IllegalStateException(e);
        }
        answers.computeIfAbsent(r.getKey(), k -> new TreeMap<>()).put(reader.id(),
            got.map(g -> g.version() + "=" + g.valueAsString()).orElse("absent"));
        Violation v = checkKey(r.getKey(), reader.id(), got, byKey.get(r.getKey()));
        if (v != null) {
          out.add(v);
        }
      }
    }
    for (Map.Entry<String, Map<String, String>> a : answers.entrySet()) {
      if (new TreeSet<>(a.getValue().values()).size() > 1) {
        out.add(new Violation("DIVERGENT", a.getKey(), "QUORUM reads disagree: " + a.getValue()));
      }
    }
    return out;
  }

  /** The rules for one key read through one node. */
  private static Violation checkKey(String key, String via, Optional<Versioned> got, List<Op> ops) {
    Op lastAck = null;
    boolean deleteCandidate = false;
    for (Op op : ops) {
      if (op.kind == Op.Kind.DELETE) {
        deleteCandidate = true;
      }
      if (op.acked && op.lostTo == null && (lastAck == null || supersedes(op, lastAck))) {
        lastAck = op;
      }
    }
    if (got.isPresent()) {
      String value = got.get().valueAsString();
      Op writer = ops.stream().filter(o -> o.kind == Op.Kind.PUT && value.equals(o.value))
          .findFirst().orElse(null);
      if (writer == null) {
        return new Violation("UNEXPLAINED", key, "QUORUM read through " + via + " got " + value
            + ", which no write made");
      }
      if (lastAck != null && lastAck.kind == Op.Kind.DELETE) {
        return new Violation("RESURRECTED", key, "QUORUM read through " + via + " got " + value
            + " (v=" + got.get().version() + ") after the acknowledged delete #" + lastAck.id);
      }
      if (lastAck != null && got.get().version().compareTo(lastAck.version) < 0) {
        return new Violation("LOST", key, "QUORUM read through " + via + " got v="
            + got.get().version() + ", older than the acknowledged put #" + lastAck.id + " (v="
            + lastAck.version + ")");
      }
      return null;
    }
    if (lastAck != null && lastAck.kind == Op.Kind.PUT && !deleteCandidate) {
      return new Violation("LOST", key, "QUORUM read through " + via + " found nothing, yet put #"
          + lastAck.id + " (v=" + lastAck.version + ") was acknowledged");
    }
    return null;
  }

  /**
   * Reads through every live node until the rules hold and every node answers the same, then
   * requires every running owner to hold the newest version any running replica holds.
   */
  private long finalCheck() {
    long t0 = System.nanoTime();
    awaitMap(Duration.ofSeconds(15), "final heal");
    awaitReads(cluster.runningNodes(), config.readBudget(), "final check");
    if (!violations.isEmpty()) {
      return -1;
    }
    List<String> under = List.of();
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
    while (System.nanoTime() < deadline) {
      under = ownersMissingNewest(5);
      if (under.isEmpty()) {
        break;
      }
      quiet(100);
    }
    for (String u : under) {
      violations.add(new Violation("UNDER_REPLICATED", u.split(" ")[0], u));
    }
    long millis = (System.nanoTime() - t0) / 1_000_000;
    note("final check through every node %s: %d ms (owners complete: %s)", runningIds(), millis,
        under.isEmpty());
    return millis;
  }

  /** Keys some running owner lacks at the newest version a running replica holds. */
  private List<String> ownersMissingNewest(int limit) {
    Map<String, Map<String, HistoryChecker.Cell>> states = cluster.states();
    Map<String, HistoryChecker.Cell> newest = new TreeMap<>();
    for (Map<String, HistoryChecker.Cell> s : states.values()) {
      for (Map.Entry<String, HistoryChecker.Cell> e : s.entrySet()) {
        newest.merge(e.getKey(), e.getValue(), (a, b) -> a.version().compareTo(b.version()) >= 0
            ? a : b);
      }
    }
    Placement placement = Placement.of(runningIds(), config.rf());
    List<String> out = new ArrayList<>();
    for (Map.Entry<String, HistoryChecker.Cell> e : newest.entrySet()) {
      for (String owner : placement.ownersOf(e.getKey())) {
        HistoryChecker.Cell held = states.getOrDefault(owner, Map.of()).get(e.getKey());
        if (held == null || held.version().compareTo(e.getValue().version()) < 0) {
          out.add(e.getKey() + " on " + owner + ": " + held + ", newest " + e.getValue());
          if (out.size() >= limit) {
            return out;
          }
        }
      }
    }
    return out;
  }

  private String evidence() {
    if (violations.isEmpty()) {
      return "";
    }
    Set<String> keys = new TreeSet<>();
    StringBuilder sb = new StringBuilder("violations:\n");
    for (Violation v : violations.subList(0, Math.min(10, violations.size()))) {
      sb.append("  ").append(v.kind()).append(' ').append(v.key()).append(": ")
          .append(v.message()).append('\n');
      keys.add(v.key());
    }
    sb.append("history of those keys:\n");
    for (Op op : history) {
      if (keys.contains(op.key)) {
        sb.append("  ").append(op.describe(origin)).append('\n');
      }
    }
    return sb.toString();
  }

  private void quiet(long millis) {
    try {
      abort.await(millis, TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  private void note(String format, Object... args) {
    String line = String.format("%8.3f s  ", (System.nanoTime() - origin) / 1e9)
        + String.format(format, args);
    faultLog.add(line);
    log.info("seed {}: {}", config.seed(), line);
  }

  // ---- clients ----------------------------------------------------------------------------------

  /** One client: QUORUM writes through a random running node, one at a time. */
  private final class Client {
    final String name;
    final Random r;
    final List<String> ownKeys = new ArrayList<>();
    long seq;

    Client(String name, Random r) {
      this.name = name;
      this.r = r;
    }

    void step() {
      try {
        seq++;
        double p = r.nextDouble();
        String value = name + "-" + seq + "-" + opIds.get();
        if (p < 0.6) {
          String key = "u/" + name + "/" + opIds.get() + "-" + seq;
          ownKeys.add(key);
          write(Op.Kind.PUT, key, value);
        } else if (p < 0.75 && !ownKeys.isEmpty()) {
          write(Op.Kind.DELETE, ownKeys.remove(r.nextInt(ownKeys.size())), null);
        } else {
          write(Op.Kind.PUT, "s/" + r.nextInt(SHARED_KEYS), value);
        }
      } catch (RuntimeException | Error e) {
        log.error("client {} failed", name, e);
      }
    }

    private void write(Op.Kind kind, String key, String value) {
      stillPicture.readLock().lock();
      try {
        // Only ready nodes, as a load balancer with a readiness check would: a node that has
        // just started computes its map over the few nodes it knows yet (rf capped at that
        // count) and acknowledges QUORUM alone (JepsenMembershipTest, the disabled case).
        List<JepsenCluster.Node> running = cluster.runningNodes().stream()
            .filter(n -> n.store().cluster().isReady()).toList();
        if (running.isEmpty()) {
          return;
        }
        JepsenCluster.Node node = running.get(r.nextInt(running.size()));
        Op op = new Op(opIds.incrementAndGet(), key, kind, value, node.id());
        history.add(op);
        KvStore store = node.store();
        WriteOptions options = WriteOptions.concern(WriteConcern.QUORUM)
            .withTimeout(Duration.ofSeconds(2));
        try {
          CompletableFuture<?> f = kind == Op.Kind.PUT
              ? store.putAsync(key, value.getBytes(StandardCharsets.UTF_8), options)
              : store.deleteAsync(key, options);
          Object result = f.get(8, TimeUnit.SECONDS);
          if (kind == Op.Kind.PUT) {
            op.version = (Version) result;
          }
          op.acked = true;
        } catch (ExecutionException e) {
          op.error = String.valueOf(e.getCause());
        } catch (TimeoutException e) {
          op.error = "client timeout";
        } catch (RuntimeException e) {
          op.error = e.toString();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          op.error = "interrupted";
        }
        if (op.acked) {
          int holders = 0;
          List<JepsenCluster.Node> holding = new ArrayList<>(cluster.runningNodes());
          holding.addAll(stopping);
          for (JepsenCluster.Node n : holding) {
            holders += holds(n, op) ? 1 : 0;
          }
          op.holders = holders;
          if (holders < config.rf() / 2 + 1) {
            violations.add(new Violation("QUORUM_UNDER_REPLICATED", key, "#" + op.id
                + " acknowledged at QUORUM but held by " + holders + " node(s) right after"));
          }
        }
        op.endNanos = System.nanoTime();
        op.pending = false;
      } finally {
        stillPicture.readLock().unlock();
      }
    }
  }
}
