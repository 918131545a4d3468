package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.concurrent.TimeUnit;
import java.util.stream.LongStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The deterministic simulation (DESIGN.md, testing tier 2) over the real replication engine: N
 * {@link ReplicationEngine}s exchanging encoded frames over {@link SimNetwork} with seeded loss,
 * duplication, delay, reordering and partitions, on virtual time. See {@link EngineSimulation} for
 * what each run checks.
 *
 * <p>{@code -Dkvstore.sim.seed=N} replays exactly seed N; {@code -Dkvstore.sim.seeds=M} runs M seeds
 * (default {@value #DEFAULT_SEEDS}) for a longer soak.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class EngineSimulationTest {
  private static final Logger log = LoggerFactory.getLogger(EngineSimulationTest.class);
  static final int DEFAULT_SEEDS = 200;
  private static final long BASE = 10_000;
  private static final int OPERATIONS = 150;

  static LongStream seeds() {
    String one = System.getProperty(EngineSimulation.SEED_PROPERTY);
    if (one != null && !one.isBlank()) {
      return LongStream.of(Long.parseLong(one.trim()));
    }
    return LongStream.range(BASE, BASE + Integer.getInteger(EngineSimulation.COUNT_PROPERTY,
        DEFAULT_SEEDS));
  }

  @ParameterizedTest(name = "seed={0}")
  @MethodSource("seeds")
  void when_faultsAndPartitionsHeal_then_replicasConverge_toTheLwwModel_andAckedWritesWereHeld(
      long seed) {
    try (EngineSimulation sim = new EngineSimulation(seed, ReplicationEngine.Bug.NONE)) {
      sim.chaos(OPERATIONS);
      sim.healAndVerify();
      log.debug("{}: {}", sim.describe(), sim.summary());
      assertThat(sim.writes).as(sim.describe()).isEqualTo(OPERATIONS);
    }
  }

  @Test
  void sameSeed_replaysTheSameSchedule() {
    long[] traces = new long[2];
    long[] delivered = new long[2];
    for (int i = 0; i < 2; i++) {
      try (EngineSimulation sim = new EngineSimulation(BASE + 7, ReplicationEngine.Bug.NONE)) {
        sim.chaos(OPERATIONS);
        sim.healAndVerify();
        traces[i] = sim.net.trace();
        delivered[i] = sim.net.framesDelivered();
      }
    }
    assertThat(delivered[0]).isGreaterThan(100).isEqualTo(delivered[1]);
    assertThat(traces[0]).as("fingerprint of every delivered frame and its time")
        .isEqualTo(traces[1]);
  }

  /** Proof that the simulation can fail: a QUORUM/ALL ack counted when sent, not when acked. */
  @Test
  void findsAnAckCountedOnSend() {
    assertBugFound(ReplicationEngine.Bug.ACK_ON_SEND);
  }

  /** Proof that the simulation can fail: a peer acknowledging a batch before applying it. */
  @Test
  void findsAnAckSentBeforeTheApply() {
    assertBugFound(ReplicationEngine.Bug.ACK_BEFORE_APPLY);
  }

  /** Proof that the simulation can fail on convergence: anti-entropy that never sends tombstones. */
  @Test
  void findsAntiEntropyThatDropsTombstones() {
    assertBugFound(ReplicationEngine.Bug.AE_DROPS_TOMBSTONES);
  }

  private static void assertBugFound(ReplicationEngine.Bug bug) {
    for (long seed = BASE; seed < BASE + DEFAULT_SEEDS; seed++) {
      try (EngineSimulation sim = new EngineSimulation(seed, bug)) {
        try {
          sim.chaos(OPERATIONS);
          sim.healAndVerify();
        } catch (AssertionError e) {
          log.info("bug {} found by seed {}: {}", bug, seed, e.getMessage());
          assertThatThrownBy(() -> {
            throw e;
          }).hasMessageContaining("seed=" + seed);
          return;
        }
      }
    }
    throw new AssertionError("no seed of " + DEFAULT_SEEDS + " found bug " + bug);
  }
}
