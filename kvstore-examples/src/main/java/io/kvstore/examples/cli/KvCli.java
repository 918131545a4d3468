package io.kvstore.examples.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvstore.examples.server.SecretFiles;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.net.URI;
import java.net.URISyntaxException;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.time.Duration;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import javax.net.ssl.SSLContext;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.ScopeType;

/**
 * {@code kv}, the command-line client of a kvstore node: {@code get}, {@code put}, {@code delete},
 * {@code list}, {@code watch}, {@code members} and {@code health} over the node's {@code /v1} API.
 *
 * <p>Run it as {@code java -jar kvstore-server.jar cli <command>} or {@code java -cp
 * kvstore-server.jar io.kvstore.examples.cli.KvCli <command>}. Exit codes: 0 done, 1 not found or a
 * condition failed, 2 a usage error or a request the node refused as given, 3 the node cannot be
 * reached or cannot serve the request now (5xx), 70 a bug in the client. docs/CLI.md has the
 * details.
 */
@Command(name = "kv", mixinStandardHelpOptions = true, versionProvider = KvCli.Version.class,
    usageHelpAutoWidth = true, sortOptions = false,
    description = "The command-line client of a kvstore node (its /v1 HTTP API).",
    subcommands = {KvCli.Get.class, KvCli.Put.class, KvCli.Delete.class, KvCli.ListKeys.class,
        KvCli.Watch.class, KvCli.Members.class, KvCli.Health.class},
    footer = {"%nExit codes: 0 done, 1 not found or condition failed (412), 2 usage error or "
        + "request refused as given (4xx), 3 node unreachable or unavailable (5xx), 70 client bug."})
public final class KvCli implements Callable<Integer> {
  /** Done. */
  public static final int OK = 0;
  /** The key has no value, or a condition ({@code --if-version}, {@code --if-absent}) failed. */
  public static final int NOT_FOUND = 1;
  /** Bad flags or values, or a request the node refused as given (another 4xx). */
  public static final int USAGE = 2;
  /** The node cannot be reached, or answered 5xx (retrying later may help). */
  public static final int UNREACHABLE = 3;
  /** A bug in the client itself. */
  public static final int SOFTWARE = 70;
  static final String DEFAULT_URL = "http://127.0.0.1:8080";

  @Option(names = "--url", paramLabel = "<url>", scope = ScopeType.INHERIT,
      description = "The node's base URL (default: $KVSTORE_URL, else " + DEFAULT_URL + ").")
  String url;

  @Option(names = "--token-file", paramLabel = "<file>", scope = ScopeType.INHERIT,
      description = "File holding the bearer token (its first token; default: "
          + "$KVSTORE_TOKEN_FILE). Refused if every user may read it (chmod 600).")
  Path tokenFile;

  @Option(names = "--cacert", paramLabel = "<pem>", scope = ScopeType.INHERIT,
      description = "Trust only the CA certificate(s) in this PEM file for an https --url "
          + "(default: $KVSTORE_CACERT, else the JDK's trusted CAs).")
  Path caCert;

  @Option(names = {"-o", "--output"}, paramLabel = "text|json", scope = ScopeType.INHERIT,
      defaultValue = "text", description = "Output format (default: ${DEFAULT-VALUE}).")
  Output output;

  @CommandLine.Spec
  CommandLine.Model.CommandSpec spec;

  /** Output formats. */
  enum Output {
    text, json
  }

  private final InputStream stdin;
  private final PrintStream stdout;
  private final PrintStream stderr;
  private final Map<String, String> env;
  private final boolean terminal;
  private NodeClient client;

  private KvCli(InputStream stdin, PrintStream stdout, PrintStream stderr, Map<String, String> env,
      boolean terminal) {
    this.stdin = stdin;
    this.stdout = stdout;
    this.stderr = stderr;
    this.env = env;
    this.terminal = terminal;
  }

  /**
   * Runs a command and exits with its code.
   *
   * @param args the command and its flags; {@code --help} lists them
   */
  public static void main(String[] args) {
    System.exit(run(args, System.in, System.out, System.err, System.getenv(),
        System.console() != null));
  }

