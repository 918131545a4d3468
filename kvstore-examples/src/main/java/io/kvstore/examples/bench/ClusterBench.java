package io.kvstore.examples.bench;

import io.kvstore.cluster.KvCluster;
import io.kvstore.cluster.ReplicationStats;
import io.kvstore.core.KvStore;
import io.kvstore.core.Member;
import io.kvstore.core.MembershipEvent;
import io.kvstore.core.Registration;
import io.kvstore.core.Versioned;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteOptions;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.LockSupport;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.HdrHistogram.Histogram;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * A three-node cluster benchmark on loopback: nodes B and C are standalone servers in their own JVMs
 * (started from the server jar on free ports), node A runs embedded in this JVM and joins them. It
 * measures, in order, the phases chosen with {@code --phases}:
 *
 * <ul>
 *   <li>{@code one}, {@code quorum}: replicated puts of {@code --value-size} bytes over {@code --keys}
 *       keys from {@code --threads} threads on A, for {@code --duration}; then the time until the three
 *       replicas are identical: their content fingerprints (A's store, B's and C's
 *       {@code /v1/cluster}) polled every 20 ms until equal, then confirmed by an order-independent
 *       hash over every live (key, version): A by a local paged scan, B and C by paging
 *       {@code GET /v1/kv?limit=10000&startAfter=}.
 *   <li>{@code lag}: puts paced at {@code --lag-rate} on A (latency counted from the intended start, so
 *       no coordinated omission) and the time until C reports each change on its SSE stream
 *       {@code /v1/watch?prefix=lag:}, read in this JVM so one clock measures both ends.
 *   <li>{@code catchup}: loads {@code --catchup-keys} keys, waits until B and C hold them, SIGKILLs C
 *       and measures failure detection (REMOVED on A by a membership listener, and gone from B's
 *       {@code /v1/cluster}), then restarts C empty with the same flags and measures the time from
 *       process start to {@code /ready} and to holding every live entry ({@code /metrics}).
 * </ul>
 *
 * <p>Throughout, every member that disappears from A's view without having been killed is counted as a
 * false removal. Usage (see docs/BENCHMARKS.md):
 *
 * <pre>
 * java -Xmx2g -cp kvstore-examples/target/kvstore-benchmarks.jar io.kvstore.examples.bench.ClusterBench
 * </pre>
 */
@Command(name = "kvstore-cluster-bench", mixinStandardHelpOptions = true, sortOptions = false,
    description = "Three-node loopback cluster benchmark: B and C in their own JVMs, A embedded here.")
public final class ClusterBench implements Callable<Integer> {

  enum Phase { ONE, QUORUM, LAG, CATCHUP }

  @Option(names = "--phases", defaultValue = "one,quorum,lag,catchup", split = ",",
      description = "Phases to run, in this order: one, quorum, lag, catchup "
          + "(default: ${DEFAULT-VALUE}).")
  Set<Phase> phases = EnumSet.noneOf(Phase.class);

  @Option(names = "--duration", defaultValue = "10s",
      description = "Measured time of each put phase, e.g. 10s, 500ms (default: ${DEFAULT-VALUE}).")
  String duration;

  @Option(names = "--warmup", defaultValue = "2s",
      description = "Unmeasured time before each put phase and the lag phase (default: ${DEFAULT-VALUE}).")
  String warmup;

  @Option(names = "--threads", defaultValue = "8",
      description = "Writer threads on A in the put phases (default: ${DEFAULT-VALUE}).")
  int threads;

  @Option(names = "--keys", defaultValue = "100000",
      description = "Key space of the put phases (default: ${DEFAULT-VALUE}).")
  int keys;

  @Option(names = "--value-size", defaultValue = "100",
      description = "Bytes per value (default: ${DEFAULT-VALUE}).")
  int valueSize;

  @Option(names = "--quorum-timeout", defaultValue = "5s",
      description = "Timeout of each QUORUM put (default: ${DEFAULT-VALUE}).")
  String quorumTimeout;

  @Option(names = "--lag-rate", defaultValue = "5000",
      description = "Puts per second in the lag phase (default: ${DEFAULT-VALUE}).")
  int lagRate;

