package io.kvstore.cluster;

import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.TooLongFrameException;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.ScheduledFuture;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The pre-authentication budget of one cluster port: what a connection that has proved nothing may
 * cost this node.
 *
 * <p><b>Connections:</b> at most {@code maxInboundConnections} inbound connections at once, and at most
 * {@code maxUnauthenticatedConnectionsPerAddress} of them per remote IP address until they have
 * authenticated; one more is closed on arrival and counted ({@code inboundConnectionsRefused}). A
 * connection stops counting against its address once it authenticates (the plane says when: the data
 * plane at the end of its handshake, the membership port at the first message the codec accepts), so
 * members sharing one address are never limited by the per-address cap.
 *
 * <p><b>Bytes:</b> each connection's frames go through a {@link GuardedFrameDecoder}, which refuses a
 * frame that declares more than the plane's pre-authentication limit before the connection has
 * authenticated, and (on a membership port with a keyring) a frame whose envelope header names no
 * key of this node, after reading only the header: the body is never buffered.
 *
 * <p><b>Time</b> (membership port; the data plane has its own handshake timer): a connection must
 * deliver a valid message within {@code handshakeTimeout} of connecting, and then one at least every
 * {@code membershipIdleTimeout}; otherwise it is closed and counted
 * ({@code membershipConnectionsTimedOut}).
 *
 * <p>Every refusal is logged at most every 10 s. On the membership port this handler also keeps
 * exceptions (including a refusal) from reaching Reactor Netty, which would log each one with its
 * stack trace.
 */
final class InboundGuard {
  private static final Logger log = LoggerFactory.getLogger(InboundGuard.class);

  private final String nodeId;
  private final boolean membership;
  private final int maxConnections;
  private final int maxUnauthenticatedPerAddress;
  private final long firstMessageNanos;
  private final long idleNanos;
  private final Stats stats;
  private final RateLimitedLog warnings = new RateLimitedLog(log);
  private final AtomicInteger open = new AtomicInteger();
  private final Map<Object, Integer> unauthenticated = new ConcurrentHashMap<>();

  private InboundGuard(String nodeId, boolean membership, KvClusterConfig config, Stats stats,
      Duration firstMessage, Duration idle) {
    this.nodeId = nodeId;
    this.membership = membership;
    this.maxConnections = config.maxInboundConnections();
    this.maxUnauthenticatedPerAddress = config.maxUnauthenticatedConnectionsPerAddress();
    this.firstMessageNanos = firstMessage == null ? 0 : firstMessage.toNanos();
    this.idleNanos = idle == null ? 0 : idle.toNanos();
    this.stats = stats;
  }

  /** For the membership port: caps, plus the first-message and idle timeouts. */
  static InboundGuard membership(KvClusterConfig config, Stats stats) {
    return new InboundGuard(config.nodeId(), true, config, stats, config.handshakeTimeout(),
        config.membershipIdleTimeout());
  }

  /** For the data port: caps only (the data plane times its handshake itself). */
  static InboundGuard dataPlane(KvClusterConfig config, Stats stats) {
    return new InboundGuard(config.nodeId(), false, config, stats, null, null);
  }

  private String plane() {
    return membership ? "membership" : "data-plane";
  }

  /** Inbound connections open right now (for tests and the flood measurement). */
  int openConnections() {
    return open.get();
  }

  /** Unauthenticated inbound connections from one address right now (for tests). */
  int unauthenticatedFrom(java.net.InetAddress address) {
    return unauthenticated.getOrDefault(address, 0);
  }

  /** The handler for one accepted connection; it goes right after the frame decoder. */
  Connection newConnection(GuardedFrameDecoder decoder) {
    return new Connection(decoder);
  }

  /** Marks the channel's connection authenticated; does nothing for a channel without a guard. */
  static void authenticated(Channel channel) {
    Connection c = channel.pipeline().get(Connection.class);
    if (c != null) {
      c.authenticated();
    }
  }

  private static Object addressKey(SocketAddress remote) {
    if (remote instanceof InetSocketAddress inet && inet.getAddress() != null) {
      return inet.getAddress();
    }
    return String.valueOf(remote);
  }

  /** One accepted connection's share of the budget. Runs on the channel's event loop. */
  final class Connection extends ChannelInboundHandlerAdapter {
    private final GuardedFrameDecoder decoder;
    private Object address;
    private boolean admitted;
    private boolean authenticated;
    private boolean closing;
    private long lastMessageNanos;
    private ScheduledFuture<?> timer;

