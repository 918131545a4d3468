package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.kvstore.core.spi.Digest;
import io.kvstore.core.spi.KeyVersion;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.Version;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.Unpooled;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.stream.LongStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

@Timeout(value = 60, unit = TimeUnit.SECONDS)
class FramesTest {
  private static final ByteBufAllocator ALLOC = ByteBufAllocator.DEFAULT;
  private static final Version V = Version.of(1_700_000_000_000L, 7, "node-1");

  static LongStream seeds() {
    String fixed = System.getProperty("kvstore.seed");
    return fixed != null ? LongStream.of(Long.parseLong(fixed))
        : LongStream.range(0, 8).map(i -> new Random().nextLong());
  }

  private static Frames.Frame roundTrip(ByteBuf frame) {
    try {
      return Frames.decode(frame);
    } finally {
      frame.release();
    }
  }

  private static List<Mutation> sampleMutations() {
    return List.of(
        Mutation.put("a", new byte[] {1, 2, 3}, V, 0),
        Mutation.put("ключ/日本/\uD83D\uDE00", new byte[0], V, 1_700_000_100_000L),
        Mutation.delete("gone", Version.of(5, "n:2")),
        Mutation.expired("ttl", V, 1_700_000_000_500L, 0x9abcdef0));
  }

  @Test
  void mutations_roundTrip_everyKind() {
    List<Mutation> ms = sampleMutations();
    int bytes = ms.stream().mapToInt(Frames::mutationSize).sum();
    ByteBuf buf = Frames.mutations(ALLOC, 42, Frames.FLAG_ANTI_ENTROPY, ms, bytes);
    assertThat(buf.readableBytes()).isEqualTo(1 + 8 + 1 + 1 + bytes);
    Frames.MutationBatch batch = (Frames.MutationBatch) roundTrip(buf);
    assertThat(batch.batchId()).isEqualTo(42);
    assertThat(batch.isAntiEntropy()).isTrue();
    assertThat(batch.mutations()).isEqualTo(ms);
  }

  @Test
  void handshakeFrames_roundTrip() {
    byte[] nonce = new byte[Frames.NONCE_BYTES];
    nonce[3] = 9;
    Frames.Hello hello = (Frames.Hello) roundTrip(Frames.hello(ALLOC, "prod", "n1", nonce));
    assertThat(hello.magic()).isEqualTo(Frames.MAGIC);
    assertThat(hello.minVersion()).isEqualTo(Frames.MIN_PROTOCOL_VERSION);
    assertThat(hello.maxVersion()).isEqualTo(Frames.PROTOCOL_VERSION);
    assertThat(hello.clusterName()).isEqualTo("prod");
    assertThat(hello.nodeId()).isEqualTo("n1");
    assertThat(hello.nonce()).isEqualTo(nonce);
    assertThat(hello.authScheme()).isEqualTo(Frames.AUTH_NONE);
    assertThat(hello.auth()).isEmpty();

    Frames.HelloOk ok = (Frames.HelloOk) roundTrip(Frames.helloOk(ALLOC, 1, "n2", nonce));
    assertThat(ok.version()).isEqualTo(1);
    assertThat(ok.nodeId()).isEqualTo("n2");

    Frames.HelloReject reject = (Frames.HelloReject) roundTrip(Frames.helloReject(ALLOC,
        Frames.RejectReason.CLUSTER_MISMATCH, "x".repeat(5000)));
    assertThat(reject.reason()).isEqualTo(Frames.RejectReason.CLUSTER_MISMATCH);
    assertThat(reject.message()).hasSize(300);
  }

  @Test
  void ack_roundTrip_keepsHeldBits() {
    BitSet held = new BitSet();
    held.set(0);
    held.set(9);
    Frames.Ack ack = (Frames.Ack) roundTrip(Frames.ack(ALLOC, 7, 10, held));
    assertThat(ack.batchId()).isEqualTo(7);
    assertThat(ack.count()).isEqualTo(10);
    assertThat(ack.held()).isEqualTo(held);
  }