  @Option(names = "--lag-duration", defaultValue = "10s",
      description = "Measured time of the lag phase (default: ${DEFAULT-VALUE}).")
  String lagDuration;

  @Option(names = "--catchup-keys", defaultValue = "1000000",
      description = "Keys loaded before C is killed and restarted (default: ${DEFAULT-VALUE}).")
  int catchupKeys;

  @Option(names = "--server-jar",
      description = "The standalone server jar (default: system property kvstore.server.jar, else "
          + "kvstore-examples/target/kvstore-server.jar, else this JVM's class path).")
  String serverJar;

  @Option(names = "--server-heap", defaultValue = "1g",
      description = "-Xmx of the server JVMs B and C (default: ${DEFAULT-VALUE}).")
  String serverHeap;

  @Option(names = "--dir", defaultValue = "target/cluster-bench",
      description = "Where the logs of B and C go (default: ${DEFAULT-VALUE}).")
  Path dir;

  @Option(names = "--timeout", defaultValue = "180s",
      description = "Bound of every wait: start, convergence, catch-up (default: ${DEFAULT-VALUE}).")
  String timeout;

  @Option(names = "--trace-ms", defaultValue = "0",
      description = "If positive: print A's fan-out counters (sent, acked, sent - acked) every this"
          + " many ms from the start of a put phase until the replicas are identical (default: off).")
  int traceMs;

  @CommandLine.Spec
  CommandLine.Model.CommandSpec spec;

  private static final Pattern ITEM =
      Pattern.compile("\"key\"\\s*:\\s*\"([^\"]*)\"\\s*,\\s*\"version\"\\s*:\\s*\"([^\"]*)\"");
  private static final Pattern NEXT = Pattern.compile("\"nextStartAfter\"\\s*:\\s*(null|\"([^\"]*)\")");
  private static final Pattern LIVE =
      Pattern.compile("(?m)^kvstore_store_live_entries(?:\\{[^}]*})? ([0-9.eE+]+)");
  private static final Pattern FINGERPRINT =
      Pattern.compile("\"contentFingerprint\"\\s*:\\s*\"([0-9a-f]{16})\"");
  private static final Pattern LAG_KEY = Pattern.compile("\"key\"\\s*:\\s*\"lag:(\\d+)\"");
  private static final int PAGE = 10_000;

  private PrintWriter out;
  private HttpClient http;
  private Duration waitBound;
  /** B and C: started, awaited and stopped by PID there (shared with PartitionBench). */
  private volatile BenchServers servers;
  private final Map<String, Long> removedAt = new ConcurrentHashMap<>();
  private final List<String> falseRemovals = new CopyOnWriteArrayList<>();
  private final Set<String> expectedRemovals = ConcurrentHashMap.newKeySet();

  /**
   * Runs the benchmark.
   *
   * @param args flags; {@code --help} lists them
   */
  public static void main(String[] args) {
    System.exit(commandLine().execute(args));
  }

  /**
   * The command line, with case-insensitive enum values.
   *
   * @return the command line
   */
  public static CommandLine commandLine() {
    CommandLine cl = new CommandLine(new ClusterBench());
    cl.setCaseInsensitiveEnumValuesAllowed(true);
    return cl;
  }

  /** A standalone server process and the flags that start it again. */
  static final class Server {
    final String nodeId;
    final int httpPort;
    final int clusterPort;
    final List<String> command;
    final Path log;
    /** Its storage, emptied before every start (else it would recover the previous run's data), or null. */
    final Path data;
    Process process;

    Server(String nodeId, int httpPort, int clusterPort, List<String> command, Path log) {
      this(nodeId, httpPort, clusterPort, command, log, null);
    }

    Server(String nodeId, int httpPort, int clusterPort, List<String> command, Path log, Path data) {
      this.data = data;
      this.nodeId = nodeId;
      this.httpPort = httpPort;
      this.clusterPort = clusterPort;
      this.command = List.copyOf(command);
      this.log = log;
    }

    String url() {
      return "http://127.0.0.1:" + httpPort;
    }

