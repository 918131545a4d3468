package io.kvstore.examples;

import java.io.File;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.IntFunction;

/**
 * Starts and stops N standalone servers on one machine, each its own JVM, for trying things out:
 *
 * <pre>
 * java -cp kvstore-examples/target/kvstore-server.jar io.kvstore.examples.LocalCluster 3
 * </pre>
 *
 * <p>Node i (from 1) serves HTTP on 8080 + i - 1, membership on 7946 + 10 (i - 1) and data on the
 * membership port + 1; nodes 2..N join node 1. Each node logs to {@code target/local-cluster/node-i.log}
 * (or the directory given with {@code --dir}). Press Enter or Ctrl-C to stop them all (SIGTERM: each
 * leaves the cluster and exits 0). The same class starts nodes for the end-to-end tests.
 */
public final class LocalCluster implements AutoCloseable {
  /** HTTP port of node 1 by default. */
  public static final int BASE_HTTP_PORT = 8080;
  /** Membership port of node 1 by default; node i uses this + 10 (i - 1). */
  public static final int BASE_CLUSTER_PORT = 7946;

  private final List<Node> nodes = new ArrayList<>();
  private final Path logDir;

  /** One server process and the flags that start it again. */
  public static final class Node {
    private final int index;
    private final List<String> flags;
    private final int httpPort;
    private final Path log;
    private Process process;

    Node(int index, List<String> flags, int httpPort, Path log) {
      this.index = index;
      this.flags = List.copyOf(flags);
      this.httpPort = httpPort;
      this.log = log;
    }

    /**
     * The node's number, from 1.
     *
     * @return the index
     */
    public int index() {
      return index;
    }

    /**
     * The flags the node runs with.
     *
     * @return the server flags
     */
    public List<String> flags() {
      return flags;
    }

    /**
     * The HTTP base URL.
     *
     * @return {@code http://127.0.0.1:<port>}
     */
    public String url() {
      return "http://127.0.0.1:" + httpPort;
    }

    /**
     * The process, while it runs.
     *
     * @return the process
     */
    public Process process() {
      return process;
    }

    /**
     * Where the node's output goes.
     *
     * @return the log file
     */
    public Path log() {
      return log;
    }
  }

  private LocalCluster(Path logDir) {
    this.logDir = logDir;
  }