  @Test
  void antiEntropyFrames_roundTrip() {
    long[] buckets = {1, 2, 3, 4, 5, 6, 7, 8};
    Frames.AeDigest d = (Frames.AeDigest) roundTrip(Frames.aeDigest(ALLOC, 3, 1, buckets, 4, 4, true));
    assertThat(d.bucketCount()).isEqualTo(8);
    assertThat(d.from()).isEqualTo(4);
    assertThat(d.hashes()).containsExactly(5, 6, 7, 8);
    assertThat(d.last()).isTrue();

    BitSet covered = new BitSet();
    covered.set(1);
    covered.set(7);
    BitSet leftOut = new BitSet();
    leftOut.set(2);
    Frames.AeDiff diff = (Frames.AeDiff) roundTrip(Frames.aeDiff(ALLOC, 3, 8, true, covered,
        leftOut));
    assertThat(diff.covered()).isEqualTo(covered);
    assertThat(diff.more()).isTrue();
    assertThat(diff.leftOut()).isEqualTo(leftOut);
    assertThat(((Frames.AeDiff) roundTrip(Frames.aeDiff(ALLOC, 3, 8, false, covered))).leftOut()
        .isEmpty()).isTrue();

    List<KeyVersion> kvs = List.of(new KeyVersion("k1", V, 42),
        new KeyVersion("k\u00e9", V, Long.MIN_VALUE), KeyVersion.of(Mutation.delete("k2", V)));
    int kvBytes = kvs.stream().mapToInt(Frames::keyVersionSize).sum();
    ByteBuf keysFrame = Frames.aeKeys(ALLOC, 3, false, kvs, kvBytes);
    assertThat(keysFrame.readableBytes()).isEqualTo(1 + 8 + 1 + 1 + kvBytes);
    Frames.AeKeys keys = (Frames.AeKeys) roundTrip(keysFrame);
    assertThat(keys.keys()).isEqualTo(kvs);
    assertThat(keys.last()).isFalse();

    Frames.AePull pull = (Frames.AePull) roundTrip(Frames.aePull(ALLOC, 3, List.of("a", "b"), 4));
    assertThat(pull.keys()).containsExactly("a", "b");

    List<Mutation> ms = sampleMutations();
    Frames.AePullResponse resp = (Frames.AePullResponse) roundTrip(Frames.aePullResponse(ALLOC, 3, 9,
        ms, ms.stream().mapToInt(Frames::mutationSize).sum()));
    assertThat(resp.processed()).isEqualTo(9);
    assertThat(resp.mutations()).isEqualTo(ms);

    Frames.AeAbort abort = (Frames.AeAbort) roundTrip(Frames.aeAbort(ALLOC, 3, "no"));
    assertThat(abort.message()).isEqualTo("no");
  }

