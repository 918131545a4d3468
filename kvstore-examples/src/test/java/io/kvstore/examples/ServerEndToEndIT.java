package io.kvstore.examples;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.kvstore.cluster.TestPki;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Three servers from the built jar, each its own JVM: a write through one is read through another; a
 * SIGKILLed node restarted with the same flags catches up on what it missed; SIGTERM ends each with
 * exit code 0. Two servers with cluster TLS flags (certificates made at test time) replicate.
 */
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class ServerEndToEndIT {
  private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();

  private int put(String base, String key, String value) throws Exception {
    HttpRequest req = HttpRequest.newBuilder(URI.create(base + "/put"))
        .header("Content-Type", "application/json")
        .PUT(HttpRequest.BodyPublishers.ofString(
            "{\"key\":\"" + key + "\",\"value\":\"" + value + "\"}"))
        .timeout(Duration.ofSeconds(10)).build();
    return http.send(req, HttpResponse.BodyHandlers.discarding()).statusCode();
  }

  private HttpResponse<String> get(String base, String key) throws Exception {
    HttpRequest req = HttpRequest.newBuilder(URI.create(base + "/get?key="
        + URLEncoder.encode(key, StandardCharsets.UTF_8))).timeout(Duration.ofSeconds(10)).build();
    return http.send(req, HttpResponse.BodyHandlers.ofString());
  }

  @Test
  void threeServers_replicate_survivesKillAndRestart_andExitZeroOnSigterm() throws Exception {
    assertThat(System.getProperty("kvstore.server.jar")).as("failsafe passes the jar").isNotNull();
    assertThat(Path.of(System.getProperty("kvstore.server.jar"))).exists();
    Path logs = Files.createDirectories(Path.of("target", "e2e-logs"));
    try (LocalCluster cluster = LocalCluster.start(Ports.freeNodePorts(3), logs,
        Duration.ofSeconds(90))) {
      LocalCluster.Node n1 = cluster.nodes().get(0);
      LocalCluster.Node n2 = cluster.nodes().get(1);
      LocalCluster.Node n3 = cluster.nodes().get(2);

      assertThat(put(n1.url(), "greeting", "hello")).isEqualTo(200);
      await().atMost(Duration.ofSeconds(20)).untilAsserted(() ->
          assertThat(get(n3.url(), "greeting").body()).contains("\"value\":\"hello\""));

      cluster.kill(n2);
      assertThat(n2.process().exitValue()).isEqualTo(137); // SIGKILL
      for (int i = 0; i < 200; i++) {
        assertThat(put(i % 2 == 0 ? n1.url() : n3.url(), "while-down-" + i, "v" + i))
            .isEqualTo(200);
      }
      cluster.restart(n2, Duration.ofSeconds(90));
      await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> {
        for (int i = 0; i < 200; i += 7) {
          assertThat(get(n2.url(), "while-down-" + i).body()).contains("\"value\":\"v" + i + "\"");
        }
        assertThat(get(n2.url(), "while-down-199").statusCode()).isEqualTo(200);
        assertThat(get(n2.url(), "greeting").body()).contains("hello");
      });

      for (LocalCluster.Node n : cluster.nodes()) {
        assertThat(cluster.stop(n, Duration.ofSeconds(30)))
            .as("exit code of node %d after SIGTERM; log %s", n.index(), n.log()).isZero();
      }
      assertThat(Files.readString(n1.log())).contains("ready: http://127.0.0.1:");
    }
  }

  @Test
  void twoServersWithClusterTlsFlags_replicate_andDoNotWarnOfAnOpenCluster(@TempDir Path certs)
      throws Exception {
    TestPki pki = TestPki.create(certs, "e2e", "node-1", "node-2");
    Path logs = Files.createDirectories(Path.of("target", "e2e-logs", "tls"));
    try (LocalCluster cluster = LocalCluster.start(Ports.freeNodePorts(2), logs,
        Duration.ofSeconds(90), i -> List.of(
            "--cluster-tls-cert", pki.certificate("node-" + i).toString(),
            "--cluster-tls-key", pki.privateKey("node-" + i).toString(),
            "--cluster-tls-ca", pki.caCertificate().toString()))) {
      LocalCluster.Node n1 = cluster.nodes().get(0);
      LocalCluster.Node n2 = cluster.nodes().get(1);
      assertThat(put(n1.url(), "over-tls", "sealed")).isEqualTo(200);
      await().atMost(Duration.ofSeconds(20)).untilAsserted(() ->
          assertThat(get(n2.url(), "over-tls").body()).contains("\"value\":\"sealed\""));
      for (LocalCluster.Node n : cluster.nodes()) {
        assertThat(cluster.stop(n, Duration.ofSeconds(30)))
            .as("exit code of node %d after SIGTERM; log %s", n.index(), n.log()).isZero();
        assertThat(Files.readString(n.log())).contains("cluster TLS ClusterTls{TLSv1.3")
            .doesNotContain("is OPEN");
      }
    }
  }
}
