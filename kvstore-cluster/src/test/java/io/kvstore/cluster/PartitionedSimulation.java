package io.kvstore.cluster;

import io.kvstore.core.ChangeEvent;
import io.kvstore.core.Version;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteOptions;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.testing.Replicas;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;

/**
 * One run of the deterministic simulation in partitioned mode: real engines over {@link SimNetwork}
 * with a {@link Placement} of rf below the node count (5 or 6 nodes, rf 3 unless told otherwise, a
 * fixed node set), skewed clocks, seeded loss, duplication, delay, reordering and changing
 * partitions, and node crashes: a crashed node restarts later with its store (the state it had
 * applied, as a durable store would keep it) and a new engine. Writes (puts and deletes at ONE,
 * QUORUM and ALL) are issued at a live owner of their key. A placement change ({@link #changePlacement})
 * sets a new map on every node at once.
 *
 * <p>Checks, each failure message starting with the seed and how to replay it:
 * <ul>
 *   <li>every QUORUM/ALL write that completed successfully was held, when its future completed, by at
 *       least as many of its key's owners as the concern requires (majority of rf / rf);</li>
 *   <li>ORPHANED = 0: no node ever receives a key (fan-out or anti-entropy) of a partition it does not
 *       own, and at the end no node holds a key it does not own, apart from what it held when a
 *       placement change took the partition away, unchanged (until it is evicted);</li>
 *   <li>NOT_EVICTED = 0 after heal: no live node keeps a key of a partition it does not own (the
 *       handoff moved it and the eviction dropped it), with UNDER_REPLICATED still 0 after that;</li>
 *   <li>PENDING = 0 after heal: no node still pulls a partition;</li>
 *   <li>UNDER_REPLICATED = 0 after heal: every owner holds every key of its partitions at exactly the
 *       last-writer-wins model's version (so every acknowledged write is on all rf owners, and no
 *       deleted key comes back), and reads it as the model says;</li>
 *   <li>the owners of each partition converge to equal digest buckets for it.</li>
 * </ul>
 */
final class PartitionedSimulation implements AutoCloseable {
  /** Virtual time allowed for convergence after healing (150 anti-entropy intervals). */
  static final long CONVERGE_MILLIS = 30_000;

  String violation;
  final long seed;
  final SimNetwork net;
  final int rf;
  private final Random rnd;
  private final List<String> ids = new ArrayList<>();
  private final List<String> keys = new ArrayList<>();
  private final Map<String, Long> skews = new HashMap<>();
  private final Map<String, Version> modelVersion = new TreeMap<>();
  private final Map<String, String> modelValue = new TreeMap<>();
  private final Map<String, Version> lastLocal = new TreeMap<>();
  /** Crashed nodes' stores, as they were when the node crashed. */
  private final Map<String, Collection<Mutation>> crashed = new LinkedHashMap<>();
  /** What each node held, when a placement change took it away, of partitions it no longer owns. */
  private final Map<String, Map<String, Version>> leftovers = new HashMap<>();
  private final String faultsAtStart;
  private Placement placement;
  private boolean restoring;
  private String firstOrphan;
  int orphaned;
  int acked;
  int failed;
  int writes;
  int skipped;
  int crashes;
  int placementChanges;
  /** Virtual milliseconds each heal took to converge. */
  final List<Long> convergeMillis = new ArrayList<>();

  /**
   * A run over {@code nodes} nodes with placement over the first {@code placed} of them.
   *
   * @param nodes 0 to choose 5 or 6 from the seed
   * @param placed 0 for all of them
   */
  PartitionedSimulation(long seed, ReplicationEngine.Bug bug, int nodes, int placed, int rf) {
    this.seed = seed;
    this.rf = rf;
    this.rnd = new Random(seed ^ 0x5DEECE66DL);
    int buckets = rnd.nextBoolean() ? 1024 : 2048;
    this.net = new SimNetwork(seed, SimNetwork.smallSettings(), bug,
        b -> b.digestBuckets(buckets));
    int n = nodes > 0 ? nodes : 5 + rnd.nextInt(2);
    for (int i = 1; i <= n; i++) {
      ids.add("n" + i);
    }
    placement = Placement.of(ids.subList(0, placed > 0 ? placed : n), rf);
    net.setPlacement(placement);
    for (String id : ids) {
      skews.put(id, (long) (rnd.nextInt(4_001) - 2_000));
      start(id);
    }
    for (int k = 0; k < 20 + rnd.nextInt(20); k++) {
      keys.add("k" + k);
    }
    SimNetwork.Faults f = SimNetwork.Faults.of(rnd.nextDouble() * 0.2, rnd.nextDouble() * 0.1, 1,
        1 + rnd.nextInt(15), rnd.nextDouble() * 0.3, 1 + rnd.nextInt(30));
    net.faults = f;
    faultsAtStart = f.toString() + ", " + buckets + " digest buckets";
  }

