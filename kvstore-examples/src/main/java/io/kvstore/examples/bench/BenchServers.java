package io.kvstore.examples.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.File;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Standalone server JVMs for a process-level benchmark, and what such a benchmark reads from them:
 * {@code /ready}, {@code /v1/cluster}, {@code /metrics} and, through {@code jcmd}, the heap after a
 * full GC. Every JVM started here is stopped by {@link #close()} by its PID (SIGTERM, then SIGKILL
 * after 15 s); a caller registers {@link #close()} as a shutdown hook too, so an interrupted run
 * leaves no server behind.
 *
 * <p>Used by {@link ClusterBench} (its two servers) and {@link PartitionBench} (N servers); the
 * process handle is {@link ClusterBench.Server}, the ports come from {@link ClusterBench#freePorts}.
 */
final class BenchServers implements AutoCloseable {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Pattern HEAP_USED =
      Pattern.compile("(?m)heap\\s+total\\s+(\\d+)K,\\s+used\\s+(\\d+)K");

  private final String serverJar;
  private final String serverHeap;
  private final Path dir;
  private final Duration waitBound;
  private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
      .connectTimeout(Duration.ofSeconds(2)).build();
  private final List<ClusterBench.Server> servers = new CopyOnWriteArrayList<>();

  /**
   * @param serverJar the server jar, or null for the system property {@code kvstore.server.jar},
   *     else {@code kvstore-examples/target/kvstore-server.jar}, else this JVM's class path
   * @param serverHeap -Xmx of each server JVM
   * @param dir where the servers' logs go
   * @param waitBound bound of every wait
   */
  BenchServers(String serverJar, String serverHeap, Path dir, Duration waitBound) throws IOException {
    this.serverJar = serverJar;
    this.serverHeap = serverHeap;
    this.dir = dir;
    this.waitBound = waitBound;
    Files.createDirectories(dir);
    if (serverJar != null && !new File(serverJar).isFile()) {
      throw new IllegalArgumentException("no such server jar: " + serverJar);
    }
  }

  /** The servers defined so far, in the order they were added. */
  List<ClusterBench.Server> servers() {
    return List.copyOf(servers);
  }

  /**
   * Defines (does not start) a server on free loopback ports.
   *
   * @param nodeId its node id (also its log's name)
   * @param seed the server it joins, or null
   * @param flags further server flags
   */
  ClusterBench.Server add(String nodeId, ClusterBench.Server seed, List<String> flags) throws IOException {
    int[] ports = ClusterBench.freePorts(3);
    List<String> cmd = new ArrayList<>();
    cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    cmd.add("-Xmx" + serverHeap);
    // Extra JVM flags for every server, e.g. a flight recording while profiling a phase.
    String extra = System.getProperty("bench.serverJvmArgs", "").trim();
    if (!extra.isEmpty()) {
      cmd.addAll(List.of(extra.replace("{node}", nodeId).split("\\s+")));
    }
    String jar = serverJar != null ? serverJar
        : System.getProperty("kvstore.server.jar", "kvstore-examples/target/kvstore-server.jar");
    if (new File(jar).isFile()) {
      cmd.addAll(List.of("-jar", jar));
    } else {
      cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), "io.kvstore.examples.server.KvServer"));
    }
    cmd.addAll(List.of("--node-id", nodeId, "--host", "127.0.0.1", "--http-port", String.valueOf(ports[0]),
        "--cluster-port", String.valueOf(ports[1]), "--data-port", String.valueOf(ports[2]), "--no-console"));
    if (seed != null) {
      cmd.addAll(List.of("--join", "127.0.0.1:" + seed.clusterPort));
    }
    cmd.addAll(flags);
    // A durable server's default storage (kvstore-data/<id> under the working directory) would
    // outlive the run: the next run's servers recovered it (ClusterBench's B and C started with the
    // previous run's 100k entries, and A caught up from them during the ONE burst). Each server gets
    // its own directory under --dir, emptied before every start.
    Path data = null;
    if (!flags.contains("--in-memory") && flags.stream().noneMatch(f -> f.startsWith("--data-dir"))) {
      data = dir.resolve(nodeId + "-data").toAbsolutePath();
      cmd.addAll(List.of("--data-dir", data.toString()));
    }
    ClusterBench.Server s = new ClusterBench.Server(nodeId, ports[0], ports[1], cmd, dir.resolve(nodeId + ".log"),
        data);
    servers.add(s);
    return s;
  }

  /** Waits until the server answers 200 on /ready; fails at once if its process exited. */
  void awaitReady(ClusterBench.Server s) throws Exception {
    await(s.nodeId + " ready", () -> {
      if (!s.process.isAlive()) {
        throw new IllegalStateException(s.nodeId + " exited with " + s.process.exitValue() + "; see " + s.log);
      }
      return status(s.url() + "/ready") == 200;
    });
  }

  /** A condition polled by {@link #await}. */
  interface Condition {
    boolean holds() throws Exception;
  }

  /** Polls every 50 ms until the condition holds; fails after the wait bound, naming {@code what}. */
  void await(String what, Condition condition) throws Exception {
    long deadline = System.nanoTime() + waitBound.toNanos();
    while (!condition.holds()) {
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException("not within " + waitBound + ": " + what);
      }
      Thread.sleep(50);
    }
  }

  /** The HTTP status of a GET, or -1 when the server does not answer. */
  int status(String url) {
    try {
      return http.send(HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(2)).build(),
          HttpResponse.BodyHandlers.discarding()).statusCode();
    } catch (IOException e) {
      return -1;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return -1;
    }
  }

  /** The body of a GET answered 200. */
  String get(String url) throws IOException, InterruptedException {
    HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(30))
        .build(), HttpResponse.BodyHandlers.ofString());
    if (r.statusCode() != 200) {
      throw new IOException(url + " answered " + r.statusCode() + ": " + r.body());
    }
    return r.body();
  }

  /** The server's /metrics text. */
  String metrics(ClusterBench.Server s) throws IOException, InterruptedException {
    return get(s.url() + "/metrics");
  }

  /** The server's /v1/cluster, parsed; null when it does not answer. */
  ClusterState cluster(ClusterBench.Server s) {
    try {
      return ClusterState.parse(get(s.url() + "/v1/cluster"));
    } catch (IOException e) {
      return null;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return null;
    }
  }

  /**
   * The sum of a Prometheus sample over all its label sets, or -1 when the text has none.
   *
   * @param text a /metrics answer
   * @param name the sample name, e.g. {@code kvstore_replication_bytes_sent_total}
   */
  static double metric(String text, String name) {
    Matcher m = Pattern.compile("(?m)^" + Pattern.quote(name) + "(?:\\{[^}]*})? ([0-9.eE+-]+|NaN)$").matcher(text);
    double sum = 0;
    boolean found = false;
    while (m.find()) {
      found = true;
      sum += Double.parseDouble(m.group(1));
    }
    return found ? sum : -1;
  }

  /**
   * Runs {@code GC.run} and then {@code GC.heap_info} in the server's JVM (one {@code jcmd -f}) and
   * returns the heap used after that full GC.
   *
   * @return bytes used, or -1 when jcmd failed or printed no heap line
   */
  long heapUsedAfterGc(ClusterBench.Server s) throws IOException, InterruptedException {
    Path commands = dir.resolve("jcmd-gc.txt");
    Files.writeString(commands, "GC.run\nGC.heap_info\n", StandardCharsets.UTF_8);
    Path jcmd = Path.of(System.getProperty("java.home"), "bin", "jcmd");
    Path output = dir.resolve(s.nodeId + ".jcmd.txt");
    Process p = new ProcessBuilder(Files.isExecutable(jcmd) ? jcmd.toString() : "jcmd",
        String.valueOf(s.process.pid()), "-f", commands.toString())
        .redirectErrorStream(true).redirectOutput(output.toFile()).start();
    if (!p.waitFor(60, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      p.waitFor(10, TimeUnit.SECONDS);
      return -1;
    }
    return heapUsed(Files.readString(output, StandardCharsets.UTF_8));
  }

  /** Bytes used in the heap line of {@code GC.heap_info}'s output, -1 without one. */
  static long heapUsed(String heapInfo) {
    Matcher m = HEAP_USED.matcher(heapInfo);
    return m.find() ? Long.parseLong(m.group(2)) * 1024 : -1;
  }

  /** Stops one server by its PID: SIGTERM, then SIGKILL after 15 s. */
  static void stop(ClusterBench.Server s) {
    stopAll(List.of(s));
  }

  private static void stopAll(List<ClusterBench.Server> list) {
    for (ClusterBench.Server s : list) {
      if (s.process != null && s.process.isAlive()) {
        s.process.destroy();
      }
    }
    for (ClusterBench.Server s : list) {
      try {
        if (s.process != null && !s.process.waitFor(15, TimeUnit.SECONDS)) {
          s.process.destroyForcibly();
          s.process.waitFor(15, TimeUnit.SECONDS);
        }
      } catch (InterruptedException e) {
        s.process.destroyForcibly();
        Thread.currentThread().interrupt();
      }
    }
  }

  /** Stops every server started here, by PID. Idempotent; safe from a shutdown hook. */
  @Override
  public void close() {
    stopAll(servers);
  }

  /**
   * What a node's {@code GET /v1/cluster} says about membership and the partition map.
   *
   * @param self the node's id
   * @param ready its {@code ready} field
   * @param members the ids of {@code members} (the node itself among them)
   * @param mapVersion {@code partitionMap.version}, or null without a map
   * @param mapNodes {@code partitionMap.nodes}: node id to partitions owned
   * @param pending {@code partitionMap.pendingPartitions}: node id to partitions still pulled
   */
  record ClusterState(String self, boolean ready, Set<String> members, String mapVersion,
      Map<String, Integer> mapNodes, Map<String, Integer> pending) {

    static ClusterState parse(String json) throws IOException {
      JsonNode root = JSON.readTree(json);
      Set<String> members = new LinkedHashSet<>();
      for (JsonNode m : root.path("members")) {
        members.add(m.path("id").asText());
      }
      JsonNode map = root.path("partitionMap");
      return new ClusterState(root.path("self").path("id").asText(), root.path("ready").asBoolean(),
          members, map.isMissingNode() ? null : map.path("version").asText(null),
          ints(map.path("nodes")), ints(map.path("pendingPartitions")));
    }

    private static Map<String, Integer> ints(JsonNode object) {
      Map<String, Integer> out = new LinkedHashMap<>();
      for (Map.Entry<String, JsonNode> e : object.properties()) {
        out.put(e.getKey(), e.getValue().asInt());
      }
      return out;
    }

    /** Whether every node this one hears from reports nothing pending, itself included. */
    boolean nothingPending() {
      return !pending.isEmpty() && pending.values().stream().allMatch(p -> p == 0);
    }
  }
}
