package io.kvstore.cluster;

import io.netty.channel.Channel;
import io.netty.channel.ChannelOption;
import io.netty.handler.codec.LengthFieldBasedFrameDecoder;
import io.netty.handler.codec.LengthFieldPrepender;
import io.scalecube.cluster.transport.api.Message;
import io.scalecube.cluster.transport.api.Transport;
import io.scalecube.cluster.transport.api.TransportConfig;
import io.scalecube.cluster.transport.api.TransportFactory;
import io.scalecube.transport.netty.Receiver;
import io.scalecube.transport.netty.Sender;
import io.scalecube.transport.netty.TransportImpl;
import io.scalecube.transport.netty.TransportImpl.ReceiverContext;
import io.scalecube.transport.netty.TransportImpl.SenderContext;
import java.util.function.Supplier;
import java.util.function.UnaryOperator;
import reactor.core.publisher.Mono;
import reactor.netty.Connection;
import reactor.netty.DisposableServer;
import reactor.netty.tcp.TcpClient;
import reactor.netty.tcp.TcpServer;

/**
 * ScaleCube's TCP transport, but bound to the configured host: the stock factory always binds
 * 0.0.0.0. Framing is ScaleCube's (a 4-byte length, then the codec's bytes), so nodes interoperate
 * with any ScaleCube TCP peer that uses the same codec. ScaleCube's {@link TransportImpl} keeps the
 * connection cache, request/response matching and shutdown; only the server and client sides are
 * ours. A connection that delivers a message the codec refuses (garbage, wrong shape, failed
 * authentication) is closed. With {@link ClusterTls}, TLS sits in front of the framing on both the
 * accepting and the connecting side ({@link TlsChannels}).
 *
 * <p>Accepted connections are held to the port's pre-authentication budget ({@link InboundGuard}):
 * connection caps, a first message within the handshake timeout and then one at least every
 * {@code membershipIdleTimeout}, a first message of at most {@value #MAX_FIRST_MESSAGE_BYTES} bytes,
 * and (with a keyring) each envelope header checked before its body is buffered. A connection counts
 * as authenticated from the first message the codec accepts (with a keyring: one with a valid tag).
 */
final class MembershipTransportFactory implements TransportFactory {
  private static final int LENGTH_FIELD_BYTES = 4;
  /**
   * 64 KiB: the largest frame accepted on an inbound connection before it delivered a valid message.
   * A member's first message on a new connection is a ping, a gossip or a membership sync; a sync
   * lists every member in roughly 200 bytes of JSON each, so this leaves room for clusters of about
   * 300 members, while 256 strangers that name a real key id but cannot prove it buffer at most
   * 16 MiB in all.
   */
  static final int MAX_FIRST_MESSAGE_BYTES = 64 * 1024;

  private final String bindHost;
  private final UnaryOperator<Transport> decorator;
  private final TlsChannels tls;
  private final InboundGuard guard;
  private final Supplier<ClusterKeyring> keyring;

  /**
   * @param bindHost the address to listen on
   * @param decorator wraps the transport (the identity, except in fault-injection tests)
   * @param tls puts every connection under TLS; null for plain TCP
   * @param guard the pre-authentication budget of accepted connections
   * @param keyring checks each inbound envelope header against it; null without a keyring
   */
  MembershipTransportFactory(String bindHost, UnaryOperator<Transport> decorator, TlsChannels tls,
      InboundGuard guard, Supplier<ClusterKeyring> keyring) {
    this.bindHost = bindHost;
    this.decorator = decorator;
    this.tls = tls;
    this.guard = guard;
    this.keyring = keyring;
  }

  @Override
  public Transport createTransport(TransportConfig config) {
    Transport transport = new TransportImpl(config.messageCodec(),
        new BoundReceiver(bindHost, config, tls, guard, keyring), new TcpSender(config, tls),
        config.addressMapper());
    return decorator.apply(transport);
  }