    private Connection(GuardedFrameDecoder decoder) {
      this.decoder = decoder;
    }

    /** The peer proved itself: it no longer counts against its address, and may send full frames. */
    void authenticated() {
      if (authenticated) {
        return;
      }
      authenticated = true;
      decoder.authenticated();
      if (admitted) {
        release(address);
      }
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) {
      address = addressKey(ctx.channel().remoteAddress());
      lastMessageNanos = System.nanoTime();
      String refusal = null;
      if (open.incrementAndGet() > maxConnections) {
        open.decrementAndGet();
        refusal = "this port already holds maxInboundConnections = " + maxConnections;
      } else {
        admitted = true;
        if (unauthenticated.merge(address, 1, Integer::sum) > maxUnauthenticatedPerAddress) {
          refusal = "this port already holds maxUnauthenticatedConnectionsPerAddress = "
              + maxUnauthenticatedPerAddress + " unauthenticated connections from that address";
        }
      }
      ctx.fireChannelActive();
      if (refusal != null) {
        stats.inboundConnectionsRefused.increment();
        warnings.warn("node {}: refused an inbound {} connection from {}: {}", nodeId, plane(),
            ctx.channel().remoteAddress(), refusal);
        close(ctx);
        return;
      }
      if (firstMessageNanos > 0) {
        timer = ctx.executor().schedule(() -> check(ctx), firstMessageNanos, TimeUnit.NANOSECONDS);
      }
    }

    private void check(ChannelHandlerContext ctx) {
      if (closing) {
        return;
      }
      if (!authenticated) {
        timedOut(ctx, "sent no valid message within " + Duration.ofNanos(firstMessageNanos)
            + " (handshakeTimeout)");
        return;
      }
      if (idleNanos <= 0) {
        return;
      }
      long idleFor = System.nanoTime() - lastMessageNanos;
      if (idleFor >= idleNanos) {
        timedOut(ctx, "sent nothing for " + Duration.ofNanos(idleFor).toSeconds()
            + " s (membershipIdleTimeout)");
      } else {
        timer = ctx.executor().schedule(() -> check(ctx), idleNanos - idleFor,
            TimeUnit.NANOSECONDS);
      }
    }

    private void timedOut(ChannelHandlerContext ctx, String why) {
      stats.membershipConnectionsTimedOut.increment();
      warnings.warn("node {}: closed the inbound {} connection from {}: it {}", nodeId, plane(),
          ctx.channel().remoteAddress(), why);
      close(ctx);
    }

    private void close(ChannelHandlerContext ctx) {
      closing = true;
      ctx.close();
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
      if (closing) {
        ReferenceCountUtil.release(msg);
        return;
      }
      lastMessageNanos = System.nanoTime();
      ctx.fireChannelRead(msg);
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
      if (cause instanceof GuardedFrameDecoder.Refused refused) {
        if (membership) {
          stats.membershipMessagesRefused.increment();
          if (refused.authentication()) {
            stats.authenticationFailures.increment();
          }
        } else {
          stats.malformedFrames.increment();
          stats.handshakeFailures.increment();
        }
        warnings.warn("node {}: closed the inbound {} connection from {}: {}", nodeId, plane(),
            ctx.channel().remoteAddress(), refused.getMessage());
        close(ctx);
      } else if (membership) {
        // Never hand an exception to Reactor Netty: it logs every one with a stack trace.
        if (cause instanceof TooLongFrameException) {
          stats.membershipMessagesRefused.increment();
        }
        if (cause instanceof IOException) {
          log.debug("node {}: inbound membership connection from {} failed: {}", nodeId,
              ctx.channel().remoteAddress(), cause.toString());
        } else {
          warnings.warn("node {}: closed the inbound membership connection from {}: {}", nodeId,
              ctx.channel().remoteAddress(), cause.toString());
        }
        close(ctx);
      } else {
        ctx.fireExceptionCaught(cause);
      }
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
      closing = true;
      if (timer != null) {
        timer.cancel(false);
      }
      if (admitted) {
        admitted = false;
        open.decrementAndGet();
        if (!authenticated) {
          release(address);
        }
      }
      ctx.fireChannelInactive();
    }
  }

  private void release(Object address) {
    unauthenticated.computeIfPresent(address, (a, n) -> n <= 1 ? null : n - 1);
  }
}