  /**
   * Runs a command with the given streams and environment.
   *
   * @param args the command and its flags
   * @param stdin where {@code put ... -} reads the value
   * @param stdout where results go (values as raw bytes)
   * @param stderr where errors and notes go
   * @param env the environment ({@code KVSTORE_URL}, {@code KVSTORE_TOKEN_FILE})
   * @param terminal whether stdout is a terminal ({@code get} then ends a value with a line break)
   * @return the exit code
   */
  public static int run(String[] args, InputStream stdin, PrintStream stdout, PrintStream stderr,
      Map<String, String> env, boolean terminal) {
    KvCli cli = new KvCli(stdin, stdout, stderr, env, terminal);
    CommandLine cl = new CommandLine(cli);
    cl.setCaseInsensitiveEnumValuesAllowed(true);
    cl.setOut(new PrintWriter(stdout, true, StandardCharsets.UTF_8));
    cl.setErr(new PrintWriter(stderr, true, StandardCharsets.UTF_8));
    cl.setParameterExceptionHandler((ex, a) -> {
      PrintWriter err = ex.getCommandLine().getErr();
      err.println("kv: " + ex.getMessage());
      err.println("Try 'kv " + (ex.getCommandLine() == cl ? "" : ex.getCommandLine()
          .getCommandName() + " ") + "--help'.");
      return USAGE;
    });
    cl.setExecutionExceptionHandler((ex, c, parsed) -> {
      if (ex instanceof NodeClient.Failure f) {
        if (cli.output == Output.json && f.body != null) {
          stderr.println(f.body);
        } else {
          stderr.println("kv: " + f.getMessage());
        }
        stderr.flush();
        return f.exitCode;
      }
      if (ex instanceof CommandLine.ParameterException p) {
        return cl.getParameterExceptionHandler().handleParseException(p, a(parsed));
      }
      stderr.println("kv: unexpected error (a bug): " + ex);
      return SOFTWARE;
    });
    return cl.execute(args);
  }

  private static String[] a(CommandLine.ParseResult parsed) {
    return parsed.originalArgs().toArray(new String[0]);
  }

  @Override
  public Integer call() {
    spec.commandLine().getErr().println("kv: name a command");
    spec.commandLine().usage(spec.commandLine().getErr());
    return USAGE;
  }

  /** The client for --url and --token-file, made once they are parsed. */
  NodeClient client(CommandLine.Model.CommandSpec sub) {
    if (client != null) {
      return client;
    }
    String u = url != null ? url : env.getOrDefault("KVSTORE_URL", DEFAULT_URL);
    URI base;
    try {
      String trimmed = u.strip();
      while (trimmed.endsWith("/")) {
        trimmed = trimmed.substring(0, trimmed.length() - 1);
      }
      base = new URI(trimmed);
    } catch (URISyntaxException e) {
      throw usage(sub, "--url: not a URL: " + u);
    }
    String scheme = base.getScheme() == null ? "" : base.getScheme().toLowerCase(Locale.ROOT);
    if (!(scheme.equals("http") || scheme.equals("https")) || base.getHost() == null
        || base.getRawQuery() != null || base.getRawFragment() != null) {
      throw usage(sub, "--url wants http://host:port or https://host:port (a path prefix is "
          + "allowed), got '" + u + "'");
    }
    Path file = tokenFile;
    String source = "--token-file";
    if (file == null && env.get("KVSTORE_TOKEN_FILE") != null) {
      String v = env.get("KVSTORE_TOKEN_FILE");
      if (v.isBlank()) {
        throw usage(sub, "KVSTORE_TOKEN_FILE is set but empty (an unset shell variable?); name "
            + "the file or unset it");
      }
      file = Path.of(v);
      source = "KVSTORE_TOKEN_FILE";
    }
    String token = null;
    if (file != null) {
      if (file.toString().isBlank()) {
        throw usage(sub, "--token-file is given but empty (an unset shell variable?)");
      }
      try {
        token = SecretFiles.readTokens(file).iterator().next();
      } catch (IOException e) {
        throw usage(sub, source + ": cannot read " + file + ": " + e.getMessage());
      } catch (IllegalArgumentException e) {
        throw usage(sub, source + ": " + e.getMessage());
      }
    }
    Path ca = caCert;
    if (ca == null && env.get("KVSTORE_CACERT") != null && !env.get("KVSTORE_CACERT").isBlank()) {
      ca = Path.of(env.get("KVSTORE_CACERT"));
    }
    SSLContext tls = null;
    if (ca != null) {
      try {
        tls = NodeClient.trusting(ca);
      } catch (IOException | GeneralSecurityException e) {
        throw usage(sub, "--cacert: cannot use " + ca + " as CA certificates: " + e.getMessage());
      }
    }
    client = new NodeClient(base, token, tls);
    return client;
  }

