package io.kvstore.cluster;

import io.kvstore.core.ChangeEvent;
import io.kvstore.core.spi.Digest;
import io.kvstore.core.KvStore;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.ReplicaStore;
import io.kvstore.core.StoreStats;
import io.kvstore.core.Version;
import io.kvstore.core.Versioned;
import io.kvstore.core.WriteOptions;
import io.kvstore.core.testing.Replicas;
import io.kvstore.core.testing.Seeds;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.SortedMap;
import java.util.SplittableRandom;
import java.util.TreeMap;

/**
 * One deterministic simulation run: stores with real replication engines on a {@link SimNetwork} with
 * seeded faults, changing partitions and skewed clocks the run sets, random writes (some with a TTL)
 * and deletes on a small key space, versions reused as by a node restarted empty, and an
 * {@link LwwModel} of every accepted write. {@link #healAndVerify()} heals, runs anti-entropy until the
 * digests agree, and checks every store against the model; any failure message starts with the seed and
 * ends with the history of the key that diverged.
 *
 * <p>Everything random comes from the seed: the network's decisions from {@code seed}, the workload's
 * from a second stream derived from it. Stores run with manual clocks and no background maintenance.
 */
final class LwwSimulation implements AutoCloseable {
  /** Knobs of a run; the defaults are the main scenario. */
  static final class Settings {
    int nodes = 5;
    int keys = 8;
    double deleteShare = 0.35;
    double ttlShare = 0.1;
    long maxTtlMillis = 4_000;
    /** Skews stay within +-this, so any two clocks differ by less than the 60 s maxClockDrift. */
    long maxSkewMillis = 20_000;
    double skewChangeRate = 0.02;
    double partitionChangeRate = 0.04;
    double maintenanceRate = 0.01;
    /**
     * Per tick, the chance that a node writes a key again under a version it already used for it, as
     * a node restarted empty under its old id can; the write reaches one random store (the rest of its
     * fan-out lost), which may already hold the earlier write, so anti-entropy alone must tell the two
     * apart and spread the one that wins the tie.
     */
    double versionReuseRate = 0.03;
    int digestBuckets = 16;
    /** Null: drawn from the seed. */
    SimNetwork.Faults faults;
  }

  private static final Duration MAX_CLOCK_DRIFT = Duration.ofSeconds(60);
  /** Anti-entropy intervals (virtual time) allowed for convergence after healing. */
  private static final int MAX_CONVERGE_INTERVALS = 500;
  /** Virtual milliseconds of network time per step. */
  private static final long STEP_MILLIS = 10;

  final long seed;
  final Settings settings;
  final SplittableRandom rnd;
  final SimNetwork network;
  final List<String> ids = new ArrayList<>();
  final LwwModel model = new LwwModel();
  private final long[] skew;
  private long globalMillis;
  private long tick;
  private long writes;
  private final ArrayDeque<String> events = new ArrayDeque<>();
  private final List<ChangeEvent> localEvents = new ArrayList<>();
  private final Map<String, Map<String, Version>> lastSeen = new HashMap<>();

  LwwSimulation(long seed, Settings settings) {
    this.seed = seed;
    this.settings = settings;
    this.rnd = new SplittableRandom(seed ^ 0x5DEECE66DL);
    SimNetwork.Faults faults = settings.faults != null ? settings.faults : randomFaults();
    this.network = new SimNetwork(seed, SimNetwork.smallSettings(), ReplicationEngine.Bug.NONE,
        b -> b.digestBuckets(settings.digestBuckets).maxClockDrift(MAX_CLOCK_DRIFT));
    network.faults = faults;
    this.skew = new long[settings.nodes];
    this.globalMillis = SimNetwork.EPOCH.toEpochMilli();
    for (int i = 0; i < settings.nodes; i++) {
      String id = "node-" + (i + 1);
      ids.add(id);
      network.addNode(id, 0).fixedMillis = globalMillis;
    }
    for (int i = 0; i < ids.size(); i++) {
      skew[i] = randomSkew();
      lastSeen.put(ids.get(i), new HashMap<>());
      store(ids.get(i)).addListener("", e -> {
        if (e.origin() == ChangeEvent.Origin.LOCAL && e.type() != ChangeEvent.Type.EXPIRE) {
          localEvents.add(e);
        }
      });
    }
    applyClocks();
    event("start: " + faults + ", skews " + java.util.Arrays.toString(skew));
  }

