package io.kvstore.cluster;

import io.kvstore.core.ChangeEvent;
import io.kvstore.core.KvStore;
import io.kvstore.core.Version;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteOptions;
import io.kvstore.core.testing.Replicas;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;

/**
 * One run of the deterministic simulation over real engines ({@link SimNetwork}): 3 to 5 nodes (and
 * in half the runs one more that joins empty halfway and must catch up) with skewed clocks; a
 * seeded workload of puts and deletes on a small key space at write concerns ONE, QUORUM and ALL;
 * seeded loss, duplication, delay, reordering and changing partitions; then heal and quiescence.
 * Everything random comes from the seed (the workload's stream here, the network's in
 * {@link SimNetwork}), so one seed replays one schedule exactly.
 *
 * <p>Checks, each failure message starting with the seed:
 * <ul>
 *   <li>every QUORUM/ALL write that completed successfully was held, when its future completed, by at
 *       least as many replicas as the concern requires (at its version or newer);</li>
 *   <li>after heal, every replica converges: equal digests, and per key exactly the version of the
 *       last-writer-wins model of every accepted write (a deleted key stays deleted everywhere).</li>
 * </ul>
 */
final class EngineSimulation implements AutoCloseable {
  static final String SEED_PROPERTY = "kvstore.sim.seed";
  static final String COUNT_PROPERTY = "kvstore.sim.seeds";
  /** Virtual time allowed for convergence after healing (150 anti-entropy intervals). */
  static final long CONVERGE_MILLIS = 30_000;

  /** Stops at the first violation found; null while none. */
  String violation;
  final long seed;
  final SimNetwork net;
  private final Random rnd;
  private final List<String> keys = new ArrayList<>();
  /** The model: per key, the highest accepted version and whether it deleted the key. */
  private final Map<String, Version> modelVersion = new TreeMap<>();
  private final Map<String, String> modelValue = new TreeMap<>();
  private final Map<String, Version> lastLocal = new TreeMap<>();
  private final String faultsAtStart;
  private boolean joined;
  int acked;
  int failed;
  int writes;

  EngineSimulation(long seed, ReplicationEngine.Bug bug) {
    this.seed = seed;
    this.rnd = new Random(seed ^ 0x9E3779B97F4A7C15L);
    this.net = new SimNetwork(seed, SimNetwork.smallSettings(), bug, b -> b);
    int n = 3 + rnd.nextInt(3);
    for (int i = 1; i <= n; i++) {
      addNode("n" + i);
    }
    for (int k = 0; k < 6 + rnd.nextInt(10); k++) {
      keys.add("k" + k);
    }
    SimNetwork.Faults f = SimNetwork.Faults.of(rnd.nextDouble() * 0.2, rnd.nextDouble() * 0.1, 1,
        1 + rnd.nextInt(15), rnd.nextDouble() * 0.3, 1 + rnd.nextInt(30));
    net.faults = f;
    faultsAtStart = f.toString();
  }

  private void addNode(String id) {
    SimNetwork.SimNode node = net.addNode(id, rnd.nextInt(4_001) - 2_000);
    node.store.addListener("", e -> {
      if (e.origin() == ChangeEvent.Origin.LOCAL) {
        lastLocal.put(node.id, e.version());
      }
    });
  }

  String describe() {
    return "seed=" + seed + " (replay: -D" + SEED_PROPERTY + "=" + seed + "; " + net.nodes().size()
        + " nodes" + (joined ? " (the last joined late)" : "") + ", " + faultsAtStart + ")";
  }

  /**
   * The workload under faults and changing partitions; in half the runs an empty node joins halfway
   * and must catch up.
   */
  void chaos(int operations) {
    net.clock.runFor(50);
    boolean lateJoiner = rnd.nextBoolean();
    for (int i = 0; i < operations && violation == null; i++) {
      if (lateJoiner && i == operations / 2) {
        addNode("n" + (net.nodes().size() + 1));
        joined = true;
      }
      double r = rnd.nextDouble();
      if (r < 0.03) {
        randomPartition();
      } else if (r < 0.06) {
        net.heal();
      }
      write();
      net.clock.runFor(rnd.nextInt(25));
    }
  }