    void start() throws IOException {
      if (data != null) {
        deleteTree(data);
      }
      process = new ProcessBuilder(command).redirectErrorStream(true)
          .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile())).start();
    }
  }

  @Override
  public Integer call() throws Exception {
    Duration measure;
    Duration warm;
    Duration lagMeasure;
    Duration quorumWait;
    try {
      measure = parseDuration(duration);
      warm = parseDuration(warmup);
      lagMeasure = parseDuration(lagDuration);
      quorumWait = parseDuration(quorumTimeout);
      waitBound = parseDuration(timeout);
    } catch (IllegalArgumentException e) {
      throw new CommandLine.ParameterException(spec.commandLine(), e.getMessage());
    }
    if (phases.isEmpty()) {
      throw new CommandLine.ParameterException(spec.commandLine(), "--phases names no phase");
    }
    Set<Phase> run = EnumSet.copyOf(phases);
    if (threads < 1 || keys < 1 || valueSize < 0 || lagRate < 1 || catchupKeys < 1) {
      throw new CommandLine.ParameterException(spec.commandLine(),
          "--threads, --keys, --lag-rate and --catchup-keys must be positive, --value-size not negative");
    }
    out = spec.commandLine().getOut();
    http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
        .connectTimeout(Duration.ofSeconds(2)).build();
    try {
      servers = new BenchServers(serverJar, serverHeap, dir, waitBound);
    } catch (IllegalArgumentException e) {
      throw new CommandLine.ParameterException(spec.commandLine(), e.getMessage());
    }
    Thread hook = new Thread(this::stopServers, "cluster-bench-stop");
    Runtime.getRuntime().addShutdownHook(hook);
    KvStore a = null;
    try {
      Server b = servers.add("node-b", null, List.of());
      Server c = servers.add("node-c", b, List.of());
      long t0 = System.nanoTime();
      b.start();
      c.start();
      servers.awaitReady(b);
      servers.awaitReady(c);
      a = KvCluster.builder().nodeId("node-a").host("127.0.0.1").membershipPort(0).dataPort(0)
          .seeds("127.0.0.1:" + b.clusterPort, "127.0.0.1:" + c.clusterPort).build();
      KvStore node = a;
      Registration membership = a.cluster().addListener(this::onMembership);
      await("A sees B and C and is ready", () -> node.cluster().isReady()
          && node.cluster().members().stream().filter(m -> m.status() == Member.Status.ALIVE).count() == 3);
      await("B and C list A", () -> clusterJson(b).contains("node-a") && clusterJson(c).contains("node-a"));
      out.printf("cluster up in %d ms: A embedded, B %s, C %s (logs in %s)%n", ms(System.nanoTime() - t0),
          b.url(), c.url(), dir.toAbsolutePath());
      out.flush();
      byte[] value = new byte[valueSize];
      new SplittableRandom(42).nextBytes(value);

      for (Phase phase : run) {
        int falseBefore = falseRemovals.size();
        switch (phase) {
          case ONE -> puts(a, WriteOptions.defaults(), "ONE", value, warm, measure, b, c);
          case QUORUM -> puts(a, WriteOptions.concern(WriteConcern.QUORUM).withTimeout(quorumWait),
              "QUORUM", value, warm, measure, b, c);
          case LAG -> lag(a, c, value, warm, lagMeasure);
          case CATCHUP -> catchup(a, b, c, value);
          default -> throw new IllegalStateException(phase.toString());
        }
        out.printf("[%s] false removals on A during the phase: %d%s%n", phase.name().toLowerCase(Locale.ROOT),
            falseRemovals.size() - falseBefore, falseRemovals.size() > falseBefore
                ? " " + falseRemovals.subList(falseBefore, falseRemovals.size()) : "");
        out.flush();
      }
      membership.close();
      out.printf("false removals on A in total: %d%n", falseRemovals.size());
      return 0;
    } finally {
      if (a != null) {
        a.close();
      }
      stopServers();
      try {
        Runtime.getRuntime().removeShutdownHook(hook);
      } catch (IllegalStateException e) {
        // already shutting down
      }
      out.flush();
    }
  }

  private void onMembership(MembershipEvent e) {
    if (e.type() == MembershipEvent.Type.REMOVED) {
      String id = e.member().nodeId();
      removedAt.putIfAbsent(id, System.nanoTime());
      if (!expectedRemovals.remove(id)) {
        falseRemovals.add(id);
      }
    }
  }

  // ---- phases ---------------------------------------------------------------------------------

  private void puts(KvStore a, WriteOptions options, String name, byte[] value, Duration warm,
      Duration measure, Server b, Server c) throws Exception {
    String[] keyNames = new String[keys];
    for (int i = 0; i < keys; i++) {
      keyNames[i] = "bench:" + i;
    }
    ReplicationStats before = KvCluster.stats(a).orElseThrow();
    LongAdder ops = new LongAdder();
    LongAdder all = new LongAdder();
    LongAdder errors = new LongAdder();
    long start = System.nanoTime();
    long measureFrom = start + warm.toNanos();
    long end = measureFrom + measure.toNanos();
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    Thread tracer = traceMs > 0 ? trace(name, a, before, start) : null;
    try {
      List<Future<?>> futures = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
        int thread = t;
        futures.add(pool.submit(() -> {
          SplittableRandom r = new SplittableRandom(1000L + thread);
          while (true) {
            long now = System.nanoTime();
            if (now >= end) {
              return;
            }
            try {
              a.put(keyNames[r.nextInt(keys)], value, options);
              all.increment();
              if (now >= measureFrom) {
                ops.increment();
              }
            } catch (RuntimeException e) {
              if (now >= measureFrom) {
                errors.increment();
              }
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
    long lastPut = System.nanoTime();
    ReplicationStats after = KvCluster.stats(a).orElseThrow();
    double seconds = measure.toNanos() / 1e9;
    double phaseSeconds = (lastPut - start) / 1e9;
    long acked = after.mutationsAcked() - before.mutationsAcked();
    out.printf("[%s] puts=%d in %.1f s: %.0f puts/s, errors=%d, threads=%d, value=%d B, keys=%d%n",
        name.toLowerCase(Locale.ROOT), ops.sum(), seconds, ops.sum() / seconds, errors.sum(), threads,
        valueSize, keys);
    out.printf("[%s] fan-out to B and C over the whole phase (%.1f s incl. warm-up, %d puts): sent=%d "
            + "acked=%d (%.0f/s, %.0f%% of 2 x puts) dropped at the in-flight limit=%d refused=%d%n",
        name.toLowerCase(Locale.ROOT), phaseSeconds, all.sum(),
        after.mutationsSent() - before.mutationsSent(), acked, acked / phaseSeconds,
        all.sum() == 0 ? 0.0 : 100.0 * acked / (2.0 * all.sum()),
        after.mutationsDropped() - before.mutationsDropped(),
        after.mutationsRefused() - before.mutationsRefused());
    liveDelivery(name, "at the last put", before, after, all.sum());
    out.printf("[%s] trace: last put at %d ms%n", name.toLowerCase(Locale.ROOT),
        ms(lastPut - start));
    convergence(name, a, b, c, lastPut);
    if (tracer != null) {
      tracer.interrupt();
      tracer.join();
    }
    liveDelivery(name, "once identical", before, KvCluster.stats(a).orElseThrow(), all.sum());
  }

  /** Prints A's fan-out counters every {@code --trace-ms} until interrupted. */
  private Thread trace(String name, KvStore a, ReplicationStats before, long start) {
    Thread t = new Thread(() -> {
      while (!Thread.currentThread().isInterrupted()) {
        ReplicationStats s = KvCluster.stats(a).orElseThrow();
        long sent = s.mutationsSent() - before.mutationsSent();
        long acked = s.mutationsAcked() - before.mutationsAcked();
        synchronized (out) {
          out.printf("[%s] trace t=%d ms sent=%d acked=%d unacked=%d coalesced=%d dropped=%d%n",
              name.toLowerCase(Locale.ROOT), ms(System.nanoTime() - start), sent, acked,
              sent - acked, s.mutationsCoalesced() - before.mutationsCoalesced(),
              s.mutationsDropped() - before.mutationsDropped());
        }
        LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(traceMs));
      }
    }, "cluster-bench-trace");
    t.setDaemon(true);
    t.start();
    return t;
  }

  /**
   * Fan-out delivered live to B and C: mutations they acknowledged plus mutations coalesced in A's
   * queues whose superseding (newer) version they acknowledged, over 2 x the puts of the phase.
   */
  private void liveDelivery(String name, String when, ReplicationStats before,
      ReplicationStats after, long puts) {
    long acked = after.mutationsAcked() - before.mutationsAcked();
    long coalescedAcked = after.mutationsCoalescedAcked() - before.mutationsCoalescedAcked();
    out.printf("[%s] live delivery %s: (acked %d + coalesced and superseded by an acked version %d)"
            + " / (2 x %d puts) = %.1f%%; coalesced=%d dropped=%d refused=%d%n",
        name.toLowerCase(Locale.ROOT), when, acked, coalescedAcked, puts,
        puts == 0 ? 0.0 : 100.0 * (acked + coalescedAcked) / (2.0 * puts),
        after.mutationsCoalesced() - before.mutationsCoalesced(),
        after.mutationsDropped() - before.mutationsDropped(),
        after.mutationsRefused() - before.mutationsRefused());
    out.flush();
  }

  /**
   * Polls the three nodes' content fingerprints (A's store, B's and C's {@code /v1/cluster}) every
   * 20 ms until they are equal, which times convergence to within a poll; then confirms with the
   * full listings (an order-independent hash over every live key and version on each node).
   */
  private void convergence(String name, KvStore a, Server b, Server c, long since) throws Exception {
    long deadline = System.nanoTime() + waitBound.toNanos();
    int polls = 0;
    while (true) {
      String fa = String.format("%016x", a.contentFingerprint());
      String fb = fingerprintHttp(b);
      String fc = fingerprintHttp(c);
      polls++;
      if (fa.equals(fb) && fa.equals(fc)) {
        long identicalMs = ms(System.nanoTime() - since);
        long s = System.nanoTime();
        long[] ha = hashLocal(a);
        long[] hb = hashHttp(b);
        long[] hc = hashHttp(c);
        long checkMs = ms(System.nanoTime() - s);
        if (ha[0] == hb[0] && ha[0] == hc[0] && ha[1] == hb[1] && ha[1] == hc[1]) {
          out.printf("[%s] replicas identical %d ms after the last put (content fingerprints"
                  + " equal at poll %d, polled every 20 ms); confirmed by full listings (%d live"
                  + " keys, hash %016x; 3 listings took %d ms)%n",
              name.toLowerCase(Locale.ROOT), identicalMs, polls, ha[0], ha[1], checkMs);
          return;
        }
        out.printf("[%s] fingerprints equal but listings differ (A %d/%016x B %d/%016x C %d/%016x):"
                + " a tombstone on one node only; waiting on%n", name.toLowerCase(Locale.ROOT),
            ha[0], ha[1], hb[0], hb[1], hc[0], hc[1]);
      }
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException(String.format(
            "replicas differ after %s: content fingerprints A %s, B %s, C %s", waitBound, fa, fb,
            fc));
      }
      Thread.sleep(20);
    }
  }

  /** A server's {@code self.contentFingerprint} from {@code /v1/cluster}. */
  private String fingerprintHttp(Server s) throws IOException, InterruptedException {
    HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(s.url() + "/v1/cluster"))
        .build(), HttpResponse.BodyHandlers.ofString());
    Matcher m = FINGERPRINT.matcher(r.body());
    if (r.statusCode() != 200 || !m.find()) {
      throw new IllegalStateException("no contentFingerprint in " + s.url() + "/v1/cluster: "
          + r.statusCode() + " " + r.body());
    }
    return m.group(1);
  }

  private void lag(KvStore a, Server c, byte[] value, Duration warm, Duration measure) throws Exception {
    long period = 1_000_000_000L / lagRate;
    int warmCount = (int) (warm.toNanos() / period);
    int total = warmCount + (int) (measure.toNanos() / period);
    long[] intended = new long[total];
    Histogram histogram = new Histogram(TimeUnit.SECONDS.toNanos(60), 3);
    AtomicLong seen = new AtomicLong();
    CountDownLatch watching = new CountDownLatch(1);
    HttpResponse<InputStream> stream = http.send(HttpRequest.newBuilder(
            URI.create(c.url() + "/v1/watch?prefix=lag:")).build(),
        HttpResponse.BodyHandlers.ofInputStream());
    if (stream.statusCode() != 200) {
      throw new IllegalStateException("watch on C answered " + stream.statusCode());
    }
    InputStream body = stream.body();
    Thread reader = new Thread(() -> {
      try (BufferedReader lines = new BufferedReader(new InputStreamReader(body, StandardCharsets.UTF_8))) {
        String line;
        while ((line = lines.readLine()) != null) {
          long now = System.nanoTime();
          if (line.startsWith(": watching")) {
            watching.countDown();
          } else if (line.startsWith("data:")) {
            Matcher m = LAG_KEY.matcher(line);
            if (m.find()) {
              int seq = Integer.parseInt(m.group(1));
              if (seq < total && intended[seq] != 0) {
                if (seq >= warmCount) {
                  histogram.recordValue(Math.max(0, now - intended[seq]));
                }
                seen.incrementAndGet();
              }
            }
          }
        }
      } catch (IOException e) {
        // closed by the writer side when done
      }
    }, "lag-reader");
    reader.setDaemon(true);
    reader.start();
    try {
      if (!watching.await(waitBound.toMillis(), TimeUnit.MILLISECONDS)) {
        throw new IllegalStateException("C's watch stream did not start");
      }
      long t0 = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(20);
      long maxBehind = 0;
      for (int i = 0; i < total; i++) {
        long at = t0 + i * period;
        intended[i] = at;
        long wait = at - System.nanoTime();
        if (wait > 0) {
          LockSupport.parkNanos(wait);
        } else {
          maxBehind = Math.max(maxBehind, -wait);
        }
        a.put("lag:" + i, value, WriteOptions.defaults());
      }
      long deadline = System.nanoTime() + waitBound.toNanos();
      while (seen.get() < total && System.nanoTime() < deadline) {
        Thread.sleep(20);
      }
      out.printf("[lag] %d puts at %d/s (%d warm-up), %d seen on C's watch stream; writer at most %d ms "
              + "behind schedule%n", total, lagRate, warmCount, seen.get(), ms(maxBehind));
      out.printf("[lag] put start on A -> change visible on C (SSE), n=%d: p50=%.2f ms p90=%.2f ms "
              + "p99=%.2f ms p99.9=%.2f ms max=%.2f ms%n", histogram.getTotalCount(),
          histogram.getValueAtPercentile(50) / 1e6, histogram.getValueAtPercentile(90) / 1e6,
          histogram.getValueAtPercentile(99) / 1e6, histogram.getValueAtPercentile(99.9) / 1e6,
          histogram.getMaxValue() / 1e6);
      if (seen.get() < total) {
        out.printf("[lag] WARNING: %d changes never seen on C%n", total - seen.get());
      }
    } finally {
      body.close();
      reader.join(5000);
    }
  }

  private void catchup(KvStore a, Server b, Server c, byte[] value) throws Exception {
    long s = System.nanoTime();
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    try {
      List<Future<?>> futures = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
        int thread = t;
        futures.add(pool.submit(() -> {
          for (int i = thread; i < catchupKeys; i += threads) {
            a.put(String.format("c:%07d", i), value, WriteOptions.defaults());
          }
        }));
      }
      for (Future<?> f : futures) {
        f.get();
      }
    } finally {
      pool.shutdownNow();
    }
    long loaded = System.nanoTime() - s;
    long target = a.size();
    out.printf("[catchup] loaded %d keys on A in %d ms (%.0f puts/s); A holds %d live entries%n",
        catchupKeys, ms(loaded), catchupKeys / (loaded / 1e9), target);
    out.flush();
    await("B and C hold " + target + " live entries", () -> liveEntries(b) == target && liveEntries(c) == target);
    out.printf("[catchup] B and C hold them %d ms after the load started%n", ms(System.nanoTime() - s));

    expectedRemovals.add(c.nodeId);
    long killed = System.nanoTime();
    c.process.destroyForcibly();
    if (!c.process.waitFor(30, TimeUnit.SECONDS)) {
      throw new IllegalStateException("C did not die");
    }
    long goneOnB = 0;
    long deadline = System.nanoTime() + waitBound.toNanos();
    while (System.nanoTime() < deadline && (goneOnB == 0 || !removedAt.containsKey(c.nodeId))) {
      if (goneOnB == 0 && !memberIds(clusterJson(b)).contains(c.nodeId)) {
        goneOnB = System.nanoTime();
      }
      Thread.sleep(50);
    }
    Long onA = removedAt.get(c.nodeId);
    out.printf("[failure] SIGKILL of C -> REMOVED on A (listener): %s ms; gone from B's /v1/cluster: %s ms%n",
        onA == null ? "not within " + waitBound : String.valueOf(ms(onA - killed)),
        goneOnB == 0 ? "not within " + waitBound : String.valueOf(ms(goneOnB - killed)));
    out.flush();

    long started = System.nanoTime();
    c.start();
    long ready = 0;
    long full = 0;
    long lastLive = -1;
    deadline = started + waitBound.toNanos();
    while (System.nanoTime() < deadline && (ready == 0 || full == 0)) {
      if (!c.process.isAlive()) {
        throw new IllegalStateException("C exited with " + c.process.exitValue() + "; see " + c.log);
      }
      if (ready == 0 && status(c.url() + "/ready") == 200) {
        ready = System.nanoTime();
      }
      if (full == 0) {
        lastLive = liveEntries(c);
        if (lastLive >= target) {
          full = System.nanoTime();
        }
      }
      Thread.sleep(50);
    }
    out.printf("[catchup] C restarted empty: /ready after %s ms, %d live entries after %s ms "
            + "(from process start; last seen %d)%n",
        ready == 0 ? "never" : String.valueOf(ms(ready - started)), target,
        full == 0 ? "never" : String.valueOf(ms(full - started)), lastLive);
    SplittableRandom r = new SplittableRandom(7);
    int samples = 1000;
    int same = 0;
    for (int i = 0; i < samples; i++) {
      String key = String.format("c:%07d", r.nextInt(catchupKeys));
      Optional<Versioned> onA2 = a.getVersioned(key);
      HttpResponse<Void> resp = http.send(HttpRequest.newBuilder(URI.create(c.url() + "/v1/kv/" + key))
          .method("HEAD", HttpRequest.BodyPublishers.noBody()).build(), HttpResponse.BodyHandlers.discarding());
      String etag = resp.headers().firstValue("ETag").orElse("");
      if (onA2.isPresent() && etag.equals("\"" + onA2.get().version() + "\"")) {
        same++;
      }
    }
    out.printf("[catchup] sampled check: %d of %d random keys have the same version on C as on A%n",
        same, samples);
    out.flush();
  }

  // ---- helpers --------------------------------------------------------------------------------

  /** Deletes a directory tree, if it exists. */
  static void deleteTree(Path root) throws IOException {
    if (!Files.exists(root)) {
      return;
    }
    try (java.util.stream.Stream<Path> paths = Files.walk(root)) {
      for (Path p : paths.sorted(java.util.Comparator.reverseOrder()).toList()) {
        Files.delete(p);
      }
    }
  }

  private void stopServers() {
    BenchServers running = servers;
    if (running != null) {
      running.close();
    }
  }

  /**
   * {@code n} distinct loopback ports that are free now, chosen at random below 32768: outside
   * Linux's default ephemeral range (32768-60999), where the outgoing connections of the nodes
   * themselves take their source ports, so a port handed out here is not taken by one of them
   * before its server binds it (seen: "Failed to bind" on a port from {@code new ServerSocket(0)}).
   */
  static int[] freePorts(int n) throws IOException {
    int[] ports = new int[n];
    java.util.Set<Integer> taken = new java.util.HashSet<>();
    java.util.concurrent.ThreadLocalRandom random = java.util.concurrent.ThreadLocalRandom.current();
    for (int i = 0, attempts = 0; i < n; attempts++) {
      if (attempts > 10_000) {
        throw new IOException("no free loopback port found below 32768");
      }
      int port = 20_000 + random.nextInt(12_768);
      if (taken.contains(port)) {
        continue;
      }
      try (ServerSocket s = new ServerSocket(port, 1, InetAddress.getLoopbackAddress())) {
        taken.add(s.getLocalPort());
        ports[i++] = s.getLocalPort();
      } catch (IOException busy) {
        // taken: try another
      }
    }
    return ports;
  }

  private void await(String what, BenchServers.Condition condition) throws Exception {
    servers.await(what, condition);
  }

  private int status(String url) {
    return servers.status(url);
  }

  private String get(String url) throws IOException, InterruptedException {
    return servers.get(url);
  }

  /**
   * The node ids of {@code self} and {@code members} in a /v1/cluster answer (not the partition
   * map's node list, which keeps a crashed node for the removal delay).
   */
  static Set<String> memberIds(String clusterJson) {
    Set<String> ids = new java.util.HashSet<>();
    if (clusterJson.isEmpty()) {
      return ids;
    }
    try {
      com.fasterxml.jackson.databind.JsonNode root =
          new com.fasterxml.jackson.databind.ObjectMapper().readTree(clusterJson);
      ids.add(root.path("self").path("id").asText());
      for (com.fasterxml.jackson.databind.JsonNode m : root.path("members")) {
        ids.add(m.path("id").asText());
      }
    } catch (IOException e) {
      // not JSON: no members
    }
    return ids;
  }

  private String clusterJson(Server s) {
    try {
      return get(s.url() + "/v1/cluster");
    } catch (IOException e) {
      return "";
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return "";
    }
  }

  private long liveEntries(Server s) {
    try {
      Matcher m = LIVE.matcher(get(s.url() + "/metrics"));
      return m.find() ? (long) Double.parseDouble(m.group(1)) : -1;
    } catch (IOException e) {
      return -1;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return -1;
    }
  }

  /** Count and order-independent hash of every live (key, version) of the local store. */
  static long[] hashLocal(KvStore store) {
    long count = 0;
    long hash = 0;
    String after = null;
    while (true) {
      List<Versioned> page = store.scan("", after, PAGE);
      for (Versioned v : page) {
        hash += entryHash(v.key(), v.version().toString());
        count++;
      }
      if (page.size() < PAGE) {
        return new long[] {count, hash};
      }
      after = page.get(page.size() - 1).key();
    }
  }

  private long[] hashHttp(Server s) throws IOException, InterruptedException {
    long count = 0;
    long hash = 0;
    String after = null;
    while (true) {
      String body = get(s.url() + "/v1/kv?limit=" + PAGE
          + (after == null ? "" : "&startAfter=" + URLEncoder.encode(after, StandardCharsets.UTF_8)));
      Matcher m = ITEM.matcher(body);
      while (m.find()) {
        hash += entryHash(m.group(1), m.group(2));
        count++;
      }
      Matcher next = NEXT.matcher(body);
      if (!next.find()) {
        throw new IOException("no nextStartAfter in a listing page of " + s.nodeId);
      }
      if (next.group(2) == null) {
        return new long[] {count, hash};
      }
      after = next.group(2);
    }
  }

  static long entryHash(String key, String version) {
    long h = key.hashCode() * 0x9E3779B97F4A7C15L + version.hashCode();
    h ^= h >>> 33;
    h *= 0xff51afd7ed558ccdL;
    h ^= h >>> 33;
    h *= 0xc4ceb9fe1a85ec53L;
    return h ^ (h >>> 33);
  }

  private static long ms(long nanos) {
    return TimeUnit.NANOSECONDS.toMillis(nanos);
  }

  /**
   * Parses 500ms, 10s, 2m or an ISO-8601 duration.
   *
   * @param text the text
   * @return the duration
   */
  static Duration parseDuration(String text) {
    String t = text.trim().toLowerCase(Locale.ROOT);
    try {
      Duration d;
      if (t.startsWith("p")) {
        d = Duration.parse(t.toUpperCase(Locale.ROOT));
      } else if (t.endsWith("ms")) {
        d = Duration.ofMillis(Long.parseLong(t.substring(0, t.length() - 2)));
      } else {
        long n = Long.parseLong(t.substring(0, t.length() - 1));
        d = switch (t.charAt(t.length() - 1)) {
          case 's' -> Duration.ofSeconds(n);
          case 'm' -> Duration.ofMinutes(n);
          default -> throw new IllegalArgumentException();
        };
      }
      if (d.isNegative()) {
        throw new IllegalArgumentException();
      }
      return d;
    } catch (RuntimeException e) {
      throw new IllegalArgumentException("not a duration (want e.g. 500ms, 10s, 2m): " + text, e);
    }
  }
}
