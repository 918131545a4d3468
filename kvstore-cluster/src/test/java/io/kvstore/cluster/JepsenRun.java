package io.kvstore.cluster;

import static org.awaitility.Awaitility.await;

import io.kvstore.core.Durability;
import io.kvstore.core.KvStore;
import io.kvstore.core.Member;
import io.kvstore.core.StorageStatus;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteConcernException;
import io.kvstore.core.WriteOptions;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Queue;
import java.util.Random;
import java.util.Set;
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
import org.awaitility.core.ConditionTimeoutException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A Jepsen-style run against real in-JVM nodes: clients on every node write unique keys, overwrite a
 * few shared keys and delete, at ONE and QUORUM, while a seeded nemesis partitions (isolate one,
 * majority/minority, bridge, one-way), kills and restarts, pauses, loses/duplicates/delays frames,
 * skews clocks (within and beyond {@code maxClockDrift}) and, when the nodes are durable, crashes the
 * whole cluster (kill -9 of every node, or a power loss of every node) and restarts it on its data
 * directories. The run is a sequence of rounds; each round
 * ends by stopping the clients, healing every fault, timing how long the nodes take to hold identical
 * state (the convergence sample) and checking the whole history so far with {@link HistoryChecker}.
 *
 * <p><b>Clock skew beyond maxClockDrift:</b> other nodes refuse the skewed node's writes while their
 * timestamps are more than the drift ahead of real time. Its QUORUM writes therefore fail (recorded
 * unknown: they are applied on that node); its ONE writes are acknowledged and spread only once real
 * time has come within the drift of their timestamps. The run uses a small drift (2 s) and a skew
 * 1.5 s beyond it, so such writes spread within seconds and the checker holds them to the same rule
 * as every acknowledged write; the wait is part of that round's convergence time.
 *
 * <p><b>Kills:</b> a killed node is cut off first, then every write that no other node holds is marked
 * lost to that kill (allowed for ONE; a violation for a QUORUM write that two nodes held when it was
 * acknowledged and that no earlier kill explains). Client operations hold a read lock, kills the write
 * lock, so the QUORUM replica count right after an acknowledgement and the loss marking at a kill see
 * a still picture. On durable nodes a kill loses nothing acknowledged (the node restarts on its data
 * directory), so nothing is marked.
 *
 * <p><b>Whole-cluster crashes</b> (durable runs only): every link is cut, then every node's disk
 * crashes at once, while clients are writing, each right after a burst of unawaited ONE writes on
 * that node (so there are records appended but not yet synced): {@code CLUSTER_CRASH} like kill -9
 * (what was written to the OS stays), {@code POWER_LOSS} through the {@link io.kvstore.core.testing.PowerLossDisk}
 * (unsynced writes dropped or torn). Then every node restarts on its directory. Under SYNC no
 * acknowledged write may be lost to either; the checker counts the QUORUM ones no node holds at the
 * end ({@code SYNC_QUORUM_LOST}), and a write acknowledged under SYNC is never excused by a crash.
 * {@link Config#acksDurable} is what the checker believes, {@link Config#durability} what the nodes
 * do: running INTERVAL nodes under a checker that believes SYNC is the broken variant that shows the
 * checker catches acknowledgements made before the sync.
 */
final class JepsenRun {
  private static final Logger log = LoggerFactory.getLogger(JepsenRun.class);
  private static final int SHARED_KEYS = 8;

  /** What the nemesis can do. */
  enum FaultKind {
    ISOLATE_ONE, MAJORITY_MINORITY, BRIDGE, ONE_WAY, KILL_RESTART, PAUSE, LOSSY, SKEW_WITHIN,
    SKEW_BEYOND, CLUSTER_CRASH, POWER_LOSS;

    /** Whether this kind needs durable nodes (a memory-only cluster crashed whole is empty). */
    boolean needsDurableNodes() {
      return this == CLUSTER_CRASH || this == POWER_LOSS;
    }
  }

  /** One scheduled fault. {@code lossy} layers frame loss/duplication/delay on top of it. */
  record Fault(FaultKind kind, List<String> targets, long millis, long skewMillis, boolean lossy) {
    @Override
    public String toString() {
      return kind + " " + targets + " for " + millis + " ms"
          + (skewMillis != 0 ? " (skew " + skewMillis + " ms)" : "") + (lossy ? " + lossy links" : "");
    }
  }

  /**
   * @param seed fixes the fault schedule and every client's choices
   * @param nodes cluster size (5 gives majority/minority and a bridge distinct from isolating one)
   * @param duration total time of the fault rounds (ignored by the short plan)
   * @param shortPlan every fault kind once, in two rounds, with short durations
   * @param clientsPerNode client threads per node
   * @param opInterval pause between one client's operations
   * @param writeTimeout QUORUM write timeout
   * @param maxClockDrift the store's maxClockDrift
   * @param durability the nodes' durability, on data directories; null for memory-only nodes
   * @param acksDurable whether the checker takes an acknowledgement as synced to disk (SYNC)
   * @param kinds the fault kinds the plan draws from
   * @param gap quiet time before each fault and after the last one of a round
   * @param syncInterval the INTERVAL nodes' sync period, or null for the store's default (1 s)
   */
  record Config(long seed, int nodes, Duration duration, boolean shortPlan, int clientsPerNode,
      Duration opInterval, Duration writeTimeout, Duration maxClockDrift, Durability durability,
      boolean acksDurable, List<FaultKind> kinds, Duration gap, Duration syncInterval) {
    Config {
      kinds = List.copyOf(kinds);
      if (durability == null && kinds.stream().anyMatch(FaultKind::needsDurableNodes)) {
        throw new IllegalArgumentException("whole-cluster crashes need durable nodes: " + kinds);
      }
      if (acksDurable && durability == null) {
        throw new IllegalArgumentException("durable acknowledgements need durable nodes");
      }
    }

    /** Every fault kind once, SYNC nodes, short gaps: the run inside {@code verify}. */
    static Config shortRun(long seed) {
      return new Config(seed, 5, Duration.ZERO, true, 2, Duration.ofMillis(20),
          Duration.ofSeconds(1), Duration.ofSeconds(2), Durability.SYNC, true,
          List.of(FaultKind.values()), Duration.ofMillis(500), null);
    }

    /** Random rounds for {@code duration}; memory-only when {@code durability} is null. */
    static Config longRun(long seed, Duration duration, Durability durability) {
      List<FaultKind> kinds = Arrays.stream(FaultKind.values())
          .filter(k -> durability != null || !k.needsDurableNodes()).toList();
      return new Config(seed, 5, duration, false, 2, Duration.ofMillis(20), Duration.ofSeconds(1),
          Duration.ofSeconds(2), durability, durability == Durability.SYNC, kinds,
          Duration.ofSeconds(1), null);
    }

    /**
     * The broken variant: INTERVAL nodes (acknowledged once written to the OS) under a checker that
     * believes SYNC, three nodes, one power loss of the whole cluster. Their sync period (30 s) is
     * longer than the run, so the loss does not hang on where the power cut falls between two
     * periodic syncs (with the default 1 s the window of acknowledged writes no replica synced is
     * a fraction of a second, now and then almost nothing).
     */
    static Config ackBeforeSync(long seed) {
      return new Config(seed, 3, Duration.ZERO, true, 2, Duration.ofMillis(20),
          Duration.ofSeconds(1), Duration.ofSeconds(2), Durability.INTERVAL, true,
          List.of(FaultKind.POWER_LOSS), Duration.ofSeconds(1), Duration.ofSeconds(30));
    }
  }

  /** The outcome of a run. */
  record Report(Config config, List<String> faultLog, List<Long> convergenceMillis,
      HistoryChecker.Verdict verdict, Map<FaultKind, Integer> faultsRun, int pausesDetected,
      int quorumBelowFullMajority, long elapsedMillis, long durableRestarts, long tornTailBytes,
      long burstWrites, long burstAcknowledged) {
    boolean ok() {
      return verdict.ok();
    }

    long percentile(double p) {
      if (convergenceMillis.isEmpty()) {
        return -1;
      }
      List<Long> sorted = convergenceMillis.stream().sorted().toList();
      int i = (int) Math.ceil(p / 100.0 * sorted.size()) - 1;
      return sorted.get(Math.max(0, Math.min(sorted.size() - 1, i)));
    }

    /** The figures, in the form docs/RELIABILITY.md quotes them. */
    String figures() {
      HistoryChecker.Figures f = verdict.figures();
      return String.format("seed %d, %d nodes (%s), %d s, %d rounds, faults %s%n"
          + "operations %d, acknowledged %d (ONE %d, QUORUM %d), unknown %d, failed %d%n"
          + "lost %d, divergent keys %d, violations %s%n"
          + "SYNC-acknowledged QUORUM writes lost (must be 0): %d of %d%s%n"
          + "acknowledged writes lost to a kill before they spread (allowed): ONE %d, QUORUM %d%n"
          + "QUORUM acknowledgements checked on the replicas: %d; pauses detected by the others: %d%n"
          + "QUORUM acks held by fewer than a majority of all %d nodes (the writer saw a smaller "
          + "cluster): %d%n"
          + "restarts on a data directory: %d; torn log tails dropped by their recovery: %d bytes; "
          + "burst writes issued right before whole-cluster crashes: %d (acknowledged %d)%n"
          + "convergence after heal (ms): p50 %d, p99 %d, max %d (n=%d)",
          config.seed(), config.nodes(), config.durability() == null ? "memory-only"
              : config.durability() + (config.acksDurable() ? ", acks checked as durable"
                  : ""), elapsedMillis / 1000, convergenceMillis.size(), faultsRun,
          f.operations(), f.ok(), f.okOne(), f.okQuorum(), f.unknown(), f.failed(), f.lost(),
          f.divergentKeys(), f.violations(), f.syncQuorumLost(), f.syncQuorumAcked(),
          config.acksDurable() && config.durability() != Durability.SYNC
              ? " (BROKEN VARIANT: the nodes run " + config.durability() + ")" : "",
          f.oneLostToCrash(), f.quorumLostToCrash(),
          f.quorumChecked(), pausesDetected, config.nodes(), quorumBelowFullMajority,
          durableRestarts, tornTailBytes, burstWrites, burstAcknowledged, percentile(50),
          percentile(99), percentile(100), convergenceMillis.size());
    }

    /** What a failure prints: seed, replay hint, schedule, the violations and their history. */
    String failureMessage() {
      return "Jepsen run failed: seed=" + config.seed() + " (replay: -Dkvstore.seed="
          + config.seed() + ")\n" + figures() + "\nfault schedule:\n  "
          + String.join("\n  ", faultLog) + "\n" + verdict.evidence();
    }
  }

  private final Config config;
  private final Random random;
  private final JepsenCluster cluster;
  private final ConcurrentLinkedQueue<HistoryOp> history = new ConcurrentLinkedQueue<>();
  private final AtomicLong opIds = new AtomicLong();
  private final AtomicInteger kills = new AtomicInteger();
  private final ReentrantReadWriteLock stillPicture = new ReentrantReadWriteLock(true);
  private final Set<String> paused = ConcurrentHashMap.newKeySet();
  private final List<String> faultLog = Collections.synchronizedList(new ArrayList<>());
  private final Map<FaultKind, Integer> faultsRun = new EnumMap<>(FaultKind.class);
  private final List<Long> convergence = new ArrayList<>();
  private final CountDownLatch abort = new CountDownLatch(1);
  private final List<Client> clients = new ArrayList<>();
  private int pausesDetected;
  private long durableRestarts;
  private final AtomicLong bursts = new AtomicLong();
  private final Queue<CompletableFuture<?>> burstWrites = new ConcurrentLinkedQueue<>();
  /** Writes the nemesis issues on each node right before its disk crashes with the cluster. */
  private static final int BURST_PER_NODE = 40;
  private long tornTailBytes;
  private long origin;

  /**
   * @param config the run's settings
   * @param dataRoot where durable nodes keep their data directories (a fresh directory); unused
   *     for memory-only nodes, may then be null
   */
  JepsenRun(Config config, Path dataRoot) {
    this.config = config;
    this.random = new Random(config.seed());
    if (config.durability() != null && dataRoot == null) {
      throw new IllegalArgumentException("durable nodes need a data root");
    }
    this.cluster = new JepsenCluster("jepsen", new FaultNetwork(config.seed() * 31 + 7),
        config.maxClockDrift(), config.durability() == null ? null : dataRoot,
        config.durability(), config.syncInterval(), config.seed() * 17 + 3);
  }

  /** Runs the whole schedule and returns the report; never throws for a violation. */
  Report run() {
    long started = System.nanoTime();
    origin = started;
    try {
      cluster.start("j", config.nodes());
      for (String id : cluster.ids()) {
        for (int c = 0; c < config.clientsPerNode(); c++) {
          clients.add(new Client(id + "c" + c, id, new Random(config.seed() * 1_000 + clients.size())));
        }
      }
      HistoryChecker.Verdict verdict = null;
      List<List<Fault>> rounds = config.shortPlan() ? shortPlan() : null;
      long deadline = started + config.duration().toNanos();
      for (int round = 0; ; round++) {
        List<Fault> faults;
        if (rounds != null) {
          if (round == rounds.size()) {
            break;
          }
          faults = rounds.get(round);
        } else {
          if (round > 0 && System.nanoTime() > deadline) {
            break;
          }
          faults = randomRound();
        }
        verdict = runRound(round, faults);
        log.info("round {} checked: {}", round, verdict.figures());
        if (!verdict.ok()) {
          break;
        }
      }
      int majority = config.nodes() / 2 + 1;
      int belowMajority = (int) history.stream().filter(o -> o.concern == WriteConcern.QUORUM
          && o.outcome == HistoryOp.Outcome.OK && o.required > 0 && o.holders < majority).count();
      return new Report(config, List.copyOf(faultLog), List.copyOf(convergence), verdict,
          Map.copyOf(faultsRun), pausesDetected, belowMajority,
          (System.nanoTime() - started) / 1_000_000, durableRestarts, tornTailBytes, bursts.get(),
          history.stream().filter(o -> "nemesis".equals(o.client)
              && o.outcome == HistoryOp.Outcome.OK).count());
    } finally {
      abort.countDown();
      cluster.close();
    }
  }

  // ---- the plan ---------------------------------------------------------------------------------

  /**
   * Every configured kind once, in two rounds (one if there are at most two kinds). Partitions,
   * skews and lossy links last 2 s (twice the write timeout, so QUORUM writes time out); a killed
   * node or crashed cluster stays down 1 s / 0.5 s.
   */
  private List<List<Fault>> shortPlan() {
    List<FaultKind> kinds = new ArrayList<>(config.kinds());
    Collections.shuffle(kinds, random);
    List<Fault> all = new ArrayList<>();
    for (FaultKind k : kinds) {
      all.add(fault(k, switch (k) {
        case PAUSE -> pauseMillis();
        case KILL_RESTART -> 1_000;
        case CLUSTER_CRASH, POWER_LOSS -> 500;
        default -> 2_000;
      }, false));
    }
    if (all.size() <= 2) {
      return List.of(all);
    }
    int half = (all.size() + 1) / 2;
    return List.of(all.subList(0, half), all.subList(half, all.size()));
  }

  private List<Fault> randomRound() {
    List<Fault> faults = new ArrayList<>();
    int n = 2 + random.nextInt(3);
    List<FaultKind> kinds = config.kinds();
    for (int i = 0; i < n; i++) {
      FaultKind k = kinds.get(random.nextInt(kinds.size()));
      long millis = k == FaultKind.PAUSE ? pauseMillis() + random.nextInt(3_000)
          : k.needsDurableNodes() ? 200 + random.nextInt(2_000)
          : 1_000 + random.nextInt(7_000);
      faults.add(fault(k, millis, k != FaultKind.LOSSY && random.nextInt(4) == 0));
    }
    return faults;
  }

  /** Longer than the failure detector needs to remove a member of a 4–7 node cluster (7.2 s). */
  private static long pauseMillis() {
    return 8_500;
  }

  /** How much longer than planned a pause may last while waiting for every node to remove it. */
  private static final long PAUSE_EXTENSION_MILLIS = 10_000;

  private boolean removedByAll(String x, List<String> others) {
    for (String o : others) {
      JepsenCluster.Node n = cluster.node(o);
      if (n != null && n.store().cluster().members().stream().map(Member::nodeId)
          .anyMatch(x::equals)) {
        return false;
      }
    }
    return true;
  }

  private Fault fault(FaultKind kind, long millis, boolean lossy) {
    List<String> ids = new ArrayList<>(cluster.ids());
    Collections.shuffle(ids, random);
    long drift = config.maxClockDrift().toMillis();
    long skew = switch (kind) {
      case SKEW_WITHIN -> (random.nextBoolean() ? 1 : -1) * drift / 2;
      case SKEW_BEYOND -> drift + 1_500;
      default -> 0;
    };
    List<String> targets = switch (kind) {
      case MAJORITY_MINORITY -> ids.subList(0, ids.size() / 2); // the minority
      case BRIDGE, ONE_WAY -> ids.subList(0, Math.min(ids.size(), kind == FaultKind.BRIDGE ? 1 : 2));
      case LOSSY -> List.of();
      case CLUSTER_CRASH, POWER_LOSS -> cluster.ids();
      default -> ids.subList(0, 1);
    };
    return new Fault(kind, List.copyOf(targets), millis, skew, lossy);
  }

  // ---- a round ----------------------------------------------------------------------------------

  private HistoryChecker.Verdict runRound(int round, List<Fault> faults) {
    ScheduledExecutorService pool = Executors.newScheduledThreadPool(clients.size(), r -> {
      Thread t = new Thread(r, "jepsen-client");
      t.setDaemon(true);
      return t;
    });
    for (Client c : clients) {
      pool.scheduleWithFixedDelay(c::step, 0, config.opInterval().toMillis(), TimeUnit.MILLISECONDS);
    }
    try {
      for (Fault f : faults) {
        quiet(config.gap().toMillis());
        apply(f);
      }
      quiet(config.gap().toMillis());
    } finally {
      pool.shutdown();
      try {
        if (!pool.awaitTermination(config.writeTimeout().toMillis() + 10_000, TimeUnit.MILLISECONDS)) {
          throw new IllegalStateException("clients did not stop");
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException(e);
      }
    }
    awaitBursts();
    long healed = healEverything(round);
    long converged = awaitConvergence(healed);
    convergence.add(converged);
    note("round %d: identical state on every node %d ms after the heal", round, converged);
    return HistoryChecker.check(history, cluster.states(), origin);
  }

  private long healEverything(int round) {
    cluster.network.heal();
    for (String id : cluster.ids()) {
      cluster.clock(id).offsetMillis.set(0);
      if (cluster.node(id) == null) {
        cluster.restart(id);
      }
    }
    paused.clear();
    note("round %d: clients stopped, every fault healed", round);
    return System.nanoTime();
  }

  /** Polls until every node sees every node and all hold identical state; ms since the heal. */
  private long awaitConvergence(long healedNanos) {
    Duration budget = Duration.ofSeconds(60).plus(config.maxClockDrift());
    try {
      await().atMost(budget).pollInterval(Duration.ofMillis(50)).until(() -> {
        for (JepsenCluster.Node n : cluster.runningNodes()) {
          if (n.store().cluster().members().size() != config.nodes()) {
            return false;
          }
        }
        return cluster.digestsAgree() && identical(cluster.states());
      });
    } catch (ConditionTimeoutException e) {
      note("NOT CONVERGED %d ms after the heal (the checker reports the divergent keys)",
          budget.toMillis());
      return budget.toMillis();
    }
    return (System.nanoTime() - healedNanos) / 1_000_000;
  }

  private static boolean identical(Map<String, Map<String, HistoryChecker.Cell>> states) {
    return states.values().stream().distinct().count() <= 1;
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

  // ---- the nemesis ------------------------------------------------------------------------------

  private void apply(Fault f) {
    faultsRun.merge(f.kind(), 1, Integer::sum);
    note("start %s", f);
    FaultNetwork net = cluster.network;
    if (f.lossy() || f.kind() == FaultKind.LOSSY) {
      net.linkFaults(new FaultNetwork.LinkFaults(0.15, 0.15, 300));
    }
    List<String> all = cluster.ids();
    String x = f.targets().isEmpty() ? null : f.targets().get(0);
    switch (f.kind()) {
      case ISOLATE_ONE, MAJORITY_MINORITY -> {
        List<String> rest = new ArrayList<>(all);
        rest.removeAll(f.targets());
        net.partition(f.targets(), rest);
        quiet(f.millis());
        net.restore(f.targets(), rest);
      }
      case BRIDGE -> {
        // x talks to everyone; the others split in two halves that only reach each other through x.
        List<String> rest = new ArrayList<>(cluster.others(x));
        List<String> left = rest.subList(0, rest.size() / 2);
        List<String> right = rest.subList(rest.size() / 2, rest.size());
        net.partition(left, right);
        quiet(f.millis());
        net.restore(left, right);
      }
      case ONE_WAY -> {
        String to = f.targets().get(1);
        net.cutOneWay(x, to);
        quiet(f.millis());
        net.restore(List.of(x), List.of(to));
      }
      case KILL_RESTART -> killAndRestart(x, f.millis());
      case CLUSTER_CRASH, POWER_LOSS -> crashCluster(f.kind() == FaultKind.POWER_LOSS, f.millis());
      case PAUSE -> {
        paused.add(x);
        List<String> rest = cluster.others(x);
        long pauseStart = System.nanoTime();
        net.partition(List.of(x), rest);
        quiet(f.millis());
        // The pause is meant to outlast the failure detector (suspicion ~5-7 s here), and a loaded
        // machine can stretch detection past the planned length: it then lasts until every other
        // node has removed the paused one, for at most PAUSE_EXTENSION_MILLIS more.
        long extendUntil = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(PAUSE_EXTENSION_MILLIS);
        boolean removed = removedByAll(x, rest);
        while (!removed && System.nanoTime() < extendUntil && abort.getCount() > 0) {
          quiet(100);
          removed = removedByAll(x, rest);
        }
        if (removed) {
          pausesDetected++;
        }
        long pausedMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - pauseStart);
        note("  %s paused for %d ms (planned %d): %s", x, pausedMillis, f.millis(),
            removed ? "every other node had removed it" : "NOT removed by every other node");
        net.restore(List.of(x), rest);
        paused.remove(x);
      }
      case LOSSY -> quiet(f.millis());
      case SKEW_WITHIN, SKEW_BEYOND -> {
        cluster.clock(x).offsetMillis.set(f.skewMillis());
        quiet(f.millis());
        cluster.clock(x).offsetMillis.set(0);
      }
      default -> throw new IllegalStateException("unknown fault " + f.kind());
    }
    if (f.lossy() || f.kind() == FaultKind.LOSSY) {
      net.linkFaults(FaultNetwork.LinkFaults.NONE);
    }
    note("end %s", f.kind());
  }

  private void killAndRestart(String id, long downMillis) {
    JepsenCluster.Node dead;
    int kill;
    stillPicture.writeLock().lock();
    try {
      dead = cluster.cutOff(id);
      if (dead == null) {
        return;
      }
      kill = kills.incrementAndGet();
      int lost = 0;
      for (HistoryOp op : cluster.durable() ? List.<HistoryOp>of() : history) {
        if (!op.candidate() || op.lostToCrash != null) {
          continue;
        }
        boolean heldElsewhere = false;
        for (JepsenCluster.Node n : cluster.runningNodes()) {
          Optional<HistoryChecker.Cell> c = JepsenCluster.cellOf(n, op.key);
          if (c.isPresent() && c.get().version().compareTo(op.version) >= 0) {
            heldElsewhere = true;
            break;
          }
        }
        if (!heldElsewhere) {
          op.lostToCrash = "kill " + kill + " of " + id;
          op.lostAtCrash = kill;
          lost++;
        }
      }
      if (cluster.durable()) {
        note("  kill %d of %s (kill -9; it restarts on its data directory)", kill, id);
      } else {
        note("  kill %d of %s: %d write(s) were held by no other node", kill, id, lost);
      }
    } finally {
      stillPicture.writeLock().unlock();
    }
    cluster.finishKill(dead);
    quiet(downMillis);
    long t0 = System.nanoTime();
    // The new incarnation acknowledges writes while build() runs, before the harness can read it:
    // clients wait, so a QUORUM acknowledgement is never counted against replicas it cannot see.
    JepsenCluster.Node again;
    stillPicture.writeLock().lock();
    try {
      again = cluster.restart(id);
    } finally {
      stillPicture.writeLock().unlock();
    }
    try {
      await().atMost(Duration.ofSeconds(30)).until(() -> again.store().cluster().isReady());
      note("  %s restarted %s, ready after %d ms%s", id, restartedHow(),
          (System.nanoTime() - t0) / 1_000_000, recovered(List.of(again)));
    } catch (ConditionTimeoutException e) {
      note("  %s restarted %s, NOT ready within 30 s", id, restartedHow());
    }
  }

  /** What the restarted durable nodes read back, and the torn tails their recovery dropped. */
  private String recovered(List<JepsenCluster.Node> nodes) {
    if (!cluster.durable()) {
      return "";
    }
    long entries = 0;
    long torn = 0;
    for (JepsenCluster.Node n : nodes) {
      StorageStatus st = n.store().storage();
      entries += st.recoveredEntries();
      torn += st.truncatedTailBytes();
    }
    durableRestarts += nodes.size();
    tornTailBytes += torn;
    return String.format(" (recovered %d entries; torn tails dropped: %d bytes)", entries, torn);
  }

  /**
   * On a node's crashing thread, its links already cut, right before its disk crashes:
   * {@value #BURST_PER_NODE} asynchronous ONE puts of fresh keys, not awaited, so the crash finds
   * appended records whose sync is still under way: what a power loss tears. A ONE write is
   * acknowledged once its node's durability step is done (under SYNC: synced), so every one of them
   * acknowledged before the crash must survive it. Recorded like client writes; each ends when its
   * future does.
   */
  private void burst(JepsenCluster.Node n) {
    WriteOptions options = WriteOptions.concern(WriteConcern.ONE).withTimeout(config.writeTimeout());
    for (int i = 0; i < BURST_PER_NODE; i++) {
      String key = "b/" + n.id() + "/" + bursts.incrementAndGet();
      String value = "burst-" + i;
      HistoryOp op = new HistoryOp(opIds.incrementAndGet(), "nemesis", n.id(), HistoryOp.Kind.PUT,
          key, value, WriteConcern.ONE, System.nanoTime());
      op.durableAck = config.acksDurable();
      history.add(op);
      JepsenCluster.clearLocalVersion();
      CompletableFuture<?> f;
      try {
        f = n.store().putAsync(key, value.getBytes(StandardCharsets.UTF_8), options);
      } catch (RuntimeException e) {
        f = CompletableFuture.failedFuture(e);
      }
      op.version = JepsenCluster.lastLocalVersion();
      burstWrites.add(f.handle((v, e) -> {
        finishBurst(op, e);
        return null;
      }));
    }
  }

  private void finishBurst(HistoryOp op, Throwable e) {
    if (op.outcome != HistoryOp.Outcome.PENDING) {
      return;
    }
    op.error = e == null ? null : e.toString();
    op.crashesAtEnd = kills.get();
    op.endNanos = System.nanoTime();
    op.outcome = e == null && op.version != null ? HistoryOp.Outcome.OK
        : op.version != null ? HistoryOp.Outcome.UNKNOWN : HistoryOp.Outcome.FAILED;
  }

  /** Before a check: every burst write has ended (a stuck one is recorded unknown). */
  private void awaitBursts() {
    try {
      CompletableFuture.allOf(burstWrites.toArray(CompletableFuture[]::new))
          .get(config.writeTimeout().toMillis() + 10_000, TimeUnit.MILLISECONDS);
    } catch (ExecutionException | TimeoutException e) {
      note("burst writes still pending at the check: recorded unknown");
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
    for (HistoryOp op : history) {
      if (op.outcome == HistoryOp.Outcome.PENDING && "nemesis".equals(op.client)) {
        op.error = "never completed";
        op.endNanos = System.nanoTime();
        op.outcome = op.version != null ? HistoryOp.Outcome.UNKNOWN : HistoryOp.Outcome.FAILED;
      }
    }
    burstWrites.clear();
  }

  private String restartedHow() {
    return cluster.durable() ? "on its data directory" : "empty";
  }

  /**
   * Every node stopped at once, while the clients write (kill -9 or a power loss of every node),
   * down for {@code downMillis}, then every node restarted on its data directory.
   */
  private void crashCluster(boolean powerLoss, long downMillis) {
    long burstsBefore = bursts.get();
    List<JepsenCluster.Node> crashed = cluster.crashAll(powerLoss, this::burst);
    long burst = bursts.get() - burstsBefore;
    int crash;
    stillPicture.writeLock().lock();
    try {
      cluster.markDown(crashed);
      crash = kills.incrementAndGet();
    } finally {
      stillPicture.writeLock().unlock();
    }
    note("  crash %d: all %d nodes %s, %d burst writes issued just before", crash, crashed.size(),
        powerLoss ? "lost their power (unsynced writes dropped or torn)" : "killed (kill -9)",
        burst);
    quiet(downMillis);
    long t0 = System.nanoTime();
    List<JepsenCluster.Node> again;
    stillPicture.writeLock().lock();
    try {
      again = cluster.restartAll();
    } finally {
      stillPicture.writeLock().unlock();
    }
    try {
      await().atMost(Duration.ofSeconds(30)).until(() -> again.stream()
          .allMatch(n -> n.store().cluster().isReady()));
      note("  all nodes restarted on their data directories, ready after %d ms%s",
          (System.nanoTime() - t0) / 1_000_000, recovered(again));
    } catch (ConditionTimeoutException e) {
      note("  all nodes restarted on their data directories, NOT all ready within 30 s");
    }
  }

  // ---- clients ----------------------------------------------------------------------------------

  /** One client, bound to one node, running one operation at a time. */
  private final class Client {
    final String name;
    final String nodeId;
    final Random r;
    final List<String> ownKeys = new ArrayList<>();
    long seq;

    Client(String name, String nodeId, Random r) {
      this.name = name;
      this.nodeId = nodeId;
      this.r = r;
    }

    void step() {
      try {
        if (paused.contains(nodeId)) {
          return;
        }
        seq++;
        double p = r.nextDouble();
        WriteConcern concern = r.nextBoolean() ? WriteConcern.ONE : WriteConcern.QUORUM;
        String value = name + "-" + seq;
        if (p < 0.45) {
          String key = "u/" + name + "/" + seq;
          ownKeys.add(key);
          write(HistoryOp.Kind.PUT, key, value, concern);
        } else if (p < 0.55 && !ownKeys.isEmpty()) {
          String key = ownKeys.remove(r.nextInt(ownKeys.size()));
          write(HistoryOp.Kind.DELETE, key, null, concern);
        } else if (p < 0.90) {
          write(HistoryOp.Kind.PUT, "s/" + r.nextInt(SHARED_KEYS), value, concern);
        } else {
          write(HistoryOp.Kind.DELETE, "s/" + r.nextInt(SHARED_KEYS), null, concern);
        }
      } catch (RuntimeException | Error e) {
        log.error("client {} failed", name, e);
      }
    }

    private void write(HistoryOp.Kind kind, String key, String value, WriteConcern concern) {
      stillPicture.readLock().lock();
      try {
        HistoryOp op = new HistoryOp(opIds.incrementAndGet(), name, nodeId, kind, key, value,
            concern, System.nanoTime());
        op.durableAck = config.acksDurable();
        history.add(op);
        JepsenCluster.Node node = cluster.node(nodeId);
        if (node == null) {
          finish(op, HistoryOp.Outcome.FAILED, "node is down");
          return;
        }
        KvStore store = node.store();
        int viewBefore = store.cluster().members().size();
        WriteOptions options = WriteOptions.concern(concern).withTimeout(config.writeTimeout());
        JepsenCluster.clearLocalVersion();
        CompletableFuture<?> f;
        try {
          f = kind == HistoryOp.Kind.PUT
              ? store.putAsync(key, value.getBytes(StandardCharsets.UTF_8), options)
              : store.deleteAsync(key, options);
        } catch (RuntimeException e) {
          f = CompletableFuture.failedFuture(e);
        }
        op.version = JepsenCluster.lastLocalVersion();
        try {
          f.get(config.writeTimeout().toMillis() + 5_000, TimeUnit.MILLISECONDS);
        } catch (ExecutionException e) {
          Throwable cause = e.getCause();
          String why = cause instanceof WriteConcernException ? "WriteConcernException: "
              + ((WriteConcernException) cause).acknowledged() + "/"
              + ((WriteConcernException) cause).required() : cause.toString();
          finish(op, op.version != null ? HistoryOp.Outcome.UNKNOWN : HistoryOp.Outcome.FAILED, why);
          return;
        } catch (TimeoutException e) {
          finish(op, HistoryOp.Outcome.UNKNOWN, "client timeout");
          return;
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          finish(op, op.version != null ? HistoryOp.Outcome.UNKNOWN : HistoryOp.Outcome.FAILED,
              "interrupted");
          return;
        }
        if (op.version == null) {
          finish(op, HistoryOp.Outcome.FAILED, "no local version captured");
          return;
        }
        if (concern == WriteConcern.QUORUM) {
          int view = Math.min(viewBefore, store.cluster().members().size());
          op.required = view / 2 + 1;
          int holders = 0;
          List<String> held = new ArrayList<>();
          for (JepsenCluster.Node n : cluster.runningNodes()) {
            Optional<HistoryChecker.Cell> c = JepsenCluster.cellOf(n, key);
            if (c.isPresent() && c.get().version().compareTo(op.version) >= 0) {
              holders++;
              held.add(n.id());
            }
          }
          op.holders = holders;
          if (holders < op.required) {
            for (JepsenCluster.Node z : cluster.killedNodes()) {
              Optional<HistoryChecker.Cell> c = JepsenCluster.cellOf(z, key);
              if (c.isPresent() && c.get().version().compareTo(op.version) >= 0) {
                held.add("killed " + z.id() + " (cut off and closing)");
              }
            }
            op.error = "held by " + held + "; writer's view " + store.cluster().members();
          }
        }
        finish(op, HistoryOp.Outcome.OK, null);
      } finally {
        stillPicture.readLock().unlock();
      }
    }

    private void finish(HistoryOp op, HistoryOp.Outcome outcome, String error) {
      op.error = error;
      op.crashesAtEnd = kills.get();
      op.endNanos = System.nanoTime();
      op.outcome = outcome;
    }
  }

}