  private SimNetwork.Faults randomFaults() {
    return SimNetwork.Faults.of(rnd.nextDouble() * 0.3, rnd.nextDouble() * 0.2, 1,
        1 + rnd.nextInt(5), rnd.nextDouble() * 0.3, 1 + rnd.nextInt(10));
  }

  KvStore store(String id) {
    return network.node(id).store;
  }

  ReplicaStore replicaStore(String id) {
    return network.node(id).replica;
  }

  List<KvStore> stores() {
    List<KvStore> out = new ArrayList<>();
    for (String id : ids) {
      out.add(store(id));
    }
    return out;
  }

  /** Lets the network and the engines run for one step of virtual time. */
  void step() {
    network.clock.runFor(STEP_MILLIS);
  }

  private long randomSkew() {
    return rnd.nextLong(-settings.maxSkewMillis, settings.maxSkewMillis + 1);
  }

  // ---- the workload ----------------------------------------------------------------------------

  String key(int i) {
    return "key-" + i;
  }

  /** One tick of the main scenario: time, skews, partitions, writes, anti-entropy, delivery. */
  void randomTick() {
    tick++;
    advanceTime(rnd.nextInt(25));
    for (int i = 0; i < skew.length; i++) {
      if (rnd.nextDouble() < settings.skewChangeRate) {
        skew[i] = randomSkew();
        event("skew of " + ids.get(i) + " -> " + skew[i] + " ms");
      }
    }
    applyClocks();
    if (rnd.nextDouble() < settings.partitionChangeRate) {
      randomPartition();
    }
    int ops = rnd.nextInt(3);
    for (int i = 0; i < ops; i++) {
      String node = ids.get(rnd.nextInt(ids.size()));
      String key = key(rnd.nextInt(settings.keys));
      if (rnd.nextDouble() < settings.deleteShare) {
        delete(node, key);
      } else {
        long ttl = rnd.nextDouble() < settings.ttlShare ? 1 + rnd.nextLong(settings.maxTtlMillis) : 0;
        put(node, key, ttl);
      }
    }
    if (rnd.nextDouble() < settings.versionReuseRate) {
      reuseVersion();
    }
    maybeBackgroundWork();
    step();
    if (tick % 10 == 0) {
      checkInvariants();
    }
  }

  /**
   * Maintenance sweeps at random moments, as a real node would run them (the engines run
   * anti-entropy on their own timers).
   */
  void maybeBackgroundWork() {
    if (rnd.nextDouble() < settings.maintenanceRate) {
      int i = rnd.nextInt(ids.size());
      if (skew[i] > 0) {
        // A clock ahead would expire entries early and spread the expired tombstone, which then reads
        // absent where clocks have not reached the expiry: correct (expiry is "give or take skew"),
        // but the final check reads every store at one instant and expects exact TTL agreement.
        return;
      }
      String node = ids.get(i);
      int purged = store(node).runMaintenance();
      if (purged != 0) {
        throw failure("maintenance purged " + purged + " entries within the tombstone grace period",
            null);
      }
    }
  }

  void tickTimeOnly(long maxStepMillis) {
    tick++;
    advanceTime(rnd.nextLong(maxStepMillis + 1));
    applyClocks();
  }

  void advanceTime(long millis) {
    globalMillis += millis;
  }

  void jumpTime(long millis) {
    advanceTime(millis);
    applyClocks();
    event("time jumps " + millis + " ms");
  }

  private void applyClocks() {
    for (int i = 0; i < ids.size(); i++) {
      network.node(ids.get(i)).fixedMillis = globalMillis + skew[i];
    }
  }

