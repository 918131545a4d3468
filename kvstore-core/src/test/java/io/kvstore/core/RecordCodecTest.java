package io.kvstore.core;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The record codec of the data directory: every truncation and every single-bit flip of a record,
 * and of a whole snapshot file, is detected.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class RecordCodecTest {
  private static final long TS = Version.pack(ManualClock.T0, 7);

  private static List<ByteBuffer> samples() {
    byte[] v = "value-ü".getBytes(StandardCharsets.UTF_8);
    return List.of(
        RecordCodec.encode("k", Entry.create(v, TS, "node-1", 0, 0)),
        RecordCodec.encode("ключ", Entry.create(v, TS, "n", ManualClock.T0 + 5_000, 0)),
        RecordCodec.encode("gone", Entry.create(null, TS, "node-1", 0, 0)),
        RecordCodec.encode("expired", Entry.create(null, TS, "node-2", ManualClock.T0 + 1, 12345)),
        RecordCodec.encode("empty", Entry.create(new byte[0], TS, "node-1", 0, 0)),
        RecordCodec.eviction("handed-off-ü", Entry.create(v, TS, "node-3", 0, 0)),
        RecordCodec.header(RecordCodec.KIND_SEGMENT, 42),
        RecordCodec.end(3),
        RecordCodec.clock(TS, ManualClock.T0));
  }

  private static byte[] bytes(ByteBuffer b) {
    byte[] out = new byte[b.remaining()];
    b.duplicate().get(out);
    return out;
  }

  @Test
  void encodeThenDecode_givesTheSameEntry() throws Exception {
    byte[] v = {1, 2, 3};
    Entry put = Entry.create(v, TS, "node-1", ManualClock.T0 + 9, 0);
    RecordCodec.Record r = RecordCodec.decode(RecordCodec.encode("k", put), RecordCodec.nodeIdTable());
    assertThat(r.type).isEqualTo(RecordCodec.PUT);
    assertThat(r.key).isEqualTo("k");
    assertThat(r.entry.value).containsExactly(1, 2, 3);
    assertThat(r.entry.timestamp).isEqualTo(TS);
    assertThat(r.entry.nodeId).isEqualTo("node-1");
    assertThat(r.entry.expiresAt()).isEqualTo(ManualClock.T0 + 9);

    Entry expired = put.expired();
    r = RecordCodec.decode(RecordCodec.encode("k", expired), RecordCodec.nodeIdTable());
    assertThat(r.type).isEqualTo(RecordCodec.EXPIRED);
    assertThat(r.entry.value).isNull();
    assertThat(r.entry.fingerprint()).isEqualTo(put.fingerprint());
  }

  @Test
  void evictionRecord_decodesToTheKeyAndTheVersionItRemoves() throws Exception {
    Entry evicted = Entry.create(new byte[] {9}, TS, "node-3", ManualClock.T0 + 9, 0);
    RecordCodec.Record r = RecordCodec.decode(RecordCodec.eviction("ключ", evicted),
        RecordCodec.nodeIdTable());
    assertThat(r.type).isEqualTo(RecordCodec.EVICTED);
    assertThat(r.key).isEqualTo("ключ");
    assertThat(r.evictedTimestamp).isEqualTo(TS);
    assertThat(r.evictedNodeId).isEqualTo("node-3");
    assertThat(r.entry).as("an eviction is not an entry").isNull();
  }

  @Test
  void everyTruncation_isDetectedAsShort() {
    for (ByteBuffer sample : samples()) {
      byte[] full = bytes(sample);
      for (int len = 0; len < full.length; len++) {
        ByteBuffer cut = ByteBuffer.wrap(full, 0, len).slice();
        int l = len;
        assertThatThrownBy(() -> RecordCodec.decode(cut, RecordCodec.nodeIdTable()))
            .as("record of %d bytes cut to %d", full.length, l)
            .isInstanceOf(RecordCodec.DamageException.class);
        assertThat(cut.position()).isZero();
      }
    }
  }

  @Test
  void everySingleBitFlip_isDetected() {
    for (ByteBuffer sample : samples()) {
      byte[] full = bytes(sample);
      for (int bit = 0; bit < full.length * 8; bit++) {
        byte[] flipped = full.clone();
        flipped[bit / 8] ^= (byte) (1 << (bit % 8));
        int b = bit;
        assertThatThrownBy(() -> RecordCodec.decode(ByteBuffer.wrap(flipped),
            RecordCodec.nodeIdTable()))
            .as("bit %d of a %d-byte record", b, full.length)
            .isInstanceOf(RecordCodec.DamageException.class);
      }
    }
  }

  @Test
  void zeroFilledBytes_readAsAZeroTail() {
    assertThatThrownBy(() -> RecordCodec.decode(ByteBuffer.allocate(64), RecordCodec.nodeIdTable()))
        .isInstanceOfSatisfying(RecordCodec.DamageException.class,
            e -> assertThat(e.damage).isEqualTo(RecordCodec.Damage.ZERO));
  }

  /** A snapshot file with three entries: every truncation and bit flip makes recovery refuse. */
  @Test
  void snapshotFile_everyTruncationAndBitFlip_isRefused(@TempDir Path tmp) throws IOException {
    Path dir = tmp.resolve("d");
    ManualClock clock = new ManualClock();
    try (KvStore s = Stores.builder("n1", clock).dataDir(dir).build()) {
      s.put("a", "1");
      s.put("b", "2");
      s.delete("a");
      s.put("c", "3".getBytes(StandardCharsets.UTF_8), WriteOptions.defaults().withTtl(java.time.Duration.ofHours(1)));
      ((DefaultKvStore) s).storageForTest().snapshot();
    }
    Path snap;
    try (var files = Files.list(dir)) {
      snap = files.filter(p -> p.getFileName().toString().endsWith(".snap")).findFirst().orElseThrow();
    }
    byte[] good = Files.readAllBytes(snap);
    // The intact copy recovers.
    try (KvStore s = Stores.builder("n1", clock).dataDir(dir).build()) {
      assertThat(s.getString("b")).hasValue("2");
      assertThat(s.getString("a")).isEmpty();
      assertThat(s.getString("c")).hasValue("3");
    }
    int cases = 0;
    for (int len = 0; len < good.length; len++) {
      Files.write(snap, java.util.Arrays.copyOf(good, len));
      assertRefused(dir, clock, snap, "cut to " + len);
      cases++;
    }
    for (int bit = 0; bit < good.length * 8; bit += 3) { // a third of the bits: enough, and fast
      byte[] flipped = good.clone();
      flipped[bit / 8] ^= (byte) (1 << (bit % 8));
      Files.write(snap, flipped);
      assertRefused(dir, clock, snap, "bit " + bit + " flipped");
      cases++;
    }
    assertThat(cases).isGreaterThan(good.length);
    Files.write(snap, good);
  }

  private static void assertRefused(Path dir, ManualClock clock, Path snap, String what) {
    assertThatThrownBy(() -> Stores.builder("n1", clock).dataDir(dir).build().close())
        .as("snapshot %s", what)
        .isInstanceOf(StorageException.class)
        .hasMessageContaining(snap.getFileName().toString())
        .hasMessageContaining("offset");
  }

  @Test
  void encodingIntoAReusedScratchBuffer_givesTheSameBytes_andALargerRecordItsOwnBuffer() {
    ByteBuffer scratch = ByteBuffer.allocate(256);
    byte[] big = new byte[1000];
    big[999] = 7;
    List<Entry> entries = List.of(
        Entry.create("a-longer-value".getBytes(StandardCharsets.UTF_8), TS, "node-1", 0, 0),
        Entry.create(null, TS, "node-2", 0, 0), // shorter than the one before: no stale tail
        Entry.create(new byte[] {1}, TS, "n", ManualClock.T0 + 5_000, 0),
        Entry.create(big, TS, "node-1", 0, 0)); // does not fit the scratch
    for (Entry e : entries) {
      ByteBuffer fresh = RecordCodec.encode("ключ", e);
      ByteBuffer reused = RecordCodec.encode("ключ", e, scratch);
      assertThat(reused).isEqualTo(fresh); // compares the remaining bytes
      assertThat(reused == scratch).isEqualTo(fresh.remaining() <= scratch.capacity());
    }
  }
}