  private static void initClientChannel(Channel channel, int maxFrameLength, TlsChannels tls) {
    channel.pipeline().addFirst(new LengthFieldBasedFrameDecoder(
        maxFrameLength, 0, LENGTH_FIELD_BYTES, 0, LENGTH_FIELD_BYTES));
    channel.pipeline().addFirst(new LengthFieldPrepender(LENGTH_FIELD_BYTES));
    if (tls != null) {
      tls.install(channel, "membership", true);
    }
  }

  private static void initServerChannel(Channel channel, int maxFrameLength, TlsChannels tls,
      InboundGuard guard, Supplier<ClusterKeyring> keyring) {
    GuardedFrameDecoder decoder = new GuardedFrameDecoder(maxFrameLength,
        Math.min(maxFrameLength, MAX_FIRST_MESSAGE_BYTES), keyring);
    channel.pipeline().addFirst(guard.newConnection(decoder));
    channel.pipeline().addFirst(decoder);
    channel.pipeline().addFirst(new LengthFieldPrepender(LENGTH_FIELD_BYTES));
    if (tls != null) {
      tls.install(channel, "membership", false);
    }
  }

  /** Listens on the configured host and hands every frame to ScaleCube's receiver context. */
  private static final class BoundReceiver implements Receiver {
    private final String host;
    private final TransportConfig config;
    private final TlsChannels tls;
    private final InboundGuard guard;
    private final Supplier<ClusterKeyring> keyring;

    BoundReceiver(String host, TransportConfig config, TlsChannels tls, InboundGuard guard,
        Supplier<ClusterKeyring> keyring) {
      this.host = host;
      this.config = config;
      this.tls = tls;
      this.guard = guard;
      this.keyring = keyring;
    }

    @Override
    public Mono<DisposableServer> bind() {
      return Mono.deferContextual(context -> {
        ReceiverContext receiver = context.get(ReceiverContext.class);
        return TcpServer.create()
            .runOn(receiver.loopResources())
            .host(host)
            .port(config.port())
            .childOption(ChannelOption.TCP_NODELAY, true)
            .childOption(ChannelOption.SO_KEEPALIVE, true)
            .doOnChannelInit((observer, channel, remote) ->
                initServerChannel(channel, config.maxFrameLength(), tls, guard, keyring))
            .handle((in, out) -> in.receive().retain().doOnNext(buf -> {
              ScaleCubeMessageCodec.takeRefused();
              receiver.onMessage(buf);
              if (ScaleCubeMessageCodec.takeRefused()) {
                // Garbage, a forgery or a replay: nothing more from this connection is trusted.
                in.withConnection(Connection::dispose);
              } else {
                in.withConnection(c -> InboundGuard.authenticated(c.channel()));
              }
            }).then())
            .bind()
            .cast(DisposableServer.class);
      });
    }
  }

  /** Connects to peers; ScaleCube's own sender is package-private. */
  private static final class TcpSender implements Sender {
    private final TransportConfig config;
    private final TlsChannels tls;

    TcpSender(TransportConfig config, TlsChannels tls) {
      this.config = config;
      this.tls = tls;
    }

    @Override
    public Mono<Connection> connect(String address) {
      return Mono.deferContextual(context -> {
        SenderContext sender = context.get(SenderContext.class);
        return TcpClient.newConnection()
            .runOn(sender.loopResources())
            .host(Transport.parseHost(address))
            .port(Transport.parsePort(address))
            .option(ChannelOption.TCP_NODELAY, true)
            .option(ChannelOption.SO_KEEPALIVE, true)
            .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, config.connectTimeout())
            .doOnChannelInit((observer, channel, remote) ->
                initClientChannel(channel, config.maxFrameLength(), tls))
            .connect()
            .cast(Connection.class);
      });
    }

    @Override
    public Mono<Void> send(Message message) {
      return Mono.deferContextual(context -> {
        Connection connection = context.get(Connection.class);
        SenderContext sender = context.get(SenderContext.class);
        return connection.outbound()
            .sendObject(Mono.just(message).map(sender.messageEncoder()), buf -> true)
            .then();
      });
    }
  }
}