  PartitionedSimulation(long seed, ReplicationEngine.Bug bug) {
    this(seed, bug, 0, 0, 3);
  }

  private void start(String id) {
    SimNetwork.SimNode node = net.addNode(id, skews.get(id));
    Collection<Mutation> saved = crashed.remove(id);
    if (saved != null) {
      restoring = true;
      try {
        saved.forEach(node.replica::apply);
      } finally {
        restoring = false;
      }
    }
    node.store.addListener("", e -> {
      if (e.origin() == ChangeEvent.Origin.LOCAL) {
        lastLocal.put(node.id, e.version());
      } else if (!restoring && !placement.owns(node.id, Placement.partitionOf(e.key()))) {
        orphaned++;
        if (firstOrphan == null) {
          firstOrphan = node.id + " received " + e.key() + " @" + e.version() + " at t="
              + net.clock.now() + " ms but does not own partition "
              + Placement.partitionOf(e.key()) + " (owners " + placement.ownersOf(e.key()) + ")";
        }
      }
    });
  }

  String describe() {
    return "seed=" + seed + " (replay: -D" + EngineSimulation.SEED_PROPERTY + "=" + seed + "; "
        + ids.size() + " nodes, rf " + rf + ", " + placementChanges + " placement changes, "
        + crashes + " crashes, " + faultsAtStart + ")";
  }

  /** The workload under faults, changing partitions and crashes (at most rf - 1 nodes down). */
  void chaos(int operations) {
    net.clock.runFor(50);
    for (int i = 0; i < operations && violation == null; i++) {
      double r = rnd.nextDouble();
      if (r < 0.03) {
        randomPartition();
      } else if (r < 0.06) {
        net.heal();
      } else if (r < 0.08 && crashed.size() < rf - 1) {
        crash(ids.get(rnd.nextInt(ids.size())));
      } else if (r < 0.11 && !crashed.isEmpty()) {
        List<String> down = new ArrayList<>(crashed.keySet());
        start(down.get(rnd.nextInt(down.size())));
      }
      write();
      net.clock.runFor(rnd.nextInt(25));
    }
  }

  private void crash(String id) {
    SimNetwork.SimNode node = net.node(id);
    if (node == null || node.closed) {
      return;
    }
    crashes++;
    crashed.put(id, Replicas.mutations(node.replica).values());
    node.store.close();
  }

  private void randomPartition() {
    List<String> live = new ArrayList<>();
    for (SimNetwork.SimNode n : net.nodes()) {
      live.add(n.id);
    }
    if (live.size() < 2) {
      return;
    }
    java.util.Collections.shuffle(live, rnd);
    int cut = 1 + rnd.nextInt(live.size() - 1);
    net.heal();
    net.partition(List.of(live.subList(0, cut), live.subList(cut, live.size())));
  }

  private void write() {
    String key = keys.get(rnd.nextInt(keys.size()));
    List<String> owners = placement.ownersOf(key);
    List<SimNetwork.SimNode> live = new ArrayList<>();
    for (String o : owners) {
      SimNetwork.SimNode n = net.node(o);
      if (n != null && !n.closed) {
        live.add(n);
      }
    }
    double c = rnd.nextDouble();
    boolean delete = rnd.nextDouble() < 0.35;
    if (live.isEmpty()) {
      skipped++;
      return;
    }
    SimNetwork.SimNode node = live.get(rnd.nextInt(live.size()));
    WriteConcern concern = c < 0.5 ? WriteConcern.ONE : c < 0.8 ? WriteConcern.QUORUM
        : WriteConcern.ALL;
    WriteOptions options = WriteOptions.defaults().withConcern(concern)
        .withTimeout(Duration.ofMillis(300));
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
    int required = concern.requiredAcks(owners.size());
    f.whenComplete((ok, e) -> {
      if (e != null) {
        failed++;
        return;
      }
      acked++;
      int holding = 0;
      for (String o : owners) {
        Optional<Version> held = heldVersion(o, key);
        if (held.isPresent() && held.get().compareTo(v) >= 0) {
          holding++;
        }
      }
      if (holding < required && violation == null) {
        violation = "a " + concern + " write of " + key + " @" + v + " on " + node.id
            + " completed at t=" + net.clock.now() + " ms while only " + holding + " of its "
            + owners.size() + " owners " + owners + " held it (" + required + " required)";
      }
    });
  }

  /** What a node holds for a key: its store, or if it is down, what it held when it crashed. */
  private Optional<Version> heldVersion(String id, String key) {
    Collection<Mutation> saved = crashed.get(id);
    if (saved != null) {
      return saved.stream().filter(m -> m.key().equals(key)).map(Mutation::version).findFirst();
    }
    return Replicas.heldVersion(net.node(id).replica, key);
  }