  private void randomPartition() {
    List<String> ids = new ArrayList<>();
    for (SimNetwork.SimNode n : net.nodes()) {
      ids.add(n.id);
    }
    java.util.Collections.shuffle(ids, rnd);
    int cut = 1 + rnd.nextInt(ids.size() - 1);
    net.heal();
    net.partition(List.of(ids.subList(0, cut), ids.subList(cut, ids.size())));
  }

  private void write() {
    List<SimNetwork.SimNode> nodes = net.nodes();
    SimNetwork.SimNode node = nodes.get(rnd.nextInt(nodes.size()));
    String key = keys.get(rnd.nextInt(keys.size()));
    double c = rnd.nextDouble();
    WriteConcern concern = c < 0.5 ? WriteConcern.ONE : c < 0.8 ? WriteConcern.QUORUM
        : WriteConcern.ALL;
    WriteOptions options = WriteOptions.defaults().withConcern(concern)
        .withTimeout(Duration.ofMillis(300));
    boolean delete = rnd.nextDouble() < 0.35;
    String value = delete ? null : node.id + "-" + writes;
    lastLocal.remove(node.id);
    CompletableFuture<?> f = delete ? node.store.deleteAsync(key, options)
        : node.store.putAsync(key, value.getBytes(StandardCharsets.UTF_8), options);
    writes++;
    Version v = lastLocal.get(node.id);
    if (v == null) {
      return; // a delete of an absent key changes nothing
    }
    Version known = modelVersion.get(key);
    if (known == null || v.isNewerThan(known)) {
      modelVersion.put(key, v);
      modelValue.put(key, value);
    }
    int required = concern.requiredAcks(nodes.size());
    f.whenComplete((ok, e) -> {
      if (e != null) {
        failed++;
        return;
      }
      acked++;
      if (required <= 1) {
        return;
      }
      int holding = 0;
      for (SimNetwork.SimNode n : net.nodes()) {
        Optional<Version> held = Replicas.heldVersion(n.replica, key);
        if (held.isPresent() && held.get().compareTo(v) >= 0) {
          holding++;
        }
      }
      if (holding < required && violation == null) {
        violation = "a " + concern + " write of " + key + " @" + v + " on " + node.id
            + " completed at t=" + net.clock.now() + " ms while only " + holding + " of "
            + nodes.size() + " replicas held it (" + required + " required)";
      }
    });
  }

  /** Heals, lets the engines run until the replicas agree, and checks them against the model. */
  void healAndVerify() {
    if (violation != null) {
      throw new AssertionError(describe() + ": " + violation);
    }
    net.heal();
    net.faults = SimNetwork.Faults.none();
    boolean converged = net.clock.runUntil(net::converged, CONVERGE_MILLIS);
    if (violation != null) {
      throw new AssertionError(describe() + ": " + violation);
    }
    if (!converged) {
      throw new AssertionError(describe() + ": replicas did not converge within "
          + CONVERGE_MILLIS + " ms of virtual time after healing: " + states());
    }
    net.clock.runFor(1_000); // and stay converged
    for (SimNetwork.SimNode n : net.nodes()) {
      SortedMap<String, Version> state = Replicas.keyVersions(n.replica);
      if (!state.equals(modelVersion)) {
        throw new AssertionError(describe() + ": " + n.id + " holds " + state
            + ", the last-writer-wins model " + modelVersion);
      }
      for (Map.Entry<String, String> e : modelValue.entrySet()) {
        Optional<String> read = n.store.getString(e.getKey());
        if (!read.equals(Optional.ofNullable(e.getValue()))) {
          throw new AssertionError(describe() + ": " + n.id + " reads " + e.getKey() + " as "
              + read + ", the model " + (e.getValue() == null ? "deleted" : e.getValue()));
        }
      }
    }
  }

  private String states() {
    StringBuilder b = new StringBuilder();
    for (SimNetwork.SimNode n : net.nodes()) {
      b.append("\n  ").append(n.id).append(": ").append(Replicas.keyVersions(n.replica));
    }
    return b.append("\n  model: ").append(modelVersion).toString();
  }

  /** What the run exercised. */
  String summary() {
    return "writes " + writes + " (" + acked + " completed, " + failed + " failed), "
        + net.summary();
  }

  KvStore store(int i) {
    return net.nodes().get(i).store;
  }

  @Override
  public void close() {
    net.close();
  }
}
