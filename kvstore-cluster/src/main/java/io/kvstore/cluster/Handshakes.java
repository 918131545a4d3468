package io.kvstore.cluster;

import io.kvstore.core.NodeIds;
import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.util.concurrent.ScheduledFuture;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The two sides of the data-plane handshake, as pipeline handlers that remove themselves when done.
 *
 * <p>The connecting side ({@link Client}) sends HELLO (cluster name, node id, nonce, the key id of
 * its primary key), checks HELLO_OK (protocol version, the expected node id and, with a keyring, the
 * accepting node's proof that it holds the key), and answers with its own proof (AUTH). The accepting
 * side ({@link Server}) checks HELLO (magic, versions, cluster, node id, key id), answers HELLO_OK with
 * its proof, and checks AUTH. Proofs and per-frame tags are {@link FrameAuthenticator}'s. Either side
 * gives up after the handshake timeout. With a keyring every HELLO_REJECT says only AUTH_FAILED,
 * "{@value #GENERIC_REFUSAL}": a peer that has not proved the key learns neither the cluster's name
 * nor whether the key id it named exists; the real reason goes to this node's log.
 *
 * <p>On success the handler lifts the pre-authentication frame limit, replaces itself in the
 * pipeline with the session handler its {@code onDone} makes, and hands it the frames that follow.
 */
final class Handshakes {
  private static final Logger log = LoggerFactory.getLogger(Handshakes.class);
  private static final SecureRandom NONCES = new SecureRandom();
  /** The only HELLO_REJECT text a node with a keyring sends: the peer has proved nothing yet. */
  static final String GENERIC_REFUSAL = "handshake refused";

  private Handshakes() {}

  /**
   * What both sides need.
   *
   * @param nodeId this node
   * @param clusterName this node's cluster
   * @param timeout how long a handshake may take
   * @param stats counters
   * @param keyring this node's current keyring (null: an open cluster)
   * @param faults test-only network cuts
   * @param closing whether this node is closing (new connections are refused)
   */
  record Env(String nodeId, String clusterName, Duration timeout, Stats stats,
      Supplier<ClusterKeyring> keyring, FaultHooks faults, BooleanSupplier closing) {}

  /** Makes the handler that takes over once the handshake succeeded. */
  @FunctionalInterface
  interface OnDone {
    /**
     * @param ctx the handshake handler's context (still in the pipeline)
     * @param peerNodeId the authenticated peer
     * @return the session handler to put in the handshake's place
     */
    ChannelHandler sessionFor(ChannelHandlerContext ctx, String peerNodeId);
  }

  private static final RateLimitedLog warnings = new RateLimitedLog(log);

  private static byte[] nonce() {
    byte[] nonce = new byte[Frames.NONCE_BYTES];
    NONCES.nextBytes(nonce);
    return nonce;
  }

  private static void send(Env env, ChannelHandlerContext ctx, ByteBuf frame) {
    env.stats().frameSent(frame.readableBytes());
    ctx.writeAndFlush(frame, ctx.voidPromise());
  }

  /** Shared: the timer, the success step and the failure bookkeeping. */
  private abstract static class Side extends FrameHandler {
    final Env env;
    final FrameReader reader;
    final GuardedFrameDecoder decoder;
    final FrameAuthenticator authenticator;
    final OnDone onDone;
    private ScheduledFuture<?> timer;
    private boolean done;

    Side(Env env, FrameReader reader, GuardedFrameDecoder decoder,
        FrameAuthenticator authenticator, OnDone onDone) {
      this.env = env;
      this.reader = reader;
      this.decoder = decoder;
      this.authenticator = authenticator;
      this.onDone = onDone;
    }

    final void startTimer(ChannelHandlerContext ctx, String what) {
      timer = ctx.executor().schedule(() -> {
        if (!done) {
          env.stats().handshakeFailures.increment();
          warnings.warn("node {}: {} did not complete the handshake within {}; closing",
              env.nodeId(), what, env.timeout());
          reader.close(ctx);
        }
      }, env.timeout().toMillis(), TimeUnit.MILLISECONDS);
    }

    final void succeeded(ChannelHandlerContext ctx, String peerNodeId) {
      done = true;
      if (timer != null) {
        timer.cancel(false);
      }
      decoder.authenticated();
      ChannelHandler session = onDone.sessionFor(ctx, peerNodeId);
      ctx.pipeline().replace(this, "session", session);
    }

    @Override
    final void failed(ChannelHandlerContext ctx, Frames.Frame frame, RuntimeException e) {
      env.stats().handshakeFailures.increment();
      warnings.warn("node {}: cannot handle {} in the handshake with {}: {}; closing",
          env.nodeId(), frame.getClass().getSimpleName(), ctx.channel().remoteAddress(),
          e.toString());
      reader.close(ctx);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
      if (timer != null) {
        timer.cancel(false);
      }
      ctx.fireChannelInactive();
    }
  }

  /** The connecting side. */
  static final class Client extends Side {
    private final String expectedPeer;
    private final String peerAddress;
    private byte[] nonce;
    private ClusterKeyring.Key key;
    private byte[] transcript;

    Client(Env env, FrameReader reader, GuardedFrameDecoder decoder,
        FrameAuthenticator authenticator, String expectedPeer, String peerAddress, OnDone onDone) {
      super(env, reader, decoder, authenticator, onDone);
      this.expectedPeer = expectedPeer;
      this.peerAddress = peerAddress;
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) {
      nonce = nonce();
      ClusterKeyring keyring = env.keyring().get();
      key = keyring == null ? null : keyring.primary();
      ByteBuf hello = key == null
          ? Frames.hello(ctx.alloc(), env.clusterName(), env.nodeId(), nonce)
          : Frames.hello(ctx.alloc(), env.clusterName(), env.nodeId(), nonce,
              Frames.AUTH_HMAC_SHA256, key.id.getBytes(StandardCharsets.US_ASCII));
      if (write(ctx, hello)) {
        startTimer(ctx, expectedPeer + " at " + peerAddress);
      }
      ctx.fireChannelActive();
    }

    /** Writes a handshake frame unless the (injected) network is cut, which closes the channel. */
    private boolean write(ChannelHandlerContext ctx, ByteBuf frame) {
      if (!env.faults().dataPlane().allows(env.nodeId(), expectedPeer)) {
        frame.release();
        reader.close(ctx);
        return false;
      }
      send(env, ctx, frame);
      return true;
    }

    @Override
    void onFrame(ChannelHandlerContext ctx, Frames.Frame frame) {
      String problem;
      if (frame instanceof Frames.HelloOk ok) {
        if (ok.version() < Frames.MIN_PROTOCOL_VERSION || ok.version() > Frames.PROTOCOL_VERSION) {
          problem = "answered with protocol version " + ok.version();
        } else if (!ok.nodeId().equals(expectedPeer)) {
          problem = "is node '" + ok.nodeId() + "', not the expected '" + expectedPeer + "'";
        } else if (key == null && ok.authScheme() != Frames.AUTH_NONE) {
          problem = "asked for unknown authentication scheme " + ok.authScheme();
        } else if (key != null && !serverProved(ok)) {
          env.stats().authenticationFailures.increment();
          problem = "failed authentication: it does not hold this cluster's key '" + key.id + "'";
        } else {
          if (key != null) {
            // Our proof (AUTH), then tag and check every later frame.
            if (!write(ctx, Frames.auth(ctx.alloc(), FrameAuthenticator.clientProof(key,
                transcript)))) {
              return; // the (injected) network is cut: the channel is closed
            }
            authenticator.activate(key, transcript, true);
          }
          succeeded(ctx, expectedPeer);
          return;
        }
      } else if (frame instanceof Frames.HelloReject reject) {
        problem = "refused the handshake (" + reject.reason() + "): " + reject.message();
      } else {
        problem = "sent " + frame.getClass().getSimpleName() + " before the handshake";
      }
      env.stats().handshakeFailures.increment();
      warnings.warn("node {}: data-plane peer at {} {}; closing the connection", env.nodeId(),
          peerAddress, problem);
      reader.close(ctx);
    }

    /** Checks the accepting node's proof that it holds our key. */
    private boolean serverProved(Frames.HelloOk ok) {
      if (ok.authScheme() != Frames.AUTH_HMAC_SHA256) {
        return false;
      }
      transcript = FrameAuthenticator.transcript(ok.version(), env.clusterName(), env.nodeId(),
          expectedPeer, nonce, ok.nonce(), key.id);
      return Crypto.equal(FrameAuthenticator.serverProof(key, transcript), ok.auth());
    }
  }

  /** The accepting side. */
  static final class Server extends Side {
    private final InboundGuard.Connection guard;
    /** Between HELLO_OK and a valid AUTH (keyring clusters only). */
    private String unauthenticatedPeer;
    private ClusterKeyring.Key authKey;
    private byte[] transcript;

    Server(Env env, FrameReader reader, GuardedFrameDecoder decoder,
        FrameAuthenticator authenticator, InboundGuard.Connection guard, OnDone onDone) {
      super(env, reader, decoder, authenticator, onDone);
      this.guard = guard;
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) {
      startTimer(ctx, String.valueOf(ctx.channel().remoteAddress()));
      ctx.fireChannelActive();
    }

    @Override
    void onFrame(ChannelHandlerContext ctx, Frames.Frame frame) {
      if (authKey != null) {
        authenticate(ctx, frame);
      } else {
        hello(ctx, frame);
      }
    }

    private void hello(ChannelHandlerContext ctx, Frames.Frame frame) {
      if (!(frame instanceof Frames.Hello hello)) {
        failed(ctx, null, "sent " + frame.getClass().getSimpleName() + " before the handshake");
        return;
      }
      if (hello.magic() != Frames.MAGIC) {
        failed(ctx, null, "is not a kvstore node (bad magic)");
        return;
      }
      int version = Math.min(hello.maxVersion(), Frames.PROTOCOL_VERSION);
      if (version < Math.max(hello.minVersion(), Frames.MIN_PROTOCOL_VERSION)) {
        failed(ctx, Frames.RejectReason.VERSION_MISMATCH, "speaks protocol versions "
            + hello.minVersion() + " to " + hello.maxVersion() + ", this node "
            + Frames.MIN_PROTOCOL_VERSION + " to " + Frames.PROTOCOL_VERSION);
        return;
      }
      if (!hello.clusterName().equals(env.clusterName())) {
        failed(ctx, Frames.RejectReason.CLUSTER_MISMATCH, "belongs to cluster '"
            + hello.clusterName() + "', this node to '" + env.clusterName() + "'");
        return;
      }
      try {
        NodeIds.validate(hello.nodeId());
      } catch (IllegalArgumentException e) {
        failed(ctx, Frames.RejectReason.BAD_NODE_ID, e.getMessage());
        return;
      }
      if (hello.nodeId().equals(env.nodeId())) {
        failed(ctx, Frames.RejectReason.SELF_CONNECTION, "uses this node's own id '"
            + hello.nodeId() + "'");
        return;
      }
      ClusterKeyring keyring = env.keyring().get();
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
      if (env.closing().getAsBoolean()) {
        failed(ctx, Frames.RejectReason.SHUTTING_DOWN, "connected while this node closes");
        return;
      }
      if (!env.faults().dataPlane().allows(hello.nodeId(), env.nodeId())) {
        reader.close(ctx);
        return;
      }
      byte[] nonce = nonce();
      if (key != null) {
        // Challenge-response: prove we hold the key, then wait for the peer's proof (AUTH).
        unauthenticatedPeer = hello.nodeId();
        authKey = key;
        transcript = FrameAuthenticator.transcript(version, env.clusterName(), hello.nodeId(),
            env.nodeId(), hello.nonce(), nonce, key.id);
        send(env, ctx, Frames.helloOk(ctx.alloc(), version, env.nodeId(), nonce,
            Frames.AUTH_HMAC_SHA256, FrameAuthenticator.serverProof(key, transcript)));
        return;
      }
      guard.authenticated();
      send(env, ctx, Frames.helloOk(ctx.alloc(), version, env.nodeId(), nonce));
      succeeded(ctx, hello.nodeId());
    }

    private void authenticate(ChannelHandlerContext ctx, Frames.Frame frame) {
      if (!(frame instanceof Frames.Auth auth)
          || !Crypto.equal(FrameAuthenticator.clientProof(authKey, transcript), auth.mac())) {
        authFailed(ctx, "failed the challenge (it does not hold the key it named)");
        return;
      }
      authenticator.activate(authKey, transcript, false);
      guard.authenticated();
      authKey = null;
      transcript = null;
      succeeded(ctx, unauthenticatedPeer);
    }

    private void authFailed(ChannelHandlerContext ctx, String problem) {
      env.stats().authenticationFailures.increment();
      failed(ctx, Frames.RejectReason.AUTH_FAILED, problem);
    }

    private void failed(ChannelHandlerContext ctx, Frames.RejectReason reason, String problem) {
      env.stats().handshakeFailures.increment();
      warnings.warn("node {}: refused a data-plane connection from {}: it {}", env.nodeId(),
          ctx.channel().remoteAddress(), problem);
      reader.closing();
      if (reason != null && env.keyring().get() != null) {
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
  }
}
