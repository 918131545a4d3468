package io.kvstore.cluster;

import io.scalecube.cluster.Cluster;
import io.scalecube.cluster.ClusterConfig;
import io.scalecube.cluster.ClusterImpl;
import io.scalecube.cluster.ClusterMessageHandler;
import io.scalecube.cluster.membership.MembershipEvent;
import io.scalecube.cluster.transport.api.MessageCodec;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * ScaleCube Cluster (SWIM) configured for kvstore, behind a small Reactor-free surface.
 *
 * <p>Set explicitly, never left to ScaleCube's defaults: the message codec (JSON, not Java
 * serialization), the metadata codec, a transport bound to the configured host, the cluster name as
 * the membership namespace (nodes of another cluster are ignored), and the timings of
 * {@link KvClusterConfig}. The ScaleCube member id is the node id plus a random suffix, so a node that
 * restarts under the same node id is a new member and never confused with its previous incarnation.
 *
 * <p>Membership events are decoded (metadata included) and handed to a consumer on ScaleCube's
 * thread; the handler catches everything, because an exception would cancel ScaleCube's subscription
 * for good, and the consumer must only enqueue.
 */
final class Membership {
  private static final Logger log = LoggerFactory.getLogger(Membership.class);
  /** The first ScaleCube node in a JVM spends seconds loading classes; leave it room. */
  private static final Duration START_SLACK = Duration.ofSeconds(60);

  /** A membership change as kvstore sees it. */
  record Change(MembershipEvent.Type type, String memberId, String membershipAddress,
      NodeMetadata metadata, String metadataProblem) {}

  private final KvClusterConfig config;
  private final NodeMetadata self;
  private final FaultHooks faults;
  private final NodeMetadataCodec metadataCodec = new NodeMetadataCodec();
  private volatile Cluster cluster;

  private final Runnable onRefusedMessage;
  private final Supplier<ClusterKeyring> keyring;
  private final Runnable onAuthFailure;
  private final TlsChannels tls;
  private final InboundGuard guard;

  /**
   * @param keyring the current keyring; when the config has none, messages are not authenticated
   * @param onAuthFailure called once per message that fails authentication
   * @param tls puts the membership connections under TLS; null for plain TCP
   * @param guard the pre-authentication budget of the membership port
   */
  Membership(KvClusterConfig config, NodeMetadata self, FaultHooks faults,
      Runnable onRefusedMessage, Supplier<ClusterKeyring> keyring, Runnable onAuthFailure,
      TlsChannels tls, InboundGuard guard) {
    this.guard = guard;
    this.config = config;
    this.self = self;
    this.faults = faults;
    this.onRefusedMessage = onRefusedMessage;
    this.keyring = keyring;
    this.onAuthFailure = onAuthFailure;
    this.tls = tls;
  }

  private MessageCodec codec() {
    MessageCodec json = new ScaleCubeMessageCodec(onRefusedMessage);
    if (config.keyring() == null) {
      return json;
    }
    return new AuthenticatedMessageCodec(json, keyring, config.clusterName(),
        System::currentTimeMillis, () -> {
          onAuthFailure.run();
          onRefusedMessage.run();
        });
  }

  /**
   * Binds the membership port and joins through the seeds, waiting at most {@code joinTimeout} for
   * them; without an answer the node runs alone and keeps trying them every {@code syncInterval}.
   */
  void start(Consumer<Change> events) {
    String memberId = config.nodeId() + "-" + UUID.randomUUID().toString().substring(0, 8);
    ClusterConfig cc = ClusterConfig.defaultConfig()
        .memberId(memberId)
        .memberAlias(config.nodeId())
        .externalHost(config.advertiseHost())
        .metadata(self)
        .metadataCodec(metadataCodec)
        .metadataTimeout(millis(config.metadataTimeout()))
        .transport(t -> t
            .port(config.membershipPort())
            .messageCodec(codec())
            .maxFrameLength(AuthenticatedMessageCodec.MAX_ENVELOPE_BYTES)
            .connectTimeout(millis(config.connectTimeout()))
            .transportFactory(new MembershipTransportFactory(config.host(),
                faults.membershipTransport(), tls, guard,
                config.keyring() == null ? null : keyring)))
        .failureDetector(f -> f
            .pingInterval(millis(config.pingInterval()))
            .pingTimeout(millis(config.pingTimeout()))
            .pingReqMembers(config.pingRequestMembers()))
        .gossip(g -> g.gossipInterval(config.gossipInterval().toMillis()))
        .membership(m -> m
            .seedMembers(config.seeds())
            .syncInterval(millis(config.syncInterval()))
            .syncTimeout(millis(config.joinTimeout()))
            .suspicionMult(config.suspicionMultiplier())
            .namespace(config.clusterName()));
    ClusterImpl impl = new ClusterImpl(cc).handler(c -> new ClusterMessageHandler() {
      @Override
      public void onMembershipEvent(MembershipEvent event) {
        try {
          events.accept(decode(event));
        } catch (Throwable t) {
          log.error("node {}: membership event {} could not be handled", config.nodeId(), event, t);
        }
      }
    });
    long wait = config.joinTimeout().plus(START_SLACK).toMillis();
    try {
      cluster = impl.start().toFuture().get(wait, TimeUnit.MILLISECONDS);
    } catch (ExecutionException e) {
      impl.shutdown();
      throw new IllegalStateException("cannot start membership on " + config.host() + ":"
          + config.membershipPort() + ": " + e.getCause(), e.getCause());
    } catch (TimeoutException e) {
      impl.shutdown();
      throw new IllegalStateException("membership did not start within " + wait + " ms");
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      impl.shutdown();
      throw new IllegalStateException("interrupted while starting membership", e);
    }
  }

  private Change decode(MembershipEvent event) {
    ByteBuffer raw = event.isRemoved() ? event.oldMetadata() : event.newMetadata();
    NodeMetadata md = null;
    String problem = null;
    if (raw == null || !raw.hasRemaining()) {
      problem = "no metadata";
    } else {
      try {
        md = metadataCodec.deserialize(raw);
      } catch (RuntimeException e) {
        problem = "unreadable metadata: " + e.getMessage();
      }
    }
    return new Change(event.type(), event.member().id(), event.member().address(), md, problem);
  }

  /** {@code host:port} other members reach this node's membership endpoint at. */
  String address() {
    Cluster c = cluster;
    return c == null ? null : c.address();
  }

  /** Announces a graceful leave, waits for it to spread (bounded), and stops. Never throws. */
  void leave() {
    Cluster c = cluster;
    if (c == null) {
      return;
    }
    try {
      c.shutdown();
      c.onShutdown().toFuture().get(config.leaveTimeout().toMillis(), TimeUnit.MILLISECONDS);
    } catch (TimeoutException e) {
      // Expected when the peers are shutting down too; ScaleCube finishes stopping in the background.
      log.info("node {}: the leave announcement was not confirmed as spread within {}; stopping anyway",
          config.nodeId(), config.leaveTimeout());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (ExecutionException | RuntimeException e) {
      log.warn("node {}: leaving the cluster failed: {}", config.nodeId(), e.toString());
    }
  }

  private static int millis(Duration d) {
    return (int) d.toMillis();
  }
}
