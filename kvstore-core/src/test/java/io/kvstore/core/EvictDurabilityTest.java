package io.kvstore.core;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.kvstore.core.spi.ApplyResult;
import io.kvstore.core.spi.KeyVersion;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.ReplicaStore;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Evictions in a data directory: a restart (clean, or after a killed process) does not bring an
 * evicted entry back, a write after the eviction survives it, and snapshots and compaction keep
 * both true. Under SYNC and INTERVAL, on a store with a replicator (digest maintained per change).
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class EvictDurabilityTest {
  private static final int BUCKETS = 16;

  @TempDir
  Path tmp;

  /** How the first run ends. */
  enum Stop { CLOSE, CRASH }

  static Stream<Arguments> durabilitiesAndStops() {
    List<Arguments> out = new ArrayList<>();
    for (Durability d : List.of(Durability.SYNC, Durability.INTERVAL)) {
      for (Stop stop : Stop.values()) {
        out.add(Arguments.of(d, stop));
      }
    }
    return out.stream();
  }

  private DefaultKvStore open(ManualClock clock, Durability durability) {
    return (DefaultKvStore) Stores.builder("self", clock).dataDir(tmp.resolve("data"))
        .durability(durability).digestBuckets(BUCKETS)
        .replicator(config -> new Stores.Unwired(new Member("self", null, null, Member.Status.ALIVE)))
        .build();
  }

  private static void stop(DefaultKvStore s, Stop how) {
    if (how == Stop.CRASH) {
      s.crashForTest(); // a killed process: the page cache keeps what was copied, nothing is synced
    } else {
      s.close();
    }
  }

  private static byte[] utf8(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  private static Mutation remotePut(String key, String value, long millis, int logical) {
    return Mutation.put(key, utf8(value), Version.of(millis, logical, "peer"), 0);
  }

  @ParameterizedTest(name = "{0}, {1}")
  @MethodSource("durabilitiesAndStops")
  void restartAfterEvict_doesNotBringTheEvictedEntriesBack(Durability durability, Stop how) {
    ManualClock clock = new ManualClock();
    Map<String, Mutation> before;
    Stores.View viewBefore;
    DefaultKvStore s = open(clock, durability);
    ReplicaStore r = ReplicaViews.of(s);
    List<KeyVersion> handedOff = new ArrayList<>();
    for (int i = 0; i < 50; i++) {
      s.put("k" + i, "v" + i);
      if (i % 10 == 0) {
        s.delete("k" + i);
      }
      if (i % 2 == 0) {
        handedOff.add(KeyVersion.of(r.mutation("k" + i)));
      }
    }
    assertThat(r.evict(handedOff)).isEqualTo(25);
    before = Stores.rawState(r);
    viewBefore = Stores.view(s);
    stop(s, how);

    try (DefaultKvStore again = open(clock, durability)) {
      ReplicaStore r2 = ReplicaViews.of(again);
      assertThat(Stores.rawState(r2)).isEqualTo(before);
      assertThat(Stores.view(again)).isEqualTo(viewBefore);
      assertThat(again.size()).isEqualTo(25);
      assertThat(again.stats().tombstones()).isZero(); // the deleted ones were all even: evicted
      assertThat(r2.digest()).isEqualTo(Stores.digestOf(before.values(), BUCKETS));
    }
  }

  @ParameterizedTest(name = "{0}, {1}")
  @MethodSource("durabilitiesAndStops")
  void evictThenNewerWrites_restart_keepsTheNewerWrites(Durability durability, Stop how) {
    ManualClock clock = new ManualClock();
    DefaultKvStore s = open(clock, durability);
    ReplicaStore r = ReplicaViews.of(s);
    s.put("local", "old");
    r.apply(remotePut("remote", "old", clock.millis(), 0));
    assertThat(r.evict(List.of(KeyVersion.of(r.mutation("local")),
        KeyVersion.of(r.mutation("remote"))))).isEqualTo(2);
    clock.advance(10);
    Version local = s.put("local", "new");
    Mutation remote = remotePut("remote", "new", clock.millis(), 0);
    assertThat(r.apply(remote)).isEqualTo(ApplyResult.APPLIED);
    stop(s, how);

    try (DefaultKvStore again = open(clock, durability)) {
      ReplicaStore r2 = ReplicaViews.of(again);
      assertThat(again.getVersioned("local").orElseThrow().version()).isEqualTo(local);
      assertThat(again.getString("local")).hasValue("new");
      assertThat(r2.mutation("remote")).isEqualTo(remote);
    }
  }

  /**
   * Why replay applies an eviction in log order rather than as a floor over the whole replay: the
   * partition comes back to this node and its new owner hands the very same version back. A floor
   * ("drop anything not newer than an evicted version") would lose it at the next restart.
   */
  @ParameterizedTest(name = "{0}, {1}")
  @MethodSource("durabilitiesAndStops")
  void evictThenTheSameVersionHandedBack_restart_keepsIt(Durability durability, Stop how) {
    ManualClock clock = new ManualClock();
    DefaultKvStore s = open(clock, durability);
    ReplicaStore r = ReplicaViews.of(s);
    Mutation m = remotePut("k", "v", clock.millis(), 0);
    r.apply(m);
    r.evict(List.of(KeyVersion.of(m)));
    assertThat(r.apply(m)).isEqualTo(ApplyResult.APPLIED);
    Mutation older = remotePut("older", "late", clock.millis() - 5, 0);
    Mutation newest = remotePut("older", "first", clock.millis(), 1);
    r.apply(newest);
    r.evict(List.of(KeyVersion.of(newest)));
    assertThat(r.apply(older)).as("an older write on an evicted key applies, like on a new key")
        .isEqualTo(ApplyResult.APPLIED);
    stop(s, how);

    try (DefaultKvStore again = open(clock, durability)) {
      ReplicaStore r2 = ReplicaViews.of(again);
      assertThat(r2.mutation("k")).isEqualTo(m);
      assertThat(r2.mutation("older")).as("what the store held before the restart").isEqualTo(older);
    }
  }

  @ParameterizedTest(name = "{0}")
  @EnumSource(value = Durability.class, names = {"SYNC", "INTERVAL"})
  void snapshotAfterEvict_leavesTheKeyOut_andCompactionDropsTheEvictionRecords(
      Durability durability) throws IOException {
    ManualClock clock = new ManualClock();
    Path data = tmp.resolve("data");
    try (DefaultKvStore s = open(clock, durability)) {
      ReplicaStore r = ReplicaViews.of(s);
      s.put("gone", "1");
      s.put("kept", "2");
      r.evict(List.of(KeyVersion.of(r.mutation("gone"))));
      assertThat(typesAndKeys(files(data, ".seg")))
          .contains("EVICTED gone");
      s.storageForTest().snapshot();
      assertThat(typesAndKeys(files(data, ".snap"))).containsExactly("PUT kept");
      assertThat(typesAndKeys(files(data, ".seg")))
          .as("the segments before the snapshot are deleted with their eviction records")
          .isEmpty();
      // An eviction after the snapshot is in the segment after it.
      s.put("late", "3");
      r.evict(List.of(KeyVersion.of(r.mutation("kept"))));
      assertThat(typesAndKeys(files(data, ".seg"))).containsExactly("PUT late", "EVICTED kept");
    }
    try (DefaultKvStore again = open(clock, durability)) {
      assertThat(Stores.heldVersions(ReplicaViews.of(again)).keySet()).containsExactly("late");
      assertThat(again.storage().recoveredEntries()).as("1 snapshot entry, 2 log records")
          .isEqualTo(3);
      again.storageForTest().snapshot();
    }
    assertThat(typesAndKeys(files(data, ".snap"))).containsExactly("PUT late");
    try (DefaultKvStore again = open(clock, durability)) {
      assertThat(Stores.heldVersions(ReplicaViews.of(again)).keySet()).containsExactly("late");
    }
  }

  /**
   * Compaction triggered by size (segments rolled and deleted while evictions go on), then a
   * restart: exactly what the store held.
   */
  @Test
  void sizeTriggeredCompactionWhileEvicting_restartsWithExactlyWhatWasHeld() {
    ManualClock clock = new ManualClock();
    Path data = tmp.resolve("data");
    TreeMap<String, Mutation> before;
    try (DefaultKvStore s = (DefaultKvStore) Stores.builder("self", clock).dataDir(data)
        .durability(Durability.INTERVAL).digestBuckets(BUCKETS)
        .replicator(config -> new Stores.Unwired(new Member("self", null, null, Member.Status.ALIVE)))
        .storageInternals(64 << 10, 64 << 10, 2_000, FileIo.DEFAULT).build()) {
      ReplicaStore r = ReplicaViews.of(s);
      byte[] value = new byte[512];
      for (int round = 0; round < 40; round++) {
        List<KeyVersion> out = new ArrayList<>();
        for (int i = 0; i < 20; i++) {
          String key = "r" + round + "-" + i;
          s.put(key, value);
          if (i % 2 == 0) {
            out.add(KeyVersion.of(r.mutation(key)));
          }
        }
        r.evict(out);
        if (round % 8 == 3) { // the last rounds stay in the log, past the last snapshot
          s.storageForTest().snapshot();
        }
      }
      assertThat(s.storage().snapshots()).isPositive();
      before = Stores.rawState(r);
    }
    try (DefaultKvStore again = (DefaultKvStore) Stores.builder("self", clock).dataDir(data)
        .digestBuckets(BUCKETS)
        .replicator(config -> new Stores.Unwired(new Member("self", null, null, Member.Status.ALIVE)))
        .build()) {
      ReplicaStore r2 = ReplicaViews.of(again);
      assertThat(Stores.rawState(r2)).isEqualTo(before);
      assertThat(before).hasSize(400);
      assertThat(r2.digest()).isEqualTo(Stores.digestOf(before.values(), BUCKETS));
    }
  }

  /**
   * A store turned read-only by a failed sync still evicts in memory (its memory is what eviction is
   * for); the record cannot be written, so after the restart the entry is back exactly as it was:
   * non-owned data the engine hands off and evicts again.
   */
  @Test
  void aReadOnlyStore_evictsInMemory_andTheRestartBringsTheEntryBackUnchanged() {
    ManualClock clock = new ManualClock();
    FaultyFileIo io = new FaultyFileIo(11);
    Mutation kept;
    try (DefaultKvStore s = (DefaultKvStore) Stores.builder("self", clock)
        .dataDir(tmp.resolve("data")).durability(Durability.SYNC)
        .storageInternals(1 << 20, 1 << 20, 2_000, io).build()) {
      ReplicaStore r = ReplicaViews.of(s);
      s.put("k", "v");
      kept = r.mutation("k");
      io.failForces(1);
      assertThatThrownBy(() -> s.put("other", "x")).isInstanceOf(StorageException.class);
      assertThat(s.storage().writable()).isFalse();
      long size = s.size(); // "other" is in the map: a failed write is not rolled back

      assertThat(r.evict(List.of(KeyVersion.of(kept)))).isEqualTo(1);

      assertThat(r.mutation("k")).isNull();
      assertThat(s.size()).isEqualTo(size - 1);
    }
    try (DefaultKvStore again = open(clock, Durability.SYNC)) {
      assertThat(ReplicaViews.of(again).mutation("k")).isEqualTo(kept);
    }
  }

  /**
   * A power loss (unsynced pages dropped, torn, reordered) after a run of SYNC writes and evictions:
   * an eviction followed by an acknowledged SYNC write is kept (the write's force covered it); a later
   * one may be lost, and then the entry comes back exactly as evicted, never as anything else.
   */
  @ParameterizedTest(name = Seeds.NAME)
  @MethodSource("io.kvstore.core.Seeds#someSeeds")
  void powerLoss_keepsEvictionsBeforeAnAcknowledgedSyncWrite_andLosesLaterOnesCleanly(long seed) {
    Seeds.run(seed, r -> {
      ManualClock clock = new ManualClock();
      Path dir = tmp.resolve("p" + Long.toHexString(seed));
      FaultyFileIo io = new FaultyFileIo(r.nextLong());
      TreeMap<String, Mutation> evictedThenSynced = new TreeMap<>();
      TreeMap<String, Mutation> evictedLast = new TreeMap<>();
      TreeMap<String, Mutation> acknowledged = new TreeMap<>();
      DefaultKvStore s = (DefaultKvStore) Stores.builder("self", clock).dataDir(dir)
          .durability(Durability.SYNC).storageInternals(4096, 1 << 20, 2_000, io).build();
      ReplicaStore replica = ReplicaViews.of(s);
      int ops = 20 + r.nextInt(80);
      for (int i = 0; i < ops; i++) {
        String k = "k" + i;
        s.put(k, "v" + i); // SYNC: acknowledged once forced, with every record before it
        acknowledged.put(k, replica.mutation(k));
        evictedThenSynced.putAll(evictedLast);
        evictedLast.clear();
        for (int e = r.nextInt(3) == 0 ? 1 + r.nextInt(2) : 0; e > 0 && !acknowledged.isEmpty();
            e--) {
          String victim = Seeds.pick(r, new ArrayList<>(acknowledged.keySet()));
          Mutation m = acknowledged.remove(victim);
          assertThat(replica.evict(List.of(KeyVersion.of(m)))).isEqualTo(1);
          evictedLast.put(victim, m); // covered once the next acknowledged write is forced
        }
      }
      io.crash();
      s.crashForTest();
      try {
        io.losePower();
      } catch (IOException e) {
        throw new AssertionError(e);
      }
      try (DefaultKvStore again = (DefaultKvStore) Stores.builder("self", clock).dataDir(dir)
          .durability(Durability.SYNC).build()) {
        ReplicaStore r2 = ReplicaViews.of(again);
        for (var e : acknowledged.entrySet()) {
          assertThat(r2.mutation(e.getKey())).as(Seeds.describe(seed, "acknowledged %s",
              e.getKey())).isEqualTo(e.getValue());
        }
        for (String k : evictedThenSynced.keySet()) {
          assertThat(r2.mutation(k)).as(Seeds.describe(seed, "%s evicted before an "
              + "acknowledged SYNC write", k)).isNull();
        }
        for (var e : evictedLast.entrySet()) {
          Mutation back = r2.mutation(e.getKey());
          assertThat(back == null || back.equals(e.getValue())).as(Seeds.describe(seed,
              "%s evicted at the end: gone or exactly as evicted, not %s", e.getKey(), back))
              .isTrue();
        }
      }
    });
  }

  /** "TYPE key" of every record but headers and END, over the files in order. */
  private static List<String> typesAndKeys(List<Path> files) throws IOException {
    List<String> out = new ArrayList<>();
    for (Path f : files) {
      ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(f));
      Map<String, String> ids = RecordCodec.nodeIdTable();
      while (b.hasRemaining()) {
        RecordCodec.Record rec;
        try {
          rec = RecordCodec.decode(b, ids);
        } catch (RecordCodec.DamageException e) {
          break; // the zero-filled rest of a segment
        }
        switch (rec.type) {
          case RecordCodec.PUT -> out.add("PUT " + rec.key);
          case RecordCodec.DELETE -> out.add("DELETE " + rec.key);
          case RecordCodec.EXPIRED -> out.add("EXPIRED " + rec.key);
          case RecordCodec.EVICTED -> out.add("EVICTED " + rec.key);
          default -> { }
        }
      }
    }
    return out;
  }

  private static List<Path> files(Path dir, String suffix) throws IOException {
    try (Stream<Path> list = Files.list(dir)) {
      return list.filter(p -> p.getFileName().toString().endsWith(suffix)).sorted().toList();
    }
  }
}
