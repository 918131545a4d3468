package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import io.kvstore.core.KvStore;
import io.kvstore.core.ReplicaViews;
import io.kvstore.core.Version;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteConcernException;
import io.kvstore.core.WriteOptions;
import io.kvstore.core.testing.Seeds;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The membership nemeses of {@link JepsenMembership} in partitioned mode (5 real nodes, rf 3,
 * removal delay 1.5 s, anti-entropy every 250 ms), QUORUM clients throughout. The short run inside
 * {@code verify} does each nemesis once, in order: a join, a graceful leave, a crash during the
 * handoff a rejoin started, rf − 1 nodes crashed at once (then restarted empty), a rolling restart
 * of every node. Replay a seed with {@code -Dkvstore.seed=N}. The long run is tagged {@code chaos}
 * like {@link JepsenLongRunTest} (random nemeses, {@code -Dchaos.seed}, {@code -Dchaos.duration}):
 *
 * <pre>{@code
 * ./mvnw -B -pl kvstore-cluster -am verify -Pchaos -Dtest=JepsenMembershipTest \
 *     -Dsurefire.failIfNoSpecifiedTests=false -Dchaos.duration=PT5M -Dchaos.seed=42
 * }</pre>
 */
@Timeout(value = 90, unit = TimeUnit.SECONDS)
class JepsenMembershipTest {
  private static final Logger log = LoggerFactory.getLogger(JepsenMembershipTest.class);

  static long[] seeds() {
    return Seeds.seeds(20_261_203L, 1).toArray();
  }

  @ParameterizedTest(name = "seed={0}")
  @MethodSource("seeds")
  void when_nodesJoinLeaveCrashAndRestart_then_noAcknowledgedQuorumWriteIsLost_andNoDeleteIsUndone(
      long seed) {
    JepsenMembership.Report report = new JepsenMembership(JepsenMembership.Config.shortRun(seed))
        .run();
    log.info("Jepsen membership short run:\n{}\nschedule:\n  {}", report.figures(),
        String.join("\n  ", report.log()));

    assertThat(report.violations()).as(report.failureMessage()).isEmpty();
    // The run must have done what it claims, or a pass means nothing.
    assertThat(report.done()).as(report.failureMessage())
        .containsExactly(JepsenMembership.Nemesis.values());
    assertThat(report.acked()).as(report.failureMessage()).isGreaterThan(300);
    assertThat(report.finalConvergedMillis()).as(report.failureMessage()).isNotNegative();
  }

  /**
   * The checker has teeth: stopping memory-only nodes one after another without waiting until each
   * stop is safe (100 ms apart, faster than anti-entropy moves their partitions) loses acknowledged
   * writes, and the run says so.
   */
  @ParameterizedTest(name = "seed={0}")
  @MethodSource("seeds")
  void when_nodesAreStoppedWithoutWaitingUntilSafe_then_theCheckerFindsTheLostWrites(long seed) {
    JepsenMembership.Report report = new JepsenMembership(
        JepsenMembership.Config.unsafeRollingRestart(seed)).run();
    log.info("Jepsen membership broken variant:\n{}\nschedule:\n  {}", report.figures(),
        String.join("\n  ", report.log()));
    assertThat(report.violations()).as(report.figures())
        .extracting(JepsenMembership.Violation::kind).contains("LOST_AT_STOP");
  }

  /**
   * Found by the short run, seed 20261203, before its clients skipped nodes that are not ready: m6,
   * restarted empty after the double kill, acknowledged a QUORUM put 1 ms after its start returned,
   * held by m6 alone (QUORUM_UNDER_REPLICATED). Until a node has learned the others its placement
   * set is itself, so the map's rf is capped at 1 and QUORUM needs one ack: a write the caller was
   * told is on a majority of 3 owners is on one node, and a crash of that node loses it. Here the
   * new node is kept from its seeds, so the window lasts (join timeout, then up to metadataTimeout
   * before it may declare itself ready alone) instead of a few ms. The chaos run (PT64S, seed 11)
   * reached it through forwarding too: ready m3 forwarded a write to owner m4, restarted 1 ms
   * before, which acknowledged it alone; so the harness also holds its clients while a node starts
   * until it is ready. Fixed since: with a replication factor configured, a write concern counts
   * against at least rf replicas, so a node that knows only itself fails QUORUM at once.
   */
  @Test
  void when_aNodeThatIsNotReadyYetWritesAtQuorum_then_itDoesNotAcknowledgeWithOneCopy() {
    try (TestCluster cluster = TestCluster.start("notready", "r", 4,
        b -> b.replicationFactor(3).removalDelay(Duration.ofSeconds(2)))) {
      cluster.network.partition(List.of("r5"), List.of("r1", "r2", "r3", "r4"));
      TestCluster.Node late = cluster.startNode("r5",
          b -> b.joinTimeout(Duration.ofMillis(300)), cluster.node("r1").membershipAddress());
      assertThat(late.store().cluster().isReady()).as("r5 has not met anyone yet").isFalse();
      KvStore store = late.store();
      CompletableFuture<Version> put = store.putAsync("k", "v".getBytes(StandardCharsets.UTF_8),
          WriteOptions.concern(WriteConcern.QUORUM).withTimeout(Duration.ofSeconds(1)));
      // Either the write fails (too few owners reachable: nothing says where the others are) or
      // it is on a majority of rf = 3 nodes; today it succeeds on r5 alone.
      Throwable failure = put.handle((v, e) -> e).join();
      if (failure == null) {
        long holders = cluster.nodes().stream()
            .filter(n -> ReplicaViews.of(n.store()).mutation("k") != null).count();
        assertThat(holders).as("nodes holding a write acknowledged at QUORUM, rf 3")
            .isGreaterThanOrEqualTo(2);
      } else {
        Throwable cause = failure instanceof CompletionException ? failure.getCause() : failure;
        assertThat(cause).isInstanceOf(WriteConcernException.class);
      }
    }
  }

  @Test
  @Tag("chaos")
  void when_membershipNemesesRunForTheWholeDuration_then_noAcknowledgedQuorumWriteIsLost() {
    long seed = Long.parseLong(System.getProperty("chaos.seed", "42").trim());
    Duration duration = Duration.parse(System.getProperty("chaos.duration", "PT5M").trim());
    int rounds = (int) Math.max(JepsenMembership.Nemesis.values().length,
        duration.toSeconds() / 8);
    JepsenMembership.Report report = new JepsenMembership(
        JepsenMembership.Config.longRun(seed, rounds)).run();
    log.info("Jepsen membership long run:\n{}\nschedule:\n  {}", report.figures(),
        String.join("\n  ", report.log()));
    assertThat(report.violations()).as(report.failureMessage()).isEmpty();
    assertThat(report.done()).as(report.failureMessage()).hasSize(rounds);
  }
}
