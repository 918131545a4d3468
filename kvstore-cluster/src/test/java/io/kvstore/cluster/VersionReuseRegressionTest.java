package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import io.kvstore.core.spi.Digest;
import io.kvstore.core.spi.ReplicaStore;
import io.kvstore.core.Version;
import io.kvstore.core.testing.Replicas;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Regressions of the merge found by the simulation, replayed on the real engine ({@link SimNetwork}). */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class VersionReuseRegressionTest {
  /**
   * Was: a node restarted empty under its old id reused a version it had issued before the restart
   * (its clock had been pushed ahead by a peer's), for a different value of the same key; the merge
   * kept whichever arrived first and the digest hashed only keys and versions, so the two replicas
   * stayed different forever. Now the digest sees the content and the merge breaks the tie.
   */
  @Test
  void versionReusedByANodeRestartedEmpty_leftReplicasDivergentForever() {
    try (SimNetwork net = new SimNetwork(7, SimNetwork.smallSettings(), ReplicationEngine.Bug.NONE,
        b -> b)) {
      SimNetwork.SimNode one = net.addNode("node-1", 0);
      SimNetwork.SimNode two = net.addNode("node-2", 0);
      // node-2's clock runs 30 s ahead (within maxClockDrift) and pushes node-1's HLC ahead.
      two.offsetMillis = 30_000;
      two.store.put("warm-up", bytes("x"));
      net.runUntilConverged(50);
      for (int i = 0; i < 3; i++) {
        one.store.put("filler-" + i, bytes("f")); // some writes in that millisecond
      }
      Version first = one.store.put("k", bytes("before the restart"));
      net.runUntilConverged(50);
      assertThat(two.store.getString("k")).contains("before the restart");

      // node-1 restarts empty, before it hears from anyone its wall clock reaches the millisecond
      // its HLC had been pushed to, and it writes the key again.
      net.partition(List.of(Set.of("node-1")));
      one.store.close();
      one = net.addNode("node-1", 0);
      one.fixedMillis = first.physicalMillis();
      for (int i = 0; i < first.logical(); i++) {
        one.store.put("filler-" + i, bytes("f"));
      }
      Version second = one.store.put("k", bytes("after the restart"));
      assertThat(second).as("the scenario reuses the version").isEqualTo(first);

      net.heal();
      net.runUntilConverged(10);
      ReplicaStore r1 = one.replica;
      ReplicaStore r2 = two.replica;
      assertThat(r1.digest()).isEqualTo(r2.digest());
      assertThat(Replicas.mutations(r1)).isEqualTo(Replicas.mutations(r2));
      // The tie-break decides by the values' hashes (both puts have no expiry).
      String expected = Integer.compareUnsigned(Digest.valueHash(bytes("after the restart")),
          Digest.valueHash(bytes("before the restart"))) > 0 ? "after the restart"
          : "before the restart";
      assertThat(one.store.getString("k")).contains(expected);
      assertThat(two.store.getString("k")).contains(expected);
    }
  }

  private static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }
}