  private void randomPartition() {
    double r = rnd.nextDouble();
    network.heal();
    if (r < 0.3) {
      network.heal();
      event("heal");
    } else if (r < 0.7) {
      int groupCount = 2 + rnd.nextInt(2);
      List<Set<String>> groups = new ArrayList<>();
      for (int g = 0; g < groupCount; g++) {
        groups.add(new LinkedHashSet<>());
      }
      for (String id : ids) {
        groups.get(rnd.nextInt(groupCount)).add(id);
      }
      network.partition(groups);
      event("partition " + groups);
    } else if (r < 0.85) {
      String id = ids.get(rnd.nextInt(ids.size()));
      network.partition(List.of(Set.of(id)));
      event("isolate " + id);
    } else {
      int a = rnd.nextInt(ids.size());
      int b = (a + 1 + rnd.nextInt(ids.size() - 1)) % ids.size();
      network.cut(ids.get(a), ids.get(b));
      event("cut " + ids.get(a) + "<->" + ids.get(b));
    }
  }

  void partition(List<Set<String>> groups) {
    network.heal();
    network.partition(groups);
    event("partition " + groups);
  }

  Version put(String node, String key, long ttlMillis) {
    String value = "v" + (++writes) + "@" + node + "/t" + tick;
    WriteOptions options = ttlMillis > 0 ? WriteOptions.defaults().withTtl(Duration.ofMillis(ttlMillis))
        : WriteOptions.defaults();
    Version v = store(node).putAsync(key, value.getBytes(StandardCharsets.UTF_8), options)
        .join();
    ChangeEvent e = takeLocalEvent(node, key, ChangeEvent.Type.PUT);
    if (!e.version().equals(v)) {
      throw failure("put on " + node + " returned " + v + " but its change event says " + e.version(),
          key);
    }
    model.accept(new LwwModel.Write(tick, node, key, v, value,
        ttlMillis > 0 ? v.physicalMillis() + ttlMillis : 0));
    return v;
  }

  /**
   * A node writes again, with other content, under a version it used before for the same key: a put of
   * a new value (same or other expiry) or a delete. Applied to one random store only.
   */
  void reuseVersion() {
    List<LwwModel.Write> candidates = new ArrayList<>();
    for (String key : model.keys()) {
      // Mostly the current winner of a key, so the tie decides the final state.
      candidates.add(rnd.nextInt(4) != 0 ? model.winner(key).orElseThrow()
          : model.history(key).get(rnd.nextInt(model.history(key).size())));
    }
    if (candidates.isEmpty()) {
      return;
    }
    LwwModel.Write earlier = candidates.get(rnd.nextInt(candidates.size()));
    String value = rnd.nextInt(4) == 0 ? null : "v" + (++writes) + "@" + earlier.node() + "/t" + tick
        + "/reused";
    long expiresAt = value == null ? 0 : rnd.nextBoolean() ? earlier.expiresAt()
        : earlier.version().physicalMillis() + 1 + rnd.nextLong(settings.maxTtlMillis);
    Mutation m = value == null ? Mutation.delete(earlier.key(), earlier.version())
        : Mutation.put(earlier.key(), value.getBytes(StandardCharsets.UTF_8), earlier.version(),
            expiresAt);
    String receiver = ids.get(rnd.nextInt(ids.size()));
    replicaStore(receiver).apply(m);
    model.acceptReuse(new LwwModel.Write(tick, earlier.node(), earlier.key(), earlier.version(), value,
        expiresAt));
    event("reuse of " + earlier.version() + " by " + earlier.node() + ", received by " + receiver + ": "
        + m);
  }

  Version delete(String node, String key) {
    store(node).deleteAsync(key, WriteOptions.defaults()).join();
    Version v = takeLocalEvent(node, key, ChangeEvent.Type.DELETE).version();
    model.accept(new LwwModel.Write(tick, node, key, v, null, 0));
    return v;
  }