  /**
   * Starts {@code n} nodes on the default ports and waits until every one answers {@code /ready}.
   *
   * @param n nodes, 1 to 9
   * @param logDir where node logs go
   * @param timeout how long to wait for readiness
   * @return the running cluster
   * @throws IOException if a process cannot start
   * @throws InterruptedException if interrupted while waiting
   */
  public static LocalCluster start(int n, Path logDir, Duration timeout)
      throws IOException, InterruptedException {
    List<int[]> ports = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      ports.add(new int[] {BASE_HTTP_PORT + i, BASE_CLUSTER_PORT + 10 * i});
    }
    return start(ports, logDir, timeout);
  }

  /**
   * Starts one node per {@code {httpPort, clusterPort}} pair; every node after the first joins the
   * first. Waits until every node answers {@code /ready}.
   *
   * @param ports HTTP and membership port of each node
   * @param logDir where node logs go
   * @param timeout how long to wait for readiness
   * @return the running cluster
   * @throws IOException if a process cannot start
   * @throws InterruptedException if interrupted while waiting
   */
  public static LocalCluster start(List<int[]> ports, Path logDir, Duration timeout)
      throws IOException, InterruptedException {
    return start(ports, logDir, timeout, i -> List.of());
  }

  /**
   * Like {@link #start(List, Path, Duration)}, with more flags for each node (security flags, for
   * example).
   *
   * @param ports HTTP and membership port of each node
   * @param logDir where node logs go
   * @param timeout how long to wait for readiness
   * @param extraFlags the additional flags of node i (from 1)
   * @return the running cluster
   * @throws IOException if a process cannot start
   * @throws InterruptedException if interrupted while waiting
   */
  public static LocalCluster start(List<int[]> ports, Path logDir, Duration timeout,
      IntFunction<List<String>> extraFlags) throws IOException, InterruptedException {
    if (ports.isEmpty() || ports.size() > 9) {
      throw new IllegalArgumentException("1 to 9 nodes, got " + ports.size());
    }
    Files.createDirectories(logDir);
    LocalCluster cluster = new LocalCluster(logDir);
    try {
      String seed = "127.0.0.1:" + ports.get(0)[1];
      for (int i = 0; i < ports.size(); i++) {
        List<String> flags = new ArrayList<>(List.of(
            "--node-id", "node-" + (i + 1),
            "--http-port", String.valueOf(ports.get(i)[0]),
            "--cluster-port", String.valueOf(ports.get(i)[1]),
            "--data-port", String.valueOf(ports.get(i)[1] + 1)));
        if (i > 0) {
          flags.addAll(List.of("--join", seed));
        }
        List<String> extra = extraFlags.apply(i + 1);
        if (!extra.contains("--data-dir")) {
          flags.add("--in-memory"); // a fresh cluster every time, as before data directories
        }
        flags.addAll(extra);
        Node node = new Node(i + 1, flags, ports.get(i)[0], logDir.resolve("node-" + (i + 1) + ".log"));
        cluster.nodes.add(node);
        cluster.launch(node);
      }
      for (Node node : cluster.nodes) {
        cluster.awaitReady(node, timeout);
      }
      return cluster;
    } catch (IOException | InterruptedException | RuntimeException e) {
      cluster.close();
      throw e;
    }
  }

  /**
   * Starts one more node, {@code node-<n+1>}, joining through {@code seeds} (for example the
   * membership addresses of the nodes still alive), and waits until it answers {@code /ready}.
   *
   * @param ports its HTTP and membership port (data on membership + 1)
   * @param seeds {@code host:port} membership addresses to join through, at least one
   * @param extraFlags more flags ({@code --in-memory} is added unless {@code --data-dir} is given)
   * @param timeout how long to wait for readiness
   * @return the running node
   * @throws IOException if the process cannot start
   * @throws InterruptedException if interrupted while waiting
   */
  public Node add(int[] ports, List<String> seeds, List<String> extraFlags, Duration timeout)
      throws IOException, InterruptedException {
    if (seeds.isEmpty()) {
      throw new IllegalArgumentException("a node added to a cluster needs at least one seed");
    }
    int index = nodes.size() + 1;
    List<String> flags = new ArrayList<>(List.of(
        "--node-id", "node-" + index,
        "--http-port", String.valueOf(ports[0]),
        "--cluster-port", String.valueOf(ports[1]),
        "--data-port", String.valueOf(ports[1] + 1),
        "--join", String.join(",", seeds)));
    if (!extraFlags.contains("--data-dir")) {
      flags.add("--in-memory");
    }
    flags.addAll(extraFlags);
    Node node = new Node(index, flags, ports[0], logDir.resolve("node-" + index + ".log"));
    nodes.add(node);
    launch(node);
    awaitReady(node, timeout);
    return node;
  }

  /**
   * The nodes, in start order.
   *
   * @return the nodes
   */
  public List<Node> nodes() {
    return Collections.unmodifiableList(nodes);
  }

  /**
   * Kills a node at once (SIGKILL): no leave, no drain.
   *
   * @param node the node
   * @throws InterruptedException if interrupted while it dies
   */
  public void kill(Node node) throws InterruptedException {
    node.process.destroyForcibly();
    node.process.waitFor(30, TimeUnit.SECONDS);
  }

  /**
   * Pauses a node's process (SIGSTOP): it keeps its sockets but answers nothing until
   * {@link #resume}. Unix only.
   *
   * @param node the node
   * @throws IOException if {@code kill} cannot run or fails
   * @throws InterruptedException if interrupted while it runs
   */
  public void pause(Node node) throws IOException, InterruptedException {
    signal(node, "-STOP");
  }

  /**
   * Resumes a node paused by {@link #pause} (SIGCONT).
   *
   * @param node the node
   * @throws IOException if {@code kill} cannot run or fails
   * @throws InterruptedException if interrupted while it runs
   */
  public void resume(Node node) throws IOException, InterruptedException {
    signal(node, "-CONT");
  }

  private static void signal(Node node, String signal) throws IOException, InterruptedException {
    Process kill = new ProcessBuilder("kill", signal, String.valueOf(node.process.pid()))
        .redirectErrorStream(true).start();
    if (!kill.waitFor(10, TimeUnit.SECONDS) || kill.exitValue() != 0) {
      kill.destroyForcibly();
      throw new IOException("kill " + signal + " " + node.process.pid() + " failed");
    }
  }

  /**
   * Starts a stopped node again with the same flags and waits until it is ready.
   *
   * @param node the node
   * @param timeout how long to wait for readiness
   * @throws IOException if the process cannot start
   * @throws InterruptedException if interrupted while waiting
   */
  public void restart(Node node, Duration timeout) throws IOException, InterruptedException {
    if (node.process != null && node.process.isAlive()) {
      throw new IllegalStateException("node " + node.index + " is still running");
    }
    launch(node);
    awaitReady(node, timeout);
  }

  /**
   * Stops a node gracefully (SIGTERM) and returns its exit code.
   *
   * @param node the node
   * @param timeout how long to wait for it to exit
   * @return the exit code, or -1 if it did not exit in time (it is then killed)
   * @throws InterruptedException if interrupted while waiting
   */
  public int stop(Node node, Duration timeout) throws InterruptedException {
    Process p = node.process;
    if (p == null) {
      return -1;
    }
    p.destroy();
    if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
      p.destroyForcibly();
      p.waitFor(30, TimeUnit.SECONDS);
      return -1;
    }
    return p.exitValue();
  }

  /** Stops every node that still runs, gracefully first. */
  @Override
  public void close() {
    for (Node n : nodes) {
      if (n.process != null && n.process.isAlive()) {
        n.process.destroy();
      }
    }
    for (Node n : nodes) {
      try {
        if (n.process != null && !n.process.waitFor(20, TimeUnit.SECONDS)) {
          n.process.destroyForcibly();
        }
      } catch (InterruptedException e) {
        n.process.destroyForcibly();
        Thread.currentThread().interrupt();
      }
    }
  }

  private void launch(Node node) throws IOException {
    List<String> cmd = new ArrayList<>(serverCommand());
    cmd.addAll(node.flags);
    node.process = new ProcessBuilder(cmd)
        .redirectErrorStream(true)
        .redirectOutput(ProcessBuilder.Redirect.appendTo(node.log.toFile()))
        .start();
  }

  /**
   * How to run a server: {@code java -jar <jar>} when {@code kvstore.server.jar} names one, else
   * {@code java -cp <this JVM's classpath> io.kvstore.examples.server.KvServer}.
   *
   * @return the command, without flags
   */
  public static List<String> serverCommand() {
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    String jar = System.getProperty("kvstore.server.jar");
    List<String> cmd = new ArrayList<>(List.of(java, "-Xmx512m", "-XX:+UseSerialGC"));
    if (jar != null && new File(jar).isFile()) {
      cmd.addAll(List.of("-jar", jar));
    } else {
      cmd.addAll(List.of("-cp", System.getProperty("java.class.path"),
          "io.kvstore.examples.server.KvServer"));
    }
    return cmd;
  }

  private void awaitReady(Node node, Duration timeout) throws InterruptedException {
    HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(1)).build();
    long deadline = System.nanoTime() + timeout.toNanos();
    while (System.nanoTime() < deadline) {
      if (!node.process.isAlive()) {
        throw new IllegalStateException("node " + node.index + " exited with "
            + node.process.exitValue() + "; see " + node.log);
      }
      try {
        HttpResponse<Void> r = client.send(HttpRequest.newBuilder(URI.create(node.url() + "/ready"))
            .timeout(Duration.ofSeconds(2)).build(), HttpResponse.BodyHandlers.discarding());
        if (r.statusCode() == 200) {
          return;
        }
      } catch (IOException e) {
        // not listening yet
      }
      Thread.sleep(100);
    }
    throw new IllegalStateException("node " + node.index + " not ready within " + timeout
        + "; see " + node.log);
  }

  /**
   * Starts N nodes and stops them when Enter is pressed or the JVM is asked to stop.
   *
   * @param args {@code [n] [--dir <logDir>]}; n defaults to 3
   * @throws Exception if a node fails to start
   */
  public static void main(String[] args) throws Exception {
    int n = 3;
    Path dir = Path.of("target", "local-cluster");
    for (int i = 0; i < args.length; i++) {
      if ("--dir".equals(args[i]) && i + 1 < args.length) {
        dir = Path.of(args[++i]);
      } else if (args[i].matches("\\d")) {
        n = Integer.parseInt(args[i]);
      } else {
        System.err.println("usage: LocalCluster [n (1-9)] [--dir <logDir>]");
        System.exit(2);
      }
    }
    LocalCluster cluster = start(n, dir, Duration.ofSeconds(60));
    Runtime.getRuntime().addShutdownHook(new Thread(cluster::close, "local-cluster-stop"));
    for (Node node : cluster.nodes()) {
      System.out.println("node-" + node.index() + " " + node.url() + "  log " + node.log());
    }
    System.out.println("Press Enter to stop.");
    System.in.read();
    cluster.close();
  }
}
