package io.kvstore.cluster;

import io.kvstore.core.Mutation;
import io.netty.bootstrap.Bootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.handler.codec.LengthFieldPrepender;
import io.netty.handler.codec.TooLongFrameException;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.ScheduledFuture;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * This node's outgoing data-plane connection to one peer: the write fan-out queue, batching, acks,
 * reconnection, and the channel anti-entropy rounds this node starts with the peer travel on.
 *
 * <p><b>Queue and memory:</b> {@link #enqueue} adds to a lock-free queue and counts the mutation's
 * encoded size against {@code maxInFlightBytesPerPeer} until the peer acknowledges it; past the limit
 * the mutation is dropped for this peer (counted, and left to anti-entropy), so a slow or unreachable
 * peer costs bounded memory. Enqueueing never blocks.
 *
 * <p><b>Batching:</b> the first enqueue after a flush schedules one flush task on the channel's event
 * loop; the task drains the queue into frames of up to {@code maxBatchBytes} while the channel is
 * writable, so mutations written close together share a frame and a syscall. Unacknowledged batches
 * wait in {@code inflight} by batch id.
 *
 * <p><b>Reconnection:</b> a lost connection puts its unacknowledged mutations back in the queue
 * (applying twice is harmless) and reconnects after an exponential backoff with jitter. The link
 * stops for good only when the peer leaves the membership ({@link #close}), failing what is left.
 */
final class PeerLink {
  private static final Logger log = LoggerFactory.getLogger(PeerLink.class);
  private static final SecureRandom NONCES = new SecureRandom();

  /** One mutation on its way to the peer, and the write waiting for its ack (or null). */
  record Outgoing(Mutation mutation, int size, WriteTracker tracker) {}

  /** A sent frame awaiting its ack: fan-out mutations, or an anti-entropy push. */
  private record Batch(List<Outgoing> items, long bytes, CompletableFuture<Frames.Ack> aeAck) {}

  final String memberId;
  final String nodeId;
  final String host;
  final int port;
  private final ClusterReplicator node;
  private final RateLimitedLog warnings = new RateLimitedLog(log);

  private final ConcurrentLinkedQueue<Outgoing> queue = new ConcurrentLinkedQueue<>();
  private final AtomicLong pendingBytes = new AtomicLong();
  private final AtomicBoolean flushScheduled = new AtomicBoolean();
  private final Map<Long, Batch> inflight = new ConcurrentHashMap<>();
  private final AtomicLong batchIds = new AtomicLong();
  private final long maxPendingBytes;
  private final int maxBatchBytes;

  private volatile Channel channel;
  private volatile boolean closed;
  private volatile AntiEntropyRound round;
  private long backoffMillis;

  PeerLink(ClusterReplicator node, String memberId, String nodeId, String dataAddress) {
    this.node = node;
    this.memberId = memberId;
    this.nodeId = nodeId;
    int colon = dataAddress.lastIndexOf(':');
    this.host = dataAddress.substring(0, colon);
    this.port = Integer.parseInt(dataAddress.substring(colon + 1));
    this.maxPendingBytes = node.config().maxInFlightBytesPerPeer();
    this.maxBatchBytes = node.config().maxBatchBytes();
    this.backoffMillis = node.config().reconnectBackoffMin().toMillis();
  }

  String dataAddress() {
    return host + ":" + port;
  }

  boolean isReady() {
    return channel != null;
  }

  boolean isClosed() {
    return closed;
  }

  // ---- connecting ------------------------------------------------------------------------------

  void start() {
    connect();
  }

  private void connect() {
    if (closed) {
      return;
    }
    if (!node.faults().dataPlane().allows(node.nodeId(), nodeId)) {
      scheduleReconnect();
      return;
    }
    Bootstrap bootstrap = new Bootstrap()
        .group(node.dataPlane().group())
        .channel(NioSocketChannel.class)
        .option(ChannelOption.CONNECT_TIMEOUT_MILLIS,
            (int) Math.min(Integer.MAX_VALUE, node.config().connectTimeout().toMillis()))
        .option(ChannelOption.TCP_NODELAY, true)
        .option(ChannelOption.SO_KEEPALIVE, true)
        .option(ChannelOption.WRITE_BUFFER_WATER_MARK,
            new WriteBufferWaterMark(maxBatchBytes, 4 * Math.max(maxBatchBytes, Frames.MAX_FRAME_BYTES)))
        .handler(new ChannelInitializer<SocketChannel>() {
          @Override
          protected void initChannel(SocketChannel ch) {
            FrameAuthenticator authenticator = new FrameAuthenticator(node.nodeId(),
                node.counters(), node::keyring);
            GuardedFrameDecoder decoder = new GuardedFrameDecoder(Frames.MAX_FRAME_BYTES,
                Frames.MAX_HANDSHAKE_FRAME_BYTES, null);
            ch.pipeline().addLast(
                decoder,
                new LengthFieldPrepender(4),
                authenticator,
                new ClientHandler(authenticator, decoder));
            node.secure(ch, true);
          }
        });
    ChannelFuture f;
    try {
      f = bootstrap.connect(host, port);
    } catch (RuntimeException e) {
      log.debug("node {}: cannot connect to {} at {}: {}", node.nodeId(), nodeId, dataAddress(),
          e.toString());
      scheduleReconnect();
      return;
    }
    f.addListener(done -> {
      if (!done.isSuccess()) {
        log.debug("node {}: connecting to {} at {} failed: {}", node.nodeId(), nodeId, dataAddress(),
            String.valueOf(done.cause()));
        scheduleReconnect();
      } else if (closed) {
        f.channel().close();
      }
    });
  }

  private synchronized void scheduleReconnect() {
    if (closed) {
      return;
    }
    long delay = backoffMillis;
    backoffMillis = Math.min(backoffMillis * 2, node.config().reconnectBackoffMax().toMillis());
    long jittered = Math.max(1, (long) (delay * (0.8 + 0.4 * ThreadLocalRandom.current().nextDouble())));
    node.schedule(this::connect, jittered);
  }

  private void onReady(Channel ch) {
    if (closed) {
      ch.close();
      return;
    }
    synchronized (this) {
      backoffMillis = node.config().reconnectBackoffMin().toMillis();
    }
    channel = ch;
    log.debug("node {}: data-plane link to {} at {} is up", node.nodeId(), nodeId, dataAddress());
    scheduleFlush();
    node.onLinkReady(this);
  }

  private void onDisconnected(Channel ch) {
    boolean wasReady = channel == ch;
    if (wasReady) {
      channel = null;
      // Unacknowledged fan-out goes back in the queue; anti-entropy pushes fail with their round.
      for (Iterator<Map.Entry<Long, Batch>> it = inflight.entrySet().iterator(); it.hasNext(); ) {
        Batch b = it.next().getValue();
        it.remove();
        if (b.aeAck != null) {
          b.aeAck.completeExceptionally(new IllegalStateException("connection to " + nodeId + " lost"));
        } else {
          queue.addAll(b.items);
        }
      }
      AntiEntropyRound r = round;
      if (r != null) {
        r.fail("connection to " + nodeId + " lost");
      }
      if (closed) {
        failQueued("left the cluster");
      }
    }
    scheduleReconnect();
  }

  // ---- fan-out ---------------------------------------------------------------------------------

  /** Queues a mutation for the peer; never blocks. */
  void enqueue(Outgoing o) {
    if (closed) {
      node.counters().mutationsDropped.increment();
      if (o.tracker != null) {
        o.tracker.nack(nodeId, "left the cluster");
      }
      return;
    }
    if (pendingBytes.addAndGet(o.size) > maxPendingBytes) {
      pendingBytes.addAndGet(-o.size);
      node.counters().mutationsDropped.increment();
      warnings.warn("node {}: dropped a mutation for {}: {} bytes are already waiting for it "
          + "(maxInFlightBytesPerPeer); anti-entropy will repair it", node.nodeId(), nodeId,
          pendingBytes.get());
      if (o.tracker != null) {
        o.tracker.nack(nodeId, "dropped it: its in-flight limit was reached");
      }
      return;
    }
    queue.add(o);
    scheduleFlush();
    if (closed) {
      failQueued("left the cluster");
    }
  }

  private void scheduleFlush() {
    Channel ch = channel;
    if (ch != null && flushScheduled.compareAndSet(false, true)) {
      ch.eventLoop().execute(() -> flush(ch));
    }
  }

  /** Runs on the channel's event loop. */
  private void flush(Channel ch) {
    flushScheduled.set(false);
    if (ch != channel) {
      return;
    }
    boolean wrote = false;
    while (ch.isWritable()) {
      List<Outgoing> items = new ArrayList<>();
      List<Mutation> batch = new ArrayList<>();
      int bytes = 0;
      Outgoing o;
      while (bytes < maxBatchBytes && (o = queue.peek()) != null) {
        if (!items.isEmpty() && bytes + o.size > maxBatchBytes) {
          break;
        }
        queue.poll();
        items.add(o);
        batch.add(o.mutation);
        bytes += o.size;
      }
      if (items.isEmpty()) {
        break;
      }
      long id = batchIds.incrementAndGet();
      inflight.put(id, new Batch(items, bytes, null));
      if (!write(ch, Frames.mutations(ch.alloc(), id, 0, batch, bytes), false)) {
        return;
      }
      node.counters().mutationsSent.add(items.size());
      wrote = true;
    }
    if (wrote) {
      ch.flush();
    }
  }

  private void onAck(Frames.Ack ack) {
    Batch b = inflight.remove(ack.batchId());
    if (b == null) {
      return;
    }
    if (b.aeAck != null) {
      b.aeAck.complete(ack);
      return;
    }
    for (int i = 0; i < b.items.size(); i++) {
      Outgoing o = b.items.get(i);
      pendingBytes.addAndGet(-o.size);
      if (i < ack.count() && ack.held().get(i)) {
        node.counters().mutationsAcked.increment();
        if (o.tracker != null) {
          o.tracker.ack(nodeId);
        }
      } else {
        node.counters().mutationsRefused.increment();
        if (o.tracker != null) {
          o.tracker.nack(nodeId, "refused it (invalid for its limits, or its clock drift check failed)");
        }
      }
    }
  }

  // ---- anti-entropy ----------------------------------------------------------------------------

  void setRound(AntiEntropyRound r) {
    round = r;
  }

  /** Sends an anti-entropy frame; false when the link is down (the buffer is released). */
  boolean sendAe(ByteBuf frame) {
    Channel ch = channel;
    if (ch == null) {
      ReferenceCountUtil.release(frame);
      return false;
    }
    return write(ch, frame, true);
  }

  /** Pushes mutations for anti-entropy; completes with the peer's ack. */
  CompletableFuture<Frames.Ack> pushAe(List<Mutation> mutations, int bytes) {
    Channel ch = channel;
    CompletableFuture<Frames.Ack> acked = new CompletableFuture<>();
    if (ch == null) {
      acked.completeExceptionally(new IllegalStateException("no connection to " + nodeId));
      return acked;
    }
    long id = batchIds.incrementAndGet();
    inflight.put(id, new Batch(List.of(), bytes, acked));
    if (!write(ch, Frames.mutations(ch.alloc(), id, Frames.FLAG_ANTI_ENTROPY, mutations, bytes), true)) {
      inflight.remove(id);
      acked.completeExceptionally(new IllegalStateException("connection to " + nodeId + " lost"));
    }
    return acked;
  }

  /** Writes a frame unless the (injected) network is cut, in which case the channel is closed. */
  private boolean write(Channel ch, ByteBuf frame, boolean flush) {
    if (!node.faults().dataPlane().allows(node.nodeId(), nodeId)) {
      ReferenceCountUtil.release(frame);
      ch.close();
      return false;
    }
    node.counters().frameSent(frame.readableBytes());
    if (flush) {
      ch.writeAndFlush(frame, ch.voidPromise());
    } else {
      ch.write(frame, ch.voidPromise());
    }
    return true;
  }

  // ---- closing ---------------------------------------------------------------------------------

  /** Stops for good: the peer left, or this node is closing. Fails whatever still waits. */
  void close() {
    closed = true;
    Channel ch = channel;
    if (ch != null) {
      ch.close();
    }
    AntiEntropyRound r = round;
    if (r != null) {
      r.fail("peer " + nodeId + " left");
    }
    for (Iterator<Map.Entry<Long, Batch>> it = inflight.entrySet().iterator(); it.hasNext(); ) {
      Batch b = it.next().getValue();
      it.remove();
      if (b.aeAck != null) {
        b.aeAck.completeExceptionally(new IllegalStateException("peer " + nodeId + " left"));
      } else {
        for (Outgoing o : b.items) {
          drop(o, "left the cluster");
        }
      }
    }
    failQueued("left the cluster");
  }

  private void failQueued(String why) {
    Outgoing o;
    while ((o = queue.poll()) != null) {
      drop(o, why);
    }
  }

  private void drop(Outgoing o, String why) {
    pendingBytes.addAndGet(-o.size);
    node.counters().mutationsDropped.increment();
    if (o.tracker != null) {
      o.tracker.nack(nodeId, why);
    }
  }

  @Override
  public String toString() {
    return "PeerLink{" + nodeId + "@" + dataAddress() + (isReady() ? ", ready" : "")
        + (closed ? ", closed" : "") + "}";
  }

  /** The client side of one connection: handshake, then acks and anti-entropy answers. */
  private final class ClientHandler extends ChannelInboundHandlerAdapter {
    private final FrameAuthenticator authenticator;
    private final GuardedFrameDecoder decoder;
    /** Set when this handler closes the connection: later frames of the same read are dropped. */
    private boolean closing;
    private boolean handshook;
    private ScheduledFuture<?> handshakeTimer;
    private byte[] nonce;
    private ClusterKeyring.Key key;
    private byte[] transcript;

    ClientHandler(FrameAuthenticator authenticator, GuardedFrameDecoder decoder) {
      this.authenticator = authenticator;
      this.decoder = decoder;
    }

    private void close(ChannelHandlerContext ctx) {
      closing = true;
      ctx.close();
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) {
      nonce = new byte[Frames.NONCE_BYTES];
      NONCES.nextBytes(nonce);
      Channel ch = ctx.channel();
      ClusterKeyring keyring = node.keyring();
      key = keyring == null ? null : keyring.primary();
      ByteBuf hello = key == null
          ? Frames.hello(ctx.alloc(), node.config().clusterName(), node.nodeId(), nonce)
          : Frames.hello(ctx.alloc(), node.config().clusterName(), node.nodeId(), nonce,
              Frames.AUTH_HMAC_SHA256, key.id.getBytes(java.nio.charset.StandardCharsets.US_ASCII));
      if (write(ch, hello, true)) {
        handshakeTimer = ctx.executor().schedule(() -> {
          if (!handshook) {
            node.counters().handshakeFailures.increment();
            warnings.warn("node {}: {} at {} did not complete the handshake within {}", node.nodeId(),
                nodeId, dataAddress(), node.config().handshakeTimeout());
            ch.close();
          }
        }, node.config().handshakeTimeout().toMillis(), TimeUnit.MILLISECONDS);
      }
      ctx.fireChannelActive();
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
      if (closing || !ctx.channel().isActive() || authenticator.isPoisoned()) {
        ReferenceCountUtil.release(msg);
        return;
      }
      ByteBuf buf = (ByteBuf) msg;
      Frames.Frame frame;
      try {
        node.counters().frameReceived(buf.readableBytes());
        frame = Frames.decode(buf);
      } catch (MalformedFrameException e) {
        node.counters().malformedFrames.increment();
        warnings.warn("node {}: malformed frame from {}: {}; closing the connection", node.nodeId(),
            nodeId, e.getMessage());
        close(ctx);
        return;
      } finally {
        buf.release();
      }
      if (!handshook) {
        onHandshake(ctx, frame);
        return;
      }
      if (!node.faults().dataPlane().allows(nodeId, node.nodeId())) {
        close(ctx);
        return;
      }
      if (frame instanceof Frames.Ack ack) {
        Batch b = inflight.get(ack.batchId());
        if (b == null || b.aeAck != null) {
          onAck(ack);
        } else {
          for (long delay : node.faults().dataPlane().deliveries(nodeId, node.nodeId())) {
            if (delay <= 0) {
              onAck(ack);
            } else {
              ctx.executor().schedule(() -> onAck(ack), delay, TimeUnit.MILLISECONDS);
            }
          }
        }
      } else if (frame instanceof Frames.AeDiff || frame instanceof Frames.AeKeys
          || frame instanceof Frames.AePullResponse || frame instanceof Frames.AeAbort) {
        AntiEntropyRound r = round;
        if (r != null) {
          r.onFrame(frame);
        }
      } else {
        node.counters().malformedFrames.increment();
        warnings.warn("node {}: unexpected {} from {}; closing the connection", node.nodeId(),
            frame.getClass().getSimpleName(), nodeId);
        close(ctx);
      }
    }

    private void onHandshake(ChannelHandlerContext ctx, Frames.Frame frame) {
      String problem;
      if (frame instanceof Frames.HelloOk ok) {
        if (ok.version() < Frames.MIN_PROTOCOL_VERSION || ok.version() > Frames.PROTOCOL_VERSION) {
          problem = "answered with protocol version " + ok.version();
        } else if (!ok.nodeId().equals(nodeId)) {
          problem = "is node '" + ok.nodeId() + "', not the expected '" + nodeId + "'";
        } else if (key == null && ok.authScheme() != Frames.AUTH_NONE) {
          problem = "asked for unknown authentication scheme " + ok.authScheme();
        } else if (key != null && !serverProved(ok)) {
          node.counters().authenticationFailures.increment();
          problem = "failed authentication: it does not hold this cluster's key '" + key.id + "'";
        } else {
          if (key != null && !sendProof(ctx)) {
            return; // the (injected) network is cut: the channel is closed
          }
          handshook = true;
          decoder.authenticated();
          if (handshakeTimer != null) {
            handshakeTimer.cancel(false);
          }
          onReady(ctx.channel());
          return;
        }
      } else if (frame instanceof Frames.HelloReject reject) {
        problem = "refused the handshake (" + reject.reason() + "): " + reject.message();
      } else {
        problem = "sent " + frame.getClass().getSimpleName() + " before the handshake";
      }
      node.counters().handshakeFailures.increment();
      warnings.warn("node {}: data-plane peer at {} {}; closing the connection", node.nodeId(),
          dataAddress(), problem);
      close(ctx);
    }

    /** Checks the accepting node's proof that it holds our key. */
    private boolean serverProved(Frames.HelloOk ok) {
      if (ok.authScheme() != Frames.AUTH_HMAC_SHA256) {
        return false;
      }
      transcript = FrameAuthenticator.transcript(ok.version(), node.config().clusterName(),
          node.nodeId(), nodeId, nonce, ok.nonce(), key.id);
      return Crypto.equal(FrameAuthenticator.serverProof(key, transcript), ok.auth());
    }

    /** Sends our proof (AUTH), then tags and checks every later frame. */
    private boolean sendProof(ChannelHandlerContext ctx) {
      if (!write(ctx.channel(), Frames.auth(ctx.alloc(), FrameAuthenticator.clientProof(key,
          transcript)), true)) {
        return false;
      }
      authenticator.activate(key, transcript, true);
      return true;
    }

    @Override
    public void channelWritabilityChanged(ChannelHandlerContext ctx) {
      if (ctx.channel().isWritable()) {
        scheduleFlush();
      }
      ctx.fireChannelWritabilityChanged();
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
      if (handshakeTimer != null) {
        handshakeTimer.cancel(false);
      }
      onDisconnected(ctx.channel());
      ctx.fireChannelInactive();
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
      if (cause instanceof TooLongFrameException || cause instanceof GuardedFrameDecoder.Refused) {
        node.counters().malformedFrames.increment();
        warnings.warn("node {}: oversized frame from {}: {}", node.nodeId(), nodeId, cause.getMessage());
      } else {
        log.debug("node {}: connection to {} failed: {}", node.nodeId(), nodeId, cause.toString());
      }
      close(ctx);
    }
  }
}
