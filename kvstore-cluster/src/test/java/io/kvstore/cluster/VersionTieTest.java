package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.kvstore.core.ReplicaViews;
import io.kvstore.core.spi.ApplyResult;
import io.kvstore.core.spi.Digest;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.ReplicaStore;
import io.kvstore.core.Version;
import io.kvstore.core.testing.Replicas;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Real nodes holding different entries under one version (what a node restarted empty under its old
 * id can cause by reusing a timestamp) end identical: the AE_KEYS fingerprints show the difference,
 * both entries cross the wire, and each node's merge keeps the same winner.
 */
@Timeout(value = 90, unit = TimeUnit.SECONDS)
class VersionTieTest {
  private static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  @Test
  void when_twoNodesHoldDifferentEntriesOfOneVersion_then_antiEntropyMakesThemIdentical() {
    try (TestCluster cluster = TestCluster.start("vtie", "t", 2)) {
      cluster.awaitFullMembership(Duration.ofSeconds(30));
      ReplicaStore one = ReplicaViews.of(cluster.node("t1").store());
      ReplicaStore two = ReplicaViews.of(cluster.node("t2").store());
      long now = System.currentTimeMillis();
      Version v = Version.of(now - 1_000, 5, "restarted");
      long later = now + 3_600_000;
      long past = now - 500;
      // Per key: what t1 holds, what t2 holds; every pair has one version and different contents.
      List<Mutation[]> pairs = List.of(
          new Mutation[] {Mutation.put("value", bytes("left"), v, 0),
              Mutation.put("value", bytes("right"), v, 0)},
          new Mutation[] {Mutation.put("expiry", bytes("same"), v, later),
              Mutation.put("expiry", bytes("same"), v, 0)},
          new Mutation[] {Mutation.delete("delete", v), Mutation.put("delete", bytes("x"), v, 0)},
          new Mutation[] {Mutation.expired("expired", v, past, Digest.valueHash(bytes("gone"))),
              Mutation.put("expired", bytes("other"), v, past)});
      for (Mutation[] p : pairs) {
        assertThat(one.apply(p[0])).isEqualTo(ApplyResult.APPLIED);
        assertThat(two.apply(p[1])).isEqualTo(ApplyResult.APPLIED);
      }
      assertThat(one.digest()).isNotEqualTo(two.digest());

      await("identical entries on both nodes").atMost(Duration.ofSeconds(30))
          .until(() -> Replicas.mutations(one).equals(Replicas.mutations(two)));
      assertThat(one.digest()).isEqualTo(two.digest());
      // The documented winners: the later expiry (none counts as latest), the delete, and for the
      // other two pairs the higher value hash.
      assertThat(cluster.node("t1").store().getString("expiry")).contains("same");
      assertThat(Replicas.mutations(one).get("expiry").expiresAtMillis()).isZero();
      assertThat(Replicas.mutations(one).get("delete")).isEqualTo(Mutation.delete("delete", v));
      String value = Integer.compareUnsigned(Digest.valueHash(bytes("left")),
          Digest.valueHash(bytes("right"))) > 0 ? "left" : "right";
      assertThat(cluster.node("t2").store().getString("value")).contains(value);
      assertThat(cluster.node("t1").stats().antiEntropyKeysPushed()
          + cluster.node("t2").stats().antiEntropyKeysPushed()).isPositive();
    }
  }
}
