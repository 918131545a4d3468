package io.kvstore.examples;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * kill -9 of a server JVM under load: every write acknowledged (HTTP 200) before the kill is there
 * after the restart, under SYNC and INTERVAL (a process crash loses nothing the OS was given). Four
 * writers put new keys until at least 300 more are acknowledged, then the JVM is killed mid-request;
 * {@code -Dkvstore.kill9.rounds=N} repeats the kill N times per level on the same data directory.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class KillNineDurabilityIT {
  private static final int WRITERS = 4;
  /** Kill rounds per durability level: 1 in the default build, more with -Dkvstore.kill9.rounds. */
  private static final int ROUNDS = Integer.getInteger("kvstore.kill9.rounds", 1);
  private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2))
      .build();

  /** Four writers putting new keys at {@code path?query}; returns the acknowledged ones. */
  private Thread[] load(String url, String query, String prefix, Map<String, String> acked,
      AtomicBoolean stop) {
    Thread[] writers = new Thread[WRITERS];
    for (int w = 0; w < WRITERS; w++) {
      String p = prefix + "w" + w + "-";
      writers[w] = new Thread(() -> {
        for (int i = 0; !stop.get(); i++) {
          String key = p + i;
          try {
            HttpResponse<String> r = http.send(HttpRequest.newBuilder(
                URI.create(url + "/v1/kv/" + key + query)).timeout(Duration.ofSeconds(5))
                .PUT(HttpRequest.BodyPublishers.ofString("v" + i)).build(),
                HttpResponse.BodyHandlers.ofString());
            if (r.statusCode() == 200) {
              acked.put(key, "v" + i);
            }
          } catch (Exception e) {
            return; // the server died under us: this write was not acknowledged
          }
        }
      }, "writer-" + w);
      writers[w].start();
    }
    return writers;
  }

  private String value(String url, String key) throws Exception {
    HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(url + "/v1/kv/" + key))
        .timeout(Duration.ofSeconds(5)).build(), HttpResponse.BodyHandlers.ofString());
    return r.statusCode() == 200 ? r.body() : null;
  }

  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"SYNC", "INTERVAL"})
  void killNineUnderLoad_keepsEveryAcknowledgedWrite(String durability) throws Exception {
    Path dir = Files.createDirectories(Path.of("target", "kill9-" + durability.toLowerCase()));
    Path data = dir.resolve("data-" + System.nanoTime());
    try (LocalCluster cluster = LocalCluster.start(Ports.freeNodePorts(1), dir,
        Duration.ofSeconds(90),
        i -> List.of("--data-dir", data.toString(), "--durability", durability))) {
      LocalCluster.Node node = cluster.nodes().get(0);
      Map<String, String> acked = new ConcurrentHashMap<>();
      for (int round = 0; round < ROUNDS; round++) {
        AtomicBoolean stop = new AtomicBoolean();
        Thread[] writers = load(node.url(), "", "r" + round, acked, stop);
        int before = acked.size();
        await().atMost(Duration.ofSeconds(60)).until(() -> acked.size() >= before + 300);
        cluster.kill(node); // SIGKILL while the writers are mid-request
        stop.set(true);
        for (Thread t : writers) {
          t.join(10_000);
        }
        cluster.restart(node, Duration.ofSeconds(90));
        System.out.printf("%s kill -9 #%d: checking %d acknowledged writes%n", durability,
            round + 1, acked.size());
        for (Map.Entry<String, String> e : acked.entrySet()) {
          assertThat(value(node.url(), e.getKey())).as("%s: acknowledged %s after kill -9 #%d",
              durability, e.getKey(), round + 1).isEqualTo(e.getValue());
        }
      }
    }
  }

  /**
   * A whole 3-node SYNC cluster killed at once and restarted: every write acknowledged at QUORUM is
   * back on every node. Takes about a minute on a loaded 2-core machine, so it runs only with
   * {@code -Dkvstore.kill9.cluster=true}.
   */
  @org.junit.jupiter.api.Test
  @Timeout(value = 400, unit = TimeUnit.SECONDS)
  void wholeClusterKilledAtOnce_keepsEveryQuorumWriteUnderSync() throws Exception {
    org.junit.jupiter.api.Assumptions.assumeTrue(Boolean.getBoolean("kvstore.kill9.cluster"),
        "-Dkvstore.kill9.cluster=true runs it");
    Path dir = Files.createDirectories(Path.of("target", "kill9-cluster"));
    String run = "data-" + System.nanoTime();
    try (LocalCluster cluster = LocalCluster.start(Ports.freeNodePorts(3), dir,
        Duration.ofSeconds(120), i -> List.of("--data-dir", dir.resolve(run + "-" + i).toString(),
            "--durability", "SYNC"))) {
      Map<String, String> acked = new ConcurrentHashMap<>();
      AtomicBoolean stop = new AtomicBoolean();
      Thread[] writers = load(cluster.nodes().get(0).url(), "?consistency=quorum", "q", acked,
          stop);
      await().atMost(Duration.ofSeconds(60)).until(() -> acked.size() >= 300);
      for (LocalCluster.Node n : cluster.nodes()) {
        n.process().destroyForcibly(); // all three at once: no node outlives the others
      }
      for (LocalCluster.Node n : cluster.nodes()) {
        cluster.kill(n);
      }
      stop.set(true);
      for (Thread t : writers) {
        t.join(10_000);
      }
      for (LocalCluster.Node n : cluster.nodes()) {
        cluster.restart(n, Duration.ofSeconds(120));
      }
      System.out.printf("whole-cluster kill -9: checking %d QUORUM writes on 3 nodes%n",
          acked.size());
      for (LocalCluster.Node n : cluster.nodes()) {
        await().atMost(Duration.ofSeconds(60)).untilAsserted(() -> {
          for (Map.Entry<String, String> e : acked.entrySet()) {
            assertThat(value(n.url(), e.getKey())).as("QUORUM write %s on node %d", e.getKey(),
                n.index()).isEqualTo(e.getValue());
          }
        });
      }
    }
  }
}