  @Test
  void requestFrames_roundTrip_andEveryTruncationIsMalformed() {
    List<io.kvstore.core.spi.WriteRequest> requests = List.of(
        new io.kvstore.core.spi.WriteRequest("k\u00e9", new byte[] {1, 2}, 60_000, true, null,
            io.kvstore.core.WriteConcern.QUORUM, 2_000),
        new io.kvstore.core.spi.WriteRequest("k", null, 0, false, V,
            io.kvstore.core.WriteConcern.ALL, 1),
        new io.kvstore.core.spi.WriteRequest("k", new byte[0], 0, false, V,
            io.kvstore.core.WriteConcern.ONE, 5));
    List<ByteBuf> frames = new ArrayList<>();
    BitSet someBuckets = new BitSet();
    someBuckets.set(3);
    frames.add(Frames.aeDiff(ALLOC, 3, 8, true, someBuckets, someBuckets));
    for (io.kvstore.core.spi.WriteRequest r : requests) {
      Frames.Forward f = (Frames.Forward) roundTrip(Frames.forward(ALLOC, 9, r));
      assertThat(f.requestId()).isEqualTo(9);
      assertThat(f.request()).isEqualTo(r);
      frames.add(Frames.forward(ALLOC, 9, r));
    }
    Frames.ForwardResult ok = (Frames.ForwardResult) roundTrip(Frames.forwardResult(ALLOC, 4,
        Frames.FORWARD_OK, V, true, 0, 0, ""));
    assertThat(ok).isEqualTo(new Frames.ForwardResult(4, Frames.FORWARD_OK, V, true, 0, 0, ""));
    Frames.ForwardResult concern = (Frames.ForwardResult) roundTrip(Frames.forwardResult(ALLOC, 5,
        Frames.FORWARD_CONCERN_FAILED, null, false, 2, 1, "timed out"));
    assertThat(concern.required()).isEqualTo(2);
    assertThat(concern.acked()).isEqualTo(1);
    assertThat(concern.version()).isNull();
    assertThat(((Frames.Read) roundTrip(Frames.read(ALLOC, 6, "r/\u65e5"))).key())
        .isEqualTo("r/\u65e5");
    for (Mutation m : sampleMutations()) {
      assertThat(((Frames.ReadResult) roundTrip(Frames.readResult(ALLOC, 7, m))).mutation())
          .isEqualTo(m);
    }
    assertThat(((Frames.ReadResult) roundTrip(Frames.readResult(ALLOC, 7, null))).mutation())
        .isNull();
    assertThatThrownBy(() -> roundTrip(Frames.forwardResult(ALLOC, 4, Frames.FORWARD_OK, null,
        false, 0, 0, ""))).as("a success without a version")
        .isInstanceOf(MalformedFrameException.class);
    frames.add(Frames.forwardResult(ALLOC, 4, Frames.FORWARD_CONDITION_FAILED, V, false, 0, 0,
        "no"));
    frames.add(Frames.read(ALLOC, 6, "key"));
    Frames.Scan scan = (Frames.Scan) roundTrip(Frames.scan(ALLOC, 8, "p/", "p/a", 50));
    assertThat(scan).isEqualTo(new Frames.Scan(8, "p/", "p/a", 50));
    assertThat(((Frames.Scan) roundTrip(Frames.scan(ALLOC, 8, "", null, 1))).startAfter()).isNull();
    List<Mutation> ms = sampleMutations();
    Frames.ScanResult sr = (Frames.ScanResult) roundTrip(Frames.scanResult(ALLOC, 8, true, ms,
        ms.stream().mapToInt(Frames::mutationSize).sum()));
    assertThat(sr.truncated()).isTrue();
    assertThat(sr.mutations()).isEqualTo(ms);
    frames.add(Frames.scan(ALLOC, 8, "p/", "p/a", 50));
    frames.add(Frames.scanResult(ALLOC, 8, false, ms, ms.stream().mapToInt(Frames::mutationSize)
        .sum()));
    frames.add(Frames.readResult(ALLOC, 7, sampleMutations().get(0)));
    Frames.ReadResult pendingAnswer = (Frames.ReadResult) roundTrip(Frames.readResult(ALLOC, 9,
        null, true));
    assertThat(pendingAnswer.pending()).isTrue();
    assertThat(pendingAnswer.mutation()).isNull();
    assertThat(((Frames.ReadResult) roundTrip(Frames.readResult(ALLOC, 9, ms.get(0), true)))
        .mutation()).isEqualTo(ms.get(0));
    BitSet parts = new BitSet();
    parts.set(0);
    parts.set(517);
    parts.set(Placement.PARTITIONS - 1);
    assertThat(roundTrip(Frames.aePullRequest(ALLOC, 11, parts, new BitSet())))
        .isEqualTo(new Frames.AePullRequest(11, parts));
    assertThat(roundTrip(Frames.status(ALLOC, -42, parts)))
        .isEqualTo(new Frames.Status(-42, parts));
    BitSet fromYou = new BitSet();
    fromYou.set(517);
    assertThat(roundTrip(Frames.status(ALLOC, 5, parts, fromYou)))
        .isEqualTo(new Frames.Status(5, parts, fromYou));
    assertThat(roundTrip(Frames.status(ALLOC, 5, parts, (BitSet) parts.clone())))
        .as("all pending from the receiver: no second bitmap").isEqualTo(new Frames.Status(5, parts));
    BitSet notPending = new BitSet();
    notPending.set(3);
    assertThatThrownBy(() -> roundTrip(Frames.status(ALLOC, 5, parts, notPending)))
        .isInstanceOf(MalformedFrameException.class).hasMessageContaining("partition 3");
    assertThat(roundTrip(Frames.status(ALLOC, 5, parts, new BitSet())))
        .isEqualTo(new Frames.Status(5, parts, new BitSet()));
    ByteBuf badKind = Frames.status(ALLOC, 5, parts, new BitSet());
    badKind.setByte(badKind.writerIndex() - 1, 2);
    assertThatThrownBy(() -> roundTrip(badKind)).isInstanceOf(MalformedFrameException.class)
        .hasMessageContaining("kind 2");
    assertThat(((Frames.ForwardResult) roundTrip(Frames.forwardResult(ALLOC, 12,
        Frames.FORWARD_PENDING, null, false, 0, 0, "pulling"))).status())
        .isEqualTo(Frames.FORWARD_PENDING);
    ByteBuf badFlags = Frames.readResult(ALLOC, 9, null, false);
    badFlags.setByte(9, 4);
    assertThatThrownBy(() -> roundTrip(badFlags)).isInstanceOf(MalformedFrameException.class)
        .hasMessageContaining("flags");
    frames.add(Frames.readResult(ALLOC, 9, ms.get(0), true));
    frames.add(Frames.aePullRequest(ALLOC, 11, parts, new BitSet()));
    frames.add(Frames.status(ALLOC, 3, parts));
    assertThat(roundTrip(Frames.subscribe(ALLOC, 13, "orders/"))).isEqualTo(
        new Frames.Subscribe(13, "orders/"));
    assertThat(roundTrip(Frames.unsubscribe(ALLOC, 13))).isEqualTo(new Frames.Unsubscribe(13));
    assertThat(((Frames.Event) roundTrip(Frames.event(ALLOC, 13, ms.get(0)))).mutation())
        .isEqualTo(ms.get(0));
    frames.add(Frames.subscribe(ALLOC, 13, "orders/"));
    frames.add(Frames.unsubscribe(ALLOC, 13));
    frames.add(Frames.event(ALLOC, 13, ms.get(0)));
    for (ByteBuf full : frames) {
      byte[] bytes = new byte[full.readableBytes()];
      full.readBytes(bytes);
      full.release();
      for (int cut = 0; cut < bytes.length; cut++) {
        ByteBuf partial = Unpooled.wrappedBuffer(bytes, 0, cut);
        int at = cut;
        assertThatThrownBy(() -> Frames.decode(partial), "type %d, cut at %d", bytes[0], at)
            .isInstanceOf(MalformedFrameException.class);
      }
    }
  }

