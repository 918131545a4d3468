package io.kvstore.cluster;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.DecoderException;
import io.netty.handler.codec.LengthFieldBasedFrameDecoder;
import io.netty.handler.codec.TooLongFrameException;
import java.nio.charset.StandardCharsets;
import java.util.function.Supplier;

/**
 * A 4-byte-length frame decoder that looks at each frame's first bytes before it buffers the body.
 *
 * <p>Until {@link #authenticated()} is called, a frame that declares more than the pre-authentication
 * limit is refused as soon as its length field arrives. With a keyring (membership port), every
 * frame's {@link AuthenticatedMessageCodec} envelope header is checked as soon as it arrives: the
 * magic, a key id of this node's keyring, a length that can hold the header. So a peer without the
 * key costs a few bytes per frame, and one that names a key id but cannot prove it at most the limit.
 *
 * <p>A refusal is thrown as {@link Refused} (a {@link DecoderException}, which the
 * {@link InboundGuard} behind this decoder counts and answers by closing the connection); after it,
 * and after any oversized frame, every byte still arriving is discarded unread.
 */
final class GuardedFrameDecoder extends LengthFieldBasedFrameDecoder {
  private static final int LENGTH_BYTES = 4;

  private final int preAuthLimit;
  private final Supplier<ClusterKeyring> keyring;
  private boolean authenticated;
  private boolean failed;

  /**
   * @param maxFrameLength the largest frame ever accepted
   * @param preAuthLimit the largest frame accepted before {@link #authenticated()}
   * @param keyring checks membership envelope headers against it; null not to check headers
   */
  GuardedFrameDecoder(int maxFrameLength, int preAuthLimit, Supplier<ClusterKeyring> keyring) {
    super(maxFrameLength, 0, LENGTH_BYTES, 0, LENGTH_BYTES);
    this.preAuthLimit = preAuthLimit;
    this.keyring = keyring;
  }

  /** Lifts the pre-authentication limit. Call on the channel's event loop. */
  void authenticated() {
    authenticated = true;
  }

  /** A frame refused from its first bytes. */
  static final class Refused extends DecoderException {
    private static final long serialVersionUID = 1L;
    private final boolean authentication;

    Refused(String message, boolean authentication) {
      super(message);
      this.authentication = authentication;
    }

    /** Whether the frame failed the cluster-secret check (rather than a size limit). */
    boolean authentication() {
      return authentication;
    }
  }

  @Override
  protected Object decode(ChannelHandlerContext ctx, ByteBuf in) throws Exception {
    if (failed) {
      in.skipBytes(in.readableBytes());
      return null;
    }
    if (in.readableBytes() >= LENGTH_BYTES) {
      Refused refused = check(in, in.readerIndex(), in.getUnsignedInt(in.readerIndex()));
      if (refused != null) {
        failed = true;
        in.skipBytes(in.readableBytes());
        throw refused;
      }
    }
    try {
      return super.decode(ctx, in);
    } catch (TooLongFrameException e) {
      failed = true;
      in.skipBytes(in.readableBytes());
      throw e;
    }
  }

  private Refused check(ByteBuf in, int start, long length) {
    if (!authenticated && length > preAuthLimit) {
      return new Refused("declared a frame of " + length + " bytes before authenticating (at most "
          + preAuthLimit + ")", false);
    }
    if (keyring == null) {
      return null;
    }
    int available = in.writerIndex() - start - LENGTH_BYTES;
    int body = start + LENGTH_BYTES;
    if (available >= 4 && in.getInt(body) != AuthenticatedMessageCodec.MAGIC) {
      return new Refused("sent a membership message without the cluster secret's envelope "
          + "(no cluster secret on the sender?)", true);
    }
    if (available < 5) {
      return null;
    }
    int idLength = in.getUnsignedByte(body + 4);
    if (idLength == 0 || idLength > 32
        || length < AuthenticatedMessageCodec.headerBytes(idLength)) {
      return new Refused("sent a truncated membership envelope", true);
    }
    if (available < 5 + idLength) {
      return null;
    }
    String keyId = in.toString(body + 5, idLength, StandardCharsets.US_ASCII);
    ClusterKeyring ring = keyring.get();
    if (ring == null || ring.key(ClusterKeyring.isValidId(keyId) ? keyId : null) == null) {
      return new Refused("sent a membership message under a key id that is not in this node's "
          + "keyring", true);
    }
    return null;
  }
}
