package io.kvstore.examples.server;

import io.kvstore.cluster.KvCluster;
import io.kvstore.core.KvStore;
import io.kvstore.core.KvStoreConfig;
import io.kvstore.http.KvHttpServer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * The standalone kvstore server: one clustered node with the REST API in front of it.
 *
 * <p>{@code java -jar kvstore-server.jar} with no flags serves a single-node store on
 * {@code http://127.0.0.1:8080}; {@code --join} makes it join other nodes. Every flag can also come
 * from an environment variable {@code KVSTORE_<FLAG>} (upper snake case). A bad flag prints a message
 * and exits with code 2. On SIGTERM or SIGINT the node drains HTTP, leaves the cluster and exits 0.
 */
@Command(name = "kvstore-server", mixinStandardHelpOptions = true,
    versionProvider = KvServer.Version.class, sortOptions = false, usageHelpAutoWidth = true,
    description = "Runs one kvstore node: the REST API on --http-port, cluster membership on "
        + "--cluster-port and replication on --data-port.%n"
        + "Each flag may also be set as an environment variable KVSTORE_<FLAG>, "
        + "e.g. KVSTORE_HTTP_PORT=8081.")
public final class KvServer implements Callable<Integer> {
  private static final Logger log = LoggerFactory.getLogger(KvServer.class);
  private static final Pattern SIZE = Pattern.compile("(\\d+)\\s*(b|kib|kb|k|mib|mb|m)?",
      Pattern.CASE_INSENSITIVE);

  @Option(names = "--node-id", paramLabel = "<id>", defaultValue = "${env:KVSTORE_NODE_ID}",
      description = "Unique node id (default: derived from host and cluster port, stable across "
          + "restarts).")
  String nodeId;

  @Option(names = "--host", paramLabel = "<host>", defaultValue = "${env:KVSTORE_HOST:-127.0.0.1}",
      description = "Address to bind and advertise (default: ${DEFAULT-VALUE}).")
  String host;

  @Option(names = "--http-port", paramLabel = "<port>",
      defaultValue = "${env:KVSTORE_HTTP_PORT:-8080}",
      description = "HTTP API port (default: ${DEFAULT-VALUE}; 0 = any free port).")
  int httpPort;

  @Option(names = "--cluster-port", paramLabel = "<port>",
      defaultValue = "${env:KVSTORE_CLUSTER_PORT:-7946}",
      description = "Membership (SWIM) port (default: ${DEFAULT-VALUE}).")
  int clusterPort;

  @Option(names = "--data-port", paramLabel = "<port>", defaultValue = "${env:KVSTORE_DATA_PORT}",
      description = "Replication port (default: cluster port + 1).")
  Integer dataPort;

  @Option(names = "--join", paramLabel = "<host:port>[,<host:port>...]", split = ",",
      defaultValue = "${env:KVSTORE_JOIN}",
      description = "Membership addresses of existing nodes to join; the node keeps retrying until "
          + "one answers.")
  List<String> join;

  @Option(names = "--cluster-name", paramLabel = "<name>",
      defaultValue = "${env:KVSTORE_CLUSTER_NAME:-kvstore}",
      description = "Cluster name; nodes only talk to nodes of the same name "
          + "(default: ${DEFAULT-VALUE}).")
  String clusterName;

  @Option(names = "--auth-token", paramLabel = "<token>", split = ",",
      defaultValue = "${env:KVSTORE_AUTH_TOKEN}",
      description = "Require this bearer token on the HTTP API (repeat or comma-separate for "
          + "several; default: open).")
  List<String> authTokens;

  @Option(names = "--max-value-size", paramLabel = "<size>",
      defaultValue = "${env:KVSTORE_MAX_VALUE_SIZE:-1MiB}",
      description = "Largest value accepted, in bytes or with a KiB/MiB suffix "
          + "(default: ${DEFAULT-VALUE}).")
  String maxValueSize;

  @CommandLine.Spec
  CommandLine.Model.CommandSpec spec;

  private final CountDownLatch stop = new CountDownLatch(1);

  /**
   * Parses the flags, starts the node and serves until SIGTERM or SIGINT.
   *
   * @param args the flags; {@code --help} lists them
   */
  public static void main(String[] args) {
    int code = commandLine(new KvServer()).execute(args);
    if (code != 0) {
      System.exit(code);
    }
  }

  /**
   * The picocli command line for a server, with usage errors mapped to exit code 2.
   *
   * @param server the command object
   * @return the command line
   */
  public static CommandLine commandLine(KvServer server) {
    CommandLine cl = new CommandLine(server);
    cl.setCaseInsensitiveEnumValuesAllowed(true);
    cl.setExitCodeExceptionMapper(e -> e instanceof CommandLine.ParameterException ? 2 : 1);
    cl.setParameterExceptionHandler((ex, args) -> {
      CommandLine c = ex.getCommandLine();
      c.getErr().println("kvstore-server: " + ex.getMessage());
      c.getErr().println("Try 'java -jar kvstore-server.jar --help' for the flags.");
      return 2;
    });
    return cl;
  }

  /**
   * Resolves the flags into options, rejecting inconsistent ones.
   *
   * @return the options
   * @throws CommandLine.ParameterException for an invalid flag value (exit code 2)
   */
  public ServerOptions options() {
    checkPort("--http-port", httpPort);
    checkPort("--cluster-port", clusterPort);
    int data;
    if (dataPort != null) {
      checkPort("--data-port", dataPort);
      data = dataPort;
    } else if (clusterPort == 0) {
      data = 0;
    } else if (clusterPort == 65535) {
      throw invalid("--cluster-port 65535 leaves no room for the default data port (cluster port "
          + "+ 1); set --data-port");
    } else {
      data = clusterPort + 1;
    }
    List<String> seeds = new ArrayList<>();
    if (join != null) {
      for (String s : join) {
        String seed = s.trim();
        if (seed.isEmpty()) {
          continue;
        }
        int colon = seed.lastIndexOf(':');
        if (colon <= 0 || colon == seed.length() - 1) {
          throw invalid("--join wants host:port, got '" + seed + "'");
        }
        try {
          checkPort("--join", Integer.parseInt(seed.substring(colon + 1)));
        } catch (NumberFormatException e) {
          throw invalid("--join wants host:port with a numeric port, got '" + seed + "'");
        }
        seeds.add(seed);
      }
    }
    Set<String> tokens = new LinkedHashSet<>();
    if (authTokens != null) {
      for (String t : authTokens) {
        if (!t.isBlank()) {
          tokens.add(t.trim());
        }
      }
    }
    int maxValue = parseSize(maxValueSize);
    String id = nodeId != null && !nodeId.isBlank() ? nodeId.trim() : defaultNodeId(host, clusterPort);
    try {
      io.kvstore.core.NodeIds.validate(id);
    } catch (IllegalArgumentException e) {
      throw invalid("--node-id: " + e.getMessage());
    }
    if (clusterName == null || clusterName.isBlank()) {
      throw invalid("--cluster-name must not be empty");
    }
    return new ServerOptions(id, host, httpPort, clusterPort, data, seeds, clusterName.trim(),
        tokens, maxValue);
  }

  /**
   * A node id that is the same every time a node starts on this host and port.
   *
   * @param host the host
   * @param clusterPort the membership port
   * @return {@code <host>-<port>} with characters outside the node-id alphabet replaced
   */
  public static String defaultNodeId(String host, int clusterPort) {
    String h = host.replaceAll("[^A-Za-z0-9._-]", "_");
    String id = h + "-" + clusterPort;
    return id.length() > 64 ? id.substring(id.length() - 64) : id;
  }

  private int parseSize(String text) {
    Matcher m = SIZE.matcher(text == null ? "" : text.trim());
    if (!m.matches()) {
      throw invalid("--max-value-size wants bytes or a KiB/MiB size, got '" + text + "'");
    }
    long n = Long.parseLong(m.group(1));
    String unit = m.group(2) == null ? "b" : m.group(2).toLowerCase(Locale.ROOT);
    long bytes = switch (unit) {
      case "kib", "kb", "k" -> n * 1024;
      case "mib", "mb", "m" -> n * 1024 * 1024;
      default -> n;
    };
    if (bytes > KvStoreConfig.MAX_VALUE_BYTES_LIMIT) {
      throw invalid("--max-value-size " + text + " is over the limit of "
          + KvStoreConfig.MAX_VALUE_BYTES_LIMIT + " bytes");
    }
    return (int) bytes;
  }

  private void checkPort(String flag, int port) {
    if (port < 0 || port > 65535) {
      throw invalid(flag + " wants a port from 0 to 65535, got " + port);
    }
  }

  private CommandLine.ParameterException invalid(String message) {
    return new CommandLine.ParameterException(spec.commandLine(), message);
  }

  @Override
  public Integer call() {
    ServerOptions options = options();
    Node node = Node.start(options);
    Thread hook = new Thread(() -> {
      log.info("kvstore node {} stopping: draining HTTP and leaving the cluster", options.nodeId());
      node.close();
      stop.countDown();
      log.info("kvstore node {} stopped", options.nodeId());
      // A signal-initiated exit would otherwise end with 128 + the signal number.
      Runtime.getRuntime().halt(0);
    }, "kvstore-shutdown");
    Runtime.getRuntime().addShutdownHook(hook);
    try {
      stop.await();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    return 0;
  }

  /** The node a server runs: a clustered store and its HTTP API. */
  public static final class Node implements AutoCloseable {
    private final KvStore store;
    private final KvHttpServer http;

    private Node(KvStore store, KvHttpServer http) {
      this.store = store;
      this.http = http;
    }

    /**
     * Starts a node and logs one line when it is ready.
     *
     * @param o the options
     * @return the running node
     */
    public static Node start(ServerOptions o) {
      KvStore store = KvCluster.builder()
          .nodeId(o.nodeId())
          .clusterName(o.clusterName())
          .host(o.host())
          .membershipPort(o.clusterPort())
          .dataPort(o.dataPort())
          .seeds(o.join())
          .store(b -> b.maxValueBytes(o.maxValueBytes()))
          .build();
      KvHttpServer http;
      try {
        KvHttpServer.Builder b = KvHttpServer.builder(store)
            .host(o.host())
            .port(o.httpPort())
            .meterBinder(new ReplicationMetrics(store));
        if (!o.authTokens().isEmpty()) {
          b.authTokens(o.authTokens());
        }
        http = b.build().start();
      } catch (RuntimeException e) {
        store.close();
        throw e;
      }
      String cluster = KvCluster.replicator(store).map(r -> r.membershipAddress()).orElse("-");
      String data = KvCluster.replicator(store).map(r -> r.dataAddress()).orElse("-");
      log.info("kvstore node {} ready: http://{}:{} cluster {} data {} (cluster name '{}', "
              + "joining {}, auth {})", o.nodeId(), o.host(), http.port(), cluster, data,
          o.clusterName(), o.join().isEmpty() ? "nobody" : o.join(),
          o.authTokens().isEmpty() ? "off" : "on");
      return new Node(store, http);
    }

    /**
     * The store.
     *
     * @return the clustered store
     */
    public KvStore store() {
      return store;
    }

    /**
     * The HTTP port actually bound.
     *
     * @return the port
     */
    public int httpPort() {
      return http.port();
    }

    /** Drains HTTP, then leaves the cluster and closes the store. */
    @Override
    public void close() {
      try {
        http.close();
      } finally {
        store.close();
      }
    }
  }

  /** Reads the version from the jar manifest. */
  static final class Version implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() {
      String v = KvServer.class.getPackage().getImplementationVersion();
      return new String[] {"kvstore-server " + (v == null ? "(development build)" : v),
          "Java " + System.getProperty("java.version") + " on " + System.getProperty("os.name")};
    }
  }

  @Override
  public String toString() {
    return "KvServer" + Arrays.asList(nodeId, host, httpPort, clusterPort);
  }
}
