package io.kvstore.core.testing;

import io.kvstore.core.spi.KeyVersion;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.ReplicaStore;
import io.kvstore.core.Version;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Optional;
import java.util.SortedMap;
import java.util.TreeMap;

/**
 * Reads a replica's full state (live values, tombstones and expired entries), which {@code KvStore}'s
 * own API hides, through the public {@link ReplicaStore} methods. Each call walks the whole store.
 */
public final class Replicas {
  private Replicas() {}

  /**
   * Every key the replica holds, with its version.
   *
   * @param replica the replica
   * @return key to version, sorted by key
   */
  public static SortedMap<String, Version> keyVersions(ReplicaStore replica) {
    SortedMap<String, Version> out = new TreeMap<>();
    for (KeyVersion kv : replica.keyVersions(allBuckets(replica))) {
      out.put(kv.key(), kv.version());
    }
    return out;
  }

  /**
   * Every key the replica holds, as the mutation that would recreate it elsewhere.
   *
   * @param replica the replica
   * @return key to mutation, sorted by key
   */
  public static SortedMap<String, Mutation> mutations(ReplicaStore replica) {
    List<String> keys = new ArrayList<>(keyVersions(replica).keySet());
    SortedMap<String, Mutation> out = new TreeMap<>();
    for (Mutation m : replica.mutations(keys)) {
      out.put(m.key(), m);
    }
    return out;
  }

  /**
   * The version a replica holds for a key, live, deleted or expired.
   *
   * @param replica the replica
   * @param key the key
   * @return the version, or empty if the replica holds nothing for the key
   */
  public static Optional<Version> heldVersion(ReplicaStore replica, String key) {
    List<Mutation> ms = replica.mutations(List.of(key));
    return ms.isEmpty() ? Optional.empty() : Optional.of(ms.get(0).version());
  }

  private static BitSet allBuckets(ReplicaStore replica) {
    BitSet all = new BitSet();
    all.set(0, replica.digest().bucketCount());
    return all;
  }
}
