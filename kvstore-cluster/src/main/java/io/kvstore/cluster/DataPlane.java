package io.kvstore.cluster;

import io.netty.bootstrap.Bootstrap;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.ChannelPipeline;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.group.DefaultChannelGroup;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.handler.codec.LengthFieldPrepender;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.DefaultThreadFactory;
import io.netty.util.concurrent.GlobalEventExecutor;
import java.net.InetSocketAddress;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The Netty adapter of the {@link ReplicationEngine}: the data-plane server, this node's outgoing
 * connections (connect, reconnect with backoff), and the event loops every data-plane channel of this
 * node runs on.
 *
 * <p>Both kinds of connection get one pipeline ({@link #initPipeline}):
 * <pre>
 *   [TLS] → GuardedFrameDecoder → LengthFieldPrepender → [InboundGuard, server side]
 *         → FrameAuthenticator → FrameReader → Handshakes.Client|Server ⇒ ClientSession|ServerSession
 * </pre>
 * The handshake handler replaces itself with the session handler once the peer is authenticated; the
 * session hands frames to the engine ({@link PeerLink} for this node's connections,
 * {@link ReplicationEngine.Responder} for accepted ones) through a {@link PeerChannel} over the
 * channel. Before the handshake completes an accepted connection is held to the port's
 * pre-authentication budget ({@link InboundGuard}: connection caps, frames of at most
 * {@value Frames#MAX_HANDSHAKE_FRAME_BYTES} bytes, the handshake timeout). Any frame that breaks the
 * format or the protocol closes the connection and is counted; nothing a peer sends can throw out of
 * a handler. With {@link ClusterTls}, TLS comes first: a connection reaches the HELLO only after a TLS
 * handshake in which the peer proved a certificate of the cluster CA.
 *
 * <p>Test-only faults ({@link FaultHooks#dataPlane()}) apply here, at the edge: a cut closes the
 * connection; fan-out MUTATIONS and their ACKs may be lost, duplicated or delayed.
 */
final class DataPlane {
  private static final Logger log = LoggerFactory.getLogger(DataPlane.class);
  /** The only HELLO_REJECT text a node with a keyring sends: the peer has proved nothing yet. */
  static final String GENERIC_REFUSAL = Handshakes.GENERIC_REFUSAL;

  private final KvClusterConfig config;
  private final Handshakes.Env env;
  private final TlsChannels tls;
  private final InboundGuard guard;
  private final ReplicationEngine engine;
  private final EngineScheduler control;
  private final EventLoopGroup group;
  private final ChannelGroup accepted = new DefaultChannelGroup(GlobalEventExecutor.INSTANCE);
  private Channel server;

  /**
   * @param config this node's settings
   * @param env what the handshakes need
   * @param tls installs TLS on every channel; null without TLS
   * @param guard the data port's pre-authentication budget
   * @param engine receives every authenticated connection
   * @param control runs reconnection timers
   */
  DataPlane(KvClusterConfig config, Handshakes.Env env, TlsChannels tls, InboundGuard guard,
      ReplicationEngine engine, EngineScheduler control) {
    this.config = config;
    this.env = env;
    this.tls = tls;
    this.guard = guard;
    this.engine = engine;
    this.control = control;
    this.group = new NioEventLoopGroup(2, new DefaultThreadFactory("kvstore-data-" + env.nodeId(),
        true));
  }

  /** Binds the server; returns the port actually bound. */
  int bind(String host, int port) {
    ServerBootstrap bootstrap = new ServerBootstrap()
        .group(group)
        .channel(NioServerSocketChannel.class)
        .option(ChannelOption.SO_BACKLOG, 128)
        .childOption(ChannelOption.TCP_NODELAY, true)
        .childOption(ChannelOption.SO_KEEPALIVE, true)
        .childHandler(new ChannelInitializer<SocketChannel>() {
          @Override
          protected void initChannel(SocketChannel ch) {
            accepted.add(ch);
            initPipeline(ch, null);
          }
        });
    ChannelFuture bound = bootstrap.bind(host, port).awaitUninterruptibly();
    if (!bound.isSuccess()) {
      throw new IllegalStateException("cannot bind the data plane to " + host + ":" + port + ": "
          + bound.cause(), bound.cause());
    }
    server = bound.channel();
    return ((InetSocketAddress) server.localAddress()).getPort();
  }

  /** Connects a link to its peer, and keeps reconnecting until the link is closed. */
  void connect(PeerLink link, String dataAddress) {
    new Connector(link, dataAddress).connect();
  }

  void close() {
    if (server != null) {
      server.close().awaitUninterruptibly(2, TimeUnit.SECONDS);
    }
    accepted.close().awaitUninterruptibly(2, TimeUnit.SECONDS);
    group.shutdownGracefully(0, 1, TimeUnit.SECONDS).awaitUninterruptibly(3, TimeUnit.SECONDS);
  }

  // ---- the one pipeline ------------------------------------------------------------------------

  /**
   * Sets up a data-plane channel.
   *
   * @param connector the outgoing connection's connector; null for an accepted connection
   */
  private void initPipeline(SocketChannel ch, Connector connector) {
    boolean client = connector != null;
    FrameAuthenticator authenticator = new FrameAuthenticator(env.nodeId(), env.stats(),
        env.keyring());
    GuardedFrameDecoder decoder = new GuardedFrameDecoder(Frames.MAX_FRAME_BYTES,
        Frames.MAX_HANDSHAKE_FRAME_BYTES, null);
    FrameReader reader = new FrameReader(env.nodeId(), env.stats(), authenticator);
    ChannelPipeline p = ch.pipeline();
    p.addLast("frames", decoder);
    p.addLast("length", new LengthFieldPrepender(Frames.LENGTH_FIELD_BYTES));
    if (client) {
      p.addLast("auth", authenticator);
      p.addLast("reader", reader);
      p.addLast("handshake", new Handshakes.Client(env, reader, decoder, authenticator,
          connector.link.nodeId, connector.address, (ctx, peer) -> {
            NettyPeerChannel channel = new NettyPeerChannel(ctx.channel(), reader, peer, true);
            return new ClientSession(connector, channel);
          }));
      p.addLast("reconnect", connector.reconnectOnClose());
    } else {
      InboundGuard.Connection connection = guard.newConnection(decoder);
      p.addLast("guard", connection);
      p.addLast("auth", authenticator);
      p.addLast("reader", reader);
      p.addLast("handshake", new Handshakes.Server(env, reader, decoder, authenticator, connection,
          (ctx, peer) -> {
            NettyPeerChannel channel = new NettyPeerChannel(ctx.channel(), reader, peer, false);
            return new ServerSession(engine.accept(channel, peer), channel);
          }));
    }
    if (tls != null) {
      tls.install(ch, "data", client);
    }
  }

  // ---- the engine's view of a channel ----------------------------------------------------------

  /** A handshaken channel as a {@link PeerChannel}. */
  private final class NettyPeerChannel implements PeerChannel {
    private final Channel ch;
    private final FrameReader reader;
    private final String peer;
    /** Outgoing connections honour the (injected) network cut when writing. */
    private final boolean checkCut;

    NettyPeerChannel(Channel ch, FrameReader reader, String peer, boolean checkCut) {
      this.ch = ch;
      this.reader = reader;
      this.peer = peer;
      this.checkCut = checkCut;
    }

    @Override
    public ByteBufAllocator alloc() {
      return ch.alloc();
    }

    @Override
    public boolean send(ByteBuf frame, boolean flush) {
      if (checkCut && !env.faults().dataPlane().allows(env.nodeId(), peer)) {
        ReferenceCountUtil.release(frame);
        close();
        return false;
      }
      env.stats().frameSent(frame.readableBytes());
      if (flush) {
        ch.writeAndFlush(frame, ch.voidPromise());
      } else {
        ch.write(frame, ch.voidPromise());
      }
      return true;
    }

    @Override
    public void flush() {
      ch.flush();
    }

    @Override
    public boolean isWritable() {
      return ch.isWritable();
    }

    @Override
    public void execute(Runnable task) {
      try {
        ch.eventLoop().execute(task);
      } catch (RejectedExecutionException e) {
        // The event loop is shutting down: so is the connection.
      }
    }

    @Override
    public void close() {
      reader.closing();
      ch.close();
    }

    @Override
    public String remote() {
      return peer + "@" + ch.remoteAddress();
    }

    Handshakes.Env env() {
      return env;
    }
  }

  /** Applies the (injected) loss, duplication and delay to one fan-out frame. */
  private void deliver(ChannelHandlerContext ctx, String from, Runnable delivery) {
    for (long delay : env.faults().dataPlane().deliveries(from, env.nodeId())) {
      if (delay <= 0) {
        delivery.run();
      } else {
        ctx.executor().schedule(delivery, delay, TimeUnit.MILLISECONDS);
      }
    }
  }

  /** What both session handlers share: a failure closes the connection. */
  private abstract static class Session extends FrameHandler {
    final NettyPeerChannel channel;

    Session(NettyPeerChannel channel) {
      this.channel = channel;
    }

    @Override
    final void failed(ChannelHandlerContext ctx, Frames.Frame frame, RuntimeException e) {
      log.warn("node {}: handling {} from {} failed; closing the connection",
          channel.env().nodeId(), frame.getClass().getSimpleName(), channel.remote(), e);
      channel.close();
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
      log.debug("node {}: data-plane connection with {} failed: {}", channel.env().nodeId(),
          channel.remote(), cause.toString());
      channel.close();
    }
  }

  /** After the handshake, on an outgoing connection: frames to the link. */
  private final class ClientSession extends Session {
    private final Connector connector;

    ClientSession(Connector connector, NettyPeerChannel channel) {
      super(channel);
      this.connector = connector;
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
      connector.connected(channel);
    }

    @Override
    void onFrame(ChannelHandlerContext ctx, Frames.Frame frame) {
      PeerLink link = connector.link;
      if (!env.faults().dataPlane().allows(link.nodeId, env.nodeId())) {
        channel.close();
      } else if (frame instanceof Frames.Ack ack && link.isFanOutAck(ack)) {
        deliver(ctx, link.nodeId, () -> link.onFrame(channel, ack));
      } else {
        link.onFrame(channel, frame);
      }
    }

    @Override
    public void channelWritabilityChanged(ChannelHandlerContext ctx) {
      if (ctx.channel().isWritable()) {
        connector.link.writable();
      }
      ctx.fireChannelWritabilityChanged();
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
      connector.link.disconnected(channel);
      ctx.fireChannelInactive();
    }
  }

  /** After the handshake, on an accepted connection: frames to the engine's responder. */
  private final class ServerSession extends Session {
    private final ReplicationEngine.Responder responder;

    ServerSession(ReplicationEngine.Responder responder, NettyPeerChannel channel) {
      super(channel);
      this.responder = responder;
    }

    @Override
    void onFrame(ChannelHandlerContext ctx, Frames.Frame frame) {
      if (!env.faults().dataPlane().allows(responder.peer, env.nodeId())) {
        channel.close();
      } else if (frame instanceof Frames.MutationBatch batch && !batch.isAntiEntropy()) {
        deliver(ctx, responder.peer, () -> responder.onFrame(batch));
      } else {
        responder.onFrame(frame);
      }
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
      responder.closed();
      ctx.fireChannelInactive();
    }
  }

  // ---- outgoing connections --------------------------------------------------------------------

  /** Connects one link, and reconnects it with exponential backoff and jitter until it closes. */
  private final class Connector {
    final PeerLink link;
    final String address;
    private final String host;
    private final int port;
    private long backoffMillis;

    Connector(PeerLink link, String dataAddress) {
      this.link = link;
      this.address = dataAddress;
      int colon = dataAddress.lastIndexOf(':');
      this.host = dataAddress.substring(0, colon);
      this.port = Integer.parseInt(dataAddress.substring(colon + 1));
      this.backoffMillis = config.reconnectBackoffMin().toMillis();
    }

    void connect() {
      if (link.isClosed()) {
        return;
      }
      if (!env.faults().dataPlane().allows(env.nodeId(), link.nodeId)) {
        scheduleReconnect();
        return;
      }
      int maxBatchBytes = config.maxBatchBytes();
      Bootstrap bootstrap = new Bootstrap()
          .group(group)
          .channel(NioSocketChannel.class)
          .option(ChannelOption.CONNECT_TIMEOUT_MILLIS,
              (int) Math.min(Integer.MAX_VALUE, config.connectTimeout().toMillis()))
          .option(ChannelOption.TCP_NODELAY, true)
          .option(ChannelOption.SO_KEEPALIVE, true)
          .option(ChannelOption.WRITE_BUFFER_WATER_MARK, new WriteBufferWaterMark(maxBatchBytes,
              4 * Math.max(maxBatchBytes, Frames.MAX_FRAME_BYTES)))
          .handler(new ChannelInitializer<SocketChannel>() {
            @Override
            protected void initChannel(SocketChannel ch) {
              initPipeline(ch, Connector.this);
            }
          });
      ChannelFuture f;
      try {
        f = bootstrap.connect(host, port);
      } catch (RuntimeException e) {
        log.debug("node {}: cannot connect to {} at {}: {}", env.nodeId(), link.nodeId, address,
            e.toString());
        scheduleReconnect();
        return;
      }
      f.addListener(done -> {
        if (!done.isSuccess()) {
          log.debug("node {}: connecting to {} at {} failed: {}", env.nodeId(), link.nodeId,
              address, String.valueOf(done.cause()));
          scheduleReconnect();
        } else if (link.isClosed()) {
          f.channel().close();
        }
      });
    }

    void connected(NettyPeerChannel channel) {
      synchronized (this) {
        backoffMillis = config.reconnectBackoffMin().toMillis();
      }
      link.connected(channel);
    }

    /** The last handler of an outgoing pipeline: reconnects once the channel is gone. */
    ChannelHandler reconnectOnClose() {
      return new ChannelInboundHandlerAdapter() {
        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
          scheduleReconnect();
          ctx.fireChannelInactive();
        }
      };
    }

    private synchronized void scheduleReconnect() {
      if (link.isClosed()) {
        return;
      }
      long delay = backoffMillis;
      backoffMillis = Math.min(backoffMillis * 2, config.reconnectBackoffMax().toMillis());
      long jittered = Math.max(1,
          (long) (delay * (0.8 + 0.4 * ThreadLocalRandom.current().nextDouble())));
      control.schedule(this::connect, jittered);
    }
  }
}