  @Test
  void streamedPullFrames_roundTrip_andEveryTruncationInsideAFieldIsMalformed() {
    BitSet pulled = new BitSet();
    pulled.set(3);
    pulled.set(700);
    BitSet stream = new BitSet();
    stream.set(700);
    assertThat(roundTrip(Frames.aePullRequest(ALLOC, 21, pulled, stream)))
        .isEqualTo(new Frames.AePullRequest(21, pulled, stream));
    assertThat(roundTrip(Frames.aePullRequest(ALLOC, 21, pulled, new BitSet())))
        .as("no stream: the short form").isEqualTo(new Frames.AePullRequest(21, pulled));
    BitSet outside = new BitSet();
    outside.set(5);
    assertThatThrownBy(() -> roundTrip(Frames.aePullRequest(ALLOC, 21, pulled, outside)))
        .isInstanceOf(MalformedFrameException.class).hasMessageContaining("does not pull");

    List<Mutation> ms = sampleMutations();
    int bytes = ms.stream().mapToInt(Frames::mutationSize).sum();
    assertThat(roundTrip(Frames.aeStream(ALLOC, 21, ms, bytes)))
        .isEqualTo(new Frames.AeStream(21, ms));

    BitSet covered = new BitSet();
    covered.set(1);
    Frames.AeDiff diff = (Frames.AeDiff) roundTrip(Frames.aeDiff(ALLOC, 21, 8, false, covered,
        new BitSet(), true, 300));
    assertThat(diff.pullSeen()).isTrue();
    assertThat(diff.streamed()).isEqualTo(300);
    assertThat(((Frames.AeDiff) roundTrip(Frames.aeDiff(ALLOC, 21, 8, false, covered)))
        .pullSeen()).as("no trailer: not a pull").isFalse();
    ByteBuf badFlags = Frames.aeDiff(ALLOC, 21, 8, false, covered, new BitSet(), true, 1);
    badFlags.setByte(badFlags.writerIndex() - 2, 6);
    assertThatThrownBy(() -> roundTrip(badFlags)).isInstanceOf(MalformedFrameException.class)
        .hasMessageContaining("diff flags");

    // The trailers are optional, so a cut exactly before one is the short form; every other cut
    // is malformed.
    for (ByteBuf full : List.of(Frames.aeStream(ALLOC, 21, ms, bytes),
        Frames.aePullRequest(ALLOC, 21, pulled, stream),
        Frames.aeDiff(ALLOC, 21, 8, false, covered, new BitSet(), true, 300))) {
      byte[] b = new byte[full.readableBytes()];
      full.readBytes(b);
      full.release();
      int shortForm = b[0] == Frames.AE_PULL_REQUEST ? 1 + 8 + Placement.PARTITIONS / 8
          : b[0] == Frames.AE_DIFF ? b.length - 3 : -1;
      for (int cut = 0; cut < b.length; cut++) {
        if (cut == shortForm) {
          continue;
        }
        ByteBuf partial = Unpooled.wrappedBuffer(b, 0, cut);
        int at = cut;
        assertThatThrownBy(() -> Frames.decode(partial), "type %d, cut at %d", b[0], at)
            .isInstanceOf(MalformedFrameException.class);
      }
    }
  }

