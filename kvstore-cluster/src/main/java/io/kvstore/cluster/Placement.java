package io.kvstore.cluster;

import io.kvstore.core.spi.Digest;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * Where each partition lives in partitioned mode: a pure function of the set of stable node ids and
 * the replication factor, so every node that knows the same set computes the same map, without
 * talking to anyone and without a history.
 *
 * <p><b>Partitions.</b> A fixed {@value #PARTITIONS} partitions for the life of a cluster; a key's
 * partition is its anti-entropy digest bucket at that count ({@link Digest#bucketOf}), so a digest
 * with 1024 or more buckets splits along partition lines and per-partition anti-entropy compares
 * whole buckets.
 *
 * <p><b>Owners.</b> Each (node, partition) pair has a rendezvous (HRW) weight, a hash of the node
 * id and the partition. Plain HRW (each partition takes its rf heaviest nodes) moves the minimum on a
 * join or leave, but each node's load is binomial: with 1024 partitions and 12 nodes it strays
 * ±20 % from rf/N, which wastes as much memory as it saves. So the map is HRW with bounded loads,
 * allocated globally: every pair in order of descending weight (ties by node id, then partition)
 * is taken if the partition still needs an owner and the node holds fewer than
 * {@code floor(rf * PARTITIONS / N)}, then the same again up to the ceiling; a partition left short
 * (rare: the last capacity sits on nodes it already has) takes the least loaded other nodes. Loads
 * then stay within a few percent of rf/N, at the cost of more movement than plain HRW on a
 * membership change: up to about 1.3x the minimum instead of 1x (measured in {@code PlacementTest},
 * discussed in docs/CLUSTER.md). Memory per node is what partitioning is for, and movement is paid once
 * per change, so balance wins. Owners of a partition are listed heaviest first (the first is the
 * partition's preferred coordinator). With rf ≥ N every node owns every partition: full replication.
 *
 * <p>The node ids are the stable ids users configure ({@code nodeId}), not ScaleCube member ids,
 * which change with every incarnation. Immutable and thread-safe.
 */
final class Placement {
  /** The number of partitions; never changes for the life of a cluster. */
  static final int PARTITIONS = 1024;

  private static final long GOLDEN = 0x9e3779b97f4a7c15L;

  private final List<String> nodes;
  private final int replicationFactor;
  private final String[][] owners;
  private final Map<String, int[]> partitionsByNode;
  private final long fingerprint;

  private Placement(List<String> nodes, int replicationFactor, String[][] owners) {
    this.nodes = nodes;
    this.replicationFactor = replicationFactor;
    this.owners = owners;
    Map<String, List<Integer>> byNode = new TreeMap<>();
    long fp = mix(replicationFactor * GOLDEN);
    for (String n : nodes) {
      byNode.put(n, new ArrayList<>());
    }
    for (int p = 0; p < owners.length; p++) {
      for (String n : owners[p]) {
        byNode.get(n).add(p);
        fp = mix(fp ^ nodeHash(n) ^ (p * GOLDEN));
      }
    }
    Map<String, int[]> frozen = new TreeMap<>();
    byNode.forEach((n, ps) -> frozen.put(n, ps.stream().mapToInt(Integer::intValue).toArray()));
    this.partitionsByNode = Collections.unmodifiableMap(frozen);
    this.fingerprint = fp;
  }

  /**
   * The placement of {@link #PARTITIONS} partitions on {@code nodeIds}.
   *
   * @param nodeIds the stable node ids taking part in placement (at least one; order and duplicates
   *     do not matter)
   * @param replicationFactor owners per partition, at least 1; capped at the number of nodes
   * @return the map
   */
  static Placement of(Collection<String> nodeIds, int replicationFactor) {
    Objects.requireNonNull(nodeIds, "nodeIds");
    if (replicationFactor < 1) {
      throw new IllegalArgumentException("replicationFactor must be at least 1, was "
          + replicationFactor);
    }
    List<String> nodes = List.copyOf(new TreeSet<>(nodeIds));
    if (nodes.isEmpty()) {
      throw new IllegalArgumentException("placement needs at least one node");
    }
    int n = nodes.size();
    int rf = Math.min(replicationFactor, n);
    String[][] owners = new String[PARTITIONS][];
    long[] hashes = nodes.stream().mapToLong(Placement::nodeHash).toArray();
    if (rf == n) {
      for (int p = 0; p < PARTITIONS; p++) {
        owners[p] = byWeight(nodes, hashes, p).toArray(new String[0]);
      }
      return new Placement(nodes, rf, owners);
    }
    // Every (node, partition) pair, heaviest first; ties (a 64-bit collision) by node, then partition.
    long[] weights = new long[n * PARTITIONS];
    Integer[] order = new Integer[n * PARTITIONS];
    for (int i = 0; i < n; i++) {
      for (int p = 0; p < PARTITIONS; p++) {
        weights[i * PARTITIONS + p] = weight(hashes[i], p);
        order[i * PARTITIONS + p] = i * PARTITIONS + p;
      }
    }
    Arrays.sort(order, (a, b) -> {
      int c = Long.compareUnsigned(weights[b], weights[a]);
      return c != 0 ? c : Integer.compare(a, b);
    });
    int[] load = new int[n];
    int[] filled = new int[PARTITIONS];
    boolean[][] owned = new boolean[PARTITIONS][n];
    // Two passes over the pairs: up to floor(rf * P / N) each, so no node is left far below its
    // share because the partitions it weighs most in filled up first, then up to the ceiling.
    for (int capacity : new int[] {rf * PARTITIONS / n, (rf * PARTITIONS + n - 1) / n}) {
      for (Integer pair : order) {
        int node = pair / PARTITIONS;
        int p = pair % PARTITIONS;
        if (filled[p] < rf && load[node] < capacity && !owned[p][node]) {
          owned[p][node] = true;
          filled[p]++;
          load[node]++;
        }
      }
    }
    for (int p = 0; p < PARTITIONS; p++) {
      // Rare: the last free capacity sat on nodes that own this partition already. Take the least
      // loaded others (ties by weight), so the map stays balanced.
      while (filled[p] < rf) {
        int best = -1;
        for (int i = 0; i < n; i++) {
          if (!owned[p][i] && (best < 0 || load[i] < load[best] || (load[i] == load[best]
              && Long.compareUnsigned(weights[i * PARTITIONS + p],
                  weights[best * PARTITIONS + p]) > 0))) {
            best = i;
          }
        }
        owned[p][best] = true;
        filled[p]++;
        load[best]++;
      }
      List<String> own = new ArrayList<>(rf);
      for (int i : ranking(hashes, p)) {
        if (owned[p][i]) {
          own.add(nodes.get(i));
        }
      }
      owners[p] = own.toArray(new String[0]);
    }
    return new Placement(nodes, rf, owners);
  }

  /** The nodes in descending HRW weight for {@code partition}. */
  private static List<String> byWeight(List<String> nodes, long[] hashes, int partition) {
    List<String> ranked = new ArrayList<>(nodes.size());
    for (int i : ranking(hashes, partition)) {
      ranked.add(nodes.get(i));
    }
    return ranked;
  }

  /** Node indexes in descending HRW weight; ties by index (nodes are sorted: by node id). */
  private static int[] ranking(long[] hashes, int partition) {
    Integer[] idx = new Integer[hashes.length];
    long[] w = new long[hashes.length];
    for (int i = 0; i < idx.length; i++) {
      idx[i] = i;
      w[i] = weight(hashes[i], partition);
    }
    Arrays.sort(idx, (a, b) -> {
      int c = Long.compareUnsigned(w[b], w[a]);
      return c != 0 ? c : Integer.compare(a, b);
    });
    return Arrays.stream(idx).mapToInt(Integer::intValue).toArray();
  }

  /**
   * The partition of a key.
   *
   * @param key the key
   * @return 0 to {@link #PARTITIONS} - 1
   */
  static int partitionOf(String key) {
    return Digest.bucketOf(key, PARTITIONS);
  }

  /**
   * The owners of a partition, heaviest first.
   *
   * @param partition 0 to {@link #PARTITIONS} - 1
   * @return {@code min(rf, N)} distinct node ids
   */
  List<String> owners(int partition) {
    return List.of(owners[partition]);
  }

  /**
   * The owners of a key's partition.
   *
   * @param key the key
   * @return its owners, heaviest first
   */
  List<String> ownersOf(String key) {
    return owners(partitionOf(key));
  }

  /**
   * Whether a node owns a partition.
   *
   * @param nodeId the node
   * @param partition the partition
   * @return true if it is one of the partition's owners
   */
  boolean owns(String nodeId, int partition) {
    for (String o : owners[partition]) {
      if (o.equals(nodeId)) {
        return true;
      }
    }
    return false;
  }

  /**
   * The partitions a node owns, ascending.
   *
   * @param nodeId the node
   * @return its partitions; empty for a node not in the map
   */
  int[] partitionsOf(String nodeId) {
    int[] ps = partitionsByNode.get(nodeId);
    return ps == null ? new int[0] : ps.clone();
  }

  /**
   * How many partitions a node owns.
   *
   * @param nodeId the node
   * @return the count; 0 for a node not in the map
   */
  int partitionCount(String nodeId) {
    int[] ps = partitionsByNode.get(nodeId);
    return ps == null ? 0 : ps.length;
  }

  /** The node ids placement ran over, sorted. */
  List<String> nodes() {
    return nodes;
  }

  /** Owners per partition: the configured replication factor capped at the node count. */
  int replicationFactor() {
    return replicationFactor;
  }

  /** Whether every node owns every partition (rf ≥ N): full replication. */
  boolean isFullReplication() {
    return replicationFactor == nodes.size();
  }

  /**
   * A hash of the whole map (nodes, rf, every owner list), equal on every node that computed the same
   * map: two nodes compare it to see they agree.
   */
  long fingerprint() {
    return fingerprint;
  }

  @Override
  public String toString() {
    return "Placement{" + nodes.size() + " nodes, rf " + replicationFactor + ", "
        + PARTITIONS + " partitions, fingerprint " + Long.toHexString(fingerprint) + "}";
  }

  /** FNV-1a over the id's UTF-8 bytes, spread: the same on every JVM. */
  static long nodeHash(String nodeId) {
    long h = 0xcbf29ce484222325L;
    for (byte b : nodeId.getBytes(StandardCharsets.UTF_8)) {
      h = (h ^ (b & 0xff)) * 0x100000001b3L;
    }
    return mix(h);
  }

  /** The rendezvous weight of a node (by its hash) for a partition. */
  static long weight(long nodeHash, int partition) {
    return mix(nodeHash ^ mix((partition + 1) * GOLDEN));
  }

  /** The SplitMix64 finaliser, a bijection. */
  private static long mix(long z) {
    z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
    z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
    return z ^ (z >>> 31);
  }
}
