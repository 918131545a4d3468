package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.kvstore.core.Durability;
import io.kvstore.core.KvStore;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteOptions;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 12: a durable node that was away comes back with its data and anti-entropy moves only what
 * changed while it was away, not a full copy.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class DurableCatchUpTest {
  private static final int KEYS = 3_000;
  private static final int CHANGED_WHILE_AWAY = 60;

  @TempDir
  Path tmp;

  private static long keysMovedBy(TestCluster cluster) {
    return cluster.nodes().stream().mapToLong(n -> n.stats().antiEntropyKeysPulled()
        + n.stats().antiEntropyKeysPushed()).sum();
  }

  /** Every key the test changed reads the same on both, and they hold as many keys. */
  private static boolean caughtUp(KvStore reference, KvStore replica) {
    for (int i = 0; i < CHANGED_WHILE_AWAY; i++) {
      for (String key : List.of("k" + i, "new" + i)) {
        if (!reference.getString(key).equals(replica.getString(key))) {
          return false;
        }
      }
    }
    return reference.size() == replica.size();
  }

  @Test
  void when_aDurableNodeRestarts_then_antiEntropyMovesOnlyWhatChangedWhileItWasAway() {
    try (TestCluster cluster = TestCluster.startEach("catch-up", "c", 3, b -> b,
        id -> b -> b.store(s -> s.dataDir(tmp.resolve(id)).durability(Durability.INTERVAL)))) {
      KvStore c1 = cluster.node("c1").store();
      List<CompletableFuture<?>> writes = new ArrayList<>();
      for (int i = 0; i < KEYS; i++) {
        writes.add(c1.putAsync("k" + i, ("v" + i).getBytes(StandardCharsets.UTF_8),
            WriteOptions.concern(WriteConcern.ALL)));
      }
      writes.forEach(CompletableFuture::join);
      cluster.stop(cluster.node("c3"));
      // While c3 is away: new keys, overwrites and deletes, half of each through each node.
      for (int i = 0; i < CHANGED_WHILE_AWAY; i++) {
        KvStore via = cluster.node(i % 2 == 0 ? "c1" : "c2").store();
        switch (i % 3) {
          case 0 -> via.put("new" + i, "n" + i);
          case 1 -> via.put("k" + i, "overwritten" + i);
          default -> via.delete("k" + i);
        }
      }
      long movedBefore = keysMovedBy(cluster);

      TestCluster.Node back = cluster.startNode("c3",
          b -> b.store(s -> s.dataDir(tmp.resolve("c3")).durability(Durability.INTERVAL)),
          cluster.node("c1").membershipAddress());
      assertThat(back.store().size()).as("c3 is back with its own data before any repair")
          .isEqualTo(KEYS);
      await().atMost(Duration.ofSeconds(30)).until(() -> caughtUp(c1, back.store()));

      long moved = keysMovedBy(cluster) - movedBefore;
      // Every changed key crosses at least once; two peers may each send one in the same round.
      assertThat(moved).as("keys moved by anti-entropy to catch c3 up")
          .isBetween((long) CHANGED_WHILE_AWAY, 3L * CHANGED_WHILE_AWAY);
      assertThat(back.store().getString("new0")).contains("n0");
      assertThat(back.store().getString("k1")).contains("overwritten1");
      assertThat(back.store().getString("k2")).isEmpty();
      System.out.printf("catch-up of a durable node: %d keys moved for %d changed of %d%n", moved,
          CHANGED_WHILE_AWAY, KEYS + CHANGED_WHILE_AWAY / 3);
    }
  }
}
