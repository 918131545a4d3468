package io.kvstore.examples.server;

import io.kvstore.cluster.ClusterKeyring;
import io.kvstore.cluster.ClusterNode;
import io.kvstore.cluster.ClusterTls;
import io.kvstore.cluster.KvCluster;
import io.kvstore.cluster.KvClusterBuilder;
import io.kvstore.cluster.KvClusterConfig;
import io.kvstore.core.Durability;
import io.kvstore.core.KvStore;
import io.kvstore.core.KvStoreConfig;
import io.kvstore.http.HttpTls;
import io.kvstore.http.KvHttpServer;
import io.kvstore.http.PartitionMapInfo;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
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
        + "e.g. KVSTORE_HTTP_PORT=8081.",
    footer = "%nThe command-line client: java -jar kvstore-server.jar cli --help")
public final class KvServer implements Callable<Integer> {
  private static final Logger log = LoggerFactory.getLogger(KvServer.class);
  private static final Pattern SIZE = Pattern.compile("(\\d+)\\s*(b|kib|kb|k|mib|mb|m|gib|gb|g)?",
      Pattern.CASE_INSENSITIVE);
  private static final Pattern HOST_NAME = Pattern.compile(
      "\\*|[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*\\.?|\\[[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*]");

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
          + "several; default: open). Shows in the process list: prefer --auth-token-file or "
          + "KVSTORE_AUTH_TOKEN. Given but empty (an unset shell variable) is an error.")
  List<String> authTokens;

  @Option(names = "--auth-token-file", paramLabel = "<file>",
      defaultValue = "${env:KVSTORE_AUTH_TOKEN_FILE}",
      description = "Read HTTP bearer tokens from this file, one per line (keeps them out of the "
          + "process list, unlike --auth-token). Refused if every user may read it (chmod 600).")
  Path authTokenFile;

  @Option(names = "--allowed-host", paramLabel = "<host>[,<host>...]", split = ",",
      defaultValue = "${env:KVSTORE_ALLOWED_HOST}",
      description = "A Host name the HTTP API answers to besides IP addresses, localhost, --host "
          + "and (with --host 0.0.0.0) this machine's name; repeat for several, '*' for any. "
          + "Without a token, requests for other names are refused (DNS rebinding protection); with "
          + "a token, setting it turns the same check on.")
  List<String> allowedHosts;

  @Option(names = "--cluster-secret-file", paramLabel = "<file>",
      defaultValue = "${env:KVSTORE_CLUSTER_SECRET_FILE}",
      description = "Cluster key file: one key per line, '[<key-id>] <base64 secret>' (at least 32 "
          + "bytes, e.g. openssl rand -base64 32); the first key is used for sending, all are "
          + "accepted. Re-read every 5 s, so keys can be rotated without a restart. Without it or "
          + "--cluster-tls-* the cluster is OPEN: anyone who reaches the cluster and data ports can "
          + "join, read and write.")
  Path clusterSecretFile;

  @Option(names = "--cluster-tls-cert", paramLabel = "<pem>",
      defaultValue = "${env:KVSTORE_CLUSTER_TLS_CERT}",
      description = "Run the cluster and data ports over mutual TLS with this node's PEM certificate "
          + "chain, signed by the cluster CA (needs --cluster-tls-key and --cluster-tls-ca).")
  Path clusterTlsCert;

  @Option(names = "--cluster-tls-key", paramLabel = "<pem>",
      defaultValue = "${env:KVSTORE_CLUSTER_TLS_KEY}",
      description = "The unencrypted PKCS#8 PEM private key of --cluster-tls-cert.")
  Path clusterTlsKey;

  @Option(names = "--cluster-tls-ca", paramLabel = "<pem>",
      defaultValue = "${env:KVSTORE_CLUSTER_TLS_CA}",
      description = "PEM CA certificate(s) that define the cluster: only nodes with a certificate "
          + "they signed may connect (the JDK's default CAs are not trusted).")
  Path clusterTlsCa;

  @Option(names = "--cluster-tls-keystore", paramLabel = "<file>",
      defaultValue = "${env:KVSTORE_CLUSTER_TLS_KEYSTORE}",
      description = "Cluster TLS from a PKCS12 (or .jks) keystore holding this node's key and "
          + "certificate instead of PEM files (needs --cluster-tls-keystore-password-file, "
          + "--cluster-tls-truststore and --cluster-tls-truststore-password-file).")
  Path clusterTlsKeyStore;

  @Option(names = "--cluster-tls-keystore-password-file", paramLabel = "<file>",
      defaultValue = "${env:KVSTORE_CLUSTER_TLS_KEYSTORE_PASSWORD_FILE}",
      description = "File whose first line is the cluster TLS keystore password.")
  Path clusterTlsKeyStorePasswordFile;

  @Option(names = "--cluster-tls-truststore", paramLabel = "<file>",
      defaultValue = "${env:KVSTORE_CLUSTER_TLS_TRUSTSTORE}",
      description = "PKCS12 (or .jks) truststore whose certificates are the cluster CAs.")
  Path clusterTlsTrustStore;

  @Option(names = "--cluster-tls-truststore-password-file", paramLabel = "<file>",
      defaultValue = "${env:KVSTORE_CLUSTER_TLS_TRUSTSTORE_PASSWORD_FILE}",
      description = "File whose first line is the cluster TLS truststore password.")
  Path clusterTlsTrustStorePasswordFile;

  @Option(names = "--tls-cert", paramLabel = "<pem>", defaultValue = "${env:KVSTORE_TLS_CERT}",
      description = "Serve HTTPS with this PEM certificate chain (needs --tls-key).")
  Path tlsCert;

  @Option(names = "--tls-key", paramLabel = "<pem>", defaultValue = "${env:KVSTORE_TLS_KEY}",
      description = "The unencrypted PKCS#8 PEM private key of --tls-cert.")
  Path tlsKey;

  @Option(names = "--tls-keystore", paramLabel = "<file>",
      defaultValue = "${env:KVSTORE_TLS_KEYSTORE}",
      description = "Serve HTTPS with this PKCS12 (or .jks) keystore instead of PEM files "
          + "(needs --tls-keystore-password-file).")
  Path tlsKeyStore;

  @Option(names = "--tls-keystore-password-file", paramLabel = "<file>",
      defaultValue = "${env:KVSTORE_TLS_KEYSTORE_PASSWORD_FILE}",
      description = "File whose first line is the keystore password.")
  Path tlsKeyStorePasswordFile;

  @Option(names = "--max-value-size", paramLabel = "<size>",
      defaultValue = "${env:KVSTORE_MAX_VALUE_SIZE:-1MiB}",
      description = "Largest value accepted, in bytes or with a KiB/MiB suffix "
          + "(default: ${DEFAULT-VALUE}).")
  String maxValueSize;

  @Option(names = "--replication-factor", paramLabel = "<n>",
      defaultValue = "${env:KVSTORE_REPLICATION_FACTOR}",
      description = "How many nodes own each key (default: every node, full replication). Below "
          + "the number of nodes the keys are partitioned over the cluster, so capacity grows "
          + "with it; every node needs the same value. See docs/CLUSTER.md.")
  Integer replicationFactor;

  @Option(names = "--removal-delay", paramLabel = "<duration>",
      defaultValue = "${env:KVSTORE_REMOVAL_DELAY:-5m}",
      description = "How long a node that vanished without leaving (crash, cut off) keeps its "
          + "partitions before they move to the others: 500ms, 90s, 10m, 1h or ISO-8601 such as "
          + "PT5M (default: ${DEFAULT-VALUE}). A graceful leave does not wait; a suspicion never "
          + "counts.")
  String removalDelay;

  @Option(names = "--anti-entropy-rate", paramLabel = "<size>",
      defaultValue = "${env:KVSTORE_ANTI_ENTROPY_RATE:-64MiB}",
      description = "The most bytes per second this node's anti-entropy moves (a catch-up, a "
          + "rebalance's pulls, a handoff), in bytes or with a KiB/MiB/GiB suffix, '/s' optional; "
          + "0 for no limit, otherwise at least 64KiB (default: ${DEFAULT-VALUE}). Live writes "
          + "are not limited.")
  String antiEntropyRate;

  @Option(names = "--console", negatable = true, defaultValue = "${env:KVSTORE_CONSOLE:-true}",
      fallbackValue = "true",
      description = "Serve the web console at /ui (default: on; --no-console turns it off). Its "
          + "pages load without a token; everything they show comes from the API, which still "
          + "needs one.")
  boolean console;

  @Option(names = "--data-dir", paramLabel = "<dir>", defaultValue = "${env:KVSTORE_DATA_DIR}",
      description = "Where the node keeps its data across restarts (default: "
          + "./kvstore-data/<node-id>, so nodes started in one folder do not collide).")
  Path dataDir;

  @Option(names = "--durability", paramLabel = "<level>",
      defaultValue = "${env:KVSTORE_DURABILITY:-INTERVAL}",
      description = "When a write is acknowledged: SYNC (after fsync), INTERVAL (after the write "
          + "reaches the OS; synced every second), NONE (the OS syncs when it likes). "
          + "Default: ${DEFAULT-VALUE}. See docs/RELIABILITY.md.")
  Durability durability;

  @Option(names = "--in-memory", defaultValue = "${env:KVSTORE_IN_MEMORY:-false}",
      description = "Keep nothing on disk: the node starts empty after every restart.")
  boolean inMemory;

  @Option(names = "--log-level", paramLabel = "<level>", defaultValue = "${env:KVSTORE_LOG_LEVEL}",
      description = "Root log level: trace, debug, info, warn, error or off (default: info, or what "
          + "--log-config sets).")
  String logLevel;

  @Option(names = "--log-format", paramLabel = "text|json",
      defaultValue = "${env:KVSTORE_LOG_FORMAT:-text}",
      description = "Log lines on standard error as readable text (time, level, node id, logger, "
          + "message) or one JSON object per line (default: ${DEFAULT-VALUE}).")
  ServerLogging.Format logFormat;

  @Option(names = "--log-config", paramLabel = "<file>", defaultValue = "${env:KVSTORE_LOG_CONFIG}",
      description = "A Logback XML configuration that replaces the built-in one (%%property{nodeId} "
          + "is the node id); -Dlogback.configurationFile works too.")
  Path logConfig;

  @CommandLine.Spec
  CommandLine.Model.CommandSpec spec;

  private final CountDownLatch stop = new CountDownLatch(1);

  /**
   * Parses the flags, starts the node and serves until SIGTERM or SIGINT.
   *
   * @param args the flags; {@code --help} lists them. {@code cli <command>} runs the
   *     command-line client instead ({@link io.kvstore.examples.cli.KvCli}).
   */
  public static void main(String[] args) {
    if (args.length > 0 && args[0].equals("cli")) {
      io.kvstore.examples.cli.KvCli.main(Arrays.copyOfRange(args, 1, args.length));
      return;
    }
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
    refuseEmptySecurityFiles();
    Set<String> tokens = authTokens();
    Set<String> hosts = new LinkedHashSet<>();
    if (allowedHosts != null) {
      for (String h : allowedHosts) {
        String name = h.strip();
        if (name.isEmpty()) {
          continue;
        }
        if (!HOST_NAME.matcher(name).matches()) {
          throw invalid("--allowed-host wants a host name or IP address without scheme, port or "
              + "path (for example kv1.example.com), or '*', got '" + name + "'");
        }
        hosts.add(name);
      }
    }
    if (clusterSecretFile != null) {
      try {
        loadKeyring(clusterSecretFile);
      } catch (IOException | RuntimeException e) {
        throw invalid("--cluster-secret-file: " + e.getMessage());
      }
    }
    if ((tlsCert == null) != (tlsKey == null)) {
      throw invalid("--tls-cert and --tls-key go together");
    }
    if ((tlsKeyStore == null) != (tlsKeyStorePasswordFile == null)) {
      throw invalid("--tls-keystore and --tls-keystore-password-file go together");
    }
    if (tlsCert != null && tlsKeyStore != null) {
      throw invalid("use either --tls-cert/--tls-key or --tls-keystore, not both");
    }
    ServerOptions.ClusterTlsFiles clusterTls = clusterTlsFiles();
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
    if (inMemory && dataDir != null) {
      throw invalid("use either --in-memory or --data-dir, not both");
    }
    Path dir = inMemory ? null : dataDir != null ? dataDir : Path.of("kvstore-data", id);
    if (replicationFactor != null && replicationFactor < 1) {
      throw invalid("--replication-factor must be at least 1, got " + replicationFactor
          + " (leave it out for full replication: every node owns every key)");
    }
    Duration delay = parseDuration("--removal-delay", removalDelay);
    long aeRate = parseRate(antiEntropyRate);
    ServerOptions options = new ServerOptions(id, host, httpPort, clusterPort, data, seeds,
        clusterName.trim(), tokens, maxValue, clusterSecretFile, tlsCert, tlsKey, tlsKeyStore,
        tlsKeyStorePasswordFile, clusterTls, hosts, console, dir,
        dir == null ? null : durability,
        replicationFactor == null ? KvClusterConfig.FULL_REPLICATION : replicationFactor, delay,
        aeRate);
    try {
      httpTls(options);
    } catch (IllegalArgumentException e) {
      throw invalid((tlsCert != null ? "--tls-cert/--tls-key: " : "--tls-keystore: ")
          + e.getMessage());
    }
    if (clusterTls != null) {
      try {
        clusterTls.load();
      } catch (IllegalArgumentException e) {
        throw invalid((clusterTls.cert() != null
            ? "--cluster-tls-cert/--cluster-tls-key/--cluster-tls-ca: "
            : "--cluster-tls-keystore/--cluster-tls-truststore: ") + e.getMessage());
      }
    }
    return options;
  }

  /**
   * The file flags that secure a node, with what leaving them out means. Each may come from its
   * {@code KVSTORE_*} variable, and an unset shell variable ({@code --cluster-secret-file
   * "$SECRET"}) arrives as an empty value, which picocli would take as "not given": the node would
   * start less secure than its operator asked for, saying so only in a log line.
   */
  private static final Map<String, String> SECURITY_FILES = securityFiles();

  private static Map<String, String> securityFiles() {
    Map<String, String> files = new LinkedHashMap<>();
    files.put("--auth-token-file", "leave the HTTP API open");
    files.put("--tls-cert", "serve plain HTTP");
    files.put("--tls-key", "serve plain HTTP");
    files.put("--tls-keystore", "serve plain HTTP");
    files.put("--tls-keystore-password-file", "serve plain HTTP");
    files.put("--cluster-secret-file", "leave the cluster open");
    for (String f : List.of("cert", "key", "ca", "keystore", "keystore-password-file",
        "truststore", "truststore-password-file")) {
      files.put("--cluster-tls-" + f, "leave the cluster without TLS");
    }
    return Collections.unmodifiableMap(files);
  }

  /** Refuses a security file flag or variable that is given but empty (an unset shell variable). */
  private void refuseEmptySecurityFiles() {
    CommandLine.ParseResult parsed = spec.commandLine().getParseResult();
    for (Map.Entry<String, String> file : SECURITY_FILES.entrySet()) {
      String flag = file.getKey();
      boolean matched = parsed != null && parsed.hasMatchedOption(flag);
      String source;
      boolean empty;
      if (matched) {
        source = flag;
        empty = parsed.matchedOption(flag).originalStringValues().stream()
            .anyMatch(String::isBlank);
      } else {
        source = "KVSTORE_" + flag.substring(2).replace('-', '_').toUpperCase(Locale.ROOT);
        String value = System.getenv(source);
        empty = value != null && value.isBlank();
      }
      if (empty) {
        throw invalid(source + " is given but empty (an unset shell variable?). That would "
            + file.getValue() + "; name the file, or drop " + source + " to run without it");
      }
    }
  }

  /**
   * The HTTP tokens of {@code --auth-token}, {@code KVSTORE_AUTH_TOKEN} and {@code
   * --auth-token-file}. A source that is given but yields no token (an empty value, an unset shell
   * variable, only commas or whitespace) is an error, not an open API. No message shows a token.
   */
  private Set<String> authTokens() {
    CommandLine.ParseResult parsed = spec.commandLine().getParseResult();
    boolean tokenFlag = parsed != null && parsed.hasMatchedOption("--auth-token");
    Set<String> tokens = new LinkedHashSet<>();
    if (authTokens != null) {
      String source = tokenFlag ? "--auth-token" : "KVSTORE_AUTH_TOKEN";
      if (tokenFlag) {
        log.warn("--auth-token on the command line shows the token to every user of this machine "
            + "(ps, /proc/<pid>/cmdline); use --auth-token-file or KVSTORE_AUTH_TOKEN instead");
      }
      int n = 0;
      for (String t : authTokens) {
        n++;
        String token = t.strip();
        if (token.isEmpty()) {
          continue;
        }
        if (!SecretFiles.isToken(token)) {
          throw invalid(source + ": token " + n + " is not printable ASCII without spaces (not "
              + "shown)");
        }
        tokens.add(token);
      }
      if (tokens.isEmpty()) {
        throw invalid(source + " is given but holds no token (it is empty, or only commas and "
            + "spaces: an unset shell variable?). That would leave the HTTP API open; give a token, "
            + "or drop " + source + " to run without one");
      }
    }
    if (authTokenFile != null) {
      try {
        tokens.addAll(SecretFiles.readTokens(authTokenFile));
      } catch (IOException e) {
        throw invalid("--auth-token-file: cannot read " + authTokenFile + ": " + e);
      } catch (IllegalArgumentException e) {
        throw invalid("--auth-token-file: " + e.getMessage());
      }
    }
    return tokens;
  }

  /** The cluster TLS flags, checked to come in one complete set; null when none is given. */
  private ServerOptions.ClusterTlsFiles clusterTlsFiles() {
    List<Path> pem = Arrays.asList(clusterTlsCert, clusterTlsKey, clusterTlsCa);
    List<Path> stores = Arrays.asList(clusterTlsKeyStore, clusterTlsKeyStorePasswordFile,
        clusterTlsTrustStore, clusterTlsTrustStorePasswordFile);
    boolean anyPem = pem.stream().anyMatch(p -> p != null);
    boolean anyStore = stores.stream().anyMatch(p -> p != null);
    if (anyPem && anyStore) {
      throw invalid("use either --cluster-tls-cert/--cluster-tls-key/--cluster-tls-ca or "
          + "--cluster-tls-keystore/--cluster-tls-truststore, not both");
    }
    if (anyPem && pem.contains(null)) {
      throw invalid("--cluster-tls-cert, --cluster-tls-key and --cluster-tls-ca go together");
    }
    if (anyStore && stores.contains(null)) {
      throw invalid("--cluster-tls-keystore, --cluster-tls-keystore-password-file, "
          + "--cluster-tls-truststore and --cluster-tls-truststore-password-file go together");
    }
    if (!anyPem && !anyStore) {
      return null;
    }
    return new ServerOptions.ClusterTlsFiles(clusterTlsCert, clusterTlsKey, clusterTlsCa,
        clusterTlsKeyStore, clusterTlsKeyStorePasswordFile, clusterTlsTrustStore,
        clusterTlsTrustStorePasswordFile);
  }

  /**
   * Reads a cluster key file, refusing it when every user may read it and warning when its group may.
   *
   * @param file the key file
   * @return the keyring
   * @throws IOException if it cannot be read
   * @throws IllegalArgumentException if its content is not a valid keyring, or others may read it
   */
  public static ClusterKeyring loadKeyring(Path file) throws IOException {
    ClusterKeyring ring = ClusterKeyring.fromFile(file);
    SecretFiles.checkPermissions(file);
    return ring;
  }

  /**
   * The HTTPS settings the options name, loaded and checked.
   *
   * @param o the options
   * @return the TLS settings, or null for plain HTTP
   * @throws IllegalArgumentException if a file is missing or invalid
   */
  public static HttpTls httpTls(ServerOptions o) {
    if (o.tlsCert() != null) {
      return HttpTls.pem(o.tlsCert(), o.tlsKey());
    }
    if (o.tlsKeyStore() != null) {
      String password;
      try {
        password = SecretFiles.readPassword(o.tlsKeyStorePasswordFile());
      } catch (IOException e) {
        throw new IllegalArgumentException("cannot read the keystore password file "
            + o.tlsKeyStorePasswordFile() + ": " + e, e);
      }
      return HttpTls.keyStore(o.tlsKeyStore(), password.toCharArray());
    }
    return null;
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
    long bytes = parseBytes("--max-value-size", text, "bytes or a KiB/MiB size");
    if (bytes > KvStoreConfig.MAX_VALUE_BYTES_LIMIT) {
      throw invalid("--max-value-size " + text + " is over the limit of "
          + KvStoreConfig.MAX_VALUE_BYTES_LIMIT + " bytes");
    }
    return (int) bytes;
  }

  /** {@code --anti-entropy-rate}: a size per second ({@code 64MiB}, {@code 64MiB/s}), 0 for none. */
  private long parseRate(String text) {
    String t = text == null ? "" : text.trim();
    if (t.endsWith("/s")) {
      t = t.substring(0, t.length() - 2);
    }
    long bytes = parseBytes("--anti-entropy-rate", t, "bytes per second or a KiB/MiB/GiB size "
        + "(64MiB, 512KiB/s), or 0 for no limit");
    if (bytes != 0 && bytes < ServerOptions.MIN_ANTI_ENTROPY_RATE) {
      throw invalid("--anti-entropy-rate must be 0 (no limit) or at least 64KiB, got '" + text
          + "'");
    }
    return bytes;
  }

  /** A byte count with an optional binary unit (b, KiB, MiB, GiB; KB and K mean KiB too). */
  private long parseBytes(String flag, String text, String wants) {
    Matcher m = SIZE.matcher(text == null ? "" : text.trim());
    if (!m.matches()) {
      throw invalid(flag + " wants " + wants + ", got '" + text + "'");
    }
    long n;
    try {
      n = Long.parseLong(m.group(1));
    } catch (NumberFormatException e) {
      throw invalid(flag + " wants " + wants + ", got '" + text + "' (too large)");
    }
    String unit = m.group(2) == null ? "b" : m.group(2).toLowerCase(Locale.ROOT);
    long scale = switch (unit) {
      case "kib", "kb", "k" -> 1024L;
      case "mib", "mb", "m" -> 1024L * 1024;
      case "gib", "gb", "g" -> 1024L * 1024 * 1024;
      default -> 1L;
    };
    if (n > Long.MAX_VALUE / scale) {
      throw invalid(flag + " wants " + wants + ", got '" + text + "' (too large)");
    }
    return n * scale;
  }

  private void checkPort(String flag, int port) {
    if (port < 0 || port > 65535) {
      throw invalid(flag + " wants a port from 0 to 65535, got " + port);
    }
  }

  private static final Pattern DURATION = Pattern.compile("(\\d{1,12})(ms|s|m|h)");

  /** {@code 500ms}, {@code 90s}, {@code 10m}, {@code 1h} or ISO-8601 ({@code PT5M}); positive. */
  private Duration parseDuration(String flag, String text) {
    String t = text == null ? "" : text.strip();
    Duration d;
    Matcher m = DURATION.matcher(t.toLowerCase(Locale.ROOT));
    try {
      if (m.matches()) {
        long n = Long.parseLong(m.group(1));
        d = switch (m.group(2)) {
          case "ms" -> Duration.ofMillis(n);
          case "s" -> Duration.ofSeconds(n);
          case "m" -> Duration.ofMinutes(n);
          default -> Duration.ofHours(n);
        };
      } else {
        d = Duration.parse(t);
      }
    } catch (RuntimeException e) {
      throw invalid(flag + " wants a duration such as 500ms, 90s, 10m, 1h or PT5M, got '" + text
          + "'");
    }
    if (d.isNegative() || d.isZero()) {
      throw invalid(flag + " must be positive, got '" + text + "'");
    }
    return d;
  }

  private CommandLine.ParameterException invalid(String message) {
    return new CommandLine.ParameterException(spec.commandLine(), message);
  }

  /**
   * Applies the log flags; runs before anything else logs, so even the first line has their format.
   *
   * @throws CommandLine.ParameterException for an invalid log flag (exit code 2)
   */
  void configureLogging() {
    ch.qos.logback.classic.Level level = null;
    if (logLevel != null) {
      try {
        level = ServerLogging.parseLevel(logLevel);
      } catch (IllegalArgumentException e) {
        throw invalid("--log-level " + e.getMessage());
      }
    }
    String id = nodeId != null && !nodeId.isBlank() ? nodeId.trim()
        : defaultNodeId(host, clusterPort);
    try {
      ServerLogging.configure(level, logFormat, logConfig, id);
    } catch (IllegalArgumentException e) {
      throw invalid("--log-config: " + e.getMessage());
    }
  }

  @Override
  public Integer call() {
    configureLogging();
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
    /** How often the cluster key file is re-read. */
    public static final Duration SECRET_RELOAD_INTERVAL = Duration.ofSeconds(5);

    private final KvStore store;
    private final KvHttpServer http;
    private final ScheduledExecutorService reloader;

    private Node(KvStore store, KvHttpServer http, ScheduledExecutorService reloader) {
      this.store = store;
      this.http = http;
      this.reloader = reloader;
    }

    /**
     * Starts a node and logs one line when it is ready.
     *
     * @param o the options
     * @return the running node
     */
    public static Node start(ServerOptions o) {
      return start(o, SECRET_RELOAD_INTERVAL);
    }

    /**
     * Starts a node, re-reading its cluster key file at the given interval.
     *
     * @param o the options
     * @param secretReloadInterval how often the key file is re-read (positive)
     * @return the running node
     */
    public static Node start(ServerOptions o, Duration secretReloadInterval) {
      ClusterKeyring keyring = null;
      byte[] keyFileDigest = null;
      if (o.clusterSecretFile() != null) {
        try {
          keyring = loadKeyring(o.clusterSecretFile());
          keyFileDigest = digest(o.clusterSecretFile());
        } catch (IOException e) {
          throw new IllegalArgumentException("cannot read the cluster key file "
              + o.clusterSecretFile() + ": " + e, e);
        }
      }
      HttpTls tls = httpTls(o);
      ClusterTls clusterTls = o.clusterTls() == null ? null : o.clusterTls().load();
      KvClusterBuilder builder = KvCluster.builder();
      if (o.replicationFactor() != KvClusterConfig.FULL_REPLICATION) {
        builder.replicationFactor(o.replicationFactor());
      }
      KvStore store = builder
          .keyring(keyring)
          .tls(clusterTls)
          .nodeId(o.nodeId())
          .clusterName(o.clusterName())
          .host(o.host())
          .membershipPort(o.clusterPort())
          .dataPort(o.dataPort())
          .seeds(o.join())
          .removalDelay(o.removalDelay())
          .antiEntropyBytesPerSecond(o.antiEntropyBytesPerSecond())
          .store(b -> {
            b.maxValueBytes(o.maxValueBytes()).dataDir(o.dataDir());
            if (o.dataDir() != null) {
              b.durability(o.durability());
            }
          })
          .build();
      log.info("kvstore node {}: {}", o.nodeId(), o.dataDir() == null
          ? "in memory only (--in-memory): a restart starts empty"
          : "data in " + o.dataDir().toAbsolutePath() + ", durability " + o.durability());
      KvHttpServer http;
      try {
        KvHttpServer.Builder b = KvHttpServer.builder(store)
            .host(o.host())
            .port(o.httpPort())
            .meterBinder(new ReplicationMetrics(store))
            .partitionMap(partitionMap(store))
            .keyOwners(keyOwners(store))
            .allowedHosts(o.allowedHosts())
            .tls(tls)
            .console(o.console());
        if (!o.authTokens().isEmpty()) {
          b.authTokens(o.authTokens());
        }
        http = b.build().start();
      } catch (RuntimeException e) {
        store.close();
        throw e;
      }
      String cluster = KvCluster.node(store).map(r -> r.membershipAddress()).orElse("-");
      String data = KvCluster.node(store).map(r -> r.dataAddress()).orElse("-");
      ScheduledExecutorService reloader = null;
      if (o.clusterSecretFile() != null) {
        reloader = Executors.newSingleThreadScheduledExecutor(r -> {
          Thread t = new Thread(r, "kvstore-key-file-watch");
          t.setDaemon(true);
          return t;
        });
        KeyFileWatch watch = new KeyFileWatch(store, o.clusterSecretFile(), keyFileDigest);
        reloader.scheduleWithFixedDelay(watch::check, secretReloadInterval.toMillis(),
            secretReloadInterval.toMillis(), TimeUnit.MILLISECONDS);
      }
      log.info("kvstore node {} ready: {}://{}:{} cluster {} data {} (cluster name '{}', "
              + "joining {}, HTTP auth {}, cluster secret {}, cluster TLS {}, web console {})",
          o.nodeId(),
          tls == null ? "http" : "https", o.host(), http.port(), cluster, data,
          o.clusterName(), o.join().isEmpty() ? "nobody" : o.join(),
          o.authTokens().isEmpty() ? "off" : "on", keyring == null ? "none" : keyring,
          clusterTls == null ? "off" : clusterTls, o.console() ? "at /ui/" : "off");
      return new Node(store, http, reloader);
    }

    /** The owner headers' source (docs/HTTP.md), from the node's handle; null without one. */
    private static java.util.function.Function<String, java.util.List<String>> keyOwners(
        KvStore store) {
      ClusterNode node = KvCluster.node(store).orElse(null);
      return node == null ? null : node::ownersOf;
    }

    /** /v1/cluster's partition fields, from the node's handle; null for a store without one. */
    private static java.util.function.Supplier<PartitionMapInfo> partitionMap(KvStore store) {
      ClusterNode node = KvCluster.node(store).orElse(null);
      return node == null ? null : () -> {
        String blocker = node.shutdownBlocker().orElse(null);
        return new PartitionMapInfo(node.partitionMapVersion(), node.replicationFactor(),
            node.partitionCounts(), node.pendingPartitionsByNode(), blocker == null, blocker);
      };
    }

    private static byte[] digest(Path file) throws IOException {
      try {
        return MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(file));
      } catch (NoSuchAlgorithmException e) {
        throw new IllegalStateException(e);
      }
    }

    /** Applies the key file to the running node whenever its content changes. */
    private static final class KeyFileWatch {
      private final KvStore store;
      private final Path file;
      private byte[] lastDigest;

      KeyFileWatch(KvStore store, Path file, byte[] digest) {
        this.store = store;
        this.file = file;
        this.lastDigest = digest;
      }

      void check() {
        try {
          byte[] now = digest(file);
          if (MessageDigest.isEqual(now, lastDigest)) {
            return;
          }
          lastDigest = now;
          ClusterKeyring ring = loadKeyring(file);
          KvCluster.node(store).ifPresent(r -> r.updateKeyring(ring));
        } catch (IOException | RuntimeException e) {
          log.error("cluster key file {} changed but cannot be used ({}); keeping the previous keys",
              file, e.getMessage());
        }
      }
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
      if (reloader != null) {
        reloader.shutdownNow();
      }
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
