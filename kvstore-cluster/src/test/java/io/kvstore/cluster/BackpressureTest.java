package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.kvstore.core.KvStore;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteConcernException;
import io.kvstore.core.WriteOptions;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A peer that cannot take writes costs bounded memory: past {@code maxInFlightBytesPerPeer} its
 * mutations are dropped (counted), writes that needed it fail at once rather than at their timeout,
 * and anti-entropy delivers everything once it is reachable again.
 */
@Timeout(value = 90, unit = TimeUnit.SECONDS)
class BackpressureTest {
  private static final long LIMIT = 2L * KvClusterConfig.MAX_FRAME_BYTES;

  @Test
  void unreachablePeer_getsItsMutationsDroppedPastTheLimit_andRepairedAfterwards() {
    try (TestCluster cluster = TestCluster.start("backpressure", "bp", 2,
        b -> b.maxInFlightBytesPerPeer(LIMIT))) {
      KvStore writer = cluster.node("bp1").store();
      KvStore peer = cluster.node("bp2").store();
      cluster.network.cutDataPlane("bp1", "bp2");
      byte[] value = new byte[64 * 1024];
      int writes = (int) (LIMIT / value.length) + 20;
      for (int i = 0; i < writes; i++) {
        writer.put("blob" + i, value);
      }
      ReplicationStats stats = cluster.node("bp1").stats();
      assertThat(stats.mutationsDropped()).isBetween(1L, (long) writes);
      // Once the queue is full a write needing the peer fails at once, long before its timeout.
      long start = System.nanoTime();
      assertThatThrownBy(() -> writer.put("needs-both", value,
          WriteOptions.concern(WriteConcern.ALL).withTimeout(Duration.ofSeconds(30))))
          .isInstanceOfSatisfying(WriteConcernException.class, e -> {
            assertThat(e.acknowledged()).isEqualTo(1);
            assertThat(e.getMessage()).contains("in-flight limit");
          });
      assertThat(Duration.ofNanos(System.nanoTime() - start)).isLessThan(Duration.ofSeconds(10));

      cluster.network.heal();
      await().atMost(Duration.ofSeconds(30)).until(() -> peer.size() == writes + 1);
      // Anti-entropy repaired the dropped keys: its counters are bumped when the round ends, which
      // can be just after its last key landed on the peer.
      await().atMost(Duration.ofSeconds(10)).until(() ->
          cluster.node("bp1").stats().antiEntropyKeysPushed()
              + cluster.node("bp2").stats().antiEntropyKeysPulled() > 0);
    }
  }
}