  private ChangeEvent takeLocalEvent(String node, String key, ChangeEvent.Type type) {
    if (localEvents.size() != 1 || !localEvents.get(0).key().equals(key)
        || localEvents.get(0).type() != type) {
      throw failure("expected one LOCAL " + type + " event for " + key + " on " + node + ", got "
          + localEvents, key);
    }
    ChangeEvent e = localEvents.get(0);
    localEvents.clear();
    return e;
  }

  void event(String text) {
    if (events.size() == 200) {
      events.removeFirst();
    }
    events.addLast("tick " + tick + ": " + text);
  }

  // ---- checks ----------------------------------------------------------------------------------

  /**
   * During the run: every version a store holds is one some store accepted for that key, and no store
   * ever goes back to an older version of a key (so a deleted key never reappears with an older value).
   */
  void checkInvariants() {
    for (String id : ids) {
      Map<String, Version> seen = lastSeen.get(id);
      for (Map.Entry<String, Version> e : Replicas.keyVersions(replicaStore(id)).entrySet()) {
        String key = e.getKey();
        Version v = e.getValue();
        if (model.find(key, v).isEmpty()) {
          throw failure(id + " holds " + key + " at " + v + ", a version no store accepted", key);
        }
        Version before = seen.put(key, v);
        if (before != null && before.isNewerThan(v)) {
          throw failure(id + " went back from " + before + " to " + v + " for " + key, key);
        }
      }
    }
  }

  /** Heals, converges by anti-entropy (faults stay on), and verifies every store against the model. */
  void healAndVerify() {
    network.heal();
    event("final heal");
    try {
      long took = network.runUntilConverged(MAX_CONVERGE_INTERVALS);
      event("converged after " + took + " ms");
    } catch (IllegalStateException e) {
      throw failure("no convergence after healing: " + e.getMessage(), firstDivergentKey());
    }
    checkInvariants();
    // Every clock shows the same instant, so TTL expiry must agree everywhere.
    java.util.Arrays.fill(skew, 0);
    applyClocks();
    verifyAgainstModel();
  }

  /** The state each store must hold for a key, as the model predicts it at {@code now}. */
  record Held(Version version, long expiresAt, String liveValue) {
    static Held of(Mutation m, long now) {
      String live = m.valueUnsafe() != null && (m.expiresAtMillis() == 0 || now < m.expiresAtMillis())
          ? new String(m.valueUnsafe(), StandardCharsets.UTF_8) : null;
      return new Held(m.version(), m.expiresAtMillis(), live);
    }
  }

  private void verifyAgainstModel() {
    long now = globalMillis;
    Map<String, Held> expected = new TreeMap<>();
    for (String key : model.keys()) {
      LwwModel.Write w = model.winner(key).orElseThrow();
      expected.put(key, new Held(w.version(), w.expiresAt(), w.liveValueAt(now)));
    }
    Digest firstDigest = null;
    for (String id : ids) {
      ReplicaStore replica = replicaStore(id);
      KvStore store = store(id);
      Digest d = replica.digest();
      if (firstDigest == null) {
        firstDigest = d;
      } else if (!firstDigest.equals(d)) {
        throw failure(id + "'s digest differs from " + ids.get(0) + "'s", firstDivergentKey());
      }
      SortedMap<String, Mutation> held = Replicas.mutations(replica);
      if (!held.keySet().equals(expected.keySet())) {
        Set<String> diff = new LinkedHashSet<>(held.keySet());
        diff.addAll(expected.keySet());
        diff.removeIf(k -> held.containsKey(k) && expected.containsKey(k));
        throw failure(id + " holds keys " + held.keySet() + " but the model has " + expected.keySet(),
            diff.iterator().next());
      }
      for (Map.Entry<String, Held> e : expected.entrySet()) {
        String key = e.getKey();
        Held want = e.getValue();
        Held got = Held.of(held.get(key), now);
        if (!want.equals(got)) {
          throw failure(id + " holds " + got + " for " + key + ", the LWW model expects " + want, key);
        }
        Optional<Versioned> read = store.getVersioned(key);
        if (want.liveValue() == null) {
          if (read.isPresent()) {
            boolean deleted = model.winner(key).orElseThrow().isDelete();
            throw failure((deleted ? "deleted key came back" : "expired key reads as live") + " on "
                + id + ": " + key + " reads " + read.get().valueAsString(), key);
          }
        } else if (read.isEmpty() || !read.get().valueAsString().equals(want.liveValue())
            || !read.get().version().equals(want.version())) {
          throw failure(id + " reads " + read.map(r -> r.valueAsString() + " @" + r.version())
              + " for " + key + ", the model expects " + want, key);
        }
      }
      StoreStats st = store.stats();
      if (st.refusedClockDrift() != 0 || st.refusedInvalid() != 0) {
        throw failure(id + " refused mutations (skews are within maxClockDrift): " + st, null);
      }
    }
  }

