package io.kvstore.core;

import io.kvstore.core.spi.Replicator;
import io.kvstore.core.spi.ReplicaStore;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.Digest;
import io.kvstore.core.spi.KeyVersion;
import io.kvstore.core.spi.ApplyResult;
import java.time.Duration;
import java.time.InstantSource;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Collection;
import java.util.List;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledThreadPoolExecutor;

/**
 * Stores for tests, and ways to look at their whole state.
 *
 * <p>Test stores share one idle scheduler and a purge interval of a day, so no background sweep ever
 * runs during a test: the test calls {@link KvStore#runMaintenance()} itself, at the instants it
 * chooses on a {@link ManualClock}.
 */
final class Stores {
  private static final ScheduledExecutorService IDLE_SCHEDULER = idleScheduler();

  private Stores() {}

  private static ScheduledExecutorService idleScheduler() {
    ScheduledThreadPoolExecutor s = new ScheduledThreadPoolExecutor(1, r -> {
      Thread t = new Thread(r, "kvstore-test-idle-scheduler");
      t.setDaemon(true);
      return t;
    });
    s.setRemoveOnCancelPolicy(true);
    return s;
  }

  /** A builder with a node id, a clock, and no background maintenance. */
  static KvStoreBuilder builder(String nodeId, InstantSource clock) {
    return KvStore.builder().nodeId(nodeId).clock(clock).scheduler(IDLE_SCHEDULER)
        .purgeInterval(Duration.ofDays(1));
  }

  /** A standalone store; close it. */
  static DefaultKvStore open(String nodeId, InstantSource clock) {
    return (DefaultKvStore) builder(nodeId, clock).build();
  }

  /** A standalone store with a given digest size; close it. */
  static DefaultKvStore open(String nodeId, InstantSource clock, int digestBuckets) {
    return (DefaultKvStore) builder(nodeId, clock).digestBuckets(digestBuckets).build();
  }

  /**
   * A store with a replicator that goes nowhere: unlike a standalone store it keeps its digest up to
   * date on every write (a standalone store computes it when asked), so digest tests use both.
   */
  static DefaultKvStore openUnwired(String nodeId, InstantSource clock, int digestBuckets) {
    return (DefaultKvStore) builder(nodeId, clock).digestBuckets(digestBuckets)
        .replicator(config -> new Unwired(new Member(nodeId, null, null, Member.Status.ALIVE)))
        .build();
  }

  /** Meets every write concern at once and sends nothing; not the standalone replicator. */
  static final class Unwired implements Replicator {
    private final ClusterView view;

    Unwired(Member self) {
      this.view = ClusterView.standalone(self);
    }

    @Override
    public void start(ReplicaStore store) {}

    @Override
    public CompletableFuture<Void> replicate(Mutation mutation, WriteConcern concern,
        Duration timeout) {
      return CompletableFuture.completedFuture(null);
    }

    @Override
    public ClusterView clusterView() {
      return view;
    }

    @Override
    public void close() {}
  }

  /** Every bucket of a store's digest. */
  static BitSet allBuckets(ReplicaStore store) {
    BitSet all = new BitSet();
    all.set(0, store.digest().bucketCount());
    return all;
  }

  /** Every key the store holds (live, tombstone or expired), with its version, sorted by key. */
  static TreeMap<String, Version> heldVersions(ReplicaStore store) {
    TreeMap<String, Version> out = new TreeMap<>();
    for (KeyVersion kv : store.keyVersions(allBuckets(store))) {
      Version prev = out.put(kv.key(), kv.version());
      if (prev != null) {
        throw new AssertionError("keyVersions listed " + kv.key() + " twice");
      }
    }
    return out;
  }

  /** Every key the store holds with its version and content fingerprint, sorted by key. */
  static TreeMap<String, KeyVersion> heldEntries(ReplicaStore store) {
    TreeMap<String, KeyVersion> out = new TreeMap<>();
    for (KeyVersion kv : store.keyVersions(allBuckets(store))) {
      if (out.put(kv.key(), kv) != null) {
        throw new AssertionError("keyVersions listed " + kv.key() + " twice");
      }
    }
    return out;
  }

  /** Every entry the store holds as the mutation it would send, sorted by key. */
  static TreeMap<String, Mutation> rawState(ReplicaStore store) {
    TreeMap<String, Mutation> out = new TreeMap<>();
    for (Mutation m : store.mutations(new ArrayList<>(heldVersions(store).keySet()))) {
      out.put(m.key(), m);
    }
    return out;
  }

  /**
   * The digest a store holding exactly these entries must have, computed from scratch with the public
   * hashes ({@link Mutation#fingerprint()}, {@link Digest#entryHash(KeyVersion)}).
   */
  static Digest digestOf(Collection<Mutation> entries, int bucketCount) {
    long[] buckets = new long[bucketCount];
    for (Mutation m : entries) {
      buckets[Digest.bucketOf(m.key(), bucketCount)] ^= Digest.entryHash(KeyVersion.of(m));
    }
    return Digest.of(buckets);
  }

  /** Applies every mutation the source holds to the target, as anti-entropy would. */
  static List<ApplyResult> copyInto(ReplicaStore source, ReplicaStore target) {
    List<ApplyResult> results = new ArrayList<>();
    for (Mutation m : rawState(source).values()) {
      results.add(target.apply(m));
    }
    return results;
  }

  /**
   * What a reader sees of a store: per held key its version and its live value (hex, or "-" when it
   * reads absent), plus the digest. Equal views mean equal state as far as any API can tell, except
   * for when an expired value leaves {@code size()}.
   */
  record View(TreeMap<String, String> entries, Digest digest) {}

  static View view(KvStore store) {
    ReplicaStore replica = ReplicaViews.of(store);
    TreeMap<String, String> entries = new TreeMap<>();
    heldVersions(replica).forEach((k, v) ->
        entries.put(k, v + " = " + store.get(k).map(Stores::hex).orElse("-")));
    return new View(entries, replica.digest());
  }

  static String hex(byte[] bytes) {
    StringBuilder sb = new StringBuilder(bytes.length * 2 + 2).append("0x");
    for (byte b : bytes) {
      sb.append(Character.forDigit((b >> 4) & 0xf, 16)).append(Character.forDigit(b & 0xf, 16));
    }
    return sb.toString();
  }
}
