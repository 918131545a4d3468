package io.kvstore.cluster;

import io.kvstore.core.Digest;
import io.kvstore.core.KeyVersion;
import io.kvstore.core.Mutation;
import io.kvstore.core.NodeIds;
import io.kvstore.core.ReplicaStore;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.group.DefaultChannelGroup;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.LengthFieldPrepender;
import io.netty.handler.codec.TooLongFrameException;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.DefaultThreadFactory;
import io.netty.util.concurrent.GlobalEventExecutor;
import io.netty.util.concurrent.ScheduledFuture;
import java.net.InetSocketAddress;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The data-plane server and the event loops every data-plane channel of this node runs on.
 *
 * <p>An accepted connection must start with a HELLO naming this cluster and a protocol version this
 * node speaks, within the handshake timeout; otherwise it is refused (HELLO_REJECT where that helps the
 * peer, a plain close for garbage) and counted. After the handshake it may send MUTATIONS (applied
 * with the LWW merge on the event loop, then acknowledged) and anti-entropy requests (answered from
 * the node's anti-entropy executor, at most {@value #MAX_AE_TASKS_PER_CONNECTION} at a time per
 * connection). Any frame that breaks the format or the protocol closes the connection and is
 * counted; nothing a peer sends can throw out of a handler. With {@link ClusterTls}, TLS comes first:
 * a connection reaches the HELLO only after a TLS handshake in which the peer proved a certificate of
 * the cluster CA.
 *
 * <p>Before the handshake completes a connection is held to the port's pre-authentication budget
 * ({@link InboundGuard}: connection caps, frames of at most {@value Frames#MAX_HANDSHAKE_FRAME_BYTES}
 * bytes, the handshake timeout). With a keyring every HELLO_REJECT says only AUTH_FAILED, "{@value
 * #GENERIC_REFUSAL}": a peer that has not proved the key learns neither the cluster's name nor
 * whether the key id it named exists; the real reason goes to this node's log.
 */
final class DataPlane {
  private static final Logger log = LoggerFactory.getLogger(DataPlane.class);
  private static final SecureRandom NONCES = new SecureRandom();
  static final int MAX_AE_TASKS_PER_CONNECTION = 4;
  /** The only HELLO_REJECT text a node with a keyring sends: the peer has proved nothing yet. */
  static final String GENERIC_REFUSAL = "handshake refused";
  /** The most keys one anti-entropy answer lists; more differing buckets wait for the next round. */
  static final int MAX_KEYS_PER_ROUND = 100_000;

  private final ClusterReplicator node;
  private final EventLoopGroup group;
  private final ChannelGroup accepted = new DefaultChannelGroup(GlobalEventExecutor.INSTANCE);
  private final RateLimitedLog warnings = new RateLimitedLog(log);
  private Channel server;

  DataPlane(ClusterReplicator node) {
    this.node = node;
    this.group = new NioEventLoopGroup(2, new DefaultThreadFactory("kvstore-data-" + node.nodeId(),
        true));
  }

  EventLoopGroup group() {
    return group;
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
            FrameAuthenticator authenticator = new FrameAuthenticator(node.nodeId(),
                node.counters(), node::keyring);
            GuardedFrameDecoder decoder = new GuardedFrameDecoder(Frames.MAX_FRAME_BYTES,
                Frames.MAX_HANDSHAKE_FRAME_BYTES, null);
            InboundGuard.Connection guard = node.dataGuard().newConnection(decoder);
            ch.pipeline().addLast(
                decoder,
                new LengthFieldPrepender(4),
                guard,
                authenticator,
                new InboundHandler(authenticator, guard));
            node.secure(ch, false);
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

  void close() {
    if (server != null) {
      server.close().awaitUninterruptibly(2, TimeUnit.SECONDS);
    }
    accepted.close().awaitUninterruptibly(2, TimeUnit.SECONDS);
    group.shutdownGracefully(0, 1, TimeUnit.SECONDS).awaitUninterruptibly(3, TimeUnit.SECONDS);
  }

  private void send(Channel ch, ByteBuf frame) {
    node.counters().frameSent(frame.readableBytes());
    ch.writeAndFlush(frame, ch.voidPromise());
  }

  /** The server side of one connection. */
  private final class InboundHandler extends ChannelInboundHandlerAdapter {
    private final FrameAuthenticator authenticator;
    private final InboundGuard.Connection guard;
    /**
     * Set when this handler decides to close the connection. The close may not take effect at once
     * (a HELLO_REJECT is flushed first; TLS sends its close_notify), and the frame decoder still
     * delivers the frames it holds from the same read: none of them may be acted on.
     */
    private boolean closing;
    private String peer;
    private ScheduledFuture<?> handshakeTimer;
    /** Between HELLO_OK and a valid AUTH (keyring clusters only). */
    private String unauthenticatedPeer;
    private ClusterKeyring.Key authKey;
    private byte[] transcript;
    private final Map<Long, DigestParts> digests = new HashMap<>();
    private final AtomicInteger aeTasks = new AtomicInteger();

    InboundHandler(FrameAuthenticator authenticator, InboundGuard.Connection guard) {
      this.authenticator = authenticator;
      this.guard = guard;
    }

    private void close(ChannelHandlerContext ctx) {
      closing = true;
      ctx.close();
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) {
      Channel ch = ctx.channel();
      handshakeTimer = ctx.executor().schedule(() -> {
        if (peer == null) {
          node.counters().handshakeFailures.increment();
          warnings.warn("node {}: {} sent no handshake within {}; closing", node.nodeId(),
              ch.remoteAddress(), node.config().handshakeTimeout());
          ch.close();
        }
      }, node.config().handshakeTimeout().toMillis(), TimeUnit.MILLISECONDS);
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
        protocolError(ctx, "malformed frame: " + e.getMessage());
        return;
      } finally {
        buf.release();
      }
      try {
        if (peer == null && authKey != null) {
          authenticate(ctx, frame);
        } else if (peer == null) {
          handshake(ctx, frame);
        } else if (!node.faults().dataPlane().allows(peer, node.nodeId())) {
          close(ctx);
        } else {
          dispatch(ctx, frame);
        }
      } catch (RuntimeException e) {
        // A bug, or a frame that passed decoding but cannot be handled: never let it escape.
        protocolError(ctx, "cannot handle " + frame.getClass().getSimpleName() + ": " + e);
      }
    }

    private void handshake(ChannelHandlerContext ctx, Frames.Frame frame) {
      if (!(frame instanceof Frames.Hello hello)) {
        handshakeFailed(ctx, null, "sent " + frame.getClass().getSimpleName()
            + " before the handshake");
        return;
      }
      if (hello.magic() != Frames.MAGIC) {
        handshakeFailed(ctx, null, "is not a kvstore node (bad magic)");
        return;
      }
      int version = Math.min(hello.maxVersion(), Frames.PROTOCOL_VERSION);
      if (version < Math.max(hello.minVersion(), Frames.MIN_PROTOCOL_VERSION)) {
        handshakeFailed(ctx, Frames.RejectReason.VERSION_MISMATCH, "speaks protocol versions "
            + hello.minVersion() + " to " + hello.maxVersion() + ", this node "
            + Frames.MIN_PROTOCOL_VERSION + " to " + Frames.PROTOCOL_VERSION);
        return;
      }
      if (!hello.clusterName().equals(node.config().clusterName())) {
        handshakeFailed(ctx, Frames.RejectReason.CLUSTER_MISMATCH, "belongs to cluster '"
            + hello.clusterName() + "', this node to '" + node.config().clusterName() + "'");
        return;
      }
      try {
        NodeIds.validate(hello.nodeId());
      } catch (IllegalArgumentException e) {
        handshakeFailed(ctx, Frames.RejectReason.BAD_NODE_ID, e.getMessage());
        return;
      }
      if (hello.nodeId().equals(node.nodeId())) {
        handshakeFailed(ctx, Frames.RejectReason.SELF_CONNECTION, "uses this node's own id '"
            + hello.nodeId() + "'");
        return;
      }
      ClusterKeyring keyring = node.keyring();
      ClusterKeyring.Key key = null;
      if (keyring == null && hello.authScheme() != Frames.AUTH_NONE) {
        authFailed(ctx, "authenticates (scheme " + hello.authScheme() + "), but this node has no "
            + "cluster secret");
        return;
      }
      if (keyring != null) {
        if (hello.authScheme() != Frames.AUTH_HMAC_SHA256) {
          authFailed(ctx, "has no cluster secret (authentication scheme " + hello.authScheme()
              + "), and this cluster requires one");
          return;
        }
        key = keyring.key(FrameAuthenticator.keyId(hello.auth()));
        if (key == null) {
          authFailed(ctx, "names a key id that is not in this node's keyring");
          return;
        }
      }
      if (node.isClosing()) {
        handshakeFailed(ctx, Frames.RejectReason.SHUTTING_DOWN, "connected while this node closes");
        return;
      }
      if (!node.faults().dataPlane().allows(hello.nodeId(), node.nodeId())) {
        close(ctx);
        return;
      }
      byte[] nonce = new byte[Frames.NONCE_BYTES];
      NONCES.nextBytes(nonce);
      if (key != null) {
        // Challenge-response: prove we hold the key, then wait for the peer's proof (AUTH).
        unauthenticatedPeer = hello.nodeId();
        authKey = key;
        transcript = FrameAuthenticator.transcript(version, node.config().clusterName(),
            hello.nodeId(), node.nodeId(), hello.nonce(), nonce, key.id);
        send(ctx.channel(), Frames.helloOk(ctx.alloc(), version, node.nodeId(), nonce,
            Frames.AUTH_HMAC_SHA256, FrameAuthenticator.serverProof(key, transcript)));
        return;
      }
      peer = hello.nodeId();
      handshakeTimer.cancel(false);
      guard.authenticated();
      send(ctx.channel(), Frames.helloOk(ctx.alloc(), version, node.nodeId(), nonce));
    }

    private void authenticate(ChannelHandlerContext ctx, Frames.Frame frame) {
      if (!(frame instanceof Frames.Auth auth)
          || !Crypto.equal(FrameAuthenticator.clientProof(authKey, transcript), auth.mac())) {
        authFailed(ctx, "failed the challenge (it does not hold the key it named)");
        return;
      }
      authenticator.activate(authKey, transcript, false);
      guard.authenticated();
      peer = unauthenticatedPeer;
      authKey = null;
      transcript = null;
      handshakeTimer.cancel(false);
    }

    private void authFailed(ChannelHandlerContext ctx, String problem) {
      node.counters().authenticationFailures.increment();
      handshakeFailed(ctx, Frames.RejectReason.AUTH_FAILED, problem);
    }

    private void handshakeFailed(ChannelHandlerContext ctx, Frames.RejectReason reason,
        String problem) {
      node.counters().handshakeFailures.increment();
      warnings.warn("node {}: refused a data-plane connection from {}: it {}", node.nodeId(),
          ctx.channel().remoteAddress(), problem);
      closing = true;
      if (reason != null && node.keyring() != null) {
        // The peer has not proved the key: tell it nothing about this cluster (its name, its key
        // ids, its versions). The reason is in this node's log.
        ctx.writeAndFlush(Frames.helloReject(ctx.alloc(), Frames.RejectReason.AUTH_FAILED,
            GENERIC_REFUSAL)).addListener(f -> ctx.close());
      } else if (reason != null) {
        ctx.writeAndFlush(Frames.helloReject(ctx.alloc(), reason, problem))
            .addListener(f -> ctx.close());
      } else {
        ctx.close();
      }
    }

    private void dispatch(ChannelHandlerContext ctx, Frames.Frame frame) {
      ReplicaStore store = node.store();
      if (frame instanceof Frames.MutationBatch batch) {
        if (batch.isAntiEntropy()) {
          applyBatch(ctx, store, batch);
        } else {
          for (long delay : node.faults().dataPlane().deliveries(peer, node.nodeId())) {
            if (delay <= 0) {
              applyBatch(ctx, store, batch);
            } else {
              ctx.executor().schedule(() -> applyBatch(ctx, store, batch), delay,
                  TimeUnit.MILLISECONDS);
            }
          }
        }
      } else if (frame instanceof Frames.AeDigest digest) {
        onDigest(ctx, digest);
      } else if (frame instanceof Frames.AePull pull) {
        submit(ctx, () -> answerPull(ctx.channel(), pull));
      } else {
        protocolError(ctx, "unexpected " + frame.getClass().getSimpleName() + " from " + peer);
      }
    }

    private void applyBatch(ChannelHandlerContext ctx, ReplicaStore store,
        Frames.MutationBatch batch) {
      List<Mutation> ms = batch.mutations();
      BitSet held = new BitSet(ms.size());
      for (int i = 0; i < ms.size(); i++) {
        if (store.apply(ms.get(i)).isHeld()) {
          held.set(i);
        }
      }
      // Ack only once the applied mutations are durable (at once unless the store syncs); the
      // storage's sync thread completes it, so the event loop never waits for a disk.
      CompletableFuture<Void> durable = store.whenDurable().toCompletableFuture();
      if (durable.isDone() && !durable.isCompletedExceptionally()) {
        send(ctx.channel(), Frames.ack(ctx.alloc(), batch.batchId(), ms.size(), held));
        return;
      }
      durable.whenComplete((ignored, failure) -> {
        BitSet durableHeld = failure == null ? held : new BitSet(); // read-only now: ack nothing
        try {
          ctx.executor().execute(() -> send(ctx.channel(),
              Frames.ack(ctx.alloc(), batch.batchId(), ms.size(), durableHeld)));
        } catch (RejectedExecutionException e) {
          // The event loop is shutting down: the connection is gone, and so is the ack.
        }
      });
    }

    private void onDigest(ChannelHandlerContext ctx, Frames.AeDigest d) {
      DigestParts parts = digests.get(d.roundId());
      if (parts == null) {
        if (d.from() != 0 || digests.size() >= 2) {
          protocolError(ctx, "digest chunk out of order from " + peer);
          return;
        }
        parts = new DigestParts(d.format(), new long[d.bucketCount()]);
        digests.put(d.roundId(), parts);
      }
      if (parts.format != d.format() || parts.hashes.length != d.bucketCount()
          || d.from() != parts.next) {
        protocolError(ctx, "inconsistent digest chunk from " + peer);
        return;
      }
      System.arraycopy(d.hashes(), 0, parts.hashes, d.from(), d.hashes().length);
      parts.next += d.hashes().length;
      if (!d.last()) {
        return;
      }
      digests.remove(d.roundId());
      if (parts.next != parts.hashes.length) {
        protocolError(ctx, "digest from " + peer + " ended after " + parts.next + " of "
            + parts.hashes.length + " buckets");
        return;
      }
      DigestParts complete = parts;
      submit(ctx, () -> answerDigest(ctx.channel(), d.roundId(), complete));
    }

    private void submit(ChannelHandlerContext ctx, Runnable task) {
      if (aeTasks.incrementAndGet() > MAX_AE_TASKS_PER_CONNECTION) {
        aeTasks.decrementAndGet();
        protocolError(ctx, "too many concurrent anti-entropy requests from " + peer);
        return;
      }
      try {
        node.antiEntropyExecutor().execute(() -> {
          try {
            task.run();
          } catch (RuntimeException e) {
            log.warn("node {}: answering anti-entropy from {} failed", node.nodeId(), peer, e);
            ctx.close();
          } finally {
            aeTasks.decrementAndGet();
          }
        });
      } catch (RejectedExecutionException e) {
        aeTasks.decrementAndGet();
        ctx.close();
      }
    }

    private void protocolError(ChannelHandlerContext ctx, String problem) {
      node.counters().malformedFrames.increment();
      warnings.warn("node {}: {} on the data-plane connection from {}; closing it", node.nodeId(),
          problem, ctx.channel().remoteAddress());
      close(ctx);
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
      if (cause instanceof TooLongFrameException) {
        protocolError(ctx, "oversized frame (" + cause.getMessage() + ")");
      } else {
        log.debug("node {}: data-plane connection from {} failed: {}", node.nodeId(),
            ctx.channel().remoteAddress(), cause.toString());
        close(ctx);
      }
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
      if (handshakeTimer != null) {
        handshakeTimer.cancel(false);
      }
      digests.clear();
      ctx.fireChannelInactive();
    }
  }

  /** A digest being received in chunks. */
  private static final class DigestParts {
    final int format;
    final long[] hashes;
    int next;

    DigestParts(int format, long[] hashes) {
      this.format = format;
      this.hashes = hashes;
    }
  }

  // ---- answering anti-entropy (on the anti-entropy executor) -----------------------------------

  private void answerDigest(Channel ch, long roundId, DigestParts theirs) {
    ReplicaStore store = node.store();
    Digest mine = store.digest();
    if (theirs.format != Digest.FORMAT || theirs.hashes.length != mine.bucketCount()) {
      String why = "digest format " + theirs.format + " with " + theirs.hashes.length
          + " buckets; this node uses format " + Digest.FORMAT + " with " + mine.bucketCount()
          + " (digestBuckets must be the same on every node)";
      warnings.warn("node {}: cannot compare digests: {}", node.nodeId(), why);
      send(ch, Frames.aeAbort(ch.alloc(), roundId, why));
      return;
    }
    int[] diff = mine.diff(Digest.of(theirs.hashes));
    BitSet covered = new BitSet(mine.bucketCount());
    for (int b : diff) {
      covered.set(b);
    }
    List<KeyVersion> keys = diff.length == 0 ? List.of() : store.keyVersions(covered);
    boolean more = false;
    if (keys.size() > MAX_KEYS_PER_ROUND) {
      // Keep whole buckets, chosen at random, up to the limit; the rest waits for the next round.
      Map<Integer, List<KeyVersion>> byBucket = new HashMap<>();
      for (KeyVersion kv : keys) {
        byBucket.computeIfAbsent(Digest.bucketOf(kv.key(), mine.bucketCount()),
            b -> new ArrayList<>()).add(kv);
      }
      List<Integer> order = new ArrayList<>();
      for (int b : diff) {
        order.add(b);
      }
      Collections.shuffle(order);
      covered.clear();
      List<KeyVersion> kept = new ArrayList<>();
      for (int b : order) {
        List<KeyVersion> inBucket = byBucket.getOrDefault(b, List.of());
        if (!kept.isEmpty() && kept.size() + inBucket.size() > MAX_KEYS_PER_ROUND) {
          more = true;
          continue;
        }
        covered.set(b);
        kept.addAll(inBucket);
      }
      keys = kept;
    }
    send(ch, Frames.aeDiff(ch.alloc(), roundId, mine.bucketCount(), more, covered));
    int max = node.config().maxBatchBytes();
    List<KeyVersion> chunk = new ArrayList<>();
    int bytes = 0;
    for (KeyVersion kv : keys) {
      int size = Frames.keyVersionSize(kv);
      if (!chunk.isEmpty() && bytes + size > max) {
        send(ch, Frames.aeKeys(ch.alloc(), roundId, false, chunk, bytes));
        chunk = new ArrayList<>();
        bytes = 0;
      }
      chunk.add(kv);
      bytes += size;
    }
    send(ch, Frames.aeKeys(ch.alloc(), roundId, true, chunk, bytes));
  }

  private void answerPull(Channel ch, Frames.AePull pull) {
    ReplicaStore store = node.store();
    int max = node.config().maxBatchBytes();
    List<Mutation> out = new ArrayList<>();
    int bytes = 0;
    int processed = 0;
    for (String key : pull.keys()) {
      List<Mutation> ms = store.mutations(List.of(key));
      if (!ms.isEmpty()) {
        int size = Frames.mutationSize(ms.get(0));
        if (!out.isEmpty() && bytes + size > max) {
          break;
        }
        out.add(ms.get(0));
        bytes += size;
      }
      processed++;
    }
    send(ch, Frames.aePullResponse(ch.alloc(), pull.roundId(), processed, out, bytes));
  }
}
