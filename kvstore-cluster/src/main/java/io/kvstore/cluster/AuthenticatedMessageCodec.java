package io.kvstore.cluster;

import io.scalecube.cluster.transport.api.Message;
import io.scalecube.cluster.transport.api.MessageCodec;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Iterator;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.LongSupplier;
import java.util.function.Supplier;
import javax.crypto.Mac;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Authenticates every membership (ScaleCube) message with the cluster keyring, around the JSON codec.
 *
 * <p>Envelope: {@code "KVM1"} · {@code u8 keyIdLength} · key id (ASCII) · {@code u64 timestampMillis}
 * · 16-byte random nonce · 32-byte tag · the JSON message. The tag is HMAC-SHA256 with the key's
 * membership subkey over everything before it, the cluster name and the JSON bytes. Incoming bytes are
 * checked in this order, before any JSON is parsed: total size, magic, key id known, tag (constant
 * time), timestamp within {@link #MAX_CLOCK_SKEW} of this node's clock, nonce not seen within that
 * window. Anything failing becomes ScaleCube's inert {@link ScaleCubeMessageCodec#REFUSED} marker,
 * is counted ({@code authenticationFailures} and {@code membershipMessagesRefused}) and logged at most
 * every 10 s (the codec does not see the sender's address).
 *
 * <p>Replay: a captured message is refused once its nonce has been seen, and always once it is older
 * than the window. The nonce cache holds at most {@value #MAX_NONCES} entries; only messages with a
 * valid tag are remembered, so only a key holder could fill it, and when it is full (after dropping
 * expired entries) further messages are refused rather than let through unchecked.
 */
final class AuthenticatedMessageCodec implements MessageCodec {
  private static final Logger log = LoggerFactory.getLogger(AuthenticatedMessageCodec.class);
  static final int MAGIC = 0x4B564D31; // "KVM1"
  static final int NONCE_BYTES = 16;
  /** Magic, key id (≤ 32), timestamp, nonce, tag. */
  static final int MAX_HEADER_BYTES = 4 + 1 + 32 + 8 + NONCE_BYTES + Crypto.MAC_BYTES;
  static final int MAX_ENVELOPE_BYTES = ScaleCubeMessageCodec.MAX_MESSAGE_BYTES + MAX_HEADER_BYTES;
  /** How far a sender's clock may be from this node's before its messages are refused. */
  static final Duration MAX_CLOCK_SKEW = Duration.ofMinutes(2);
  static final int MAX_NONCES = 200_000;

  /** The envelope header's size for a key id of this many bytes: everything before the JSON. */
  static int headerBytes(int keyIdLength) {
    return 4 + 1 + keyIdLength + 8 + NONCE_BYTES + Crypto.MAC_BYTES;
  }

  private final MessageCodec inner;
  private final Supplier<ClusterKeyring> keyring;
  private final byte[] clusterName;
  private final LongSupplier clock;
  private final Runnable onFailure;
  private static final RateLimitedLog warnings = new RateLimitedLog(log);
  private final Map<ByteBuffer, Long> seen = new ConcurrentHashMap<>();
  private final java.util.concurrent.atomic.AtomicLong checks = new java.util.concurrent.atomic.AtomicLong();

  /**
   * @param inner the JSON codec
   * @param keyring the current keyring (read on every message, so rotation takes effect at once)
   * @param clusterName bound into every tag
   * @param clock wall-clock millis (injected by tests)
   * @param onFailure called once per message refused here
   */
  AuthenticatedMessageCodec(MessageCodec inner, Supplier<ClusterKeyring> keyring, String clusterName,
      LongSupplier clock, Runnable onFailure) {
    this.inner = inner;
    this.keyring = keyring;
    this.clusterName = Crypto.utf8(clusterName);
    this.clock = clock;
    this.onFailure = onFailure;
  }

  @Override
  public void serialize(Message message, OutputStream stream) throws Exception {
    ByteArrayOutputStream json = new ByteArrayOutputStream(256);
    inner.serialize(message, json);
    byte[] payload = json.toByteArray();
    ClusterKeyring.Key key = keyring.get().primary();
    byte[] id = key.id.getBytes(StandardCharsets.US_ASCII);
    ByteBuffer header = ByteBuffer.allocate(4 + 1 + id.length + 8 + NONCE_BYTES);
    header.putInt(MAGIC).put((byte) id.length).put(id).putLong(clock.getAsLong())
        .put(Crypto.random(NONCE_BYTES));
    byte[] head = header.array();
    stream.write(head);
    stream.write(tag(key, head, payload));
    stream.write(payload);
  }

  @Override
  public Message deserialize(InputStream stream) throws Exception {
    byte[] bytes = stream.readNBytes(MAX_ENVELOPE_BYTES + 1);
    String problem = check(bytes);
    if (problem != null) {
      onFailure.run();
      ScaleCubeMessageCodec.markRefused();
      warnings.warn("refused a membership message that failed authentication: {}", problem);
      return ScaleCubeMessageCodec.REFUSED;
    }
    int headerLength = 4 + 1 + (bytes[4] & 0xFF) + 8 + NONCE_BYTES + Crypto.MAC_BYTES;
    return inner.deserialize(new ByteArrayInputStream(bytes, headerLength,
        bytes.length - headerLength));
  }

  /** Null if the envelope is authentic and fresh (its nonce is then remembered); else why not. */
  String check(byte[] bytes) {
    if (bytes.length > MAX_ENVELOPE_BYTES) {
      return "larger than " + MAX_ENVELOPE_BYTES + " bytes";
    }
    ByteBuffer in = ByteBuffer.wrap(bytes);
    if (bytes.length < 5 || in.getInt() != MAGIC) {
      return "not an authenticated kvstore message (no cluster secret on the sender?)";
    }
    int idLength = in.get() & 0xFF;
    int headLength = 4 + 1 + idLength + 8 + NONCE_BYTES;
    if (idLength == 0 || idLength > 32 || bytes.length < headLength + Crypto.MAC_BYTES) {
      return "truncated envelope";
    }
    String keyId = new String(bytes, 5, idLength, StandardCharsets.US_ASCII);
    ClusterKeyring.Key key = keyring.get().key(ClusterKeyring.isValidId(keyId) ? keyId : null);
    if (key == null) {
      return "signed with a key id that is not in this node's keyring";
    }
    in.position(5 + idLength);
    long timestamp = in.getLong();
    byte[] head = new byte[headLength];
    System.arraycopy(bytes, 0, head, 0, headLength);
    byte[] tag = new byte[Crypto.MAC_BYTES];
    System.arraycopy(bytes, headLength, tag, 0, tag.length);
    int payloadStart = headLength + Crypto.MAC_BYTES;
    Mac mac = Crypto.mac(key.membership);
    mac.update(head);
    mac.update(clusterName);
    mac.update(bytes, payloadStart, bytes.length - payloadStart);
    if (!Crypto.equal(mac.doFinal(), tag)) {
      return "bad authentication tag (wrong key, or altered)";
    }
    long now = clock.getAsLong();
    long window = MAX_CLOCK_SKEW.toMillis();
    if (Math.abs(now - timestamp) > window) {
      return "timestamp " + (timestamp - now) + " ms off this node's clock (more than " + window
          + " ms: a replay, or clocks out of sync; run NTP)";
    }
    ByteBuffer nonce = ByteBuffer.wrap(bytes, 5 + idLength + 8, NONCE_BYTES).slice();
    ByteBuffer nonceKey = ByteBuffer.allocate(NONCE_BYTES).put(nonce).flip();
    if (seen.size() >= MAX_NONCES || (checks.incrementAndGet() & 1023) == 0) {
      for (Iterator<Long> it = seen.values().iterator(); it.hasNext(); ) {
        if (it.next() < now) {
          it.remove();
        }
      }
      if (seen.size() >= MAX_NONCES) {
        return "replay cache full";
      }
    }
    if (seen.putIfAbsent(nonceKey, timestamp + window) != null) {
      return "replayed (nonce already seen)";
    }
    return null;
  }

  private byte[] tag(ClusterKeyring.Key key, byte[] head, byte[] payload) {
    Mac mac = Crypto.mac(key.membership);
    mac.update(head);
    mac.update(clusterName);
    mac.update(payload);
    return mac.doFinal();
  }

  /** Entries in the replay cache (for tests). */
  int rememberedNonces() {
    return seen.size();
  }
}