  @Test
  void expiredPut_carriesItsValueHash_andAZeroHashIsMalformed() {
    Mutation expired = Mutation.expired("ttl", V, 1_700_000_000_500L, Digest.valueHash(new byte[] {1}));
    int size = Frames.mutationSize(expired);
    Frames.MutationBatch batch = (Frames.MutationBatch) roundTrip(
        Frames.mutations(ALLOC, 1, 0, List.of(expired), size));
    assertThat(batch.mutations()).containsExactly(expired);
    assertThat(batch.mutations().get(0).fingerprint())
        .isEqualTo(Mutation.put("ttl", new byte[] {1}, V, 1_700_000_000_500L).fingerprint());

    ByteBuf zero = Frames.mutations(ALLOC, 1, 0, List.of(expired), size);
    zero.setInt(zero.writerIndex() - 4, 0); // the value hash is the last field
    assertThatThrownBy(() -> roundTrip(zero)).isInstanceOf(MalformedFrameException.class)
        .hasMessageContaining("hash");
  }

  /** The fuzz corpus keeps valid frames of the current format, so fuzzing starts from real ones. */
  @ParameterizedTest(name = "{0}")
  @org.junit.jupiter.params.provider.ValueSource(strings = {"keys", "mutations", "mutations_expired",
      "pull_response"})
  void fuzzCorpusFrames_decodeInTheCurrentFormat(String name) throws java.io.IOException {
    try (java.io.InputStream in = FramesTest.class.getResourceAsStream(
        "DecoderFuzzTestInputs/dataPlaneFrame/" + name)) {
      assertThat(in).as(name).isNotNull();
      assertThat(Frames.decode(Unpooled.wrappedBuffer(in.readAllBytes()))).as(name).isNotNull();
    }
  }

  @Test
  void protocolVersion_isTwo_sinceKeysCarryFingerprints() {
    // Version 1 had no fingerprints in AE_KEYS and no value hash in expired puts: nodes refuse it.
    assertThat(Frames.PROTOCOL_VERSION).isEqualTo(2);
    assertThat(Frames.MIN_PROTOCOL_VERSION).isEqualTo(2);
  }

