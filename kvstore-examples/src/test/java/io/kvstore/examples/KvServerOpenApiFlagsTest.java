package io.kvstore.examples;

import static io.kvstore.examples.ServerCommand.child;
import static io.kvstore.examples.ServerCommand.execute;
import static io.kvstore.examples.ServerCommand.parse;
import static io.kvstore.examples.ServerCommand.tlsDir;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvstore.cluster.ClusterNode;
import io.kvstore.cluster.KvCluster;

import io.kvstore.examples.ServerCommand.Run;
import io.kvstore.examples.server.KvServer;
import io.kvstore.examples.server.ServerOptions;
import io.kvstore.http.HttpTls;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * No accidental open API, and no secret in an error: a token flag, variable or file that is given
 * but yields no token exits with code 2 instead of serving an open API; a token on the command line
 * is warned about; token and key files every user may read are refused; {@code --allowed-host}
 * reaches the HTTP server; malformed token and TLS password files never show their content.
 * Regression: before, {@code --auth-token ""}, {@code KVSTORE_AUTH_TOKEN=""} and {@code --auth-token
 * ,} started an open API, logging only "HTTP auth off", and a token file line with a space was taken
 * as a token.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class KvServerOpenApiFlagsTest {
  private static final String SECRET = "S3cr3t-t0ken-7f9a2c";
  private static final Path TLS = tlsDir();

  /**
   * Runs the server's command line with {@code args} and {@code --max-value-size 2GiB}, which is
   * refused after every flag these tests are about: so if {@code args} were accepted (the bug), the
   * run still ends, with another message, instead of starting a node.
   */
  private static Run execute(String... args) {
    List<String> all = new ArrayList<>(List.of(args));
    all.addAll(List.of("--http-port", "0", "--cluster-port", "0", "--max-value-size", "2GiB"));
    return ServerCommand.execute(all.toArray(new String[0]));
  }

  /** What the loggers (slf4j-simple, on System.err) print while {@code action} runs. */
  private static <T> String logged(Supplier<T> action) {
    PrintStream original = System.err;
    ByteArrayOutputStream captured = new ByteArrayOutputStream();
    System.setErr(new PrintStream(captured, true, StandardCharsets.UTF_8));
    try {
      action.get();
    } finally {
      System.setErr(original);
    }
    return captured.toString(StandardCharsets.UTF_8);
  }

  /** The error message of the options, and what was logged meanwhile; fails if they are valid. */
  private static String refusal(String... args) {
    String[] message = new String[1];
    String log = logged(() -> {
      assertThatThrownBy(() -> parse(args)).as(String.join(" ", args))
          .isInstanceOf(CommandLine.ParameterException.class)
          .satisfies(e -> message[0] = e.getMessage());
      return null;
    });
    return message[0] + "\n" + log;
  }

  private static Path file(Path path, byte[] content, String perms) throws IOException {
    Files.write(path, content);
    Files.setPosixFilePermissions(path, PosixFilePermissions.fromString(perms));
    return path;
  }

  private static Path file(Path path, String content, String perms) throws IOException {
    return file(path, content.getBytes(StandardCharsets.UTF_8), perms);
  }

  @Test
  void emptyTokenFlag_exitsWith2_andSaysTheApiWouldBeOpen() {
    for (String value : List.of("", ",", " , ", " ")) {
      Run r = execute("--auth-token", value);
      assertThat(r.code()).as("--auth-token '%s'", value).isEqualTo(2);
      assertThat(r.err()).contains("--auth-token is given but holds no token").contains("open");
    }
    Run file = execute("--auth-token-file", "");
    assertThat(file.code()).isEqualTo(2);
    assertThat(file.err()).contains("--auth-token-file is given but empty");
    // Empty parts next to a real token are just separators.
    assertThat(parse("--auth-token", "a,,b", "--auth-token", "").authTokens())
        .containsExactlyInAnyOrder("a", "b");
    Run spaced = execute("--auth-token",
        "ok," + SECRET + " x");
    assertThat(spaced.code()).isEqualTo(2);
    assertThat(spaced.err()).contains("token 2 is not printable ASCII").doesNotContain(SECRET);
  }

  @Test
  void emptyClusterSecurityFileFlags_exitWith2_insteadOfStartingAnOpenCluster() {
    for (String flag : List.of("--cluster-secret-file", "--cluster-tls-ca",
        "--cluster-tls-truststore", "--tls-cert")) {
      Run r = execute(flag, "");
      assertThat(r.code()).as(flag).isEqualTo(2);
      assertThat(r.err()).as(flag).contains(flag + " is given but empty");
    }
  }

  @Test
  void emptyClusterSecretVariable_exitsWith2() throws Exception {
    Run secret = child(Map.of("KVSTORE_CLUSTER_SECRET_FILE", ""), "--http-port", "0",
        "--cluster-port", "0", "--max-value-size", "2GiB");
    assertThat(secret.code()).isEqualTo(2);
    assertThat(secret.err()).contains("KVSTORE_CLUSTER_SECRET_FILE is given but empty")
        .contains("leave the cluster open");
  }

  @Test
  void emptyTokenEnvironmentVariables_exitWith2() throws Exception {
    // --max-value-size 2GiB is refused after the token flags, so a server that ignored the empty
    // variable (the bug) exits too, with another message, instead of serving.
    Run token = child(Map.of("KVSTORE_AUTH_TOKEN", ""), "--http-port", "0", "--cluster-port", "0",
        "--max-value-size", "2GiB");
    assertThat(token.code()).isEqualTo(2);
    assertThat(token.err()).contains("KVSTORE_AUTH_TOKEN is given but holds no token");
    Run file = child(Map.of("KVSTORE_AUTH_TOKEN_FILE", ""), "--http-port", "0", "--cluster-port",
        "0", "--max-value-size", "2GiB");
    assertThat(file.code()).isEqualTo(2);
    assertThat(file.err()).contains("KVSTORE_AUTH_TOKEN_FILE is given but empty");
  }

  @Test
  void tokenOnTheCommandLine_isWarnedAbout_butNeverShown(@TempDir Path dir) throws Exception {
    String log = logged(() -> parse("--auth-token", SECRET));
    assertThat(log).contains("--auth-token on the command line").contains("--auth-token-file")
        .doesNotContain(SECRET);
    Path tokens = file(dir.resolve("tokens"), SECRET + "\n", "rw-------");
    assertThat(logged(() -> parse("--auth-token-file", tokens.toString())))
        .doesNotContain("--auth-token on the command line");
  }

  @Test
  void tokenAndKeyFilesEveryUserMayRead_areRefused_groupReadableOnesWarnedAbout(@TempDir Path dir)
      throws Exception {
    Path tokens = file(dir.resolve("tokens"), SECRET + "\n", "rw-r--r--");
    Run t = execute("--auth-token-file",
        tokens.toString());
    assertThat(t.code()).isEqualTo(2);
    assertThat(t.err()).contains("--auth-token-file").contains(tokens.toString())
        .contains("chmod 600").doesNotContain(SECRET);
    byte[] raw = new byte[32];
    for (int i = 0; i < raw.length; i++) {
      raw[i] = (byte) (3 + i * 7);
    }
    String key = Base64.getEncoder().encodeToString(raw);
    Path keyFile = file(dir.resolve("cluster.key"), "k1 " + key + "\n", "rw----r--");
    Run k = execute("--cluster-secret-file",
        keyFile.toString());
    assertThat(k.code()).isEqualTo(2);
    assertThat(k.err()).contains("--cluster-secret-file").contains("chmod 600")
        .doesNotContain(key);
    Files.setPosixFilePermissions(tokens, PosixFilePermissions.fromString("rw-r-----"));
    String warned = logged(() -> parse("--auth-token-file", tokens.toString()));
    assertThat(warned).contains("readable by its group").doesNotContain(SECRET);
    assertThat(parse("--auth-token-file", tokens.toString()).authTokens()).containsExactly(SECRET);
  }

  @Test
  void malformedTokenFiles_exitWith2_neverShowingTheirContent(@TempDir Path dir) throws Exception {
    byte[] notUtf8 = (SECRET + "\n" + SECRET).getBytes(StandardCharsets.UTF_8);
    notUtf8[SECRET.length() + 3] = (byte) 0xFF;
    List<byte[]> inputs = List.of(
        (SECRET + " " + SECRET + "2\n").getBytes(StandardCharsets.UTF_8),
        ("Bearer " + SECRET + "\n").getBytes(StandardCharsets.UTF_8),
        ("# tokens\n" + SECRET + "\u0007\n").getBytes(StandardCharsets.UTF_8),
        (SECRET + "\u00e9\n").getBytes(StandardCharsets.UTF_8),
        ("ok\n" + SECRET + "\tsecond\n").getBytes(StandardCharsets.UTF_8),
        notUtf8,
        (SECRET + "\n").repeat(4000).getBytes(StandardCharsets.UTF_8));
    for (int i = 0; i < inputs.size(); i++) {
      Path f = file(dir.resolve("tokens-" + i), inputs.get(i), "rw-------");
      String shown = refusal("--auth-token-file", f.toString());
      assertThat(shown).as("input %s", i).contains("--auth-token-file").contains(f.toString())
          .doesNotContain(SECRET).doesNotContain(SECRET.substring(0, 10))
          .doesNotContain(SECRET.substring(9));
    }
    assertThat(refusal("--auth-token-file", file(dir.resolve("line"), "ok\n" + SECRET + " x\n",
        "rw-------").toString())).contains("line 2 of");
  }

  @Test
  void httpTlsPasswordErrors_neverShowThePassword(@TempDir Path dir) throws Exception {
    String p12 = TLS.resolve("server.p12").toString();
    byte[] notUtf8 = (SECRET + "x").getBytes(StandardCharsets.UTF_8);
    notUtf8[SECRET.length()] = (byte) 0xC3;
    List<byte[]> passwordFiles = List.of(
        (SECRET + "\n").getBytes(StandardCharsets.UTF_8),
        (SECRET + "\r\nsecond line " + SECRET + "\n").getBytes(StandardCharsets.UTF_8),
        notUtf8,
        (SECRET + "\n").repeat(4000).getBytes(StandardCharsets.UTF_8),
        new byte[0]);
    for (int i = 0; i < passwordFiles.size(); i++) {
      Path pw = file(dir.resolve("pw-" + i), passwordFiles.get(i), "rw-------");
      String shown = refusal("--tls-keystore", p12, "--tls-keystore-password-file", pw.toString());
      assertThat(shown).as("password file %s", i).contains("--tls-keystore")
          .doesNotContain(SECRET).doesNotContain(SECRET.substring(0, 10));
    }
    // The password file given as the keystore, and secret-looking PEM that is not a key.
    Path text = file(dir.resolve("pw.txt"), SECRET + "\n", "rw-------");
    assertThat(refusal("--tls-keystore", text.toString(), "--tls-keystore-password-file",
        text.toString())).doesNotContain(SECRET);
    String b64 = Base64.getEncoder().encodeToString(SECRET.getBytes(StandardCharsets.UTF_8));
    Path pem = file(dir.resolve("bad.key"), "-----BEGIN PRIVATE KEY-----\n" + b64
        + "\n-----END PRIVATE KEY-----\n", "rw-------");
    assertThat(refusal("--tls-cert", TLS.resolve("server-cert.pem").toString(), "--tls-key",
        pem.toString())).doesNotContain(SECRET).doesNotContain(b64);
    Path cert = file(dir.resolve("bad.crt"), "-----BEGIN CERTIFICATE-----\n" + b64
        + "\n-----END CERTIFICATE-----\n", "rw-------");
    assertThat(refusal("--tls-cert", cert.toString(), "--tls-key",
        TLS.resolve("server-key.pem").toString())).doesNotContain(SECRET).doesNotContain(b64);
    // The library itself.
    assertThatThrownBy(() -> HttpTls.keyStore(TLS.resolve("server.p12"), SECRET.toCharArray()))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("wrong password")
        .satisfies(e -> assertThat(e.toString()).doesNotContain(SECRET));
  }

  @Test
  void allowedHostFlag_reachesTheHttpServer_andBadValuesExitWith2() throws Exception {
    assertThat(parse("--allowed-host", "kv1.example", "--allowed-host", "b.example,c").allowedHosts())
        .containsExactlyInAnyOrder("kv1.example", "b.example", "c");
    assertThat(parse().allowedHosts()).isEmpty();
    for (String bad : List.of("http://kv1.example", "kv1.example:8080", "kv1.example/ui", "a b")) {
      Run r = execute("--allowed-host", bad);
      assertThat(r.code()).as(bad).isEqualTo(2);
      assertThat(r.err()).contains("--allowed-host");
    }
    StringWriter help = new StringWriter();
    CommandLine cl = KvServer.commandLine(new KvServer());
    cl.setOut(new PrintWriter(help));
    assertThat(cl.execute("--help")).isZero();
    assertThat(help.toString()).contains("--allowed-host").contains("DNS rebinding");
    // The same node also carries the replication flags (a node start costs seconds; one serves both).
    try (KvServer.Node node = KvServer.Node.start(parse("--node-id", "guarded", "--http-port", "0",
        "--cluster-port", "0", "--allowed-host", "kv1.example", "--replication-factor", "2",
        "--removal-delay", "30s"))) {
      replicationFlags_reachTheNode_andV1ClusterShowsItsPartitionMap(node);
      assertThat(get(node.httpPort(), "kv1.example:" + node.httpPort())).startsWith("HTTP/1.1 404");
      assertThat(get(node.httpPort(), "127.0.0.1:" + node.httpPort())).startsWith("HTTP/1.1 404");
      assertThat(get(node.httpPort(), "rebound.example"))
          .startsWith("HTTP/1.1 403").contains("host_not_allowed")
          .contains("--allowed-host rebound.example");
    }
  }

  private static void replicationFlags_reachTheNode_andV1ClusterShowsItsPartitionMap(
      KvServer.Node node) throws IOException {
    ClusterNode handle = KvCluster.node(node.store()).orElseThrow();
    assertThat(handle.config().replicationFactor()).isEqualTo(2);
    assertThat(handle.config().removalDelay()).isEqualTo(java.time.Duration.ofSeconds(30));
    String response = getPath(node.httpPort(), "/v1/cluster");
    JsonNode body = new ObjectMapper().readTree(response.substring(response.indexOf("\r\n\r\n") + 4));
    // Alone, the node owns everything: rf 2 capped at one node.
    assertThat(body.get("self").get("partitions").asInt()).isEqualTo(1024);
    assertThat(body.get("partitionMap").get("replicationFactor").asInt()).isEqualTo(1);
    assertThat(body.get("partitionMap").get("version").asText())
        .isEqualTo(String.format("%016x", handle.partitionMapVersion()));
    assertThat(body.get("partitionMap").get("nodes").get("guarded").asInt()).isEqualTo(1024);
  }

  /** {@code GET path} from loopback, over a raw socket: the whole response. */
  private static String getPath(int port, String path) throws IOException {
    try (Socket s = new Socket("127.0.0.1", port)) {
      s.setSoTimeout(10_000);
      OutputStream out = s.getOutputStream();
      out.write(("GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + port
          + "\r\nConnection: close\r\n\r\n").getBytes(StandardCharsets.ISO_8859_1));
      out.flush();
      return new String(s.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    }
  }

  /** {@code GET /v1/kv/missing} with this Host header, over a raw socket: the whole response. */
  private static String get(int port, String host) throws IOException {
    try (Socket s = new Socket("127.0.0.1", port)) {
      s.setSoTimeout(10_000);
      OutputStream out = s.getOutputStream();
      out.write(("GET /v1/kv/missing HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n")
          .getBytes(StandardCharsets.ISO_8859_1));
      out.flush();
      return new String(s.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    }
  }

  @Test
  void optionsWithoutAllowedHosts_keepTheirOldConstructor() {
    ServerOptions o = new ServerOptions("n", "127.0.0.1", 0, 0, 0, List.of(), "kvstore", Set.of(),
        1024);
    assertThat(o.allowedHosts()).isEmpty();
    assertThat(o.toString()).contains("allowedHosts=[]");
  }
}