  /**
   * Sets a placement over {@code nodeIds} (all running) on every node at once, at a quiet moment:
   * call it after {@link #healAndVerify}.
   */
  void changePlacement(List<String> nodeIds) {
    Placement next = Placement.of(nodeIds, rf);
    for (SimNetwork.SimNode n : net.nodes()) {
      Map<String, Version> left = leftovers.computeIfAbsent(n.id, id -> new TreeMap<>());
      Replicas.keyVersions(n.replica).forEach((k, v) -> {
        if (!next.owns(n.id, Placement.partitionOf(k))) {
          left.putIfAbsent(k, v);
        }
      });
    }
    placement = next;
    placementChanges++;
    net.setPlacement(next);
  }

  /**
   * Changes the placement to {@code nodeIds} on a fault-free network and, at once, reads every key of
   * the model at ONE through every live node, asynchronously, while the new owners pull. Call after
   * {@link #healAndVerify} (the model is then what every owner holds).
   *
   * @return the reads that did not return the model's value, described (empty when all did)
   */
  List<String> changePlacementReadingThroughout(List<String> nodeIds) {
    net.faults = SimNetwork.Faults.none();
    changePlacement(nodeIds);
    Map<String, CompletableFuture<Optional<io.kvstore.core.Versioned>>> reads = new TreeMap<>();
    for (SimNetwork.SimNode n : net.nodes()) {
      if (n.closed) {
        continue;
      }
      for (String k : modelValue.keySet()) {
        reads.put(n.id + " reads " + k, n.store.getAsync(k));
      }
    }
    boolean done = net.clock.runUntil(() -> reads.values().stream()
        .allMatch(CompletableFuture::isDone), 20_000);
    List<String> wrong = new ArrayList<>();
    if (!done) {
      wrong.add("reads still running after 20 s of virtual time");
    }
    reads.forEach((what, f) -> {
      String k = what.substring(what.lastIndexOf(' ') + 1);
      Optional<String> expected = Optional.ofNullable(modelValue.get(k));
      Optional<String> got;
      try {
        got = f.getNow(null).map(v -> new String(v.value(), StandardCharsets.UTF_8));
      } catch (RuntimeException e) {
        wrong.add(what + ": " + e.getMessage());
        return;
      }
      if (!got.equals(expected)) {
        wrong.add(what + " as " + got + ", the model " + expected + " (owners "
            + placement.ownersOf(k) + ")");
      }
    });
    return wrong;
  }

  /** Keys of the model that an owner does not hold at the model's version. */
  int underReplicated() {
    int missing = 0;
    for (Map.Entry<String, Version> e : modelVersion.entrySet()) {
      for (String o : placement.ownersOf(e.getKey())) {
        SimNetwork.SimNode n = net.node(o);
        if (n == null || n.closed
            || !Replicas.heldVersion(n.replica, e.getKey()).equals(Optional.of(e.getValue()))) {
          missing++;
        }
      }
    }
    return missing;
  }

  /** Whether the owners of every partition have equal digest buckets for it. */
  /** Keys live nodes hold of partitions they do not own. */
  int heldWithoutOwning() {
    int n = 0;
    for (SimNetwork.SimNode node : net.nodes()) {
      if (node.closed) {
        continue;
      }
      for (String k : Replicas.keyVersions(node.replica).keySet()) {
        if (!placement.owns(node.id, Placement.partitionOf(k))) {
          n++;
        }
      }
    }
    return n;
  }

  /** Partitions some live node still pulls (a pending owner), summed over nodes. */
  int pendingPartitions() {
    int n = 0;
    for (SimNetwork.SimNode node : net.nodes()) {
      if (!node.closed && node.engine != null) {
        n += node.engine.pendingPartitions().cardinality();
      }
    }
    return n;
  }

  boolean ownersAgree() {
    Map<String, long[]> digests = new HashMap<>();
    for (SimNetwork.SimNode n : net.nodes()) {
      digests.put(n.id, n.replica.digest().toArray());
    }
    int buckets = digests.values().iterator().next().length;
    for (int b = 0; b < buckets; b++) {
      List<String> owners = placement.owners(Ownership.partitionOfBucket(b));
      long[] first = digests.get(owners.get(0));
      for (String o : owners) {
        long[] d = digests.get(o);
        if (first == null || d == null || d[b] != first[b]) {
          return false;
        }
      }
    }
    return true;
  }