  @Test
  void unknownType_isMalformed() {
    assertThatThrownBy(() -> Frames.decode(Unpooled.wrappedBuffer(new byte[] {0x7f, 0, 0})))
        .isInstanceOf(MalformedFrameException.class).hasMessageContaining("unknown frame type 0x7f");
  }

  @Test
  void trailingBytes_areMalformed() {
    ByteBuf buf = Frames.aeAbort(ALLOC, 1, "x");
    buf.writeByte(0);
    assertThatThrownBy(() -> roundTrip(buf)).isInstanceOf(MalformedFrameException.class)
        .hasMessageContaining("unexpected bytes");
  }

  @Test
  void hugeDeclaredLengths_failBeforeAllocating() {
    // A MUTATIONS frame claiming 2^31-1 mutations in 3 bytes, and a key claiming 2 GiB.
    ByteBuf count = Unpooled.buffer();
    count.writeByte(Frames.MUTATIONS).writeLong(1).writeByte(0);
    Frames.writeVarint(count, Integer.MAX_VALUE);
    assertThatThrownBy(() -> Frames.decode(count)).isInstanceOf(MalformedFrameException.class)
        .hasMessageContaining("cannot fit");

    ByteBuf key = Unpooled.buffer();
    key.writeByte(Frames.AE_PULL).writeLong(1);
    Frames.writeVarint(key, 1);
    Frames.writeVarint(key, Integer.MAX_VALUE);
    assertThatThrownBy(() -> Frames.decode(key)).isInstanceOf(MalformedFrameException.class)
        .hasMessageContaining("over the limit");

    ByteBuf value = Unpooled.buffer();
    value.writeByte(Frames.MUTATIONS).writeLong(1).writeByte(0);
    Frames.writeVarint(value, 1);
    Frames.writeString(value, "k");
    value.writeLong(1);
    Frames.writeString(value, "n");
    value.writeByte(0).writeLong(0);
    Frames.writeVarint(value, 1_000_000);
    assertThatThrownBy(() -> Frames.decode(value)).isInstanceOf(MalformedFrameException.class)
        .hasMessageContaining("runs past the frame");
  }

  @Test
  void invalidUtf8_isMalformed() {
    ByteBuf buf = Unpooled.buffer();
    buf.writeByte(Frames.AE_PULL).writeLong(1);
    Frames.writeVarint(buf, 1);
    Frames.writeVarint(buf, 2);
    buf.writeByte(0xC3).writeByte(0x28);
    assertThatThrownBy(() -> Frames.decode(buf)).isInstanceOf(MalformedFrameException.class)
        .hasMessageContaining("UTF-8");
  }

  @Test
  void invalidFieldValues_areMalformed() {
    // A version with an invalid node id.
    ByteBuf buf = Unpooled.buffer();
    buf.writeByte(Frames.AE_KEYS).writeLong(1).writeByte(1);
    Frames.writeVarint(buf, 1);
    Frames.writeString(buf, "k");
    buf.writeLong(1);
    Frames.writeString(buf, "bad id!");
    buf.writeLong(0); // fingerprint
    assertThatThrownBy(() -> Frames.decode(buf)).isInstanceOf(MalformedFrameException.class)
        .hasMessageContaining("node id");
    // A boolean byte that is neither 0 nor 1, and an ack bitmap with a bit past its count.
    ByteBuf bool = Unpooled.buffer();
    bool.writeByte(Frames.AE_KEYS).writeLong(1).writeByte(2);
    Frames.writeVarint(bool, 0);
    assertThatThrownBy(() -> Frames.decode(bool)).isInstanceOf(MalformedFrameException.class);
    ByteBuf ack = Unpooled.buffer();
    ack.writeByte(Frames.ACK).writeLong(1);
    Frames.writeVarint(ack, 3);
    ack.writeByte(0x10);
    assertThatThrownBy(() -> Frames.decode(ack)).isInstanceOf(MalformedFrameException.class)
        .hasMessageContaining("beyond");
    // A digest chunk that runs past its bucket count.
    ByteBuf digest = Frames.aeDigest(ALLOC, 1, 1, new long[8], 0, 8, true);
    digest.setInt(1 + 8 + 4 + 4, 4);
    assertThatThrownBy(() -> roundTrip(digest)).isInstanceOf(MalformedFrameException.class)
        .hasMessageContaining("outside");
  }