  static CommandLine.ParameterException usage(CommandLine.Model.CommandSpec spec, String message) {
    return new CommandLine.ParameterException(spec.commandLine(), message);
  }

  void printJson(JsonNode node) {
    stdout.println(node.toString());
    stdout.flush();
  }

  void printLine(String line) {
    stdout.println(line);
    stdout.flush();
  }

  /** A value as JSON: {@code value} when it is UTF-8 text, else {@code valueBase64}. */
  static void putValue(ObjectNode node, byte[] value) {
    String text = utf8(value);
    if (text != null) {
      node.put("value", text);
    } else {
      node.put("valueBase64", Base64.getEncoder().encodeToString(value));
    }
  }

  static String utf8(byte[] bytes) {
    try {
      return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes))
          .toString();
    } catch (CharacterCodingException e) {
      return null;
    }
  }

  /** The ETag for a version: quoted, whether or not the user quoted it. */
  static String etag(String version) {
    String v = version.strip();
    return v.startsWith("\"") && v.endsWith("\"") && v.length() >= 2 ? v : "\"" + v + "\"";
  }

  /** Write concerns, as the API names them. */
  enum Consistency {
    one, quorum, all
  }

  /** Base of the subcommands: the parent's options and streams. */
  abstract static class Sub implements Callable<Integer> {
    @ParentCommand
    KvCli cli;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    NodeClient client() {
      return cli.client(spec);
    }

    boolean json() {
      return cli.output == Output.json;
    }
  }

  @Command(name = "get", mixinStandardHelpOptions = true,
      description = "Prints a key's value: its exact bytes (a line break is added only on a "
          + "terminal), or with -o json its text or base64, version and expiry.")
  static final class Get extends Sub {
    @Parameters(paramLabel = "<key>", description = "The key.")
    String key;

    @Option(names = "--file", paramLabel = "<file>",
        description = "Write the value's bytes to this file instead of stdout.")
    Path file;

    @Override
    public Integer call() throws IOException {
      NodeClient c = client();
      HttpResponse<byte[]> res = c.send(c.request(NodeClient.keyPath(key)).GET().build());
      byte[] value = res.body();
      String version = res.headers().firstValue("ETag").map(t -> t.replace("\"", "")).orElse(null);
      String expires = res.headers().firstValue("Kvstore-Expires-At").orElse(null);
      if (file != null) {
        Files.write(file, value);
      }
      if (json()) {
        ObjectNode out = NodeClient.JSON.createObjectNode();
        out.put("key", key);
        out.put("version", version);
        if (expires != null) {
          out.put("expiresAt", expires);
        }
        if (file == null) {
          putValue(out, value);
        } else {
          out.put("file", file.toString());
          out.put("size", value.length);
        }
        cli.printJson(out);
      } else if (file == null) {
        cli.stdout.write(value);
        if (cli.terminal && (value.length == 0 || value[value.length - 1] != '\n')) {
          cli.stdout.write('\n');
        }
        cli.stdout.flush();
      }
      return OK;
    }
  }

  @Command(name = "put", mixinStandardHelpOptions = true,
      description = "Stores a value given as an argument, read from --file, or from stdin with "
          + "'-'; prints the new version.")
  static final class Put extends Sub {
    @Parameters(index = "0", paramLabel = "<key>", description = "The key.")
    String key;

    @Parameters(index = "1", arity = "0..1", paramLabel = "<value>",
        description = "The value as text (UTF-8), or '-' to read its bytes from stdin.")
    String value;

    @Option(names = "--file", paramLabel = "<file>", description = "Read the value's bytes "
        + "from this file.")
    Path file;

    @Option(names = "--ttl", paramLabel = "<duration>",
        description = "Expire the value after this long: 500ms, 30s, 5m, 1h, 2d or ISO-8601 "
            + "(PT30S); 1 ms to 365 days.")
    String ttl;

    @Option(names = "--if-version", paramLabel = "<version>",
        description = "Write only if the key is at this version (If-Match); else exit 1.")
    String ifVersion;

    @Option(names = "--if-absent", description = "Write only if the key has no value "
        + "(If-None-Match: *); else exit 1.")
    boolean ifAbsent;

    @Option(names = "--consistency", paramLabel = "one|quorum|all",
        description = "How many replicas must hold the write before the answer (default: the "
            + "node's, normally one).")
    Consistency consistency;

    @Override
    public Integer call() throws IOException {
      if ((value == null) == (file == null)) {
        throw usage(spec, "give the value as an argument, '-' for stdin, or --file, and only one "
            + "of them");
      }
      if (ifVersion != null && ifAbsent) {
        throw usage(spec, "--if-version and --if-absent exclude each other");
      }
      byte[] bytes;
      if (file != null) {
        try {
          bytes = Files.readAllBytes(file);
        } catch (IOException e) {
          throw usage(spec, "--file: cannot read " + file + ": " + e.getMessage());
        }
      } else if (value.equals("-")) {
        bytes = cli.stdin.readAllBytes();
      } else {
        bytes = value.getBytes(StandardCharsets.UTF_8);
      }
      NodeClient c = client();
      List<String> q = new ArrayList<>();
      if (ttl != null) {
        q.add("ttl=" + NodeClient.query(ttl));
      }
      if (consistency != null) {
        q.add("consistency=" + consistency);
      }
      HttpRequest.Builder b = c.request(NodeClient.keyPath(key)
          + (q.isEmpty() ? "" : "?" + String.join("&", q)))
          .PUT(HttpRequest.BodyPublishers.ofByteArray(bytes))
          .header("Content-Type", "application/octet-stream");
      if (ifVersion != null) {
        b.header("If-Match", etag(ifVersion));
      }
      if (ifAbsent) {
        b.header("If-None-Match", "*");
      }
      JsonNode res = c.json(b.build());
      if (json()) {
        cli.printJson(res);
      } else {
        cli.printLine(res.path("version").asText());
      }
      return OK;
    }
  }

  @Command(name = "delete", mixinStandardHelpOptions = true,
      description = "Deletes a key. The delete is recorded (and replicates) even when this node "
          + "held no value; that is not an error.")
  static final class Delete extends Sub {
    @Parameters(paramLabel = "<key>", description = "The key.")
    String key;

    @Option(names = "--if-version", paramLabel = "<version>",
        description = "Delete only if the key is at this version (If-Match); else exit 1.")
    String ifVersion;

    @Option(names = "--consistency", paramLabel = "one|quorum|all",
        description = "How many replicas must hold the delete before the answer.")
    Consistency consistency;

    @Override
    public Integer call() {
      NodeClient c = client();
      HttpRequest.Builder b = c.request(NodeClient.keyPath(key)
          + (consistency == null ? "" : "?consistency=" + consistency)).DELETE();
      if (ifVersion != null) {
        b.header("If-Match", etag(ifVersion));
      }
      JsonNode res = c.json(b.build());
      if (json()) {
        cli.printJson(res);
      } else {
        cli.printLine(res.path("deleted").asBoolean() ? "deleted"
            : "no value on this node; the delete is recorded");
      }
      return OK;
    }
  }

  @Command(name = "list", mixinStandardHelpOptions = true,
      description = "Lists live keys in order, one a line, following every page (-o json: one "
          + "object with every item and their versions).")
  static final class ListKeys extends Sub {
    /** The server's default page size. */
    static final int PAGE = 100;

    @Option(names = "--prefix", paramLabel = "<prefix>", defaultValue = "",
        description = "Only keys starting with it (default: all).")
    String prefix;

    @Option(names = "--limit", paramLabel = "<n>",
        description = "At most this many keys (default: all).")
    Integer limit;

    @Option(names = "--start-after", paramLabel = "<key>",
        description = "Only keys after this one (e.g. a previous nextStartAfter).")
    String startAfter;

    @Override
    public Integer call() {
      if (limit != null && limit < 1) {
        throw usage(spec, "--limit wants a positive number, got " + limit);
      }
      NodeClient c = client();
      ObjectNode out = NodeClient.JSON.createObjectNode();
      out.put("prefix", prefix);
      var items = out.putArray("items");
      String after = startAfter;
      String next;
      int count = 0;
      while (true) {
        int want = limit == null ? PAGE : Math.min(PAGE, limit - count);
        StringBuilder q = new StringBuilder("/v1/kv?prefix=").append(NodeClient.query(prefix));
        if (want < PAGE) {
          q.append("&limit=").append(want);
        }
        if (after != null) {
          q.append("&startAfter=").append(NodeClient.query(after));
        }
        JsonNode page = c.json(c.request(q.toString()).GET().build());
        for (JsonNode item : page.path("items")) {
          count++;
          if (json()) {
            items.add(item);
          } else {
            cli.printLine(item.path("key").asText());
          }
        }
        JsonNode n = page.path("nextStartAfter");
        next = n.isTextual() ? n.asText() : null;
        if (next == null || next.equals(after) || (limit != null && count >= limit)) {
          break;
        }
        after = next;
      }
      if (json()) {
        out.put("nextStartAfter", next);
        cli.printJson(out);
      }
      return OK;
    }
  }

  @Command(name = "watch", mixinStandardHelpOptions = true,
      description = "Prints changes under a prefix as they happen, one a line "
          + "('<type> <key> <version> <origin>', or -o json: one JSON object a line), until "
          + "Ctrl-C, --max-events or --timeout.")
  static final class Watch extends Sub {
    @Option(names = "--prefix", paramLabel = "<prefix>", defaultValue = "",
        description = "Only keys starting with it (default: all).")
    String prefix;

    @Option(names = "--max-events", paramLabel = "<n>",
        description = "Stop (exit 0) after this many events.")
    Integer maxEvents;

    @Option(names = "--timeout", paramLabel = "<duration>",
        description = "Stop (exit 0) after this long: 30s, 5m, or ISO-8601 (PT30S).")
    String timeout;

    @Override
    public Integer call() {
      if (maxEvents != null && maxEvents < 1) {
        throw usage(spec, "--max-events wants a positive number, got " + maxEvents);
      }
      Duration bound = timeout == null ? null : duration(spec, "--timeout", timeout);
      NodeClient c = client();
      try (SseWatch w = new SseWatch(c, prefix)) {
        return w.run(maxEvents, bound, this::print,
            () -> cli.stderr.println("kv: watching '" + prefix + "' on " + c.base()
                + " (Ctrl-C to stop)"));
      }
    }

    private void print(String type, JsonNode data) {
      if (json()) {
        cli.printJson(data);
      } else {
        cli.printLine(type + " " + data.path("key").asText() + " "
            + data.path("version").asText() + " " + data.path("origin").asText());
      }
    }
  }

  @Command(name = "members", mixinStandardHelpOptions = true,
      description = "Lists the members of the node's cluster as it sees them.")
  static final class Members extends Sub {
    @Override
    public Integer call() {
      NodeClient c = client();
      JsonNode res = c.json(c.request("/v1/cluster").GET().build());
      if (json()) {
        cli.printJson(res);
        return OK;
      }
      String self = res.path("self").path("id").asText(null);
      boolean partitioned = res.has("partitionMap");
      List<String[]> rows = new ArrayList<>();
      rows.add(partitioned
          ? new String[] {"ID", "MEMBERSHIP", "DATA", "STATUS", "PARTITIONS", "PENDING", ""}
          : new String[] {"ID", "MEMBERSHIP", "DATA", "STATUS", ""});
      for (JsonNode m : res.path("members")) {
        String id = m.path("id").asText();
        String note = id.equals(self) ? "(this node)" : "";
        rows.add(partitioned
            ? new String[] {id, text(m.path("membershipAddress")), text(m.path("dataAddress")),
                text(m.path("status")), text(m.path("partitions")),
                text(m.path("pendingPartitions")), note}
            : new String[] {id, text(m.path("membershipAddress")), text(m.path("dataAddress")),
                text(m.path("status")), note});
      }
      int[] width = new int[rows.get(0).length];
      for (String[] r : rows) {
        for (int i = 0; i < r.length; i++) {
          width[i] = Math.max(width[i], r[i].length());
        }
      }
      for (String[] r : rows) {
        StringBuilder line = new StringBuilder();
        for (int i = 0; i < r.length; i++) {
          line.append(r[i]).append(" ".repeat(width[i] - r[i].length() + 2));
        }
        cli.printLine(line.toString().stripTrailing());
      }
      if (!res.path("ready").asBoolean(true)) {
        cli.printLine("(the node has not finished joining yet)");
      }
      if (partitioned) {
        JsonNode map = res.path("partitionMap");
        JsonNode safe = res.path("safeToShutdown");
        cli.printLine("partition map " + map.path("version").asText() + ", replication factor "
            + map.path("replicationFactor").asText() + "; safe to stop this node: "
            + (safe.isBoolean() ? (safe.asBoolean() ? "yes" : "no, "
                + res.path("shutdownBlocker").asText("")) : "unknown"));
      }
      return OK;
    }

    private static String text(JsonNode n) {
      return n.isNull() || n.isMissingNode() ? "-" : n.asText();
    }
  }

  @Command(name = "health", mixinStandardHelpOptions = true,
      description = "Checks that the node serves: prints '<status> <node id>' (exit 0), or why "
          + "it cannot be reached (exit 3).")
  static final class Health extends Sub {
    @Override
    public Integer call() {
      NodeClient c = client();
      JsonNode res = c.json(c.request("/health").GET().build());
      if (json()) {
        cli.printJson(res);
      } else {
        cli.printLine(res.path("status").asText() + " " + res.path("node").asText());
      }
      return OK;
    }
  }

  /** Parses 30s / 5m / 1h / 500ms / ISO-8601. */
  static Duration duration(CommandLine.Model.CommandSpec spec, String flag, String text) {
    String t = text.strip().toLowerCase(Locale.ROOT);
    Duration d = null;
    try {
      if (t.startsWith("p")) {
        d = Duration.parse(t.toUpperCase(Locale.ROOT));
      } else if (t.matches("\\d{1,9}(ms|s|m|h)")) {
        long n = Long.parseLong(t.replaceAll("\\D", ""));
        d = t.endsWith("ms") ? Duration.ofMillis(n) : t.endsWith("s") ? Duration.ofSeconds(n)
            : t.endsWith("m") ? Duration.ofMinutes(n) : Duration.ofHours(n);
      }
    } catch (DateTimeParseException e) {
      d = null;
    }
    if (d == null || d.isNegative() || d.isZero()) {
      throw usage(spec, flag + " wants a positive duration such as 500ms, 30s, 5m, 1h or PT30S, "
          + "got '" + text + "'");
    }
    return d;
  }

  /** Reads the version from the jar manifest. */
  static final class Version implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() {
      String v = KvCli.class.getPackage().getImplementationVersion();
      return new String[] {"kv (kvstore) " + (v == null ? "(development build)" : v)};
    }
  }
}
