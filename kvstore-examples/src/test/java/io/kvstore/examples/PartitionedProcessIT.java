package io.kvstore.examples;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
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
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Partitioned mode across six server JVMs ({@code --replication-factor 3}, memory only, removal
 * delay 3 s), over HTTP only, in three phases that build on each other:
 *
 * <ol>
 *   <li>300 keys written at QUORUM, each through another node, are read back with the right value
 *       through every node, and every node names the same three owners ({@code X-Kvstore-Owners});
 *   <li>two nodes that share partitions are SIGKILLed: every key is readable through each of the
 *       four live nodes at ONE, and at QUORUM when at most one of its owners died (eventually: once
 *       the removal delay has passed, a node that gained a partition serves ONE reads of it before
 *       the handoff reaches it; what the first pass saw is logged), and no node that held a key in
 *       phase (a) and still owns it ever misses it; new keys with two live owners are written at
 *       QUORUM right away, and every new key once the dead nodes have left every map;
 *   <li>a seventh node joins: every node lists the five live nodes with the new one owning
 *       partitions, while a reader reads every key through every live node, counting wrong values
 *       (must be 0) and misses (must be 0 too: a new owner is pending until it pulled a partition,
 *       and its reads go to the old owners meanwhile; docs/CLUSTER.md "Rebalancing").
 * </ol>
 *
 * <p>Nothing here is random but the ports, so there is no seed: a failure replays as is. Every JVM
 * started is SIGKILLed by its PID in {@link #killEverything()}, whatever happened. The figures of
 * each phase (timings, misses) are logged at INFO and are in the assertion messages.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
@Timeout(value = 240, unit = TimeUnit.SECONDS)
class PartitionedProcessIT {
  private static final Logger log = LoggerFactory.getLogger(PartitionedProcessIT.class);
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final int NODES = 6;
  private static final int RF = 3;
  private static final int KEYS = 300;
  private static final Duration REMOVAL_DELAY = Duration.ofSeconds(3);
  /** The whole class, start-ups included, ends within this (each wait is cut to what is left). */
  private static final Duration CLASS_BUDGET = Duration.ofMinutes(4);
  private static final List<String> FLAGS = List.of("--replication-factor", String.valueOf(RF),
      "--removal-delay", REMOVAL_DELAY.toSeconds() + "s", "--no-console", "--log-level", "INFO");

  private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
      .connectTimeout(Duration.ofSeconds(2)).build();
  private final long classStart = System.nanoTime();
  /** The per-node readers of {@link #perNode}. */
  private final java.util.concurrent.ExecutorService pool =
      java.util.concurrent.Executors.newFixedThreadPool(NODES + 1, r -> {
        Thread t = new Thread(r, "partitioned-it-pass");
        t.setDaemon(true);
        return t;
      });
  private LocalCluster cluster;
  private List<int[]> ports;
  /** Node id to node, of the nodes alive. */
  private final Map<String, LocalCluster.Node> live = new ConcurrentHashMap<>();
  private final Set<String> dead = new TreeSet<>();
  /** Every key acknowledged at QUORUM, with its value, in write order. */
  private final Map<String, String> written = new ConcurrentHashMap<>();
  /** The owners each phase-(a) key had in the six-node map. */
  private final Map<String, List<String>> firstOwners = new LinkedHashMap<>();
  /** The owners every acknowledged key had when it was written (its write's header). */
  private final Map<String, List<String>> writeOwners = new ConcurrentHashMap<>();
  private final StringBuilder figures = new StringBuilder();
  private String failedPhase;
  /** A few of the failed reads of {@link #awaitReadable}'s first pass. */
  private List<String> firstPassFailures = List.of();
  /** How long each pass of the last {@link #awaitReadable} took. */
  private final List<Long> passMillis = new CopyOnWriteArrayList<>();
  /** Local reads at ONE that missed a phase-(a) key on a node that held it then. */
  private final List<String> lostOnOwner = new CopyOnWriteArrayList<>();

  /** One HTTP answer: status (-1 when the request itself failed), body and the owner headers. */
  record Answer(int status, String body, List<String> owners, String local) {
    boolean ok(String value) {
      return status == 200 && value.equals(body);
    }
  }

  @BeforeAll
  @Timeout(value = 120, unit = TimeUnit.SECONDS)
  void startSixNodes() throws Exception {
    Path logs = Files.createDirectories(Path.of("target", "partitioned-process-logs"));
    ports = Ports.freeNodePorts(NODES + 1);
    long t0 = System.nanoTime();
    cluster = LocalCluster.start(ports.subList(0, NODES), logs, Duration.ofSeconds(90),
        i -> FLAGS);
    for (LocalCluster.Node n : cluster.nodes()) {
      live.put(id(n), n);
    }
    long ready = System.nanoTime();
    awaitMap(Set.copyOf(live.keySet()), null, "the six nodes form one cluster");
    note("6 JVMs started in parallel, all /ready after %d ms, one 6-node map on every node after "
        + "%d ms", ms(t0, ready), ms(t0, System.nanoTime()));
  }

  @AfterAll
  void killEverything() throws InterruptedException {
    pool.shutdownNow();
    if (cluster != null) {
      for (LocalCluster.Node n : cluster.nodes()) {
        Process p = n.process();
        if (p != null && p.isAlive()) {
          p.destroyForcibly(); // SIGKILL to this PID
        }
      }
      for (LocalCluster.Node n : cluster.nodes()) {
        Process p = n.process();
        if (p != null && !p.waitFor(20, TimeUnit.SECONDS)) {
          log.error("node {} (pid {}) survived SIGKILL for 20 s", n.index(), p.pid());
        }
      }
    }
    note("wall time of the class: %d ms", ms(classStart, System.nanoTime()));
    log.info("PartitionedProcessIT figures:\n{}", figures);
  }

  // ---- (a) ---------------------------------------------------------------------------------------

  @Test
  @Order(1)
  void a_quorumWrites_areReadableThroughEveryNode_andEveryNodeNamesTheSameThreeOwners()
      throws Exception {
    phase("a");
    List<LocalCluster.Node> nodes = sortedLive();
    long t0 = System.nanoTime();
    for (int i = 0; i < KEYS; i++) {
      String key = String.format("a/key-%03d", i);
      String value = "value-" + i;
      LocalCluster.Node via = nodes.get(i % nodes.size());
      Answer w = put(via, key, value);
      assertThat(w.status()).as("QUORUM write of %s through %s: %s", key, id(via), w).isEqualTo(200);
      assertThat(w.owners()).as("owners of %s", key).hasSize(RF).doesNotHaveDuplicates();
      assertThat(live.keySet()).containsAll(w.owners());
      assertThat(w.local()).as("X-Kvstore-Local of %s through %s", key, id(via))
          .isEqualTo(String.valueOf(w.owners().contains(id(via))));
      firstOwners.put(key, w.owners());
      writeOwners.put(key, w.owners());
      written.put(key, value);
    }
    long wrote = System.nanoTime();
    // A QUORUM write leaves its third owner to the fan-out, which a read at ONE may reach first:
    // readable "eventually", but the owners must agree on every single answer.
    AtomicLong firstPassMisses = new AtomicLong(-1);
    List<String> disagreements = new CopyOnWriteArrayList<>();
    await().atMost(budget(Duration.ofSeconds(30))).pollInterval(Duration.ofMillis(200))
        .untilAsserted(() -> {
          List<String> bad = perNode(nodes, n -> {
            List<String> mine = new ArrayList<>();
            for (String key : firstOwners.keySet()) {
              Answer r = get(n, key, "one");
              if (!r.owners().equals(firstOwners.get(key))
                  || !String.valueOf(r.owners().contains(id(n))).equals(r.local())) {
                disagreements.add(key + " through " + id(n) + ": " + r.owners() + " local "
                    + r.local() + ", written with " + firstOwners.get(key));
              }
              if (!r.ok(written.get(key))) {
                mine.add(key + " through " + id(n) + ": " + r);
              }
            }
            return mine;
          });
          firstPassMisses.compareAndSet(-1, bad.size());
          assertThat(disagreements).as("owner headers that differ from the writer's").isEmpty();
          assertThat(bad).as("keys not (yet) readable with their value").isEmpty();
        });
    note("(a) %d QUORUM writes round-robin over 6 nodes in %d ms; %d reads (every key through "
        + "every node) all right and all naming the writer's 3 owners after %d ms; the first pass "
        + "had %d misses", KEYS, ms(t0, wrote), KEYS * nodes.size(), ms(wrote, System.nanoTime()),
        firstPassMisses.get());
    note("(a) live entries per node: %s", liveEntries());
    passed();
  }

  // ---- (b) ---------------------------------------------------------------------------------------

  @Test
  @Order(2)
  void b_afterTwoCoOwnersAreKilled_everyKeyStaysReadable_andQuorumWritesGoOn() throws Exception {
    phase("b");
    List<String> victims = mostSharedPair();
    int shared = (int) firstOwners.values().stream()
        .filter(o -> o.containsAll(victims)).count();
    long t0 = System.nanoTime();
    for (String v : victims) {
      LocalCluster.Node n = live.remove(v);
      cluster.kill(n);
      dead.add(v);
    }
    note("(b) SIGKILLed %s (co-owners of %d of the %d keys) at %d ms", victims, shared, KEYS,
        ms(classStart, t0));

    // Right away: keys with two live owners can still be written at QUORUM.
    List<LocalCluster.Node> nodes = sortedLive();
    int twoLive = 0;
    int oneLive = 0;
    int oneLiveOk = 0;
    int retries = 0;
    long slowestTwoLive = 0;
    long slowestOneLive = 0;
    List<String> oneLiveAnswers = new ArrayList<>();
    // All at once: until the failure detector removes the dead, a write with one live owner
    // waits for its 5 s timeout; one after another the sixty took 6-7 s.
    java.util.concurrent.ExecutorService writers = java.util.concurrent.Executors
        .newFixedThreadPool(60);
    List<java.util.concurrent.Future<Answer>> early = new ArrayList<>();
    long[] sentAt = new long[60];
    long[] doneAt = new long[60];
    try {
      for (int i = 0; i < 60; i++) {
        int index = i;
        early.add(writers.submit(() -> {
          sentAt[index] = System.nanoTime();
          Answer a = put(nodes.get(index % nodes.size()), String.format("b/early-%03d", index),
              "early-" + index);
          doneAt[index] = System.nanoTime();
          return a;
        }));
      }
      for (java.util.concurrent.Future<Answer> f : early) {
        f.get(budget(Duration.ofSeconds(30)).toMillis(), TimeUnit.MILLISECONDS);
      }
    } finally {
      writers.shutdownNow();
    }
    for (int i = 0; i < 60; i++) {
      String key = String.format("b/early-%03d", i);
      String value = "early-" + i;
      LocalCluster.Node via = nodes.get(i % nodes.size());
      Answer w = early.get(i).get();
      long took = ms(sentAt[i], doneAt[i]);
      long liveOwners = w.owners().stream().filter(o -> !dead.contains(o)).count();
      if (w.owners().isEmpty() || liveOwners >= 2) {
        twoLive++;
        slowestTwoLive = Math.max(slowestTwoLive, took);
        int[] attempts = {1};
        Answer[] last = {w};
        if (w.status() != 200) {
          // The first writes after the kill may still find a connection to a dead owner open.
          await().atMost(budget(Duration.ofSeconds(15))).pollInterval(Duration.ofMillis(250))
              .until(() -> {
                attempts[0]++;
                last[0] = put(via, key, value);
                return last[0].status() == 200;
              });
        }
        retries += attempts[0] - 1;
        assertThat(last[0].status()).as("%s", last[0]).isEqualTo(200);
        writeOwners.put(key, last[0].owners());
        written.put(key, value);
      } else {
        oneLive++;
        slowestOneLive = Math.max(slowestOneLive, took);
        if (oneLiveAnswers.size() < 2) {
          oneLiveAnswers.add(w.status() + " in " + took + " ms: " + w.body());
        }
        if (w.status() == 200) {
          oneLiveOk++;
          writeOwners.put(key, w.owners());
          written.put(key, value);
        }
      }
    }
    note("(b) right after the kill: %d new keys with >= 2 live owners written at QUORUM (%d "
        + "retries, slowest first attempt %d ms), %d with one live owner (%d of those "
        + "acknowledged, slowest %d ms; for example %s)", twoLive, retries, slowestTwoLive, oneLive,
        oneLiveOk, slowestOneLive, oneLiveAnswers);

    // Every key through every live node, at ONE; at QUORUM where at most one owner died.
    long readsFrom = System.nanoTime();
    long[] passes = awaitReadable("(b) right after the kill", true);
    note("(b) every key readable through the 4 live nodes at ONE (and at QUORUM where <= 1 owner "
        + "died) %d ms after the kill (%d passes of %s ms, the first from %d ms after the kill, "
        + "%d failed reads in the first: %s; local misses of a key on a node that held it in (a): "
        + "%d)", ms(t0, System.nanoTime()), passes[0], passMillis, ms(t0, readsFrom), passes[1],
        firstPassFailures, passes[2]);
    assertThat(lostOnOwner).as("a node that held a key in (a), and still owns it, misses it")
        .isEmpty();

    // The removal delay passes: the dead nodes leave every map, and every new key has 3 live owners.
    awaitMap(Set.copyOf(live.keySet()), null, "the dead nodes leave the map");
    note("(b) 4-node map on every live node %d ms after the kill; live entries per node: %s",
        ms(t0, System.nanoTime()), liveEntries());
    for (int i = 0; i < 60; i++) {
      String key = String.format("b/late-%03d", i);
      String value = "late-" + i;
      LocalCluster.Node via = nodes.get(i % nodes.size());
      Answer w = put(via, key, value);
      assertThat(w.status()).as("QUORUM write of %s through %s after the removal: %s", key,
          id(via), w).isEqualTo(200);
      assertThat(w.owners()).hasSize(RF).allMatch(live::containsKey);
      writeOwners.put(key, w.owners());
      written.put(key, value);
    }
    long[] after = awaitReadable("(b) after the removal", false);
    note("(b) 60 QUORUM writes after the removal all acknowledged; every key readable through the "
        + "live nodes at ONE again %d ms after the kill (%d passes, %d failed reads in the first: "
        + "%s; the first reads started %d ms after the kill)", ms(t0, System.nanoTime()), after[0],
        after[1], firstPassFailures, ms(t0, readsFrom));
    // Nodes that took the dead nodes' partitions over are pending owners until they pulled them:
    // their reads go to the old owners meanwhile, so not even the first pass misses (before
    // pending owners existed it missed 3-17 keys).
    assertThat(after[1]).as("failed reads in the first pass after the removal: %s",
        firstPassFailures).isZero();
    assertThat(lostOnOwner).as("a node that held a key in (a), and still owns it, misses it")
        .isEmpty();
    passed();
  }

  // ---- (c) ---------------------------------------------------------------------------------------

  @Test
  @Order(3)
  void c_aSeventhNodeJoins_takesPartitions_andNoReadSeesAWrongValueOrMisses() throws Exception {
    phase("c");
    AtomicBoolean stop = new AtomicBoolean();
    AtomicLong reads = new AtomicLong();
    AtomicLong misses = new AtomicLong();
    AtomicLong errors = new AtomicLong();
    List<String> wrong = new CopyOnWriteArrayList<>();
    List<String> missed = new CopyOnWriteArrayList<>();
    AtomicLong passesAfterJoin = new AtomicLong(-1);
    List<LocalCluster.Node> readers = new CopyOnWriteArrayList<>(sortedLive());
    List<String> keys = new ArrayList<>(new TreeSet<>(written.keySet()));
    List<Throwable> readerFailure = new CopyOnWriteArrayList<>();
    Thread reader = new Thread(() -> {
      try {
        readAll(keys, readers, stop, passesAfterJoin, reads, misses, errors, wrong, missed);
      } catch (Throwable t) {
        readerFailure.add(t);
      }
    }, "partitioned-it-reader");
    reader.setDaemon(true);
    reader.start();

    long t0 = System.nanoTime();
    List<String> seeds = sortedLive().stream().map(n -> "127.0.0.1:" + clusterPort(n)).toList();
    LocalCluster.Node seventh = cluster.add(ports.get(NODES), seeds, FLAGS,
        budget(Duration.ofSeconds(60)));
    long ready = System.nanoTime();
    live.put(id(seventh), seventh);
    readers.add(seventh);
    awaitMap(Set.copyOf(live.keySet()), id(seventh), "node-7 joins every map with partitions");
    long joined = System.nanoTime();
    passesAfterJoin.set(0);
    reader.join(budget(Duration.ofSeconds(60)).toMillis());
    stop.set(true);
    reader.join(5_000);
    assertThat(reader.isAlive()).as("the reader stopped").isFalse();
    assertThat(readerFailure).as("the reader thread did not fail").isEmpty();
    String result = String.format("(c) node-7 /ready %d ms after its start, in every map with "
        + "partitions %d ms after; the reader (through %d live nodes) made %d reads: %d wrong "
        + "values, %d misses, %d other failures (first misses: %s)", ms(t0, ready), ms(ready, joined),
        readers.size(), reads.get(), wrong.size(), misses.get(), errors.get(), missed);
    note("%s", result);

    assertThat(wrong).as(result).isEmpty();
    long[] after = awaitReadable("(c) after the join", false);
    note("(c) every key readable at ONE through all 5 live nodes %d ms after node-7 was in every "
        + "map (%d passes, %d failed reads in the first: %s)", ms(joined, System.nanoTime()),
        after[0], after[1], firstPassFailures);
    // Reads of a partition that moved to node-7 go to its old owners while node-7 pulls it.
    // this stays strict on purpose.
    assertThat(misses.get()).as(result).isZero();
    passed();
  }

  // ---- helpers -----------------------------------------------------------------------------------

  /** The reader of phase (c): every key, round-robin over the live nodes, until told to stop. */
  private void readAll(List<String> keys, List<LocalCluster.Node> readers, AtomicBoolean stop,
      AtomicLong passesAfterJoin, AtomicLong reads, AtomicLong misses, AtomicLong errors,
      List<String> wrong, List<String> missed) {
    long deadline = System.nanoTime() + budget(Duration.ofSeconds(120)).toNanos();
    int i = 0;
    while (!stop.get() && System.nanoTime() < deadline) {
      for (String key : keys) {
        LocalCluster.Node n = readers.get(i++ % readers.size());
        Answer r = get(n, key, "one");
        reads.incrementAndGet();
        if (r.status() == 200 && !r.body().equals(written.get(key))) {
          wrong.add(key + " through " + id(n) + ": " + r);
        } else if (r.status() == 404) {
          misses.incrementAndGet();
          if (missed.size() < 20) {
            missed.add(key + " through " + id(n) + " (owners " + r.owners() + ")");
          }
        } else if (r.status() != 200) {
          errors.incrementAndGet();
        }
      }
      // Three whole passes once node-7 is in every map, then stop.
      if (passesAfterJoin.get() >= 0 && passesAfterJoin.incrementAndGet() >= 3) {
        return;
      }
    }
  }

  private void phase(String name) {
    Assumptions.assumeTrue(failedPhase == null, () -> "phase (" + failedPhase + ") failed first");
    failedPhase = name; // cleared by passed()
  }

  private void passed() {
    failedPhase = null;
  }

  /**
   * Every written key through every live node, at ONE with the right value, until all are; with
   * {@code quorumToo}, also at QUORUM for the phase-(a) keys at most one of whose owners died.
   * Returns {passes, failed reads in the first pass, failed local ONE reads (any pass) of a
   * phase-(a) key on a node that held it in phase (a) and still owns it}.
   */
  private long[] awaitReadable(String what, boolean quorumToo) {
    long[] out = {0, -1, 0};
    passMillis.clear();
    AtomicLong ownerMisses = new AtomicLong();
    List<LocalCluster.Node> nodes = sortedLive();
    await(what).atMost(budget(Duration.ofSeconds(45))).pollInterval(Duration.ofMillis(250))
        .untilAsserted(() -> {
          out[0]++;
          boolean first = out[1] < 0;
          long passStart = System.nanoTime();
          List<String> bad = perNode(nodes, n -> {
            List<String> mine = new ArrayList<>();
            for (Map.Entry<String, String> e : written.entrySet()) {
              Answer r = get(n, e.getKey(), "one");
              if (!r.ok(e.getValue())) {
                List<String> had = firstOwners.get(e.getKey());
                if ("true".equals(r.local()) && had != null && had.contains(id(n))) {
                  // Phase (a) read this key on this very node: an owner lost what it held.
                  ownerMisses.incrementAndGet();
                  lostOnOwner.add(e.getKey() + " on " + id(n) + ": " + r.status());
                }
                mine.add(e.getKey() + " at ONE through " + id(n) + " at " + ms(classStart,
                    System.nanoTime()) + " ms: " + r.status() + " owners " + r.owners()
                    + " local " + r.local() + " (written with owners "
                    + writeOwners.get(e.getKey()) + ")");
              }
              List<String> owners = writeOwners.get(e.getKey());
              if (quorumToo && owners != null
                  && owners.stream().filter(dead::contains).count() <= 1) {
                Answer q = get(n, e.getKey(), "quorum");
                if (!q.ok(e.getValue())) {
                  mine.add(e.getKey() + " at QUORUM through " + id(n) + " at " + ms(classStart,
                      System.nanoTime()) + " ms: " + q);
                }
              }
            }
            return mine;
          });
          passMillis.add(ms(passStart, System.nanoTime()));
          if (first) {
            out[1] = bad.size();
            firstPassFailures = bad.stream().limit(4).toList();
          }
          out[2] = ownerMisses.get();
          assertThat(bad).as("%s: %d reads wrong or missing, for example %s", what, bad.size(),
              bad.stream().limit(5).toList()).isEmpty();
        });
    return out;
  }

  /**
   * Waits until every live node lists exactly {@code members} in {@code /v1/cluster} and in one
   * partition map (same version everywhere, rf 3), with {@code owning} (if not null) owning
   * partitions.
   */
  private void awaitMap(Set<String> members, String owning, String what) {
    await(what).atMost(budget(Duration.ofSeconds(60))).pollInterval(Duration.ofMillis(250))
        .untilAsserted(() -> {
          Set<String> versions = new HashSet<>();
          for (LocalCluster.Node n : sortedLive()) {
            JsonNode c = JSON.readTree(send("GET", n.url() + "/v1/cluster", null).body());
            Set<String> listed = new TreeSet<>();
            c.get("members").forEach(m -> listed.add(m.get("id").asText()));
            JsonNode map = c.get("partitionMap");
            Set<String> mapped = new TreeSet<>();
            map.get("nodes").fieldNames().forEachRemaining(mapped::add);
            assertThat(listed).as("members on %s", id(n)).isEqualTo(new TreeSet<>(members));
            assertThat(mapped).as("map nodes on %s", id(n)).isEqualTo(new TreeSet<>(members));
            assertThat(map.get("replicationFactor").asInt()).isEqualTo(RF);
            if (owning != null) {
              assertThat(map.get("nodes").get(owning).asInt()).as("partitions of %s on %s",
                  owning, id(n)).isPositive();
            }
            versions.add(map.get("version").asText());
          }
          assertThat(versions).as("map versions").hasSize(1);
        });
  }

  /** The pair of nodes owning the most phase-(a) keys together (ties: the lowest ids). */
  private List<String> mostSharedPair() {
    List<String> ids = new ArrayList<>(new TreeSet<>(live.keySet()));
    List<String> best = null;
    long bestCount = -1;
    for (int i = 0; i < ids.size(); i++) {
      for (int j = i + 1; j < ids.size(); j++) {
        List<String> pair = List.of(ids.get(i), ids.get(j));
        long c = firstOwners.values().stream().filter(o -> o.containsAll(pair)).count();
        if (c > bestCount) {
          bestCount = c;
          best = pair;
        }
      }
    }
    assertThat(bestCount).as("two nodes share partitions").isPositive();
    return best;
  }

  /** Runs {@code work} for each node at once (one thread per node) and joins what they return. */
  private List<String> perNode(List<LocalCluster.Node> nodes,
      java.util.function.Function<LocalCluster.Node, List<String>> work) throws Exception {
    List<java.util.concurrent.Future<List<String>>> futures = new ArrayList<>();
    for (LocalCluster.Node n : nodes) {
      futures.add(pool.submit(() -> work.apply(n)));
    }
    List<String> all = new ArrayList<>();
    for (java.util.concurrent.Future<List<String>> f : futures) {
      all.addAll(f.get(budget(Duration.ofSeconds(60)).toMillis(), TimeUnit.MILLISECONDS));
    }
    return all;
  }

  /** Each live node's {@code kvstore_store_live_entries} (its own map's size), by node id. */
  private Map<String, Long> liveEntries() {
    Map<String, Long> out = new java.util.TreeMap<>();
    for (LocalCluster.Node n : sortedLive()) {
      String metrics = send("GET", n.url() + "/metrics", null).body();
      metrics.lines().filter(l -> l.startsWith("kvstore_store_live_entries")).findFirst()
          .ifPresent(l -> out.put(id(n), (long) Double.parseDouble(l.substring(l.lastIndexOf(' ')
              + 1))));
    }
    return out;
  }

  private Answer put(LocalCluster.Node n, String key, String value) {
    return send("PUT", n.url() + "/v1/kv/" + encode(key) + "?consistency=quorum", value);
  }

  private Answer get(LocalCluster.Node n, String key, String concern) {
    return send("GET", n.url() + "/v1/kv/" + encode(key) + "?consistency=" + concern, null);
  }

  private Answer send(String method, String url, String body) {
    HttpRequest req = HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(10))
        .method(method, body == null ? HttpRequest.BodyPublishers.noBody()
            : HttpRequest.BodyPublishers.ofString(body))
        .build();
    try {
      HttpResponse<String> r = http.send(req, HttpResponse.BodyHandlers.ofString());
      String owners = r.headers().firstValue("X-Kvstore-Owners").orElse("");
      return new Answer(r.statusCode(), r.body(),
          owners.isEmpty() ? List.of() : Arrays.asList(owners.split(",")),
          r.headers().firstValue("X-Kvstore-Local").orElse(null));
    } catch (IOException e) {
      return new Answer(-1, e.toString(), List.of(), null);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return new Answer(-1, "interrupted", List.of(), null);
    }
  }

  private static String encode(String key) {
    return URLEncoder.encode(key, StandardCharsets.UTF_8).replace("%2F", "/");
  }

  private List<LocalCluster.Node> sortedLive() {
    return live.values().stream().sorted((a, b) -> Integer.compare(a.index(), b.index()))
        .collect(Collectors.toList());
  }

  private static String id(LocalCluster.Node n) {
    return "node-" + n.index();
  }

  private static int clusterPort(LocalCluster.Node n) {
    List<String> f = n.flags();
    return Integer.parseInt(f.get(f.indexOf("--cluster-port") + 1));
  }

  /** {@code wanted}, or what is left of the class budget if that is less (at least 1 s). */
  private Duration budget(Duration wanted) {
    Duration left = CLASS_BUDGET.minusNanos(System.nanoTime() - classStart);
    return left.compareTo(wanted) < 0 ? (left.toMillis() < 1000 ? Duration.ofSeconds(1) : left)
        : wanted;
  }

  private void note(String format, Object... args) {
    String line = String.format(format, args);
    log.info(line);
    synchronized (figures) {
      figures.append(line).append('\n');
    }
  }

  private static long ms(long from, long to) {
    return (to - from) / 1_000_000;
  }
}