  @Test
  void varint_roundTripsAndRejectsOverlongEncodings() {
    for (int v : new int[] {0, 1, 127, 128, 16_383, 16_384, Integer.MAX_VALUE}) {
      ByteBuf buf = Unpooled.buffer();
      Frames.writeVarint(buf, v);
      assertThat(buf.readableBytes()).isEqualTo(Frames.varintSize(v));
      assertThat(Frames.readVarint(buf)).isEqualTo(v);
    }
    ByteBuf tooBig = Unpooled.wrappedBuffer(new byte[] {(byte) 0xff, (byte) 0xff, (byte) 0xff,
        (byte) 0xff, 0x0f});
    assertThatThrownBy(() -> Frames.readVarint(tooBig)).isInstanceOf(MalformedFrameException.class);
  }

  @ParameterizedTest(name = "seed {0}")
  @MethodSource("seeds")
  void everyTruncation_ofAValidFrame_isMalformed(long seed) {
    Random random = new Random(seed);
    List<Mutation> ms = new ArrayList<>();
    for (int i = 0; i < 1 + random.nextInt(5); i++) {
      byte[] value = new byte[random.nextInt(50)];
      random.nextBytes(value);
      ms.add(Mutation.put("key-" + random.nextInt(1000) + "-\u00e9", value,
          Version.of(random.nextInt(1 << 30), "n" + random.nextInt(9)), random.nextInt(2) * 99L));
    }
    ByteBuf full = Frames.mutations(ALLOC, random.nextLong(), 0, ms,
        ms.stream().mapToInt(Frames::mutationSize).sum());
    byte[] bytes = new byte[full.readableBytes()];
    full.readBytes(bytes);
    full.release();
    for (int cut = 0; cut < bytes.length; cut++) {
      ByteBuf partial = Unpooled.wrappedBuffer(bytes, 0, cut);
      int at = cut;
      assertThatThrownBy(() -> Frames.decode(partial), "seed %d, cut at %d", seed, at)
          .isInstanceOf(MalformedFrameException.class);
    }
  }

  @ParameterizedTest(name = "seed {0}")
  @MethodSource("seeds")
  void randomBytes_neverThrowAnythingButMalformed(long seed) {
    Random random = new Random(seed);
    for (int i = 0; i < 2_000; i++) {
      byte[] bytes = new byte[random.nextInt(64)];
      random.nextBytes(bytes);
      if (bytes.length > 0 && random.nextBoolean()) {
        byte[] types = {Frames.HELLO, Frames.HELLO_OK, Frames.HELLO_REJECT, Frames.MUTATIONS,
            Frames.ACK, Frames.AE_DIGEST, Frames.AE_DIFF, Frames.AE_KEYS, Frames.AE_PULL,
            Frames.AE_PULL_RESPONSE, Frames.AE_ABORT, Frames.FORWARD, Frames.FORWARD_RESULT,
            Frames.READ, Frames.READ_RESULT, Frames.SCAN, Frames.SCAN_RESULT};
        bytes[0] = types[random.nextInt(types.length)];
      }
      try {
        Frames.decode(Unpooled.wrappedBuffer(bytes));
      } catch (MalformedFrameException expected) {
        // fine
      } catch (RuntimeException e) {
        throw new AssertionError("seed " + seed + ", input " + java.util.HexFormat.of().formatHex(bytes)
            + " threw " + e, e);
      }
    }
  }

  @Test
  void mutationSize_matchesEncoding_forMultiByteKeys() {
    Mutation m = Mutation.put("\u00e9\u4e2d\uD83D\uDE00", "v".getBytes(StandardCharsets.UTF_8), V, 5);
    ByteBuf buf = Unpooled.buffer();
    Frames.writeMutation(buf, m);
    assertThat(buf.readableBytes()).isEqualTo(Frames.mutationSize(m));
  }
}
