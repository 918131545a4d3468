package io.kvstore.core;

import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.Digest;
import io.kvstore.core.spi.ApplyResult;
import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * TTL and purge under injected time. Each seed plans a few keys (a TTL'd put, local or remote; a put
 * later deleted; a TTL'd put overwritten before it expires; a plain put), replays the plan on a
 * {@link ManualClock}, and at every instant that matters (each write, one millisecond before and at
 * each expiry and each purge deadline, and random others) runs a maintenance sweep and checks the
 * store against {@link LwwModel}: expired values read as absent at once, EXPIRE is reported once,
 * tombstones are purged exactly {@code tombstoneGrace} after the delete or the expiry, an older write
 * arriving before the purge is ignored, and the counters agree.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class TtlAndPurgePropertyTest {

  private enum Plan { LOCAL_TTL, REMOTE_TTL, DELETED, TTL_OVERWRITTEN, PLAIN }

  /** One step of the replay: a write, or an older write that must be ignored. */
  private interface Step {
    void run();
  }

  /** What the planned steps share. */
  private record Run(long seed, SplittableRandom r, DefaultKvStore s, LwwModel model,
      Schedule schedule, long grace, List<ChangeEvent> events, Map<String, long[]> lifetimes,
      List<String> log) {}

  private static final class Schedule {
    final TreeMap<Long, List<Step>> steps = new TreeMap<>();

    void at(long time, Step step) {
      steps.computeIfAbsent(time, t -> new ArrayList<>()).add(step);
    }

    void checkAt(long time) {
      steps.computeIfAbsent(time, t -> new ArrayList<>());
    }
  }

  @ParameterizedTest(name = Seeds.NAME)
  @MethodSource("io.kvstore.core.Seeds#seeds")
  void expiryAndPurge_happenExactlyOnTime_andNothingResurrects(long seed) {
    Seeds.run(seed, r -> {
      long grace = 1 + r.nextInt(r.nextBoolean() ? 1_000 : 3_600_000);
      ManualClock clock = new ManualClock();
      try (DefaultKvStore s = (DefaultKvStore) Stores.builder("self", clock)
          .tombstoneGrace(Duration.ofMillis(grace)).build()) {
        List<ChangeEvent> events = new ArrayList<>();
        s.addListener("", events::add);
        LwwModel model = new LwwModel(grace);
        Schedule schedule = new Schedule();
        Map<String, Plan> plans = new TreeMap<>();
        // Per key that dies: {first write, when it stops being readable, when it must be purged}.
        Map<String, long[]> lifetimes = new TreeMap<>();
        List<String> log = new ArrayList<>();
        Run run = new Run(seed, r, s, model, schedule, grace, events, lifetimes, log);
        int keyCount = 1 + r.nextInt(6);
        for (int i = 0; i < keyCount; i++) {
          String key = "key-" + i;
          Plan plan = Plan.values()[r.nextInt(Plan.values().length)];
          plans.put(key, plan);
          plan(run, key, plan);
        }
        for (int i = 0; i < 5; i++) {
          schedule.checkAt(ManualClock.T0 + r.nextInt(2 * (int) Math.min(grace + 700_000,
              Integer.MAX_VALUE / 2)));
        }

        long purgedSoFar = 0;
        for (Map.Entry<Long, List<Step>> at : schedule.steps.entrySet()) {
          long now = at.getKey();
          clock.set(now);
          at.getValue().forEach(Step::run);
          String ctx = Seeds.describe(seed, "at T0+%d, grace %d, plans %s, log %s",
              now - ManualClock.T0, grace, plans, log);

          // Reads see expiry at once, before any sweep.
          for (String key : plans.keySet()) {
            Mutation held = model.raw().get(key);
            boolean live = held != null && LwwModel.isLiveAt(held, now);
            assertThat(s.get(key).isPresent()).as(ctx + " get " + key).isEqualTo(live);
            assertThat(s.getVersioned(key).isPresent()).as(ctx + " getVersioned " + key)
                .isEqualTo(live);
          }
          List<String> scanned = s.scan("", 1_000).stream().map(Versioned::key).toList();
          List<String> liveKeys = model.raw().values().stream()
              .filter(m -> LwwModel.isLiveAt(m, now)).map(Mutation::key).toList();
          assertThat(scanned).as(ctx + " scan").isEqualTo(liveKeys);

          // The sweep: EXPIRE once per expired value, purges exactly at the deadline.
          int eventsBefore = events.size();
          LwwModel.Sweep expected = model.sweep(now);
          assertThat(s.runMaintenance()).as(ctx + " purged by this sweep")
              .isEqualTo(expected.purged().size());
          purgedSoFar += expected.purged().size();
          List<ChangeEvent> fromSweep = events.subList(eventsBefore, events.size());
          assertThat(fromSweep).as(ctx + " events of this sweep")
              .allMatch(e -> e.type() == ChangeEvent.Type.EXPIRE);
          assertThat(fromSweep.stream().map(ChangeEvent::key).sorted().toList())
              .as(ctx + " keys expired by this sweep").isEqualTo(expected.expired());
          for (ChangeEvent e : fromSweep) {
            assertThat(e.version()).as(ctx).isEqualTo(model.versions().get(e.key()));
            assertThat(e.origin()).as(ctx).isEqualTo(plans.get(e.key()) == Plan.REMOTE_TTL
                ? ChangeEvent.Origin.REMOTE : ChangeEvent.Origin.LOCAL);
          }
          lifetimes.forEach((key, life) -> {
            assertThat(s.get(key).isPresent()).as(ctx + " readable " + key)
                .isEqualTo(life[0] <= now && now < life[1]);
            assertThat(Stores.heldVersions(s.replicaView()).containsKey(key)).as(ctx + " still held " + key)
                .isEqualTo(life[0] <= now && now < life[2]);
          });

          assertThat(Stores.rawState(s.replicaView())).as(ctx).isEqualTo(model.raw());
          assertThat(s.digest()).as(ctx).isEqualTo(Stores.digestOf(model.raw().values(),
              s.digest().bucketCount()));
          StoreStats stats = s.stats();
          assertThat(s.size()).as(ctx).isEqualTo(model.valueCount());
          assertThat(stats.liveEntries()).as(ctx).isEqualTo(model.valueCount());
          assertThat(stats.tombstones()).as(ctx).isEqualTo(model.tombstoneCount());
          assertThat(stats.purged()).as(ctx).isEqualTo(purgedSoFar);
        }

        // Over the whole run: each TTL'd value that ran out was reported expired exactly once.
        Map<String, Long> expires = events.stream()
            .filter(e -> e.type() == ChangeEvent.Type.EXPIRE)
            .collect(Collectors.groupingBy(ChangeEvent::key, TreeMap::new, Collectors.counting()));
        Map<String, Long> expectedExpires = new TreeMap<>();
        plans.forEach((k, p) -> {
          if (p == Plan.LOCAL_TTL || p == Plan.REMOTE_TTL) {
            expectedExpires.put(k, 1L);
          }
        });
        assertThat(expires).as(Seeds.describe(seed, "EXPIRE events per key, plans %s", plans))
            .isEqualTo(expectedExpires);
      }
    });
  }

  /** Schedules one key's writes and the instants around its expiry and purge. */
  private static void plan(Run run, String key, Plan plan) {
    SplittableRandom r = run.r();
    DefaultKvStore s = run.s();
    LwwModel model = run.model();
    long seed = run.seed();
    long putAt = ManualClock.T0 + r.nextInt(10_000);
    long ttl = 1 + r.nextInt(r.nextBoolean() ? 100 : 600_000);
    byte[] value = (key + "@" + putAt).getBytes(StandardCharsets.UTF_8);
    switch (plan) {
      case LOCAL_TTL, TTL_OVERWRITTEN -> {
        long expiry = putAt + ttl;
        run.schedule().at(putAt, () -> {
          Version v = s.put(key, value, WriteOptions.defaults().withTtl(Duration.ofMillis(ttl)));
          assertThat(v.physicalMillis()).as(Seeds.describe(seed, "stamp of %s", key))
              .isEqualTo(putAt);
          assertThat(s.getVersioned(key).orElseThrow().expiresAt().orElseThrow().toEpochMilli())
              .as(Seeds.describe(seed, "expiry of %s", key)).isEqualTo(expiry);
          model.apply(Mutation.put(key, value, v, expiry));
          run.log().add("put " + key + " " + v + " ttl " + ttl);
        });
        if (plan == Plan.LOCAL_TTL) {
          aroundDeath(run, key, putAt, expiry);
        } else {
          long overwriteAt = putAt + r.nextLong(ttl); // strictly before the expiry
          byte[] newer = (key + "@" + overwriteAt).getBytes(StandardCharsets.UTF_8);
          run.schedule().at(overwriteAt, () -> {
            Version v = s.put(key, newer);
            model.apply(Mutation.put(key, newer, v, 0));
            run.log().add("overwrite " + key + " " + v);
          });
          run.schedule().checkAt(expiry - 1);
          run.schedule().checkAt(expiry);
          run.schedule().checkAt(expiry + run.grace());
        }
      }
      case REMOTE_TTL -> {
        long expiry = putAt + ttl;
        Mutation m = Mutation.put(key, value, Version.of(putAt, r.nextInt(3), "peer"), expiry);
        run.schedule().at(putAt, () -> {
          assertThat(s.apply(m)).as(Seeds.describe(seed, "apply %s", m))
              .isEqualTo(ApplyResult.APPLIED);
          model.apply(m);
          run.log().add("apply " + m);
        });
        aroundDeath(run, key, putAt, expiry);
      }
      case DELETED -> {
        long deleteAt = putAt + 1 + r.nextInt(5_000);
        run.schedule().at(putAt, () -> {
          Version v = s.put(key, value);
          model.apply(Mutation.put(key, value, v, 0));
          run.log().add("put " + key + " " + v);
        });
        run.schedule().at(deleteAt, () -> {
          assertThat(s.delete(key)).as(Seeds.describe(seed, "delete of live %s", key)).isTrue();
          ChangeEvent e = run.events().get(run.events().size() - 1);
          assertThat(e.type()).as(Seeds.describe(seed, "event of delete of %s", key))
              .isEqualTo(ChangeEvent.Type.DELETE);
          assertThat(e.version().physicalMillis())
              .as(Seeds.describe(seed, "stamp of delete of %s", key)).isEqualTo(deleteAt);
          model.apply(Mutation.delete(key, e.version()));
          run.log().add("delete " + key + " " + e.version());
        });
        aroundDeath(run, key, putAt, deleteAt);
      }
      case PLAIN -> run.schedule().at(putAt, () -> {
        Version v = s.put(key, value);
        model.apply(Mutation.put(key, value, v, 0));
        run.log().add("put " + key + " " + v);
      });
      default -> throw new AssertionError(plan);
    }
  }

  /**
   * Checks one millisecond before and at the death and the purge deadline, and sends an older write
   * of the key at a random instant between death and deadline: it must be ignored.
   */
  private static void aroundDeath(Run run, String key, long putAt, long death) {
    long deadline = death + run.grace();
    run.lifetimes().put(key, new long[] {putAt, death, deadline});
    Schedule schedule = run.schedule();
    schedule.checkAt(death - 1);
    schedule.checkAt(death);
    schedule.checkAt(deadline - 1);
    schedule.checkAt(deadline);
    SplittableRandom r = run.r();
    long lateAt = death + r.nextLong(deadline - death);
    Version older = Version.of(putAt - 1 - r.nextInt(1_000), r.nextInt(3), "late");
    Mutation late = r.nextBoolean() ? Mutation.put(key, "late".getBytes(StandardCharsets.UTF_8),
        older, 0) : Mutation.delete(key, older);
    DefaultKvStore s = run.s();
    long seed = run.seed();
    schedule.at(lateAt, () -> {
      Digest before = s.digest();
      assertThat(s.apply(late)).as(Seeds.describe(seed, "older write %s at T0+%d before the "
          + "purge at T0+%d", late, lateAt - ManualClock.T0, deadline - ManualClock.T0))
          .isEqualTo(ApplyResult.IGNORED);
      assertThat(run.model().apply(late)).isEqualTo(ApplyResult.IGNORED);
      assertThat(s.digest()).as(Seeds.describe(seed, "digest after ignored %s", late))
          .isEqualTo(before);
      run.log().add("late " + late + " at T0+" + (lateAt - ManualClock.T0));
    });
  }
}
