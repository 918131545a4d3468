package io.kvstore.cluster;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPromise;
import io.netty.util.ReferenceCountUtil;
import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.util.function.Supplier;
import javax.crypto.Mac;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Data-plane authentication: the handshake's challenge-response proofs, and a Netty handler that tags
 * and checks every frame after the handshake.
 *
 * <p><b>Handshake</b> (scheme {@link Frames#AUTH_HMAC_SHA256}): the connecting node names the key id
 * of its primary key in HELLO along with a fresh nonce; the accepting node, if it holds that key,
 * answers HELLO_OK with its own fresh nonce and {@code HMAC(K, "server" ‖ transcript)}; the connecting
 * node checks it and sends AUTH with {@code HMAC(K, "client" ‖ transcript)}. The transcript binds the
 * protocol version, cluster name, both node ids, both nonces and the key id, so neither proof can be
 * replayed on another connection or reflected to the other role. {@code K} is the key's data-plane
 * subkey (HKDF from the secret).
 *
 * <p><b>Frames</b>: from then on every frame in each direction carries a trailing 32-byte
 * {@code HMAC(K_dir, seq ‖ frame)}, with a per-direction key derived by HKDF from {@code K} and the
 * transcript, and an implicit sequence number counting frames from 0. A forged, altered, replayed,
 * reordered, dropped or truncated frame fails the check; the connection is then poisoned for good:
 * it is closed, the failure counted ({@code authenticationFailures}) and logged at most every 10 s, and
 * every later frame (including those the frame decoder already holds from the same read, which Netty
 * still delivers after the close) is released unread. The handler behind this one checks
 * {@link #isPoisoned()} as well, so nothing reaches the protocol once a check has failed. A frame is also refused once
 * the key its connection was authenticated with is no longer in this node's keyring (after a rotation),
 * so the peer reconnects with its current key. Tags are computed on the channel's event loop, in write
 * order, which is the order frames reach the socket.
 */
final class FrameAuthenticator extends ChannelDuplexHandler {
  private static final Logger log = LoggerFactory.getLogger(FrameAuthenticator.class);
  private static final RateLimitedLog warnings = new RateLimitedLog(log);
  static final int TAG_BYTES = Crypto.MAC_BYTES;

  private final String nodeId;
  private final Stats stats;
  private final Supplier<ClusterKeyring> keyring;
  private ClusterKeyring.Key key;
  private Mac send;
  private Mac recv;
  private long sendSeq;
  private long recvSeq;
  /** Set by the first failed check; never cleared. */
  private boolean poisoned;
  private final byte[] seqBytes = new byte[8];

  FrameAuthenticator(String nodeId, Stats stats, Supplier<ClusterKeyring> keyring) {
    this.nodeId = nodeId;
    this.stats = stats;
    this.keyring = keyring;
  }

  // ---- handshake -------------------------------------------------------------------------------

  static byte[] transcript(int version, String clusterName, String clientNodeId, String serverNodeId,
      byte[] clientNonce, byte[] serverNonce, String keyId) {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream(128);
    try (DataOutputStream out = new DataOutputStream(bytes)) {
      out.writeUTF("kvstore data plane v1");
      out.writeShort(version);
      out.writeUTF(clusterName);
      out.writeUTF(clientNodeId);
      out.writeUTF(serverNodeId);
      out.write(clientNonce);
      out.write(serverNonce);
      out.writeUTF(keyId);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return bytes.toByteArray();
  }

  static byte[] serverProof(ClusterKeyring.Key key, byte[] transcript) {
    return Crypto.hmac(key.dataPlane, Crypto.utf8("server proof"), transcript);
  }

  static byte[] clientProof(ClusterKeyring.Key key, byte[] transcript) {
    return Crypto.hmac(key.dataPlane, Crypto.utf8("client proof"), transcript);
  }

  /**
   * Starts tagging and checking frames. Call on the channel's event loop, right after the last
   * untagged handshake frame was written or read.
   *
   * @param client whether this side opened the connection
   */
  void activate(ClusterKeyring.Key key, byte[] transcript, boolean client) {
    byte[] c2s = Crypto.hkdf(key.dataPlane, transcript, Crypto.utf8("client to server"), 32);
    byte[] s2c = Crypto.hkdf(key.dataPlane, transcript, Crypto.utf8("server to client"), 32);
    this.key = key;
    this.send = Crypto.mac(client ? c2s : s2c);
    this.recv = Crypto.mac(client ? s2c : c2s);
  }

  /** Parses the key id a HELLO names; null if it is not a valid key id. */
  static String keyId(byte[] auth) {
    String id = new String(auth, java.nio.charset.StandardCharsets.US_ASCII);
    return ClusterKeyring.isValidId(id) ? id : null;
  }

  // ---- per frame -------------------------------------------------------------------------------

  /** Whether a frame failed its check on this connection (then nothing more is let through). */
  boolean isPoisoned() {
    return poisoned;
  }

  @Override
  public void channelRead(ChannelHandlerContext ctx, Object msg) {
    if (poisoned) {
      ReferenceCountUtil.release(msg);
      return;
    }
    if (recv == null || !(msg instanceof ByteBuf buf)) {
      ctx.fireChannelRead(msg);
      return;
    }
    String problem;
    try {
      problem = verify(buf);
    } catch (RuntimeException e) {
      problem = "frame could not be checked: " + e;
    }
    if (problem != null) {
      buf.release();
      poisoned = true;
      stats.authenticationFailures.increment();
      warnings.warn("node {}: data-plane connection with {}: {}; closing it", nodeId,
          ctx.channel().remoteAddress(), problem);
      ctx.close();
      return;
    }
    ctx.fireChannelRead(buf);
  }

  private String verify(ByteBuf buf) {
    int len = buf.readableBytes() - TAG_BYTES;
    if (len < 1) {
      return "a frame too short to carry its authentication tag";
    }
    ClusterKeyring ring = keyring.get();
    if (ring == null || !ring.stillHolds(key)) {
      return "key '" + key.id + "' is no longer in this node's keyring";
    }
    recv.update(seq(recvSeq++));
    recv.update(buf.nioBuffer(buf.readerIndex(), len));
    byte[] expected = recv.doFinal();
    byte[] tag = new byte[TAG_BYTES];
    buf.getBytes(buf.readerIndex() + len, tag);
    if (!Crypto.equal(expected, tag)) {
      return "a frame failed authentication (forged, altered, replayed or reordered)";
    }
    buf.writerIndex(buf.readerIndex() + len);
    return null;
  }

  @Override
  public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) {
    if (send == null || !(msg instanceof ByteBuf frame)) {
      ctx.write(msg, promise);
      return;
    }
    send.update(seq(sendSeq++));
    for (ByteBuffer b : frame.nioBuffers()) {
      send.update(b);
    }
    CompositeByteBuf out = ctx.alloc().compositeBuffer(2);
    out.addComponents(true, frame, Unpooled.wrappedBuffer(send.doFinal()));
    ctx.write(out, promise);
  }

  private byte[] seq(long n) {
    for (int i = 7; i >= 0; i--) {
      seqBytes[i] = (byte) n;
      n >>>= 8;
    }
    return seqBytes;
  }
}
