package io.kvstore.core;

import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.Digest;
import io.kvstore.core.spi.KeyVersion;
import static org.assertj.core.api.Assertions.assertThat;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The digest's hash functions are exactly the ones {@link Digest}'s Javadoc specifies for
 * {@link Digest#FORMAT} (checked against an implementation written from that text, with a
 * {@link ByteBuffer} instead of the store's VarHandle), and pinned values do not drift: nodes of one
 * format on any JVM or platform must compute the same digests.
 */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class DigestFormatTest {
  private static final long G = 0x9e3779b97f4a7c15L;
  private static final long M1 = 0xbf58476d1ce4e5b9L;
  private static final long M2 = 0x94d049bb133111ebL;
  // Computed once with format 3; a change here needs a new Digest.FORMAT (and wire version).
  private static final int PINNED_EMPTY = 1;
  private static final int PINNED_HELLO = 0x897fc34c;
  private static final long PINNED_PUT_FINGERPRINT = 0x2daec8055acc432cL;
  private static final long PINNED_TTL_ENTRY = 0x8f7583502d190a83L;
  private static final long PINNED_DELETE_ENTRY = 0x0ce7ee0cca174d8dL;
  private static final int PINNED_BUCKET = 862;

  private static long mix(long z) {
    z = (z ^ (z >>> 30)) * M1;
    z = (z ^ (z >>> 27)) * M2;
    return z ^ (z >>> 31);
  }

  /** The value hash as the Javadoc states it. */
  static int specValueHash(byte[] b) {
    long h = b.length * G;
    ByteBuffer in = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
    while (in.remaining() >= 8) {
      h = Long.rotateLeft(h ^ (in.getLong() * M1), 31) * M2;
    }
    if (in.hasRemaining()) {
      byte[] tail = new byte[8];
      in.get(tail, 0, in.remaining());
      long w = ByteBuffer.wrap(tail).order(ByteOrder.LITTLE_ENDIAN).getLong();
      h = Long.rotateLeft(h ^ (w * M1), 31) * M2;
    }
    h = mix(h);
    int r = (int) (h ^ (h >>> 32));
    return r == 0 ? 1 : r;
  }

  static long specFingerprint(Mutation m) {
    if (m.isDelete() && m.expiresAtMillis() == 0) {
      return 0x64656c6574656421L;
    }
    return mix(mix(m.expiresAtMillis() ^ 0x636f6e74656e7421L) ^ (m.valueHash() & 0xffffffffL));
  }

  static long specEntryHash(String key, Version v, long fingerprint) {
    long keyHash = mix(((long) key.hashCode() << 32) ^ (key.length() * G));
    return mix(keyHash ^ mix(v.timestamp() + G) ^ (v.nodeId().hashCode() * M1) ^ fingerprint);
  }

  @ParameterizedTest(name = Seeds.NAME)
  @MethodSource("io.kvstore.core.Seeds#someSeeds")
  void hashes_matchTheDocumentedFunctions(long seed) {
    Seeds.run(seed, r -> {
      for (int len = 0; len <= 40; len++) {
        byte[] b = new byte[len];
        r.nextBytes(b);
        assertThat(Digest.valueHash(b)).as(Seeds.describe(seed, "value hash of %d bytes", len))
            .isEqualTo(specValueHash(b));
      }
      Version v = Version.of(r.nextLong(1L << 47), r.nextInt(Version.MAX_LOGICAL + 1), "node-" + r.nextInt(9));
      byte[] value = new byte[r.nextInt(100)];
      r.nextBytes(value);
      long expiry = r.nextBoolean() ? 0 : 1 + r.nextLong(Long.MAX_VALUE - 1);
      for (Mutation m : new Mutation[] {Mutation.put("k" + r.nextInt(), value, v, expiry),
          Mutation.delete("d" + r.nextInt(), v),
          Mutation.expired("e" + r.nextInt(), v, 1 + r.nextLong(Long.MAX_VALUE - 1),
              Digest.valueHash(value))}) {
        String ctx = Seeds.describe(seed, "%s", m);
        assertThat(m.fingerprint()).as(ctx).isEqualTo(specFingerprint(m));
        assertThat(Digest.entryHash(KeyVersion.of(m))).as(ctx)
            .isEqualTo(specEntryHash(m.key(), m.version(), specFingerprint(m)));
      }
    });
  }

  @Test
  void pinnedValues_doNotDriftWithoutANewFormat() {
    assertThat(Digest.FORMAT).isEqualTo(3);
    byte[] hello = "hello, kvstore".getBytes(StandardCharsets.UTF_8);
    Version v = Version.of(1_700_000_000_000L, 3, "node-1");
    assertThat(Digest.valueHash(new byte[0])).isEqualTo(PINNED_EMPTY);
    assertThat(Digest.valueHash(hello)).isEqualTo(PINNED_HELLO);
    assertThat(Mutation.put("k", hello, v, 0).fingerprint()).isEqualTo(PINNED_PUT_FINGERPRINT);
    assertThat(Digest.entryHash(KeyVersion.of(Mutation.put("k", hello, v, 1_700_000_060_000L))))
        .isEqualTo(PINNED_TTL_ENTRY);
    assertThat(Digest.entryHash(KeyVersion.of(Mutation.delete("k", v)))).isEqualTo(PINNED_DELETE_ENTRY);
    assertThat(Digest.bucketOf("k", 1024)).isEqualTo(PINNED_BUCKET);
  }

  @Test
  void aPutAndItsExpiredForm_haveOneFingerprint_otherContentsDiffer() {
    byte[] value = {1, 2, 3};
    Version v = Version.of(1_700_000_000_000L, 0, "n");
    long expiry = 1_700_000_001_000L;
    Mutation put = Mutation.put("k", value, v, expiry);
    Mutation expired = Mutation.expired("k", v, expiry, Digest.valueHash(value));
    assertThat(expired.fingerprint()).isEqualTo(put.fingerprint());
    assertThat(KeyVersion.of(expired)).isEqualTo(KeyVersion.of(put));
    assertThat(new long[] {put.fingerprint(), Mutation.put("k", value, v, 0).fingerprint(),
        Mutation.put("k", value, v, expiry + 1).fingerprint(),
        Mutation.put("k", new byte[] {1, 2, 4}, v, expiry).fingerprint(),
        Mutation.put("k", new byte[] {1, 2, 3, 0}, v, expiry).fingerprint(),
        Mutation.delete("k", v).fingerprint()}).doesNotHaveDuplicates();
  }
}