  /** A key whose held versions differ between stores, or null. */
  private String firstDivergentKey() {
    Map<String, Set<Optional<Version>>> versions = new TreeMap<>();
    for (String key : model.keys()) {
      for (String id : ids) {
        versions.computeIfAbsent(key, k -> new LinkedHashSet<>())
            .add(Replicas.heldVersion(replicaStore(id), key));
      }
    }
    for (Map.Entry<String, Set<Optional<Version>>> e : versions.entrySet()) {
      if (e.getValue().size() > 1) {
        return e.getKey();
      }
    }
    return null;
  }

  /** An assertion error that starts with the seed and ends with the history of {@code key}. */
  AssertionError failure(String problem, String key) {
    StringBuilder sb = new StringBuilder();
    sb.append(Seeds.describe(seed)).append(": ").append(problem).append('\n');
    sb.append("  at tick ").append(tick).append(", ").append(model.size())
        .append(" accepted writes, ").append(network.summary()).append(", faults ")
        .append(network.faults).append('\n');
    if (key != null) {
      sb.append("  history of ").append(key).append(":\n");
      model.winner(key).ifPresent(w -> sb.append("    model winner: ").append(w).append('\n'));
      for (LwwModel.Write w : model.history(key)) {
        sb.append("    accepted ").append(w).append('\n');
      }
      for (String id : ids) {
        List<Mutation> held = replicaStore(id).mutations(List.of(key));
        sb.append("    ").append(id).append(" holds ").append(held.isEmpty() ? "nothing" : held.get(0))
            .append('\n');
      }
    }
    sb.append("  last simulation events:\n");
    List<String> ev = new ArrayList<>(events);
    for (String line : ev.subList(Math.max(0, ev.size() - 20), ev.size())) {
      sb.append("    ").append(line).append('\n');
    }
    return new AssertionError(sb.toString());
  }

  /** What a run produced, for comparing two runs of one seed. */
  List<String> fingerprint() {
    List<String> out = new ArrayList<>();
    out.add("trace " + network.trace());
    out.add(network.summary());
    for (String id : ids) {
      out.add(id + " " + Replicas.mutations(replicaStore(id)));
    }
    return out;
  }

  long fanOutSent() {
    return sum(ReplicationStats::mutationsSent);
  }

  long fanOutAcked() {
    return sum(ReplicationStats::mutationsAcked);
  }

  long antiEntropyKeysMoved() {
    return sum(ReplicationStats::antiEntropyKeysPushed)
        + sum(ReplicationStats::antiEntropyKeysPulled);
  }

  private long sum(java.util.function.ToLongFunction<ReplicationStats> counter) {
    long total = 0;
    for (SimNetwork.SimNode n : network.nodes()) {
      total += counter.applyAsLong(n.stats.snapshot());
    }
    return total;
  }

  long tick() {
    return tick;
  }

  @Override
  public void close() {
    network.close();
  }

  @Override
  public String toString() {
    return "LwwSimulation{" + Seeds.describe(seed) + ", tick " + tick + ", " + Objects.toString(network) + "}";
  }
}
