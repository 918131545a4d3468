package io.kvstore.cluster;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.TooLongFrameException;
import io.netty.util.ReferenceCountUtil;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Decodes each authenticated frame buffer into a {@link Frames.Frame} for the handshake and session
 * handlers behind it, and is the gate every later handler closes the connection through.
 *
 * <p>Once a handler decides to close ({@link #close}), the close may not take effect at once (a
 * HELLO_REJECT is flushed first; TLS sends its close_notify), and the frame decoder still delivers
 * the frames it holds from the same read: this gate drops them, as it drops everything after the
 * {@link FrameAuthenticator} in front of it was poisoned. A malformed frame is counted and closes the
 * connection; so does an oversized one or any other exception (never passed on).
 */
final class FrameReader extends ChannelInboundHandlerAdapter {
  private static final Logger log = LoggerFactory.getLogger(FrameReader.class);
  private static final RateLimitedLog warnings = new RateLimitedLog(log);

  private final String nodeId;
  private final Stats stats;
  private final FrameAuthenticator authenticator;
  private volatile boolean closing;

  FrameReader(String nodeId, Stats stats, FrameAuthenticator authenticator) {
    this.nodeId = nodeId;
    this.stats = stats;
    this.authenticator = authenticator;
  }

  /** Closes the connection and drops every frame still arriving. */
  void close(ChannelHandlerContext ctx) {
    closing = true;
    ctx.close();
  }

  /** Drops every frame still arriving; the caller closes the connection (after a last write). */
  void closing() {
    closing = true;
  }

  @Override
  public void channelRead(ChannelHandlerContext ctx, Object msg) {
    if (closing || !ctx.channel().isActive() || authenticator.isPoisoned()
        || !(msg instanceof ByteBuf buf)) {
      ReferenceCountUtil.release(msg);
      return;
    }
    Frames.Frame frame;
    try {
      stats.frameReceived(buf.readableBytes());
      frame = Frames.decode(buf);
    } catch (MalformedFrameException e) {
      stats.malformedFrames.increment();
      warnings.warn("node {}: malformed frame on the data-plane connection with {}: {}; closing it",
          nodeId, ctx.channel().remoteAddress(), e.getMessage());
      close(ctx);
      return;
    } finally {
      buf.release();
    }
    ctx.fireChannelRead(frame);
  }

  @Override
  public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
    if (cause instanceof TooLongFrameException || cause instanceof GuardedFrameDecoder.Refused) {
      stats.malformedFrames.increment();
      warnings.warn("node {}: oversized frame on the data-plane connection with {}: {}; closing it",
          nodeId, ctx.channel().remoteAddress(), cause.getMessage());
    } else {
      log.debug("node {}: data-plane connection with {} failed: {}", nodeId,
          ctx.channel().remoteAddress(), cause.toString());
    }
    close(ctx);
  }
}
