package io.kvstore.core;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

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
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.TreeSet;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Compaction by shard ({@link LogStorage}'s class comment): a step writes one shard's snapshot, a
 * round of steps lets the log before it go, and recovery from any mix of shard snapshots (a round
 * half done, a whole-store snapshot of layout 1 not yet replaced everywhere) plus the log holds
 * exactly what the store held, evictions and handbacks included.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ShardSnapshotTest {
  private static final int BUCKETS = 16;
  private static final Pattern SHARD_FILE = Pattern.compile("snap-(\\d{16})-(\\d)\\.snap");

  @TempDir
  Path tmp;

  private Path data() {
    return tmp.resolve("data");
  }

  private DefaultKvStore open(ManualClock clock, long segmentBytes, long compactBytes) {
    return (DefaultKvStore) Stores.builder("self", clock).dataDir(data())
        .durability(Durability.INTERVAL).digestBuckets(BUCKETS)
        .replicator(config -> new Stores.Unwired(new Member("self", null, null, Member.Status.ALIVE)))
        .storageInternals(segmentBytes, compactBytes, 2_000, FileIo.DEFAULT).build();
  }

  /** A store that compacts only when the test says so (thresholds far above what it writes). */
  private DefaultKvStore open(ManualClock clock) {
    return open(clock, 256 << 10, 1L << 40);
  }

  private List<Path> files(String suffix) throws IOException {
    try (Stream<Path> s = Files.list(data())) {
      return s.filter(p -> p.getFileName().toString().endsWith(suffix)).sorted().toList();
    }
  }

  /** The keys in a snapshot or segment file. */
  private static List<String> keysIn(Path file) throws IOException {
    return entriesIn(file).stream().map(r -> r.key).toList();
  }

  /**
   * The entry records of a snapshot or segment file (a segment's preallocated rest is zeros: the
   * end).
   */
  private static List<RecordCodec.Record> entriesIn(Path file) throws IOException {
    List<RecordCodec.Record> out = new ArrayList<>();
    ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(file));
    Map<String, String> ids = RecordCodec.nodeIdTable();
    while (b.hasRemaining()) {
      RecordCodec.Record r;
      try {
        r = RecordCodec.decode(b, ids);
      } catch (RecordCodec.DamageException e) {
        if (e.damage == RecordCodec.Damage.ZERO) {
          break;
        }
        throw new AssertionError(file + ": " + e.getMessage(), e);
      }
      if (r.entry != null) {
        out.add(r);
      }
    }
    return out;
  }

  @Test
  void aStep_writesOneShard_andARoundOfSteps_deletesTheLogBeforeIt() throws IOException {
    ManualClock clock = new ManualClock();
    TreeMap<String, Mutation> before;
    try (DefaultKvStore s = open(clock)) {
      for (int i = 0; i < 400; i++) {
        s.put("k" + i, "v" + i);
      }
      s.storageForTest().compactionStep();
      List<Path> snaps = files(".snap");
      assertThat(snaps).as("one step, one shard").hasSize(1);
      Matcher m = SHARD_FILE.matcher(snaps.get(0).getFileName().toString());
      assertThat(m.matches()).as("name %s", snaps.get(0)).isTrue();
      int shard = Integer.parseInt(m.group(2));
      List<String> keys = keysIn(snaps.get(0));
      assertThat(keys).as("the keys of its shard, every one of them")
          .allMatch(k -> LogStorage.shardOf(k) == shard)
          .hasSize((int) java.util.stream.IntStream.range(0, 400)
              .filter(i -> LogStorage.shardOf("k" + i) == shard).count());
      assertThat(files(".seg").get(0).getFileName().toString())
          .as("the other shards still need the log from its start")
          .isEqualTo("log-0000000000000001.seg");

      for (int i = 1; i < LogStorage.SHARDS; i++) {
        s.put("late" + i, "x"); // writes between the steps: each lands in the next step's segment
        s.storageForTest().compactionStep();
      }
      TreeSet<Integer> shards = new TreeSet<>();
      long oldest = Long.MAX_VALUE;
      for (Path p : files(".snap")) {
        Matcher f = SHARD_FILE.matcher(p.getFileName().toString());
        assertThat(f.matches()).as("name %s", p).isTrue();
        shards.add(Integer.parseInt(f.group(2)));
        oldest = Math.min(oldest, Long.parseLong(f.group(1)));
      }
      assertThat(shards).as("a round: one snapshot per shard").hasSize(LogStorage.SHARDS);
      assertThat(files(".seg").get(0).getFileName().toString())
          .as("the log starts at the oldest shard snapshot")
          .isEqualTo(String.format("log-%016d.seg", oldest));
      // Retired segments are cut to their data (no preallocated rest, no zeros written ahead).
      await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> {
        List<Path> segs = files(".seg");
        for (Path p : segs.subList(0, segs.size() - 1)) {
          assertThat(Files.size(p)).as("length of retired %s", p).isEqualTo(dataBytes(p));
        }
      });
      before = Stores.rawState(ReplicaViews.of(s));
    }
    try (DefaultKvStore again = open(clock)) {
      assertThat(Stores.rawState(ReplicaViews.of(again))).isEqualTo(before);
      assertThat(again.getString("late3")).hasValue("x");
    }
  }

  static Stream<Long> seeds() {
    return Seeds.fewSeeds(); // -Dkvstore.seeds=K runs more
  }

  /**
   * Random writes, deletes, remote writes, evictions and handbacks of the evicted versions,
   * interleaved with single compaction steps (so rounds are left half done) and restarts (clean, or
   * a killed process): after each restart the store holds exactly what it held before.
   */
  @ParameterizedTest(name = Seeds.NAME)
  @MethodSource("seeds")
  void stepsEvictionsAndRestarts_inAnyOrder_recoverExactlyWhatWasHeld(long seed) {
    SplittableRandom random = new SplittableRandom(seed);
    ManualClock clock = new ManualClock();
    DefaultKvStore s = open(clock);
    List<Mutation> evicted = new ArrayList<>();
    try {
      for (int op = 0; op < 400; op++) {
        ReplicaStore r = ReplicaViews.of(s);
        String key = "k" + random.nextInt(40);
        int what = random.nextInt(100);
        clock.advance(random.nextInt(3));
        if (what < 35) {
          s.put(key, "v" + op);
        } else if (what < 45) {
          s.delete(key);
        } else if (what < 60) {
          r.apply(Mutation.put(key, ("r" + op).getBytes(StandardCharsets.UTF_8),
              Version.of(clock.millis() + random.nextInt(5) - 2, random.nextInt(4), "peer"), 0));
        } else if (what < 72) {
          Mutation m = r.mutation(key);
          if (m != null && r.evict(List.of(KeyVersion.of(m))) == 1) {
            evicted.add(m);
          }
        } else if (what < 82) {
          if (!evicted.isEmpty()) { // the same version handed back, as after a move back
            r.apply(evicted.get(random.nextInt(evicted.size())));
          }
        } else if (what < 90) {
          s.storageForTest().compactionStep();
        } else {
          TreeMap<String, Mutation> before = Stores.rawState(r);
          if (random.nextBoolean()) {
            s.close();
          } else {
            s.crashForTest();
          }
          s = open(clock);
          assertThat(Stores.rawState(ReplicaViews.of(s)))
              .as(Seeds.describe(seed, "state after the restart at op %d", op)).isEqualTo(before);
          assertThat(ReplicaViews.of(s).digest())
              .as(Seeds.describe(seed, "digest after the restart at op %d", op))
              .isEqualTo(Stores.digestOf(before.values(), BUCKETS));
        }
      }
    } finally {
      s.close();
    }
  }

  /**
   * Size-triggered steps under overwrites: the log is kept for about one round, so the files stay
   * within a bound near twice the snapshots (a whole-store snapshot kept the log since the last one
   * plus both snapshots while writing), and a restart holds the same.
   */
  @Test
  void overwritesWithSizeTriggeredSteps_keepTheFilesBounded_andRecoverTheSame() throws Exception {
    ManualClock clock = new ManualClock();
    TreeMap<String, Mutation> before;
    long maxBytes = 0;
    long live;
    try (DefaultKvStore s = open(clock, 64 << 10, 64 << 10)) {
      byte[] value = new byte[200];
      for (int round = 0; round < 60; round++) {
        for (int i = 0; i < 300; i++) {
          value[0] = (byte) round;
          s.put("key-" + i, value);
          if (i % 50 == 0) {
            s.storageForTest().compactIfDue(); // what the compaction thread does, not left to its timing
          }
        }
        long bytes = 0; // the compaction thread may delete a file between the listing and the read
        for (Path p : files(".snap")) {
          bytes += dataBytes(p);
        }
        for (Path p : files(".seg")) {
          bytes += dataBytes(p);
        }
        maxBytes = Math.max(maxBytes, bytes);
      }
      live = 300L * ("key-000".length() + 200);
      assertThat(s.storage().snapshots()).as("steps run").isGreaterThan(LogStorage.SHARDS * 2L);
      before = Stores.rawState(ReplicaViews.of(s));
    }
    // 60 rounds of ~64 KiB each were written; compaction keeps a few rounds' worth at most.
    assertThat(maxBytes).as("snapshots + used log at the worst sample, against %d B live", live)
        .isLessThan(6 * live);
    try (DefaultKvStore again = open(clock)) {
      assertThat(Stores.rawState(ReplicaViews.of(again))).isEqualTo(before);
    }
  }

  /**
   * Back-pressure: with compaction held up, writes run until the log kept passes its limit; from
   * then each write waits for compaction, but no longer than its bound; once compaction runs again
   * it catches up and writes stop waiting.
   */
  @Test
  void writesOutrunningAHeldUpCompaction_waitForIt_boundedEach_untilItCatchesUp() throws Exception {
    ManualClock clock = new ManualClock();
    CountDownLatch release = new CountDownLatch(1);
    LogStorage.beforeStepForTest = () -> {
      try {
        release.await(30, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    };
    try (DefaultKvStore s = open(clock, 64 << 10, 64 << 10)) {
      byte[] value = new byte[200];
      int i = 0;
      while (s.storage().stalledWrites() == 0 && i < 20_000) {
        s.put("k" + (i++ % 300), value);
      }
      assertThat(s.storage().stalledWrites()).as("a write waited, after %d writes", i).isPositive();
      assertThat((long) i * 230).as("bytes logged before the first wait: more than a round")
          .isGreaterThan(64 << 10);
      long t0 = System.nanoTime();
      s.put("while-held", value);
      long waited = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
      assertThat(waited).as("a write waits for a held-up compaction, up to its bound (50 ms)")
          .isBetween(45L, 5_000L);

      release.countDown();
      await().atMost(Duration.ofSeconds(20)).until(() -> {
        long before = s.storage().stalledWrites();
        s.put("after", value);
        return s.storage().stalledWrites() == before;
      });
      assertThat(s.getString("while-held")).isPresent();
    } finally {
      LogStorage.beforeStepForTest = null;
      release.countDown();
    }
  }

  /** A file's bytes up to its zero tail (segments are preallocated); 0 if it is gone. */
  private static long dataBytes(Path segment) throws IOException {
    byte[] b;
    try {
      b = Files.readAllBytes(segment);
    } catch (java.nio.file.NoSuchFileException e) {
      return 0;
    }
    int end = b.length;
    while (end > 0 && b[end - 1] == 0) {
      end--;
    }
    return end;
  }

  /**
   * A directory of layout 1 (one snapshot of the whole store, manifest format 1) is read as every
   * shard's snapshot, upgraded to format 2 at once, and its whole snapshot deleted only once every
   * shard has a newer one; with steps half done in between, restarts still hold the same.
   */
  @Test
  void aLayoutOneDirectory_isRead_upgraded_andReplacedShardByShard() throws IOException {
    ManualClock clock = new ManualClock();
    TreeMap<String, Mutation> before;
    long wholeSeq;
    try (DefaultKvStore s = open(clock)) {
      ReplicaStore r = ReplicaViews.of(s);
      for (int i = 0; i < 200; i++) {
        s.put("k" + i, "v" + i);
      }
      r.evict(List.of(KeyVersion.of(r.mutation("k7"))));
      s.storageForTest().snapshot(); // every shard, back to back: together, one whole snapshot
      for (int i = 0; i < 50; i++) {
        s.put("k" + i, "after-" + i); // in the log after the snapshot
      }
      s.delete("k3");
      before = Stores.rawState(r);
    }
    wholeSeq = toLayoutOne();
    assertThat(files(".snap")).extracting(p -> p.getFileName().toString())
        .containsExactly(String.format("snap-%016d.snap", wholeSeq));

    DefaultKvStore s = open(clock);
    try {
      assertThat(Stores.rawState(ReplicaViews.of(s))).isEqualTo(before);
      assertThat(Files.readString(data().resolve("MANIFEST"))).contains("format=2");
      for (int step = 0; step < LogStorage.SHARDS - 1; step++) {
        s.put("k" + (100 + step), "step-" + step);
        s.storageForTest().compactionStep();
        assertThat(files(".snap")).as("the whole snapshot, while a shard still needs it")
            .contains(data().resolve(String.format("snap-%016d.snap", wholeSeq)));
        if (step == 2) {
          before = Stores.rawState(ReplicaViews.of(s));
          s.crashForTest();
          try (DefaultKvStore mid = open(clock)) {
            assertThat(Stores.rawState(ReplicaViews.of(mid)))
                .as("whole snapshot for some shards, shard snapshots for others").isEqualTo(before);
          }
          s = open(clock);
        }
      }
      s.storageForTest().compactionStep();
      assertThat(files(".snap")).as("every shard has a newer snapshot").hasSize(LogStorage.SHARDS)
          .noneMatch(p -> p.getFileName().toString().equals(
              String.format("snap-%016d.snap", wholeSeq)));
      before = Stores.rawState(ReplicaViews.of(s));
    } finally {
      s.close();
    }
    try (DefaultKvStore again = open(clock)) {
      assertThat(Stores.rawState(ReplicaViews.of(again))).isEqualTo(before);
    }
  }

  /**
   * Rewrites the directory as layout 1 would have left it: the shard snapshots of one back-to-back
   * round (no write between its steps) merged into one whole snapshot at the last step's sequence,
   * the empty segments of the round deleted, the manifest at format 1. Returns that sequence.
   */
  private long toLayoutOne() throws IOException {
    long seq = 0;
    for (Path p : files(".snap")) {
      Matcher m = SHARD_FILE.matcher(p.getFileName().toString());
      assertThat(m.matches()).isTrue();
      seq = Math.max(seq, Long.parseLong(m.group(1)));
    }
    ByteBuffer out = ByteBuffer.allocate(1 << 22);
    out.put(RecordCodec.header(RecordCodec.KIND_SNAPSHOT, seq));
    long count = 0;
    for (Path p : files(".snap")) {
      for (RecordCodec.Record r : entriesIn(p)) {
        out.put(RecordCodec.encode(r.key, r.entry));
        count++;
      }
      Files.delete(p);
    }
    out.put(RecordCodec.end(count)).flip();
    byte[] whole = new byte[out.remaining()];
    out.get(whole);
    Files.write(data().resolve(String.format("snap-%016d.snap", seq)), whole);
    for (Path p : files(".seg")) {
      if (p.getFileName().toString().compareTo(String.format("log-%016d.seg", seq)) < 0) {
        assertThat(keysIn(p)).as("a segment of the round holds nothing").isEmpty();
        Files.delete(p);
      }
    }
    Path manifest = data().resolve("MANIFEST");
    Files.writeString(manifest, Files.readString(manifest).replace("format=2", "format=1"));
    return seq;
  }

  /** 100 keys, then a compaction of every shard: a directory with a snapshot per shard. */
  private void writeAndCompact(ManualClock clock) {
    try (DefaultKvStore s = open(clock)) {
      for (int i = 0; i < 100; i++) {
        s.put("k" + i, "v" + i);
      }
      s.storageForTest().snapshot();
    }
  }

  @Test
  void aDamagedShardSnapshot_refusesToStart_namingTheFile() throws IOException {
    ManualClock clock = new ManualClock();
    writeAndCompact(clock);
    Path victim = files(".snap").get(3);
    byte[] b = Files.readAllBytes(victim);
    b[b.length / 2] ^= 0x04;
    Files.write(victim, b);
    assertThatThrownBy(() -> open(clock).close()).isInstanceOf(StorageException.class)
        .hasMessageContaining(victim.getFileName().toString());
  }

  @Test
  void aShardSnapshotHoldingAnotherShardsKeys_isCorruption() throws IOException {
    ManualClock clock = new ManualClock();
    writeAndCompact(clock);
    List<Path> snaps = files(".snap");
    Path three = snaps.stream().filter(p -> p.getFileName().toString().endsWith("-3.snap"))
        .findFirst().orElseThrow();
    Path four = snaps.stream().filter(p -> p.getFileName().toString().endsWith("-4.snap"))
        .findFirst().orElseThrow();
    Files.delete(four);
    Path misnamed = four.resolveSibling(three.getFileName().toString().replace("-3.snap", "-4.snap"));
    Files.copy(three, misnamed);
    assertThatThrownBy(() -> open(clock).close()).isInstanceOf(StorageException.class)
        .hasMessageContaining(misnamed.getFileName().toString())
        .hasMessageContaining("an entry of shard 3 in a snapshot of shard 4");
  }

  @Test
  void aManifestOfAnUnknownFormat_isRefusedNamingTheFormats() throws IOException {
    ManualClock clock = new ManualClock();
    open(clock).close();
    Path manifest = data().resolve("MANIFEST");
    Files.writeString(manifest, Files.readString(manifest).replace("format=2", "format=3"));
    assertThatThrownBy(() -> open(clock).close()).isInstanceOf(StorageException.class)
        .hasMessageContaining("has format 3").hasMessageContaining("reads formats 1 and 2");
  }
}
