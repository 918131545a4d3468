package io.kvstore.examples.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvstore.core.KvStore;
import io.kvstore.http.HttpTls;
import io.kvstore.http.KvHttpServer;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The {@code kv} client against real nodes in this JVM (a store behind a {@link KvHttpServer}, one
 * open and one with a token): every subcommand, its output in text and JSON, and its exit codes.
 * Each test uses its own keys, so the tests share the two nodes in any order.
 */
@Timeout(30)
class KvCliTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final String TOKEN = "s3cret-token";
  private static KvStore store;
  private static KvHttpServer http;
  private static KvStore securedStore;
  private static KvHttpServer secured;
  private static String url;

  @TempDir
  Path dir;

  @BeforeAll
  static void startNodes() {
    store = KvStore.builder().nodeId("cli-node").build();
    http = KvHttpServer.builder(store).port(0).build().start();
    url = "http://127.0.0.1:" + http.port();
    securedStore = KvStore.builder().nodeId("cli-secured").build();
    secured = KvHttpServer.builder(securedStore).port(0).authTokens(Set.of(TOKEN)).build().start();
  }

  @AfterAll
  static void stopNodes() {
    http.close();
    store.close();
    secured.close();
    securedStore.close();
  }

  /** One run of the client: exit code, stdout bytes, stderr text. */
  record Run(int code, byte[] stdout, String err) {
    String out() {
      return new String(stdout, StandardCharsets.UTF_8);
    }

    JsonNode json() throws IOException {
      return JSON.readTree(stdout);
    }
  }

  private static Run kv(String... args) {
    return kvWith(new byte[0], Map.of("KVSTORE_URL", url), args);
  }

  private static Run kvWith(byte[] stdin, Map<String, String> env, String... args) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int code = KvCli.run(args, new ByteArrayInputStream(stdin), new PrintStream(out, true),
        new PrintStream(err, true), env, false);
    return new Run(code, out.toByteArray(), err.toString(StandardCharsets.UTF_8));
  }

  @Test
  void members_ofAPartitionedNode_showPartitionsPendingAndWhetherItMayBeStopped() {
    KvStore node = KvStore.builder().nodeId("cli-part").build();
    try (KvHttpServer server = KvHttpServer.builder(node).port(0)
        .partitionMap(() -> new io.kvstore.http.PartitionMapInfo(0xabcL, 3,
            Map.of("cli-part", 512), Map.of("cli-part", 7), false,
            "this node still pulls 7 partitions it owns"))
        .build().start()) {
      Run members = kvWith(new byte[0], Map.of("KVSTORE_URL", "http://127.0.0.1:" + server.port()),
          "members");
      assertThat(members.code()).as(members.err()).isZero();
      assertThat(members.out()).contains("PARTITIONS").contains("PENDING")
          .containsPattern("cli-part .* 512 +7 +\\(this node\\)")
          .contains("partition map 0000000000000abc, replication factor 3; safe to stop this node:"
              + " no, this node still pulls 7 partitions it owns");
    } finally {
      node.close();
    }
  }

  @Test
  void putThenGet_printsTheVersionThenTheExactValue() {
    Run put = kv("put", "t1/greeting", "hello");
    assertThat(put.code()).as(put.err()).isZero();
    String version = put.out().strip();
    assertThat(version).matches("\\d+\\.\\d+@cli-node");
    Run get = kv("get", "t1/greeting");
    assertThat(get.code()).isZero();
    assertThat(get.out()).isEqualTo("hello");
    assertThat(store.get("t1/greeting")).isPresent();
  }

  @Test
  void get_missingKey_exits1WithTheServersMessageAndNoStackTrace() {
    Run r = kv("get", "t2/nothing");
    assertThat(r.code()).isEqualTo(KvCli.NOT_FOUND);
    assertThat(r.stdout()).isEmpty();
    assertThat(r.err()).isEqualTo("kv: no value for key 't2/nothing'\n");
  }

  @Test
  void getJson_parsesAndHoldsValueVersionAndExpiry() throws IOException {
    assertThat(kv("put", "--ttl", "1h", "t3/k", "v1").code()).isZero();
    Run r = kv("get", "-o", "json", "t3/k");
    assertThat(r.code()).isZero();
    JsonNode j = r.json();
    assertThat(j.get("key").asText()).isEqualTo("t3/k");
    assertThat(j.get("value").asText()).isEqualTo("v1");
    assertThat(j.get("version").asText()).endsWith("@cli-node");
    assertThat(j.get("expiresAt").asText()).endsWith("Z");
    assertThat(store.getVersioned("t3/k").orElseThrow().expiresAt()).isPresent();
  }

  @Test
  void putFromStdinAndFromFile_roundTripBinaryBytesExactly() throws IOException {
    long seed = System.nanoTime();
    System.out.println("KvCliTest binary seed " + seed);
    byte[] bytes = new byte[4096];
    new Random(seed).nextBytes(bytes);
    bytes[0] = (byte) 0xff; // never valid UTF-8
    Run fromStdin = kvWith(bytes, Map.of("KVSTORE_URL", url), "put", "t4/stdin", "-");
    assertThat(fromStdin.code()).as(fromStdin.err()).isZero();
    assertThat(kv("get", "t4/stdin").stdout()).isEqualTo(bytes);

    Path in = dir.resolve("in.bin");
    Files.write(in, bytes);
    assertThat(kv("put", "t4/file", "--file", in.toString()).code()).isZero();
    Path out = dir.resolve("out.bin");
    Run get = kv("get", "t4/file", "--file", out.toString());
    assertThat(get.code()).isZero();
    assertThat(get.stdout()).isEmpty();
    assertThat(Files.readAllBytes(out)).isEqualTo(bytes);
    JsonNode j = kv("get", "-o", "json", "t4/file").json();
    assertThat(java.util.Base64.getDecoder().decode(j.get("valueBase64").asText()))
        .isEqualTo(bytes);
  }

  @Test
  void putIfVersion_staleVersionExits1AndWritesNothing_currentVersionWrites() {
    String v1 = kv("put", "t5/k", "one").out().strip();
    String v2 = kv("put", "t5/k", "two").out().strip();
    Run stale = kv("put", "--if-version", v1, "t5/k", "three");
    assertThat(stale.code()).isEqualTo(KvCli.NOT_FOUND);
    assertThat(stale.err()).contains("If-Match failed").contains(v2);
    assertThat(kv("get", "t5/k").out()).isEqualTo("two");
    assertThat(kv("put", "--if-version", v2, "t5/k", "three").code()).isZero();
    assertThat(kv("get", "t5/k").out()).isEqualTo("three");
    Run absent = kv("put", "--if-absent", "t5/k", "four");
    assertThat(absent.code()).isEqualTo(KvCli.NOT_FOUND);
    assertThat(kv("put", "--if-absent", "--consistency", "ALL", "t5/new", "x").code()).isZero();
  }

  @Test
  void delete_withAndWithoutVersion() throws IOException {
    String v1 = kv("put", "t6/k", "one").out().strip();
    kv("put", "t6/k", "two");
    Run stale = kv("delete", "--if-version", v1, "t6/k");
    assertThat(stale.code()).isEqualTo(KvCli.NOT_FOUND);
    assertThat(store.get("t6/k")).isPresent();
    Run del = kv("delete", "t6/k");
    assertThat(del.code()).isZero();
    assertThat(del.out()).isEqualTo("deleted\n");
    assertThat(store.get("t6/k")).isEmpty();
    Run again = kv("delete", "-o", "json", "t6/k");
    assertThat(again.code()).isZero();
    assertThat(again.json().get("deleted").asBoolean()).isFalse();
  }

  @Test
  void list_followsEveryPage_andLimitStopsEarly() throws IOException {
    for (int i = 0; i < 250; i++) {
      store.put(String.format("t7/%03d", i), "v");
    }
    store.put("t7x", "outside the prefix");
    Run all = kv("list", "--prefix", "t7/");
    assertThat(all.code()).isZero();
    String[] keys = all.out().split("\n");
    assertThat(keys).hasSize(250);
    assertThat(keys[0]).isEqualTo("t7/000");
    assertThat(keys[249]).isEqualTo("t7/249");
    Run limited = kv("list", "--prefix", "t7/", "--limit", "120", "-o", "json");
    JsonNode j = limited.json();
    assertThat(j.get("items")).hasSize(120);
    assertThat(j.get("items").get(119).get("key").asText()).isEqualTo("t7/119");
    assertThat(j.get("nextStartAfter").asText()).isEqualTo("t7/119");
    assertThat(kv("list", "--prefix", "t7/", "--start-after", "t7/247").out())
        .isEqualTo("t7/248\nt7/249\n");
  }

  @Test
  void watch_printsTheEventsOfAChangeAndStopsAfterMaxEvents() throws Exception {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    CompletableFuture<Integer> watch = CompletableFuture.supplyAsync(() -> KvCli.run(
        new String[] {"watch", "--prefix", "t8/", "--max-events", "2", "--timeout", "20s"},
        new ByteArrayInputStream(new byte[0]), new PrintStream(out, true),
        new PrintStream(err, true), Map.of("KVSTORE_URL", url), false));
    await().atMost(Duration.ofSeconds(10))
        .until(() -> err.toString(StandardCharsets.UTF_8).contains("watching 't8/'"));
    store.put("other/key", "not watched");
    store.put("t8/a", "1");
    store.delete("t8/a");
    assertThat(watch.get()).isZero();
    String[] lines = out.toString(StandardCharsets.UTF_8).split("\n");
    assertThat(lines).hasSize(2);
    assertThat(lines[0]).matches("put t8/a \\d+\\.\\d+@cli-node local");
    assertThat(lines[1]).matches("delete t8/a \\d+\\.\\d+@cli-node local");
  }

  @Test
  void watchJson_andTimeout_endWithExit0() throws Exception {
    long start = System.nanoTime();
    Run r = kv("watch", "--prefix", "t9/", "--timeout", "300ms", "-o", "json");
    assertThat(r.code()).isZero();
    assertThat(r.stdout()).isEmpty();
    assertThat(Duration.ofNanos(System.nanoTime() - start)).isLessThan(Duration.ofSeconds(10));
    assertThat(kv("watch", "--timeout", "0s").code()).isEqualTo(KvCli.USAGE);
  }

  @Test
  void membersAndHealth_textAndJson() throws IOException {
    Run members = kv("members");
    assertThat(members.code()).isZero();
    assertThat(members.out()).startsWith("ID").contains("cli-node").contains("(this node)");
    JsonNode cluster = kv("members", "--output", "json").json();
    assertThat(cluster.get("self").get("id").asText()).isEqualTo("cli-node");
    assertThat(cluster.get("members")).hasSize(1);
    Run health = kv("health");
    assertThat(health.out()).isEqualTo("serving cli-node\n");
    assertThat(kv("health", "-o", "json").json().get("status").asText()).isEqualTo("serving");
  }

  @Test
  void usageErrors_exit2() {
    assertThat(kv("frobnicate").code()).isEqualTo(KvCli.USAGE);
    Run noValue = kv("put", "t10/k");
    assertThat(noValue.code()).isEqualTo(KvCli.USAGE);
    assertThat(noValue.err()).contains("value").contains("--help");
    assertThat(kv("put", "--consistency", "most", "t10/k", "v").code()).isEqualTo(KvCli.USAGE);
    Run badTtl = kv("put", "--ttl", "0s", "t10/k", "v");
    assertThat(badTtl.code()).isEqualTo(KvCli.USAGE);
    assertThat(badTtl.err()).startsWith("kv: ").contains("ttl");
    assertThat(store.get("t10/k")).isEmpty();
    assertThat(kv("get", "").code()).isEqualTo(KvCli.USAGE);
    assertThat(kv("--url", "ftp://x", "health").code()).isEqualTo(KvCli.USAGE);
    assertThat(kv("list", "--limit", "0").code()).isEqualTo(KvCli.USAGE);
    Run none = kv();
    assertThat(none.code()).isEqualTo(KvCli.USAGE);
    assertThat(none.err()).contains("name a command").contains("Commands:");
    assertThat(kv("--help").code()).isZero();
  }

  @Test
  void unreachableNode_exits3() throws IOException {
    int port;
    try (ServerSocket s = new ServerSocket(0)) {
      port = s.getLocalPort();
    }
    Run r = kv("--url", "http://127.0.0.1:" + port, "get", "k");
    assertThat(r.code()).isEqualTo(KvCli.UNREACHABLE);
    assertThat(r.err()).startsWith("kv: cannot reach the node at http://127.0.0.1:" + port)
        .doesNotContain("Exception").doesNotContain("\tat ");
    assertThat(kvWith(new byte[0], Map.of("KVSTORE_URL", "http://127.0.0.1:" + port), "health")
        .code()).isEqualTo(KvCli.UNREACHABLE);
  }

  @Test
  void nodeAnswering5xx_exits3WithItsMessage() {
    KvStore closed = KvStore.builder().nodeId("cli-closed").build();
    try (KvHttpServer server = KvHttpServer.builder(closed).port(0).build().start()) {
      closed.close();
      Run r = kv("--url", "http://127.0.0.1:" + server.port(), "put", "t12/k", "v");
      assertThat(r.code()).as(r.err()).isEqualTo(KvCli.UNREACHABLE);
      assertThat(r.err()).startsWith("kv: ").doesNotContain("\tat ");
      Run json = kv("--url", "http://127.0.0.1:" + server.port(), "-o", "json", "put", "t12/k",
          "v");
      assertThat(json.err()).contains("\"error\"");
    }
  }

  @Test
  void https_withCacertServed_withoutItTheTlsFailureExits3() throws Exception {
    Path tls = Path.of("src", "test", "resources", "tls");
    KvStore tlsStore = KvStore.builder().nodeId("cli-tls").build();
    try (KvHttpServer server = KvHttpServer.builder(tlsStore).port(0)
        .tls(HttpTls.pem(tls.resolve("server-cert.pem"), tls.resolve("server-key.pem")))
        .build().start()) {
      String https = "https://localhost:" + server.port();
      Run ok = kv("--url", https, "--cacert", tls.resolve("server-cert.pem").toString(), "put",
          "t13/k", "v");
      assertThat(ok.code()).as(ok.err()).isZero();
      Run untrusted = kv("--url", https, "health");
      assertThat(untrusted.code()).isEqualTo(KvCli.UNREACHABLE);
      assertThat(untrusted.err()).startsWith("kv: cannot reach the node at " + https + ": TLS");
      assertThat(kv("--url", https, "--cacert", tls.resolve("README.md").toString(), "health")
          .code()).isEqualTo(KvCli.USAGE);
    } finally {
      tlsStore.close();
    }
  }

  @Test
  void tokens_withoutTokenRefused_withTokenFileServed_worldReadableFileRefused()
      throws IOException {
    String securedUrl = "http://127.0.0.1:" + secured.port();
    Run none = kv("--url", securedUrl, "put", "t11/k", "v");
    assertThat(none.code()).isEqualTo(KvCli.USAGE);
    assertThat(none.err()).contains("bearer token").contains("--token-file");
    assertThat(securedStore.get("t11/k")).isEmpty();

    Path file = dir.resolve("token");
    Files.writeString(file, "# the CLI token\n" + TOKEN + "\n");
    Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-------"));
    Run ok = kv("--url", securedUrl, "--token-file", file.toString(), "put", "t11/k", "v");
    assertThat(ok.code()).as(ok.err()).isZero();
    Map<String, String> env = new HashMap<>();
    env.put("KVSTORE_URL", securedUrl);
    env.put("KVSTORE_TOKEN_FILE", file.toString());
    assertThat(kvWith(new byte[0], env, "get", "t11/k").out()).isEqualTo("v");
    // The option works after the subcommand too.
    assertThat(kv("get", "t11/k", "--url", securedUrl, "--token-file", file.toString()).code())
        .isZero();

    Path wrong = dir.resolve("wrong");
    Files.writeString(wrong, "not-the-token\n");
    Files.setPosixFilePermissions(wrong, PosixFilePermissions.fromString("rw-------"));
    Run bad = kv("--url", securedUrl, "--token-file", wrong.toString(), "get", "t11/k");
    assertThat(bad.code()).isEqualTo(KvCli.USAGE);
    assertThat(bad.err()).contains("not valid").doesNotContain("not-the-token");

    Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-r--r--"));
    Run open = kv("--url", securedUrl, "--token-file", file.toString(), "get", "t11/k");
    assertThat(open.code()).isEqualTo(KvCli.USAGE);
    assertThat(open.err()).contains("chmod 600").doesNotContain(TOKEN);
  }
}
