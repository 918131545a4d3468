package io.kvstore.cluster;

import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.DecoderException;
import io.netty.handler.ssl.NotSslRecordException;
import io.netty.handler.ssl.SslHandler;
import io.netty.handler.ssl.SslHandshakeCompletionEvent;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.concurrent.atomic.LongAdder;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLPeerUnverifiedException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Puts {@link ClusterTls} in front of a channel of either plane: an {@link SslHandler} first in the
 * pipeline (so every byte on the socket is TLS), then a watcher that counts and logs (rate-limited)
 * failed handshakes and TLS errors, and keeps them from reaching the plane's own handlers, which see
 * only decrypted bytes of an authenticated peer. A failed handshake closes the connection (the
 * {@link SslHandler} does); nothing is read from it before that.
 */
final class TlsChannels {
  private static final Logger log = LoggerFactory.getLogger(TlsChannels.class);
  static final String HANDLER = "kvstore-tls";

  private final ClusterTls tls;
  private final String nodeId;
  private final long handshakeTimeoutMillis;
  private final LongAdder failures;
  private final RateLimitedLog warnings = new RateLimitedLog(log);

  /**
   * @param tls the node's TLS settings
   * @param nodeId for log lines
   * @param handshakeTimeout how long a TLS handshake may take before the connection is closed
   * @param failures counts failed handshakes and TLS errors
   */
  TlsChannels(ClusterTls tls, String nodeId, Duration handshakeTimeout, LongAdder failures) {
    this.tls = tls;
    this.nodeId = nodeId;
    this.handshakeTimeoutMillis = handshakeTimeout.toMillis();
    this.failures = failures;
  }

  /**
   * Adds TLS at the head of the channel's pipeline; call after the plane's own handlers are added.
   *
   * @param plane "data" or "membership", for log lines
   * @param client whether this side opened the connection
   */
  void install(Channel channel, String plane, boolean client) {
    SslHandler ssl = (client ? tls.clientContext() : tls.serverContext()).newHandler(channel.alloc());
    ssl.setHandshakeTimeoutMillis(handshakeTimeoutMillis);
    channel.pipeline().addFirst(HANDLER + "-watch", new Watcher(plane, client));
    channel.pipeline().addFirst(HANDLER, ssl);
  }

  static boolean isTlsError(Throwable cause) {
    return cause instanceof SSLException
        || (cause instanceof DecoderException && cause.getCause() instanceof SSLException);
  }

  private static String describe(Throwable cause) {
    Throwable t = cause instanceof DecoderException && cause.getCause() != null
        ? cause.getCause() : cause;
    if (t instanceof NotSslRecordException) {
      return "it does not speak TLS (a node without cluster TLS, or garbage)";
    }
    String message = t.getMessage();
    if (t.getCause() != null && t.getCause().getMessage() != null
        && (message == null || !message.contains(t.getCause().getMessage()))) {
      message = message + " (" + t.getCause().getMessage() + ")";
    }
    return t.getClass().getSimpleName() + ": " + message;
  }

  /** Counts and logs what goes wrong with TLS on one connection. */
  private final class Watcher extends ChannelInboundHandlerAdapter {
    private final String plane;
    private final boolean client;
    /** Null until the handshake ends; then whether it succeeded. */
    private Boolean handshook;

    Watcher(String plane, boolean client) {
      this.plane = plane;
      this.client = client;
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) throws Exception {
      if (evt instanceof SslHandshakeCompletionEvent done && handshook == null) {
        handshook = done.isSuccess();
        if (done.isSuccess()) {
          if (log.isDebugEnabled()) {
            log.debug("node {}: TLS on the {} plane with {} ({}) is up", nodeId, plane,
                ctx.channel().remoteAddress(), peerSubject(ctx));
          }
        } else {
          failed(ctx, "TLS handshake", done.cause());
        }
      }
      super.userEventTriggered(ctx, evt);
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
      if (!isTlsError(cause)) {
        ctx.fireExceptionCaught(cause);
        return;
      }
      if (handshook == null || handshook) {
        // A TLS error outside a failed handshake (which was counted when it failed): an alert from
        // the peer, or a record that does not decrypt.
        failed(ctx, handshook == null ? "TLS handshake" : "TLS connection", cause);
        handshook = false;
      }
      ctx.close();
    }

    private void failed(ChannelHandlerContext ctx, String what, Throwable cause) {
      failures.increment();
      warnings.warn("node {}: {} on the {} plane {} {} failed: {}; closing the connection", nodeId,
          what, plane, client ? "to" : "from", ctx.channel().remoteAddress(), describe(cause));
    }

    private String peerSubject(ChannelHandlerContext ctx) {
      try {
        SslHandler ssl = (SslHandler) ctx.pipeline().get(HANDLER);
        Certificate[] certs = ssl.engine().getSession().getPeerCertificates();
        return certs.length > 0 && certs[0] instanceof X509Certificate x
            ? x.getSubjectX500Principal().getName() : "no certificate";
      } catch (SSLPeerUnverifiedException | RuntimeException e) {
        return "unverified";
      }
    }
  }
}
