package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import io.kvstore.core.KvStore;
import io.kvstore.core.testing.Seeds;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.LongStream;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Deterministic simulation (DESIGN.md, testing tier 2) of the stores' merge under the real engine:
 * five stores with skewed clocks exchange writes and anti-entropy through their
 * {@link ReplicationEngine}s over a {@link SimNetwork} that loses, duplicates, delays and reorders
 * frames and keeps being partitioned; after healing, every store must be identical and equal to the
 * last-writer-wins model of every accepted write (TTLs and reused versions included). Each run is
 * replayable: {@code -Dkvstore.seed=N}. {@link EngineSimulationTest} checks write concerns.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class LwwSimulationTest {
  static LongStream mainSeeds() {
    return Seeds.seeds(1_000, 80);
  }

  static LongStream splitBrainSeeds() {
    return Seeds.seeds(2_000, 25);
  }

  static LongStream fanOutLostSeeds() {
    return Seeds.seeds(3_000, 25);
  }

  static LongStream determinismSeeds() {
    return Seeds.seeds(4_000, 3);
  }

  @ParameterizedTest(name = "seed={0}")
  @MethodSource("mainSeeds")
  void when_faultsAndChangingPartitionsHeal_then_everyStoreEqualsTheLwwModel(long seed) {
    try (LwwSimulation sim = new LwwSimulation(seed, new LwwSimulation.Settings())) {
      for (int i = 0; i < 300; i++) {
        sim.randomTick();
      }
      sim.healAndVerify();
      assertThat(sim.model.size()).as("%s: the workload wrote", Seeds.describe(seed))
          .isGreaterThan(100);
      assertThat(sim.model.reused()).as("%s: writes reused a version", Seeds.describe(seed))
          .isPositive();
    }
  }

  /**
   * A long partition: one side keeps writing keys while the other deletes them; then the sides swap
   * roles for the other half of the keys, 45 s later (more than the clock skew). After healing the
   * later deletes win over the earlier puts (the keys stay deleted everywhere) and the later puts win
   * over the earlier deletes.
   */
  @ParameterizedTest(name = "seed={0}")
  @MethodSource("splitBrainSeeds")
  void when_oneSideWritesAndTheOtherDeletesDuringALongPartition_then_theLaterWriteWinsEverywhere(
      long seed) {
    LwwSimulation.Settings settings = new LwwSimulation.Settings();
    settings.maxSkewMillis = 10_000;
    settings.ttlShare = 0;
    try (LwwSimulation sim = new LwwSimulation(seed, settings)) {
      List<String> sideA = sim.ids.subList(0, 2);
      List<String> sideB = sim.ids.subList(2, sim.ids.size());
      int half = settings.keys / 2;
      for (int k = 0; k < settings.keys; k++) {
        sim.put(sim.ids.get(sim.rnd.nextInt(sim.ids.size())), sim.key(k), 0);
      }
      sim.network.runUntilConverged(500);
      sim.partition(List.of(Set.copyOf(sideA), Set.copyOf(sideB)));
      // Phase 1: A writes keys [0, half), B deletes keys [half, keys).
      phase(sim, sideA, sideB, 0, half);
      sim.jumpTime(45_000);
      // Phase 2: A writes keys [half, keys), B deletes keys [0, half).
      phase(sim, sideA, sideB, half, 0);
      sim.healAndVerify();
      for (int k = 0; k < settings.keys; k++) {
        String key = sim.key(k);
        LwwModel.Write winner = sim.model.winner(key).orElseThrow();
        boolean deleted = k < half;
        assertThat(winner.isDelete()).as("%s: %s's winner %s", Seeds.describe(seed), key, winner)
            .isEqualTo(deleted);
        assertThat(deleted ? sideB : sideA).as("%s: side of %s's winner", Seeds.describe(seed), key)
            .contains(winner.node());
        for (KvStore s : sim.stores()) {
          if (deleted) {
            assertThat(s.get(key)).as("%s: %s deleted after the puts, on %s", Seeds.describe(seed), key,
                s.config().nodeId()).isEmpty();
          } else {
            assertThat(s.getString(key)).as("%s: %s put after the deletes, on %s",
                Seeds.describe(seed), key, s.config().nodeId()).contains(winner.value());
          }
        }
      }
    }
  }

  /** 100 ticks where side A puts half the keys from putFrom and side B deletes half from deleteFrom. */
  private static void phase(LwwSimulation sim, List<String> sideA, List<String> sideB, int putFrom,
      int deleteFrom) {
    int half = sim.settings.keys / 2;
    for (int t = 0; t < 100; t++) {
      sim.tickTimeOnly(25);
      int k = putFrom + sim.rnd.nextInt(half);
      sim.put(sideA.get(sim.rnd.nextInt(sideA.size())), sim.key(k), 0);
      int d = deleteFrom + sim.rnd.nextInt(half);
      sim.delete(sideB.get(sim.rnd.nextInt(sideB.size())), sim.key(d));
      sim.maybeBackgroundWork();
      sim.step();
    }
    for (int i = 0; i < half; i++) {
      sim.put(sideA.get(0), sim.key(putFrom + i), 0);
      sim.delete(sideB.get(0), sim.key(deleteFrom + i));
    }
    sim.checkInvariants();
  }

  /** DESIGN: "with anti-entropy, replication is correct even if every fan-out message were lost". */
  @ParameterizedTest(name = "seed={0}")
  @MethodSource("fanOutLostSeeds")
  void when_everyFanOutIsLost_then_antiEntropyAloneConvergesToTheLwwModel(long seed) {
    LwwSimulation.Settings settings = new LwwSimulation.Settings();
    SimNetwork.Faults faults = SimNetwork.Faults.of(0, 0.1, 1, 3, 0.2, 5);
    faults.fanOutLoss = 1.0;
    settings.faults = faults;
    settings.partitionChangeRate = 0;
    try (LwwSimulation sim = new LwwSimulation(seed, settings)) {
      for (int i = 0; i < 200; i++) {
        sim.randomTick();
      }
      assertThat(sim.fanOutSent()).as("%s: fan-out sent", Seeds.describe(seed)).isPositive();
      sim.healAndVerify();
      assertThat(sim.fanOutAcked()).as("%s: fan-out delivered and acked", Seeds.describe(seed))
          .isZero();
      assertThat(sim.antiEntropyKeysMoved()).as("%s: keys moved by anti-entropy",
          Seeds.describe(seed)).isPositive();
    }
  }

  @ParameterizedTest(name = "seed={0}")
  @MethodSource("determinismSeeds")
  void when_runTwiceWithOneSeed_then_everyMessageAndStateIsTheSame(long seed) {
    List<String> first = fingerprintOfRun(seed);
    assertThat(fingerprintOfRun(seed)).as(Seeds.describe(seed)).isEqualTo(first);
  }

  private static List<String> fingerprintOfRun(long seed) {
    try (LwwSimulation sim = new LwwSimulation(seed, new LwwSimulation.Settings())) {
      for (int i = 0; i < 150; i++) {
        sim.randomTick();
      }
      sim.healAndVerify();
      return sim.fingerprint();
    }
  }
}
