package io.kvstore.examples.bench;

import io.kvstore.cluster.ClusterNode;
import io.kvstore.cluster.KvCluster;
import io.kvstore.cluster.KvClusterBuilder;
import io.kvstore.cluster.ReplicationStats;
import io.kvstore.core.KvStore;
import io.kvstore.core.Member;
import io.kvstore.core.Registration;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteOptions;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.StringJoiner;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.atomic.LongAdder;
import org.HdrHistogram.Histogram;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Partitioned mode against full replication on the same number of nodes, in one run (issue 14's
 * figures; docs/BENCHMARKS.md §3f). For each mode of {@code --modes}, on a fresh cluster of
 * {@code --nodes} N nodes: N − 1 standalone servers in their own JVMs ({@code --in-memory}, with
 * {@code --replication-factor} R in partitioned mode) and node-0 embedded in this JVM, which joins
 * them and drives every operation through its {@link KvStore} API, so it is one of the N nodes. In
 * order:
 *
 * <ol>
 *   <li>loads {@code --keys} keys at ONE from {@code --threads} threads, then writes them all again
 *       at QUORUM (throughput, p50/p99), waiting in between until every copy is held (the sum of
 *       every node's live entries is keys × R, or keys × N under full replication);
 *   <li>frames, bytes and mutations sent per QUORUM write: the replication counters of every node
 *       ({@code /metrics} {@code kvstore_replication_*} of the servers, {@link ClusterNode#stats()} of
 *       node-0) diffed over the QUORUM pass, divided by the writes;
 *   <li>memory per server: {@code jcmd <pid> GC.run} then {@code GC.heap_info}, right after start and
 *       after the load, and each node's live entries;
 *   <li>gets at ONE of random keys for {@code --get-duration}, split into local reads (keys node-0
 *       owns, by {@link ClusterNode#ownersOf}; checked against the keys a change listener saw
 *       applied on node-0 during the puts) and remote reads (the rest, read from an owner);
 *   <li>partitioned mode only: one more server joins while the writers keep writing at QUORUM
 *       through node-0; the time from its process start until every node reports nothing pending
 *       on one agreed map of N + 1 nodes and the new node's entry count stopped growing (unchanged
 *       for {@code --settle}), the entries it received per second, and the QUORUM error rate.
 * </ol>
 *
 * <p>Prints progress and a markdown table per mode, then one side by side with the ratio, to
 * standard output and to {@code --out}. Every server JVM is stopped by its PID when a mode ends,
 * whether it succeeded or not, and by a shutdown hook if this JVM is stopped. Usage (see
 * docs/BENCHMARKS.md):
 *
 * <pre>
 * java -Xms2g -Xmx2g -cp kvstore-examples/target/kvstore-benchmarks.jar \
 *     io.kvstore.examples.bench.PartitionBench --nodes 6 --replication-factor 3 --out pbench.md
 * </pre>
 */
@Command(name = "kvstore-partition-bench", mixinStandardHelpOptions = true, sortOptions = false,
    description = "Partitioned mode against full replication on N loopback nodes: N-1 server JVMs "
        + "and one node embedded here that drives the load.")
public final class PartitionBench implements Callable<Integer> {

  enum Mode { PARTITIONED, FULL }

  @Option(names = "--modes", defaultValue = "partitioned,full", split = ",",
      description = "Configurations to run, in this order, each on a fresh cluster: partitioned, "
          + "full (default: ${DEFAULT-VALUE}).")
  List<Mode> modes = new ArrayList<>();

  @Option(names = "--nodes", defaultValue = "6",
      description = "Nodes in the cluster, node-0 (embedded here) included (default: ${DEFAULT-VALUE}).")
  int nodes;

  @Option(names = "--replication-factor", defaultValue = "3",
      description = "Owners per key in partitioned mode; below --nodes (default: ${DEFAULT-VALUE}).")
  int replicationFactor;

  @Option(names = "--keys", defaultValue = "200000",
      description = "Keys loaded (default: ${DEFAULT-VALUE}).")
  int keys;

  @Option(names = "--value-size", defaultValue = "100",
      description = "Bytes per value (default: ${DEFAULT-VALUE}).")
  int valueSize;

  @Option(names = "--threads", defaultValue = "8",
      description = "Writer and reader threads on node-0 (default: ${DEFAULT-VALUE}).")
  int threads;

  @Option(names = "--get-duration", defaultValue = "10s",
      description = "Measured time of the get phase, e.g. 10s, 500ms (default: ${DEFAULT-VALUE}).")
  String getDuration;

  @Option(names = "--quorum-timeout", defaultValue = "5s",
      description = "Timeout of each QUORUM put (default: ${DEFAULT-VALUE}).")
  String quorumTimeout;

  @Option(names = "--removal-delay", defaultValue = "2s",
      description = "--removal-delay of every node (default: ${DEFAULT-VALUE}).")
  String removalDelay;

  @Option(names = "--join-write-rate", defaultValue = "0",
      description = "Rebalance: QUORUM writes per second during the join, over all writer threads;"
          + " 0 for as fast as they go (default: ${DEFAULT-VALUE}). On a small machine full-speed"
          + " writers take the CPU the transfer needs.")
  int joinWriteRate;

  @Option(names = "--rebalance", negatable = true, defaultValue = "true", fallbackValue = "true",
      description = "Partitioned mode: measure one more node joining (default: on).")
  boolean rebalance;

  @Option(names = "--settle", defaultValue = "2s",
      description = "Rebalance: how long nothing pending and an unchanged entry count on the new "
          + "node must hold to count as settled (default: ${DEFAULT-VALUE}).")
  String settle;

  @Option(names = "--seed", defaultValue = "42",
      description = "Seed of the values and of the random keys of the get and rebalance phases "
          + "(default: ${DEFAULT-VALUE}).")
  long seed;

  @Option(names = "--server-jar",
      description = "The standalone server jar (default: system property kvstore.server.jar, else "
          + "kvstore-examples/target/kvstore-server.jar, else this JVM's class path).")
  String serverJar;

  @Option(names = "--server-heap", defaultValue = "1g",
      description = "-Xmx of each server JVM (default: ${DEFAULT-VALUE}).")
  String serverHeap;

  @Option(names = "--dir", defaultValue = "target/partition-bench",
      description = "Where the servers' logs go, one folder per mode (default: ${DEFAULT-VALUE}).")
  Path dir;

  @Option(names = "--timeout", defaultValue = "180s",
      description = "Bound of every wait: start, settling, copies held (default: ${DEFAULT-VALUE}).")
  String timeout;

  @Option(names = "--out",
      description = "Also write the tables to this markdown file.")
  Path outFile;

  @CommandLine.Spec
  CommandLine.Model.CommandSpec spec;

  static final String PUT_ONE = "put at ONE (load), puts/s";
  static final String PUT_ONE_P50 = "put at ONE, p50 ms";
  static final String PUT_ONE_P99 = "put at ONE, p99 ms";
  static final String PUT_ONE_ERRORS = "put at ONE, errors";
  static final String COPIES_AFTER = "ONE load: every copy held, ms after the last put";
  static final String COPIES = "copies per key (all nodes' entries / keys)";
  static final String PUT_QUORUM = "put at QUORUM (second pass), puts/s";
  static final String PUT_QUORUM_P50 = "put at QUORUM, p50 ms";
  static final String PUT_QUORUM_P99 = "put at QUORUM, p99 ms";
  static final String PUT_QUORUM_ERRORS = "put at QUORUM, errors";
  static final String FRAMES = "frames sent per QUORUM write (all nodes)";
  static final String BYTES = "bytes sent per QUORUM write (all nodes)";
  static final String MUTATIONS = "mutations sent per QUORUM write (all nodes)";
  static final String ENTRIES_LIST = "live entries per server";
  static final String ENTRIES_MEAN = "live entries per server, mean";
  static final String ENTRIES_EMBEDDED = "live entries on node-0 (embedded)";
  static final String HEAP_LIST = "heap used after GC per server, MiB";
  static final String HEAP_MEAN = "heap used after GC per server, mean MiB";
  static final String HEAP_GROWTH = "heap growth from empty per server, mean MiB";
  static final String GETS = "get at ONE, gets/s";
  static final String GET_MISSES = "get at ONE, misses";
  static final String LOCAL_SHARE = "local gets, % of gets";
  static final String LOCAL_P50 = "local gets, p50 ms";
  static final String LOCAL_P99 = "local gets, p99 ms";
  static final String REMOTE_SHARE = "remote gets, % of gets";
  static final String REMOTE_P50 = "remote gets, p50 ms";
  static final String REMOTE_P99 = "remote gets, p99 ms";
  static final String JOIN_READY = "rebalance: new node /ready, ms after its start";
  static final String JOIN_MAP = "rebalance: new node in node-0's map, ms after its start";
  static final String JOIN_SETTLED = "rebalance: settled, ms after the new node's start";
  static final String JOIN_SETTLED_FROM_MAP = "rebalance: settled, ms after node-0's map changed";
  static final String JOIN_ENTRIES = "rebalance: entries on the new node";
  static final String JOIN_SHARE = "rebalance: the new node's share by its partitions (keys x partitions / 1024)";
  static final String JOIN_RATE = "rebalance: entries moved per second (from node-0's map change)";
  static final String JOIN_WRITES = "rebalance: QUORUM writes during the join";
  static final String JOIN_ERRORS = "rebalance: QUORUM errors during the join";
  static final String JOIN_ERROR_RATE = "rebalance: QUORUM error rate, %";

  private static final String PREFIX = "pb:";
  private static final String EMBEDDED = "node-0";

  private PrintWriter out;
  private Duration waitBound;
  private Duration getMeasure;
  private Duration quorumWait;
  private Duration removal;
  private Duration settleWindow;
  private String[] keyNames;
  private byte[] value;
  private final AtomicReference<BenchServers> current = new AtomicReference<>();

  /**
   * Runs the benchmark.
   *
   * @param args flags; {@code --help} lists them
   */
  public static void main(String[] args) {
    System.exit(commandLine().execute(args));
  }

  /**
   * The command line, with case-insensitive mode names.
   *
   * @return the command line
   */
  public static CommandLine commandLine() {
    CommandLine cl = new CommandLine(new PartitionBench());
    cl.setCaseInsensitiveEnumValuesAllowed(true);
    return cl;
  }

  /** One mode's figures: a formatted value per row, and the number behind it where there is one. */
  static final class Result {
    final Mode mode;
    final Map<String, String> text = new LinkedHashMap<>();
    final Map<String, Double> numbers = new LinkedHashMap<>();

    Result(Mode mode) {
      this.mode = mode;
    }

    void put(String row, double v, String format) {
      numbers.put(row, v);
      text.put(row, String.format(Locale.ROOT, format, v));
    }

    void putText(String row, String v) {
      text.put(row, v);
    }
  }

  @Override
  public Integer call() throws Exception {
    try {
      waitBound = ClusterBench.parseDuration(timeout);
      getMeasure = ClusterBench.parseDuration(getDuration);
      quorumWait = ClusterBench.parseDuration(quorumTimeout);
      removal = ClusterBench.parseDuration(removalDelay);
      settleWindow = ClusterBench.parseDuration(settle);
    } catch (IllegalArgumentException e) {
      throw new CommandLine.ParameterException(spec.commandLine(), e.getMessage());
    }
    if (modes.isEmpty() || new LinkedHashSet<>(modes).size() != modes.size()) {
      throw new CommandLine.ParameterException(spec.commandLine(), "--modes must name each mode at most once");
    }
    if (nodes < 2 || threads < 1 || keys < 1 || valueSize < 0) {
      throw new CommandLine.ParameterException(spec.commandLine(),
          "--nodes must be at least 2, --threads and --keys positive, --value-size not negative");
    }
    if (replicationFactor < 1 || replicationFactor >= nodes) {
      throw new CommandLine.ParameterException(spec.commandLine(),
          "--replication-factor must be at least 1 and below --nodes (" + nodes + "), got "
              + replicationFactor);
    }
    out = spec.commandLine().getOut();
    keyNames = new String[keys];
    for (int i = 0; i < keys; i++) {
      keyNames[i] = PREFIX + i;
    }
    value = new byte[valueSize];
    new SplittableRandom(seed).nextBytes(value);
    out.printf("partition-bench: %d nodes, rf %d, %d keys x %d B, %d threads, seed %d, modes %s%n", nodes,
        replicationFactor, keys, valueSize, threads, seed, modes);
    out.flush();
    Thread hook = new Thread(() -> {
      BenchServers s = current.get();
      if (s != null) {
        s.close();
      }
    }, "partition-bench-stop");
    Runtime.getRuntime().addShutdownHook(hook);
    List<Result> results = new ArrayList<>();
    try {
      for (Mode mode : modes) {
        results.add(runMode(mode));
      }
    } finally {
      try {
        Runtime.getRuntime().removeShutdownHook(hook);
      } catch (IllegalStateException e) {
        // already shutting down: the hook runs
      }
      String report = report(results);
      out.print(report);
      out.flush();
      if (outFile != null && !results.isEmpty()) {
        Path parent = outFile.toAbsolutePath().getParent();
        if (parent != null) {
          Files.createDirectories(parent);
        }
        Files.writeString(outFile, report, StandardCharsets.UTF_8);
      }
    }
    return 0;
  }

  // ---- one mode -------------------------------------------------------------------------------

  private Result runMode(Mode mode) throws Exception {
    String tag = "[" + mode.name().toLowerCase(Locale.ROOT) + "]";
    Result r = new Result(mode);
    boolean partitioned = mode == Mode.PARTITIONED;
    int copies = partitioned ? replicationFactor : nodes;
    List<String> flags = new ArrayList<>(List.of("--in-memory", "--removal-delay", removalDelay));
    if (partitioned) {
      flags.addAll(List.of("--replication-factor", String.valueOf(replicationFactor)));
    }
    BenchServers cluster = new BenchServers(serverJar, serverHeap,
        dir.resolve(mode.name().toLowerCase(Locale.ROOT)), waitBound);
    current.set(cluster);
    KvStore a = null;
    try {
      long t0 = System.nanoTime();
      ClusterBench.Server first = null;
      for (int i = 1; i < nodes; i++) {
        ClusterBench.Server s = cluster.add("node-" + i, first, flags);
        first = first == null ? s : first;
        s.start();
      }
      for (ClusterBench.Server s : cluster.servers()) {
        cluster.awaitReady(s);
      }
      out.printf("%s %d server JVMs ready in %d ms%n", tag, nodes - 1, ms(System.nanoTime() - t0));
      out.flush();
      List<String> seeds = new ArrayList<>();
      for (ClusterBench.Server s : cluster.servers()) {
        seeds.add("127.0.0.1:" + s.clusterPort);
      }
      KvClusterBuilder builder = KvCluster.builder().nodeId(EMBEDDED).host("127.0.0.1").membershipPort(0)
          .dataPort(0).seeds(seeds).removalDelay(removal);
      if (partitioned) {
        builder.replicationFactor(replicationFactor);
      }
      a = builder.build();
      ClusterNode node = KvCluster.node(a).orElseThrow();
      Set<String> ids = new LinkedHashSet<>();
      ids.add(EMBEDDED);
      for (ClusterBench.Server s : cluster.servers()) {
        ids.add(s.nodeId);
      }
      KvStore store = a;
      cluster.await("all " + nodes + " nodes agree on one map with nothing pending",
          () -> settled(cluster, store, node, ids));
      StringJoiner pids = new StringJoiner(", ");
      for (ClusterBench.Server s : cluster.servers()) {
        pids.add(s.nodeId + " pid " + s.process.pid());
      }
      out.printf("%s cluster of %d up and settled in %d ms: %s embedded, %s (logs in %s)%n", tag, nodes,
          ms(System.nanoTime() - t0), EMBEDDED, pids, cluster.servers().get(0).log.getParent().toAbsolutePath());
      out.flush();
      long[] heapEmpty = heaps(cluster);

      boolean[] applied = new boolean[keys];
      Registration owned = a.addListener(PREFIX, e -> {
        int i = index(e.key());
        if (i >= 0) {
          applied[i] = true;
        }
      });
      Pass one = writeAll(a, WriteOptions.defaults());
      long lastPut = System.nanoTime();
      record(r, one, PUT_ONE, PUT_ONE_P50, PUT_ONE_P99, PUT_ONE_ERRORS);
      out.printf("%s put at ONE: %d keys in %d ms, %.0f puts/s, p50 %.3f ms, p99 %.3f ms, errors %d%n", tag,
          keys, ms(one.nanos), one.rate(), one.p(50), one.p(99), one.errors);
      out.flush();
      long target = (long) keys * copies;
      cluster.await("every node's live entries sum to " + target, () -> totalEntries(cluster, store) == target);
      r.put(COPIES_AFTER, ms(System.nanoTime() - lastPut), "%.0f");

      long[] before = counters(cluster, node);
      Pass quorum = writeAll(a, WriteOptions.concern(WriteConcern.QUORUM).withTimeout(quorumWait));
      record(r, quorum, PUT_QUORUM, PUT_QUORUM_P50, PUT_QUORUM_P99, PUT_QUORUM_ERRORS);
      out.printf("%s put at QUORUM: %d keys in %d ms, %.0f puts/s, p50 %.3f ms, p99 %.3f ms, errors %d%n", tag,
          keys, ms(quorum.nanos), quorum.rate(), quorum.p(50), quorum.p(99), quorum.errors);
      out.flush();
      long[] after = awaitQuietFanOut(cluster, node);
      owned.close();
      r.put(FRAMES, (after[0] - before[0]) / (double) keys, "%.2f");
      r.put(BYTES, (after[1] - before[1]) / (double) keys, "%.1f");
      r.put(MUTATIONS, (after[2] - before[2]) / (double) keys, "%.2f");
      long total = totalEntries(cluster, a);
      r.put(COPIES, total / (double) keys, "%.2f");
      out.printf("%s per QUORUM write, all nodes: %.2f frames, %.1f bytes, %.2f mutations; %.2f copies per key%n",
          tag, r.numbers.get(FRAMES), r.numbers.get(BYTES), r.numbers.get(MUTATIONS), r.numbers.get(COPIES));
      out.flush();

      memory(r, cluster, a, heapEmpty);
      out.printf("%s memory: entries per server %s (node-0 %s), heap after GC MiB %s%n", tag,
          r.text.get(ENTRIES_LIST), r.text.get(ENTRIES_EMBEDDED), r.text.get(HEAP_LIST));
      out.flush();

      boolean[] local = new boolean[keys];
      int disagree = 0;
      for (int i = 0; i < keys; i++) {
        local[i] = node.ownersOf(keyNames[i]).contains(EMBEDDED);
        disagree += local[i] == applied[i] ? 0 : 1;
      }
      if (disagree != 0) {
        out.printf("%s WARNING: for %d keys ClusterNode.ownersOf and the writes applied on node-0 disagree "
            + "on whether node-0 owns them%n", tag, disagree);
      }
      gets(r, a, local);
      out.printf("%s gets: %s/s, local %s %% (p50 %s, p99 %s ms), remote %s %% (p50 %s, p99 %s ms), misses %s%n",
          tag, r.text.get(GETS), r.text.get(LOCAL_SHARE), r.text.get(LOCAL_P50), r.text.get(LOCAL_P99),
          r.text.get(REMOTE_SHARE), r.text.get(REMOTE_P50), r.text.get(REMOTE_P99), r.text.get(GET_MISSES));
      out.flush();

      if (partitioned && rebalance) {
        join(r, cluster, a, node, ids, flags, first);
        out.printf("%s join: in node-0's map after %s ms, /ready after %s ms, settled after %s ms (%s ms after "
                + "the map change), %s entries on the new node (%s/s); QUORUM writes %s, errors %s (%s %%)%n", tag,
            r.text.get(JOIN_MAP), r.text.get(JOIN_READY), r.text.get(JOIN_SETTLED),
            r.text.get(JOIN_SETTLED_FROM_MAP), r.text.get(JOIN_ENTRIES), r.text.get(JOIN_RATE),
            r.text.get(JOIN_WRITES), r.text.get(JOIN_ERRORS), r.text.get(JOIN_ERROR_RATE));
        out.flush();
      }
      return r;
    } finally {
      long stopping = System.nanoTime();
      // node-0's graceful leave and the servers' take seconds each: run them side by side
      KvStore embedded = a;
      Thread closer = new Thread(() -> {
        if (embedded != null) {
          embedded.close();
        }
      }, "partition-bench-close-node-0");
      closer.start();
      cluster.close();
      closer.join(TimeUnit.SECONDS.toMillis(60));
      current.set(null);
      out.printf("%s node-0 closed and %d server JVMs stopped in %d ms%n", tag, cluster.servers().size(),
          ms(System.nanoTime() - stopping));
      out.flush();
    }
  }

  private int index(String key) {
    if (key == null || !key.startsWith(PREFIX)) {
      return -1;
    }
    try {
      int i = Integer.parseInt(key.substring(PREFIX.length()));
      return i < keys ? i : -1;
    } catch (NumberFormatException e) {
      return -1;
    }
  }

  /**
   * Every node lists every id as a member, computed the same map over exactly these ids, and
   * reports nothing pending, for itself and for the peers it hears from.
   */
  private static boolean settled(BenchServers cluster, KvStore a, ClusterNode node, Set<String> ids) {
    if (!a.cluster().isReady()
        || a.cluster().members().stream().filter(m -> m.status() == Member.Status.ALIVE).count() != ids.size()
        || !node.partitionCounts().keySet().equals(ids)
        || node.pendingPartitionsByNode().values().stream().anyMatch(p -> p != 0)) {
      return false;
    }
    String version = String.format("%016x", node.partitionMapVersion());
    for (ClusterBench.Server s : cluster.servers()) {
      if (s.process == null) {
        continue;
      }
      BenchServers.ClusterState c = cluster.cluster(s);
      if (c == null || !c.ready() || !c.members().equals(ids) || !version.equals(c.mapVersion())
          || !c.mapNodes().keySet().equals(ids) || !c.nothingPending()
          || c.pending().getOrDefault(s.nodeId, -1) != 0) {
        return false;
      }
    }
    return true;
  }

  // ---- puts -----------------------------------------------------------------------------------

  /** One pass of writes: its duration, successes, errors and the latency of the successes. */
  record Pass(long nanos, long ops, long errors, Histogram latency) {
    double rate() {
      return ops / (nanos / 1e9);
    }

    double p(double percentile) {
      return latency.getTotalCount() == 0 ? Double.NaN : latency.getValueAtPercentile(percentile) / 1e6;
    }
  }

  private static Histogram histogram() {
    return new Histogram(TimeUnit.SECONDS.toNanos(60), 3);
  }

  private static void recordNanos(Histogram h, long nanos) {
    h.recordValue(Math.max(0, Math.min(nanos, h.getHighestTrackableValue())));
  }

  /** Writes every key once, thread t taking keys t, t + threads, ... */
  private Pass writeAll(KvStore a, WriteOptions options) throws Exception {
    LongAdder ops = new LongAdder();
    LongAdder errors = new LongAdder();
    List<Histogram> histograms = new ArrayList<>();
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    long start = System.nanoTime();
    try {
      List<Future<?>> futures = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
        int thread = t;
        Histogram h = histogram();
        histograms.add(h);
        futures.add(pool.submit(() -> {
          for (int i = thread; i < keys; i += threads) {
            long s = System.nanoTime();
            try {
              a.put(keyNames[i], value, options);
              recordNanos(h, System.nanoTime() - s);
              ops.increment();
            } catch (RuntimeException e) {
              errors.increment();
            }
          }
        }));
      }
      for (Future<?> f : futures) {
        f.get();
      }
    } finally {
      pool.shutdownNow();
    }
    long nanos = System.nanoTime() - start;
    Histogram all = histogram();
    histograms.forEach(all::add);
    return new Pass(nanos, ops.sum(), errors.sum(), all);
  }

  private static void record(Result r, Pass p, String rate, String p50, String p99, String errors) {
    r.put(rate, p.rate(), "%.0f");
    r.put(p50, p.p(50), "%.3f");
    r.put(p99, p.p(99), "%.3f");
    r.put(errors, p.errors, "%.0f");
  }

  // ---- counters, entries, memory ----------------------------------------------------------------

  /** Frames, bytes and mutations sent, summed over node-0 and every running server. */
  private static long[] counters(BenchServers cluster, ClusterNode node) throws IOException, InterruptedException {
    ReplicationStats s = node.stats();
    long[] sum = {s.framesSent(), s.bytesSent(), s.mutationsSent()};
    for (ClusterBench.Server server : cluster.servers()) {
      String m = cluster.metrics(server);
      sum[0] += (long) BenchServers.metric(m, "kvstore_replication_frames_sent_total");
      sum[1] += (long) BenchServers.metric(m, "kvstore_replication_bytes_sent_total");
      sum[2] += (long) BenchServers.metric(m, "kvstore_replication_mutations_sent_total");
    }
    return sum;
  }

  /**
   * The counters once the fan-out of the last pass is done: mutations sent unchanged over 500 ms
   * (a QUORUM put returns before its last owners got it), bounded by the wait bound.
   */
  private long[] awaitQuietFanOut(BenchServers cluster, ClusterNode node) throws Exception {
    long deadline = System.nanoTime() + waitBound.toNanos();
    long[] last = counters(cluster, node);
    while (System.nanoTime() < deadline) {
      Thread.sleep(500);
      long[] now = counters(cluster, node);
      if (now[2] == last[2]) {
        return now;
      }
      last = now;
    }
    out.printf("WARNING: the fan-out did not go quiet within %s; counters taken anyway%n", waitBound);
    return last;
  }

  private static long liveEntries(BenchServers cluster, ClusterBench.Server s) {
    try {
      return (long) BenchServers.metric(cluster.metrics(s), "kvstore_store_live_entries");
    } catch (IOException e) {
      return -1;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return -1;
    }
  }

  /** Live entries of node-0 and every server; a server that does not answer makes it -1. */
  private static long totalEntries(BenchServers cluster, KvStore a) {
    long sum = a.size();
    for (ClusterBench.Server s : cluster.servers()) {
      long n = liveEntries(cluster, s);
      if (n < 0) {
        return -1;
      }
      sum += n;
    }
    return sum;
  }

  /** Heap used after a full GC, per server, measured one server after the other. */
  private static long[] heaps(BenchServers cluster) throws IOException, InterruptedException {
    List<ClusterBench.Server> list = cluster.servers();
    long[] heap = new long[list.size()];
    for (int i = 0; i < heap.length; i++) {
      heap[i] = cluster.heapUsedAfterGc(list.get(i));
    }
    return heap;
  }

  private static void memory(Result r, BenchServers cluster, KvStore a, long[] heapEmpty)
      throws IOException, InterruptedException {
    List<ClusterBench.Server> list = cluster.servers();
    long[] heap = heaps(cluster);
    StringJoiner entries = new StringJoiner(" · ");
    StringJoiner heaps = new StringJoiner(" · ");
    double entrySum = 0;
    double heapSum = 0;
    double growthSum = 0;
    int measured = 0;
    for (int i = 0; i < heap.length; i++) {
      long n = liveEntries(cluster, list.get(i));
      entries.add(String.valueOf(n));
      entrySum += n;
      heaps.add(heap[i] < 0 ? "?" : String.format(Locale.ROOT, "%.1f", heap[i] / 1048576.0));
      if (heap[i] >= 0 && heapEmpty[i] >= 0) {
        heapSum += heap[i];
        growthSum += heap[i] - heapEmpty[i];
        measured++;
      }
    }
    r.putText(ENTRIES_LIST, entries.toString());
    r.put(ENTRIES_MEAN, entrySum / heap.length, "%.0f");
    r.put(ENTRIES_EMBEDDED, a.size(), "%.0f");
    r.putText(HEAP_LIST, heaps.toString());
    if (measured > 0) {
      r.put(HEAP_MEAN, heapSum / measured / 1048576.0, "%.1f");
      r.put(HEAP_GROWTH, growthSum / measured / 1048576.0, "%.1f");
    } else {
      r.putText(HEAP_MEAN, "jcmd failed (see the .jcmd.txt files)");
      r.putText(HEAP_GROWTH, "jcmd failed");
    }
  }

  // ---- gets -----------------------------------------------------------------------------------

  private void gets(Result r, KvStore a, boolean[] local) throws Exception {
    LongAdder misses = new LongAdder();
    LongAdder errors = new LongAdder();
    List<Histogram> localH = new ArrayList<>();
    List<Histogram> remoteH = new ArrayList<>();
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    long start = System.nanoTime();
    long end = start + getMeasure.toNanos();
    try {
      List<Future<?>> futures = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
        Histogram lh = histogram();
        Histogram rh = histogram();
        localH.add(lh);
        remoteH.add(rh);
        SplittableRandom random = new SplittableRandom(seed + 1000 + t);
        futures.add(pool.submit(() -> {
          while (System.nanoTime() < end) {
            int i = random.nextInt(keys);
            long s = System.nanoTime();
            try {
              boolean found = a.get(keyNames[i]).isPresent();
              recordNanos(local[i] ? lh : rh, System.nanoTime() - s);
              if (!found) {
                misses.increment();
              }
            } catch (RuntimeException e) {
              errors.increment();
            }
          }
        }));
      }
      for (Future<?> f : futures) {
        f.get();
      }
    } finally {
      pool.shutdownNow();
    }
    double seconds = (System.nanoTime() - start) / 1e9;
    Histogram l = histogram();
    Histogram m = histogram();
    localH.forEach(l::add);
    remoteH.forEach(m::add);
    long n = l.getTotalCount() + m.getTotalCount();
    r.put(GETS, n / seconds, "%.0f");
    r.put(GET_MISSES, misses.sum() + errors.sum(), "%.0f");
    r.put(LOCAL_SHARE, n == 0 ? 0 : 100.0 * l.getTotalCount() / n, "%.1f");
    percentiles(r, l, LOCAL_P50, LOCAL_P99);
    r.put(REMOTE_SHARE, n == 0 ? 0 : 100.0 * m.getTotalCount() / n, "%.1f");
    percentiles(r, m, REMOTE_P50, REMOTE_P99);
  }

  private static void percentiles(Result r, Histogram h, String p50, String p99) {
    if (h.getTotalCount() == 0) {
      r.putText(p50, "—");
      r.putText(p99, "—");
    } else {
      r.put(p50, h.getValueAtPercentile(50) / 1e6, "%.3f");
      r.put(p99, h.getValueAtPercentile(99) / 1e6, "%.3f");
    }
  }

  // ---- rebalancing ----------------------------------------------------------------------------

  private void join(Result r, BenchServers cluster, KvStore a, ClusterNode node, Set<String> ids,
      List<String> flags, ClusterBench.Server seedServer) throws Exception {
    ClusterBench.Server joiner = cluster.add("node-" + nodes, seedServer, flags);
    Set<String> grown = new LinkedHashSet<>(ids);
    grown.add(joiner.nodeId);
    AtomicBoolean stop = new AtomicBoolean();
    LongAdder ok = new LongAdder();
    LongAdder errors = new LongAdder();
    AtomicReference<String> firstError = new AtomicReference<>();
    WriteOptions quorum = WriteOptions.concern(WriteConcern.QUORUM).withTimeout(quorumWait);
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    long started;
    long settledAt = 0;
    long readyAt = 0;
    long mapAt = 0;
    long entries = -1;
    try {
      List<Future<?>> futures = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
        SplittableRandom random = new SplittableRandom(seed + 2000 + t);
        long period = joinWriteRate > 0 ? 1_000_000_000L * threads / joinWriteRate : 0;
        futures.add(pool.submit(() -> {
          long next = System.nanoTime();
          while (!stop.get()) {
            if (period > 0) {
              next += period;
              long wait = next - System.nanoTime();
              if (wait > 0) {
                java.util.concurrent.locks.LockSupport.parkNanos(wait);
              }
            }
            try {
              a.put(keyNames[random.nextInt(keys)], value, quorum);
              ok.increment();
            } catch (RuntimeException e) {
              errors.increment();
              firstError.compareAndSet(null, e.toString());
            }
          }
        }));
      }
      started = System.nanoTime();
      joiner.start();
      long deadline = started + waitBound.toNanos();
      long balancedSince = 0;
      long lastChange = started;
      while (true) {
        long now = System.nanoTime();
        if (now > deadline) {
          throw new IllegalStateException("the join did not settle within " + waitBound + " (new node holds "
              + entries + " entries; see " + joiner.log + ")");
        }
        if (!joiner.process.isAlive()) {
          throw new IllegalStateException(joiner.nodeId + " exited with " + joiner.process.exitValue()
              + "; see " + joiner.log);
        }
        if (readyAt == 0 && cluster.status(joiner.url() + "/ready") == 200) {
          readyAt = now;
        }
        if (mapAt == 0 && node.partitionCounts().containsKey(joiner.nodeId)) {
          mapAt = now;
        }
        long n = liveEntries(cluster, joiner);
        if (n != entries) {
          entries = n;
          lastChange = now;
        }
        if (settled(cluster, a, node, grown)) {
          balancedSince = balancedSince == 0 ? now : balancedSince;
        } else {
          balancedSince = 0;
        }
        if (balancedSince != 0 && entries > 0 && now - balancedSince >= settleWindow.toNanos()
            && now - lastChange >= settleWindow.toNanos()) {
          settledAt = Math.max(balancedSince, lastChange);
          break;
        }
        Thread.sleep(100);
      }
      stop.set(true);
      for (Future<?> f : futures) {
        f.get();
      }
    } finally {
      stop.set(true);
      pool.shutdownNow();
      pool.awaitTermination(30, TimeUnit.SECONDS);
    }
    // the map change starts the pulls; the JVM's start before it is not moving data
    long moving = settledAt - (mapAt == 0 ? started : Math.min(mapAt, settledAt));
    long writes = ok.sum() + errors.sum();
    r.put(JOIN_READY, readyAt == 0 ? Double.NaN : ms(readyAt - started), "%.0f");
    r.put(JOIN_MAP, mapAt == 0 ? Double.NaN : ms(mapAt - started), "%.0f");
    r.put(JOIN_SETTLED, ms(settledAt - started), "%.0f");
    r.put(JOIN_SETTLED_FROM_MAP, ms(moving), "%.0f");
    r.put(JOIN_ENTRIES, entries, "%.0f");
    Integer owned = node.partitionCounts().get(joiner.nodeId);
    r.put(JOIN_SHARE, owned == null ? Double.NaN : keys * (double) owned / 1024, "%.0f");
    r.put(JOIN_RATE, moving <= 0 ? Double.NaN : entries / (moving / 1e9), "%.0f");
    r.put(JOIN_WRITES, writes, "%.0f");
    r.put(JOIN_ERRORS, errors.sum(), "%.0f");
    r.put(JOIN_ERROR_RATE, writes == 0 ? 0 : 100.0 * errors.sum() / writes, "%.3f");
    if (firstError.get() != null) {
      out.printf("[partitioned] first QUORUM error during the join: %s%n", firstError.get());
    }
  }

  // ---- report ---------------------------------------------------------------------------------

  private String title(Mode mode) {
    return mode == Mode.PARTITIONED
        ? String.format(Locale.ROOT, "partitioned, rf %d", replicationFactor)
        : String.format(Locale.ROOT, "full replication (rf %d)", nodes);
  }

  /** Markdown: a table per mode, then the modes side by side with partitioned / full. */
  String report(List<Result> results) {
    StringBuilder b = new StringBuilder();
    String setup = String.format(Locale.ROOT, "%d nodes (%d server JVMs, -Xmx%s, --in-memory; node-0 embedded "
            + "in the bench JVM drives the load), %d keys x %d B values, %d threads, get phase %s, seed %d",
        nodes, nodes - 1, serverHeap, keys, valueSize, threads, getDuration, seed);
    for (Result r : results) {
      b.append("\n### ").append(title(r.mode)).append("\n\n").append(setup).append("\n\n");
      b.append("| Figure | Value |\n| --- | --- |\n");
      r.text.forEach((row, v) -> b.append("| ").append(row).append(" | ").append(v).append(" |\n"));
    }
    Result p = results.stream().filter(x -> x.mode == Mode.PARTITIONED).findFirst().orElse(null);
    Result f = results.stream().filter(x -> x.mode == Mode.FULL).findFirst().orElse(null);
    if (p != null && f != null) {
      b.append("\n### Side by side\n\n").append(setup).append("\n\n");
      b.append(String.format(Locale.ROOT, "Expected: entries and heap growth per node partitioned / full ≈ rf/N "
              + "= %.2f; mutations per write %d vs. %d.%n%n", replicationFactor / (double) nodes,
          replicationFactor - 1, nodes - 1));
      b.append("| Figure | ").append(title(Mode.PARTITIONED)).append(" | ").append(title(Mode.FULL))
          .append(" | partitioned / full |\n| --- | --- | --- | --- |\n");
      Set<String> rows = new LinkedHashSet<>(p.text.keySet());
      rows.addAll(f.text.keySet());
      for (String row : rows) {
        Double pv = p.numbers.get(row);
        Double fv = f.numbers.get(row);
        String ratio = pv != null && fv != null && fv != 0 && !pv.isNaN() && !fv.isNaN()
            ? String.format(Locale.ROOT, "%.3g", pv / fv) : "";
        b.append("| ").append(row).append(" | ").append(p.text.getOrDefault(row, "—")).append(" | ")
            .append(f.text.getOrDefault(row, "—")).append(" | ").append(ratio).append(" |\n");
      }
    }
    return b.toString();
  }

  private static long ms(long nanos) {
    return TimeUnit.NANOSECONDS.toMillis(nanos);
  }
}
