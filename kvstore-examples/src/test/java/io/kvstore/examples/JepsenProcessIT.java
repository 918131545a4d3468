package io.kvstore.examples;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.ConnectException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The Jepsen workload against three server JVMs over HTTP, with the faults only separate processes
 * have: SIGKILL and restart, and SIGSTOP for longer than the failure detector (then SIGCONT). One
 * client per node writes unique keys at ONE and QUORUM and deletes some of its own keys; then the
 * nodes are listed page by page and checked: every acknowledged write is on every node, no
 * acknowledged delete came back, every listed key was written, and all nodes list the same versions.
 *
 * <p>An answer 200 is acknowledged; 503 (concern not met, timeout) and a request that timed out or
 * lost its connection are unknown (the write may have been applied); a refused connection failed.
 * Writes acknowledged at ONE by the killed node in the 2 s before SIGKILL are not required (the
 * documented loss of ONE when a node dies before its fan-out): the run reports how many of them are
 * missing.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class JepsenProcessIT {
  private static final Logger log = LoggerFactory.getLogger(JepsenProcessIT.class);
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final long ONE_FANOUT_WINDOW_NANOS = TimeUnit.SECONDS.toNanos(2);

  private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2))
      .build();

  enum Outcome { OK, UNKNOWN, FAILED }

  /** One HTTP write. */
  record Op(String client, int node, boolean delete, String key, String value, boolean quorum,
      long start, long end, Outcome outcome, String version) {}

  @Test
  void when_nodesAreKilledAndPaused_then_noAcknowledgedWriteIsLost_andEveryNodeConverges()
      throws Exception {
    long seed = Long.getLong("kvstore.seed", 7L);
    Path logs = Files.createDirectories(Path.of("target", "jepsen-process-logs"));
    ConcurrentLinkedQueue<Op> history = new ConcurrentLinkedQueue<>();
    try (LocalCluster cluster = LocalCluster.start(Ports.freeNodePorts(3), logs,
        Duration.ofSeconds(90))) {
      List<LocalCluster.Node> nodes = cluster.nodes();
      CountDownLatch stop = new CountDownLatch(1);
      List<Thread> clients = new ArrayList<>();
      for (int i = 0; i < nodes.size(); i++) {
        int index = i;
        Random r = new Random(seed * 31 + i);
        Thread t = new Thread(() -> runClient("c" + index, index, nodes.get(index).url(), r, history,
            stop), "jepsen-http-client-" + i);
        t.setDaemon(true);
        t.start();
        clients.add(t);
      }
      long t0 = System.nanoTime();
      StringBuilder schedule = new StringBuilder();
      stop.await(3, TimeUnit.SECONDS);

      LocalCluster.Node victim = nodes.get(1);
      long killedAt = System.nanoTime();
      cluster.kill(victim);
      schedule.append(String.format("%.1f s SIGKILL node %d%n", secs(t0), victim.index()));
      stop.await(2, TimeUnit.SECONDS);
      cluster.restart(victim, Duration.ofSeconds(90));
      schedule.append(String.format("%.1f s node %d restarted and ready%n", secs(t0),
          victim.index()));
      stop.await(2, TimeUnit.SECONDS);

      LocalCluster.Node paused = nodes.get(2);
      cluster.pause(paused);
      schedule.append(String.format("%.1f s SIGSTOP node %d%n", secs(t0), paused.index()));
      try {
        stop.await(8, TimeUnit.SECONDS); // failure detector removes a member of 3 after ~5.5 s
      } finally {
        cluster.resume(paused);
      }
      schedule.append(String.format("%.1f s SIGCONT node %d%n", secs(t0), paused.index()));
      stop.await(2, TimeUnit.SECONDS);

      stop.countDown();
      for (Thread t : clients) {
        t.join(TimeUnit.SECONDS.toMillis(30));
        assertThat(t.isAlive()).as("client %s stopped", t.getName()).isFalse();
      }
      long healed = System.nanoTime();
      Map<Integer, Map<String, String>> states = new TreeMap<>();
      await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(200)).until(() -> {
        states.clear();
        for (LocalCluster.Node n : nodes) {
          states.put(n.index(), list(n.url(), "j/"));
        }
        return states.values().stream().distinct().count() == 1;
      });
      long convergeMillis = (System.nanoTime() - healed) / 1_000_000;

      List<String> violations = new ArrayList<>();
      int oneMissingAfterKill = check(history, states.get(1), victim.index(), killedAt, violations);
      int ok = (int) history.stream().filter(o -> o.outcome() == Outcome.OK).count();
      int unknown = (int) history.stream().filter(o -> o.outcome() == Outcome.UNKNOWN).count();
      int failed = (int) history.stream().filter(o -> o.outcome() == Outcome.FAILED).count();
      String figures = String.format("seed %d: operations %d, acknowledged %d, unknown %d, failed %d, "
          + "lost %d, keys %d, ONE writes acknowledged by node %d in the 2 s before SIGKILL and "
          + "missing (allowed) %d, identical state %d ms after the faults stopped%n%s", seed,
          history.size(), ok, unknown, failed, violations.size(), states.get(1).size(),
          victim.index(), oneMissingAfterKill, convergeMillis, schedule);
      log.info("Jepsen process run: {}", figures);
      assertThat(violations).as("replay with -Dkvstore.seed=%d; %s", seed, figures).isEmpty();
      assertThat(ok).as(figures).isGreaterThan(100);
      assertThat(unknown + failed).as("the faults were felt; " + figures).isGreaterThan(0);
    }
  }

  private static double secs(long t0) {
    return (System.nanoTime() - t0) / 1e9;
  }

  /** Returns how many allowed-lost ONE writes are missing; adds every violation. */
  private static int check(Iterable<Op> history, Map<String, String> state, int killedNode,
      long killedAt, List<String> violations) {
    Map<String, List<Op>> byKey = new HashMap<>();
    for (Op op : history) {
      byKey.computeIfAbsent(op.key(), k -> new ArrayList<>()).add(op);
    }
    int allowedMissing = 0;
    for (Map.Entry<String, List<Op>> e : byKey.entrySet()) {
      String listed = state.get(e.getKey());
      Op put = null;
      Op delete = null;
      for (Op op : e.getValue()) {
        if (op.delete()) {
          delete = op;
        } else {
          put = op;
        }
      }
      boolean deleteMayHaveHappened = delete != null && delete.outcome() != Outcome.FAILED;
      if (delete != null && delete.outcome() == Outcome.OK && listed != null) {
        violations.add("RESURRECTED " + e.getKey() + " listed with " + listed + ": " + e.getValue());
      } else if (put != null && put.outcome() == Outcome.OK && !deleteMayHaveHappened
          && !put.version().equals(listed)) {
        boolean allowed = !put.quorum() && put.node() == killedNode && put.end() <= killedAt
            && killedAt - put.end() < ONE_FANOUT_WINDOW_NANOS;
        if (allowed) {
          allowedMissing++;
        } else {
          violations.add("LOST " + e.getKey() + " listed with " + listed + ": " + e.getValue());
        }
      } else if (listed != null && (put == null || put.outcome() == Outcome.FAILED)) {
        violations.add("UNEXPLAINED " + e.getKey() + " listed with " + listed + ": " + e.getValue());
      }
    }
    for (String key : state.keySet()) {
      if (!byKey.containsKey(key)) {
        violations.add("UNEXPLAINED " + key + " was never written");
      }
    }
    return allowedMissing;
  }

  private void runClient(String name, int node, String base, Random r,
      ConcurrentLinkedQueue<Op> history, CountDownLatch stop) {
    List<String> own = new ArrayList<>();
    int seq = 0;
    try {
      while (!stop.await(20, TimeUnit.MILLISECONDS)) {
        seq++;
        boolean quorum = r.nextBoolean();
        if (r.nextInt(10) < 2 && !own.isEmpty()) {
          String key = own.remove(r.nextInt(own.size()));
          history.add(write(name, node + 1, base, key, null, quorum));
        } else {
          String key = "j/" + name + "/" + seq;
          own.add(key);
          history.add(write(name, node + 1, base, key, name + "-" + seq, quorum));
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private Op write(String client, int node, String base, String key, String value,
      boolean quorum) throws InterruptedException {
    URI uri = URI.create(base + "/v1/kv/" + URLEncoder.encode(key, StandardCharsets.UTF_8)
        + "?consistency=" + (quorum ? "quorum" : "one"));
    HttpRequest.Builder b = HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(3));
    HttpRequest req = value == null ? b.DELETE().build()
        : b.PUT(HttpRequest.BodyPublishers.ofString(value)).build();
    long start = System.nanoTime();
    Outcome outcome;
    String version = null;
    try {
      HttpResponse<String> resp = http.send(req, HttpResponse.BodyHandlers.ofString());
      if (resp.statusCode() == 200) {
        outcome = Outcome.OK;
        JsonNode v = JSON.readTree(resp.body()).get("version");
        version = v == null ? null : v.asText();
      } else if (resp.statusCode() == 503) {
        outcome = Outcome.UNKNOWN;
      } else if (resp.statusCode() == 408) {
        // The server gave up reading the body (it was SIGSTOPped mid-request and resumed past its
        // minimum data rate): the write never ran.
        outcome = Outcome.FAILED;
      } else {
        throw new IllegalStateException("unexpected " + resp.statusCode() + " " + resp.body());
      }
    } catch (ConnectException e) {
      outcome = Outcome.FAILED;
    } catch (IOException e) {
      outcome = Outcome.UNKNOWN; // timed out or lost the connection: may have been applied
    }
    return new Op(client, node, value == null, key, value, quorum, start, System.nanoTime(),
        outcome, version);
  }

  /** Every live key under the prefix with its version, page by page. */
  private Map<String, String> list(String base, String prefix) throws Exception {
    Map<String, String> out = new TreeMap<>();
    String after = null;
    do {
      String url = base + "/v1/kv?prefix=" + URLEncoder.encode(prefix, StandardCharsets.UTF_8)
          + "&limit=1000" + (after == null ? ""
          : "&startAfter=" + URLEncoder.encode(after, StandardCharsets.UTF_8));
      HttpResponse<String> resp = http.send(HttpRequest.newBuilder(URI.create(url))
          .timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString());
      assertThat(resp.statusCode()).as(resp.body()).isEqualTo(200);
      JsonNode page = JSON.readTree(resp.body());
      for (JsonNode item : page.get("items")) {
        out.put(item.get("key").asText(), item.get("version").asText());
      }
      JsonNode next = page.get("nextStartAfter");
      after = next == null || next.isNull() ? null : next.asText();
    } while (after != null);
    return out;
  }
}
