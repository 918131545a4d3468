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
import java.util.ArrayList;
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
        List<Thread> writers = new ArrayList<>();
        for (int w = 0; w < WRITERS; w++) {
          String prefix = "r" + round + "w" + w + "-";
          Thread t = new Thread(() -> {
            for (int i = 0; !stop.get(); i++) {
              String key = prefix + i;
              String body = "{\"key\":\"" + key + "\",\"value\":\"v" + i + "\"}";
              try {
                HttpResponse<String> r = http.send(HttpRequest.newBuilder(
                    URI.create(node.url() + "/put")).timeout(Duration.ofSeconds(5))
                    .header("Content-Type", "application/json")
                    .PUT(HttpRequest.BodyPublishers.ofString(body)).build(),
                    HttpResponse.BodyHandlers.ofString());
                if (r.statusCode() == 200) {
                  acked.put(key, "v" + i);
                }
              } catch (Exception e) {
                return; // the server died under us: this write was not acknowledged
              }
            }
          }, "writer-" + w);
          t.start();
          writers.add(t);
        }
        int before = acked.size();
        await().atMost(Duration.ofSeconds(60)).until(() -> acked.size() >= before + 300);
        cluster.kill(node); // SIGKILL while the writers are mid-request
        stop.set(true);
        for (Thread t : writers) {
          t.join(10_000);
        }
        cluster.restart(node, Duration.ofSeconds(90));
        assertThat(acked).as("writes acknowledged before the kill").isNotEmpty();
        System.out.printf("%s kill -9 #%d: checking %d acknowledged writes%n", durability,
            round + 1, acked.size());
        for (Map.Entry<String, String> e : acked.entrySet()) {
          HttpResponse<String> r = http.send(HttpRequest.newBuilder(
              URI.create(node.url() + "/get?key=" + e.getKey())).build(),
              HttpResponse.BodyHandlers.ofString());
          assertThat(r.statusCode()).as("%s: acknowledged %s after kill -9 #%d", durability,
              e.getKey(), round + 1).isEqualTo(200);
          assertThat(r.body()).contains("\"value\":\"" + e.getValue() + "\"");
        }
      }
    }
  }
}