  /**
   * Restarts the crashed nodes, heals, lets the engines run until every owner holds the model, and
   * checks.
   */
  void healAndVerify() {
    if (violation != null) {
      throw new AssertionError(describe() + ": " + violation);
    }
    for (String id : new ArrayList<>(crashed.keySet())) {
      start(id);
    }
    net.heal();
    SimNetwork.Faults during = net.faults;
    net.faults = SimNetwork.Faults.none();
    // Checked every 20 ms of virtual time, not before every task: the check walks every store.
    boolean converged = false;
    long healedAt = net.clock.now();
    for (long t = 0; t <= CONVERGE_MILLIS && !converged; t += 20) {
      converged = underReplicated() == 0 && ownersAgree() && pendingPartitions() == 0;
      if (!converged) {
        net.clock.runFor(20);
      }
    }
    if (violation != null) {
      throw new AssertionError(describe() + ": " + violation);
    }
    if (orphaned > 0) {
      throw new AssertionError(describe() + ": ORPHANED = " + orphaned + "; first: " + firstOrphan);
    }
    if (!converged) {
      throw new AssertionError(describe() + ": UNDER_REPLICATED = " + underReplicated()
          + (ownersAgree() ? "" : ", owners' digests differ") + ", PENDING = "
          + pendingPartitions() + " after " + CONVERGE_MILLIS
          + " ms of virtual time after healing: " + states());
    }
    convergeMillis.add(net.clock.now() - healedAt);
    // Data a node holds for partitions it lost is evicted once every owner pulled (plus a grace).
    if (!net.clock.runUntil(() -> heldWithoutOwning() == 0, CONVERGE_MILLIS)) {
      throw new AssertionError(describe() + ": NOT_EVICTED = " + heldWithoutOwning()
          + " keys still held by non-owners " + CONVERGE_MILLIS + " ms after converging: "
          + states());
    }
    if (underReplicated() != 0) {
      throw new AssertionError(describe() + ": UNDER_REPLICATED = " + underReplicated()
          + " after eviction: " + states());
    }
    net.clock.runFor(1_000); // and stay converged
    for (SimNetwork.SimNode n : net.nodes()) {
      SortedMap<String, Version> state = Replicas.keyVersions(n.replica);
      Map<String, Version> left = leftovers.getOrDefault(n.id, Map.of());
      for (Map.Entry<String, Version> e : state.entrySet()) {
        String k = e.getKey();
        boolean owner = placement.owns(n.id, Placement.partitionOf(k));
        if (!owner && !e.getValue().equals(left.get(k))) {
          throw new AssertionError(describe() + ": ORPHANED: " + n.id + " holds " + k + " @"
              + e.getValue() + " without owning it (owners " + placement.ownersOf(k)
              + (left.containsKey(k) ? "; it held @" + left.get(k) + " when it lost it" : "")
              + ")");
        }
        if (owner && !e.getValue().equals(modelVersion.get(k))) {
          throw new AssertionError(describe() + ": " + n.id + " holds " + k + " @" + e.getValue()
              + ", the last-writer-wins model " + modelVersion.get(k));
        }
      }
      for (Map.Entry<String, String> e : modelValue.entrySet()) {
        if (!placement.owns(n.id, Placement.partitionOf(e.getKey()))) {
          continue;
        }
        Optional<String> read = n.store.getString(e.getKey());
        if (!read.equals(Optional.ofNullable(e.getValue()))) {
          throw new AssertionError(describe() + ": " + n.id + " reads " + e.getKey() + " as "
              + read + ", the model " + (e.getValue() == null ? "deleted" : e.getValue()));
        }
      }
    }
    if (underReplicated() != 0) {
      throw new AssertionError(describe() + ": UNDER_REPLICATED = " + underReplicated()
          + " a second after converging: " + states());
    }
    net.faults = during;
  }

  private String states() {
    StringBuilder b = new StringBuilder();
    for (SimNetwork.SimNode n : net.nodes()) {
      b.append("\n  ").append(n.id).append(": ").append(Replicas.keyVersions(n.replica));
    }
    b.append("\n  model:");
    modelVersion.forEach((k, v) -> b.append(' ').append(k).append('@').append(v)
        .append(placement.ownersOf(k)));
    return b.toString();
  }

  /** What the run exercised. */
  String summary() {
    long handedOff = 0;
    for (SimNetwork.SimNode n : net.nodes()) {
      handedOff += n.stats.snapshot().antiEntropyKeysHandedOff();
    }
    return "converged after " + convergeMillis + " ms; writes " + writes + " (" + acked + " completed, " + failed + " failed, " + skipped
        + " skipped: no live owner), " + crashes + " crashes, keys handed off " + handedOff + ", "
        + net.summary();
  }

  List<String> nodeIds() {
    return ids;
  }

  long handedOff() {
    long handedOff = 0;
    for (SimNetwork.SimNode n : net.nodes()) {
      handedOff += n.stats.snapshot().antiEntropyKeysHandedOff();
    }
    return handedOff;
  }

  @Override
  public void close() {
    net.close();
  }
}
