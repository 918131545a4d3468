package io.kvstore.http;

import io.javalin.Javalin;
import io.javalin.compression.CompressionStrategy;
import io.kvstore.core.KvStore;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.binder.MeterBinder;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.TimeoutException;
import java.util.function.Function;
import java.util.function.Supplier;
import org.eclipse.jetty.http.HttpVersion;
import org.eclipse.jetty.server.HttpConfiguration;
import org.eclipse.jetty.server.HttpConnectionFactory;
import org.eclipse.jetty.server.SecureRequestCustomizer;
import org.eclipse.jetty.server.SslConnectionFactory;
import org.eclipse.jetty.util.ssl.SslContextFactory;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.server.handler.EagerContentHandler;
import org.eclipse.jetty.server.handler.EagerContentHandler.RetainedContentLoaderFactory;
import org.eclipse.jetty.server.handler.GracefulHandler;
import org.eclipse.jetty.server.handler.MinimumDataRateHandler;
import org.eclipse.jetty.util.thread.QueuedThreadPool;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The REST facade of one {@link KvStore}: the documented API ({@code /put}, {@code /get},
 * {@code /delete}, {@code /set}), the versioned {@code /v1} API, a change stream, cluster and health
 * endpoints, Prometheus metrics and, when {@link Builder#console(boolean) asked}, a web console at
 * {@code /ui/}. Every route, status code and error code is described in {@code docs/HTTP.md}.
 *
 * <pre>{@code
 * try (KvStore store = KvStore.builder().nodeId("node-1").build();
 *      KvHttpServer http = KvHttpServer.builder(store).port(8080).build()) {
 *   http.start();
 *   ...
 * }
 * }</pre>
 *
 * <p>The server does not own the store: {@link #close()} stops serving and leaves the store open.
 * A server starts once; {@link #close()} is final. Methods are thread-safe.
 */
public final class KvHttpServer implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(KvHttpServer.class);

  private enum State { NEW, STARTED, CLOSED }

  private final KvStore store;
  private final KvHttpServerConfig config;
  private final PrometheusMeterRegistry registry;
  private final HttpMetrics metrics;
  private final Watches watches;
  private State state = State.NEW;
  private Javalin app;
  private volatile int boundPort = -1;

  private final Supplier<PartitionMapInfo> partitionMap;
  private final Function<String, List<String>> keyOwners;

  private KvHttpServer(KvStore store, KvHttpServerConfig config,
      Supplier<PartitionMapInfo> partitionMap, Function<String, List<String>> keyOwners) {
    this.store = store;
    this.config = config;
    this.partitionMap = partitionMap;
    this.keyOwners = keyOwners;
    this.registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    this.metrics = new HttpMetrics(registry, store);
    this.watches = new Watches(store, config, metrics);
  }

  /**
   * A builder for a server over {@code store}, with the defaults of {@link KvHttpServerConfig}.
   *
   * @param store the store to serve; single node or clustered
   * @return a new builder
   */
  public static Builder builder(KvStore store) {
    return new Builder(store);
  }

  /**
   * Binds the port and starts serving.
   *
   * @return this server
   * @throws IllegalStateException if the server was already started or closed, or the address cannot
   *     be bound
   */
  public synchronized KvHttpServer start() {
    if (state != State.NEW) {
      throw new IllegalStateException("the server was already " + state.name().toLowerCase()
          + "; a server starts once");
    }
    state = State.STARTED;
    JsonErrorHandler errors = new JsonErrorHandler();
    QueuedThreadPool threads = new QueuedThreadPool(config.maxThreads(), 4,
        (int) Math.min(Integer.MAX_VALUE, Duration.ofMinutes(1).toMillis()));
    threads.setName("kvstore-http");
    // Writes that wait for an fsync or for acks are answered on this pool, not on a held thread.
    Routes routes = new Routes(store, config, metrics, watches, registry, partitionMap,
        keyOwners, threads);
    OriginGuard guard = OriginGuard.of(config);
    try {
      for (MeterBinder binder : config.meterBinders()) {
        binder.bindTo(registry);
      }
      app = Javalin.create(cfg -> {
        cfg.startup.showJavalinBanner = false;
        cfg.startup.showOldJavalinVersionWarning = false;
        cfg.startup.startupWatcherEnabled = false;
        cfg.router.ignoreTrailingSlashes = false;
        cfg.http.maxRequestSize = config.maxBodyBytes();
        cfg.http.compressionStrategy = CompressionStrategy.NONE;
        cfg.http.defaultContentType = Json.CONTENT_TYPE;
        cfg.jetty.threadPool = threads;
        cfg.jetty.modifyServer(server -> {
          server.setErrorHandler(errors);
          // Requests wait for their body without a thread (up to a buffer's worth; see Bodies).
          server.insertHandler(new EagerContentHandler(new RetainedContentLoaderFactory()));
          if (config.minRequestDataRate() > 0) {
            // Outside the eager loader, so a body trickled while it waits is cut too.
            server.insertHandler(new MinimumDataRateHandler(config.minRequestDataRate(), 0));
          }
          server.insertHandler(new GracefulHandler());
          server.setStopTimeout(config.shutdownTimeout().toMillis());
        });
        cfg.jetty.modifyServletContextHandler(context -> context.setErrorHandler(errors));
        cfg.jetty.modifyHttpConfiguration(http -> {
          http.setRequestHeaderSize(config.maxHeaderBytes());
          http.setSendServerVersion(false);
          http.setSendXPoweredBy(false);
        });
        cfg.jetty.addConnector((server, http) -> {
          ServerConnector connector;
          if (config.tls() == null) {
            connector = new ServerConnector(server, new HttpConnectionFactory(http));
          } else {
            SslContextFactory.Server ssl = new SslContextFactory.Server();
            ssl.setKeyStore(config.tls().keyStore());
            ssl.setKeyStorePassword(config.tls().password());
            HttpConfiguration https = new HttpConfiguration(http);
            https.addCustomizer(new SecureRequestCustomizer());
            connector = new ServerConnector(server,
                new SslConnectionFactory(ssl, HttpVersion.HTTP_1_1.asString()),
                new HttpConnectionFactory(https));
          }
          connector.setHost(config.host());
          connector.setPort(config.port());
          connector.setIdleTimeout(config.idleTimeout().toMillis());
          // On close, idle keep-alive connections go after 100 ms instead of Jetty's 1 s; requests in
          // flight are waited for by the GracefulHandler up to shutdownTimeout.
          connector.setShutdownIdleTimeout(100);
          return connector;
        });
        cfg.requestLogger.http(routes::onRequestDone);
        routes.register(cfg);
        cfg.routes.before(guard::check);
      });
      app.start();
    } catch (RuntimeException e) {
      state = State.CLOSED;
      stopQuietly();
      registry.close();
      throw new IllegalStateException("could not start the HTTP server on " + config.host() + ":"
          + config.port() + ": " + e.getMessage(), e);
    }
    boundPort = app.port();
    log.info("kvstore HTTP API of node {} listening on {}://{}:{}", store.config().nodeId(),
        config.tls() == null ? "http" : "https", config.host(), boundPort);
    return this;
  }

  /**
   * The port the server listens on; with port 0 in the config, the one the system picked.
   *
   * @return the bound port
   * @throws IllegalStateException if the server is not started
   */
  public int port() {
    int p = boundPort;
    if (p < 0) {
      throw new IllegalStateException("the server is not started");
    }
    return p;
  }

  /**
   * The settings the server runs with.
   *
   * @return the config
   */
  public KvHttpServerConfig config() {
    return config;
  }

  /**
   * The registry that {@code GET /metrics} exposes; add application meters to it if you like.
   *
   * @return the meter registry
   */
  public MeterRegistry meterRegistry() {
    return registry;
  }

  /**
   * Stops gracefully: ends watch streams, stops accepting connections, lets in-flight requests finish
   * for up to {@link KvHttpServerConfig#shutdownTimeout()}, then closes what is left. The store stays
   * open. Calling it again does nothing.
   */
  @Override
  public synchronized void close() {
    if (state == State.CLOSED) {
      return;
    }
    boolean wasStarted = state == State.STARTED;
    state = State.CLOSED;
    watches.closeAll();
    if (wasStarted) {
      stopQuietly();
      log.info("kvstore HTTP API of node {} stopped", store.config().nodeId());
    }
    boundPort = -1;
    registry.close();
  }

  private void stopQuietly() {
    if (app == null) {
      return;
    }
    try {
      app.stop();
    } catch (RuntimeException e) {
      boolean timedOut = false;
      for (Throwable t = e; t != null; t = t.getCause()) {
        timedOut |= t instanceof TimeoutException;
      }
      if (timedOut) {
        log.warn("in-flight requests did not finish within shutdownTimeout ({}); their connections "
            + "were closed", config.shutdownTimeout());
      } else {
        log.warn("the HTTP server did not stop cleanly: {}", e.toString());
      }
    }
  }

  /**
   * Builds a {@link KvHttpServer}. Settings are validated by {@link #build()}, which fails with an
   * {@link IllegalArgumentException} naming the setting.
   */
  public static final class Builder {
    private final KvStore store;
    private String host = KvHttpServerConfig.DEFAULT_HOST;
    private int port = KvHttpServerConfig.DEFAULT_PORT;
    private int maxBodyBytes = KvHttpServerConfig.DEFAULT_MAX_BODY_BYTES;
    private Set<String> authTokens = Set.of();
    private boolean openHealth = KvHttpServerConfig.DEFAULT_OPEN_HEALTH;
    private Duration idleTimeout = KvHttpServerConfig.DEFAULT_IDLE_TIMEOUT;
    private Duration requestTimeout = KvHttpServerConfig.DEFAULT_REQUEST_TIMEOUT;
    private Duration shutdownTimeout = KvHttpServerConfig.DEFAULT_SHUTDOWN_TIMEOUT;
    private int maxHeaderBytes = KvHttpServerConfig.DEFAULT_MAX_HEADER_BYTES;
    private int maxThreads = KvHttpServerConfig.DEFAULT_MAX_THREADS;
    private int maxWatchClients = KvHttpServerConfig.DEFAULT_MAX_WATCH_CLIENTS;
    private int watchQueueCapacity = KvHttpServerConfig.DEFAULT_WATCH_QUEUE_CAPACITY;
    private Duration watchHeartbeat = KvHttpServerConfig.DEFAULT_WATCH_HEARTBEAT;
    private final List<MeterBinder> meterBinders = new ArrayList<>();
    private HttpTls tls;
    private Set<String> allowedHosts = KvHttpServerConfig.DEFAULT_ALLOWED_HOSTS;
    private boolean console = KvHttpServerConfig.DEFAULT_CONSOLE;
    private int maxWatchClientsPerAddress =
        KvHttpServerConfig.DEFAULT_MAX_WATCH_CLIENTS_PER_ADDRESS;
    private long minRequestDataRate = KvHttpServerConfig.DEFAULT_MIN_REQUEST_DATA_RATE;
    private int maxListBytes = KvHttpServerConfig.DEFAULT_MAX_LIST_BYTES;
    private int maxConcurrentListings = KvHttpServerConfig.DEFAULT_MAX_CONCURRENT_LISTINGS;
    private Supplier<PartitionMapInfo> partitionMap;
    private Function<String, List<String>> keyOwners;

    private Builder(KvStore store) {
      this.store = Objects.requireNonNull(store, "store");
    }

    /**
     * The address to bind (default {@value KvHttpServerConfig#DEFAULT_HOST}).
     *
     * @param host a host name or IP address
     * @return this builder
     */
    public Builder host(String host) {
      this.host = host;
      return this;
    }

    /**
     * The port to bind (default {@value KvHttpServerConfig#DEFAULT_PORT}); 0 picks a free one.
     *
     * @param port 0 to 65535
     * @return this builder
     */
    public Builder port(int port) {
      this.port = port;
      return this;
    }

    /**
     * The largest request body (default {@value KvHttpServerConfig#DEFAULT_MAX_BODY_BYTES}); larger
     * bodies get 413, whether they announce their length or are chunked.
     *
     * @param maxBodyBytes at least 1
     * @return this builder
     */
    public Builder maxBodyBytes(int maxBodyBytes) {
      this.maxBodyBytes = maxBodyBytes;
      return this;
    }

    /**
     * Bearer tokens that may call the API (default none: no authentication). With tokens, every
     * request but {@code /health} (see {@link #openHealth(boolean)}) needs
     * {@code Authorization: Bearer <token>}.
     *
     * @param tokens printable ASCII without spaces
     * @return this builder
     */
    public Builder authTokens(Set<String> tokens) {
      this.authTokens = Objects.requireNonNull(tokens, "tokens");
      return this;
    }

    /**
     * Serve HTTPS with this certificate and key (default: plain HTTP). Bearer tokens travel in
     * clear text over plain HTTP: use TLS whenever the API is reachable beyond loopback.
     *
     * @param tls from {@link HttpTls#pem} or {@link HttpTls#keyStore}, or null for plain HTTP
     * @return this builder
     */
    public Builder tls(HttpTls tls) {
      this.tls = tls;
      return this;
    }

    /**
     * Whether to serve the web console at {@code /ui} (default false; the standalone server turns it
     * on). The console is static files from this jar that call the API from the browser with the
     * user's token; its pages answer without a token so that the sign-in page can load, and carry a
     * strict Content-Security-Policy (docs/HTTP.md, "Web console").
     *
     * @param console true to serve it
     * @return this builder
     */
    public Builder console(boolean console) {
      this.console = console;
      return this;
    }

    /**
     * More {@code Host} names the node answers to (default none). Without tokens the node answers
     * only to IP addresses, {@code localhost}, the bound host and, bound to {@code 0.0.0.0}, this
     * machine's host name, so that a web page cannot reach it through DNS rebinding; add the other
     * names clients use here, or {@code "*"} for any. With tokens, setting this turns the same check
     * on. See {@code docs/SECURITY.md}.
     *
     * @param hosts host names without port or scheme, IP addresses, or {@code "*"}
     * @return this builder
     */
    public Builder allowedHosts(Set<String> hosts) {
      this.allowedHosts = Objects.requireNonNull(hosts, "hosts");
      return this;
    }

    /**
     * Whether {@code GET /health} answers without a token (default true).
     *
     * @param open true to leave it open
     * @return this builder
     */
    public Builder openHealth(boolean open) {
      this.openHealth = open;
      return this;
    }

    /**
     * How long a connection may stay silent (default 30 s).
     *
     * @param timeout positive
     * @return this builder
     */
    public Builder idleTimeout(Duration timeout) {
      this.idleTimeout = timeout;
      return this;
    }

    /**
     * How long a request may take to send its body, and a write may wait for its write concern
     * (default 10 s).
     *
     * @param timeout positive
     * @return this builder
     */
    public Builder requestTimeout(Duration timeout) {
      this.requestTimeout = timeout;
      return this;
    }

    /**
     * How long {@link KvHttpServer#close()} waits for in-flight requests (default 5 s).
     *
     * @param timeout zero or positive
     * @return this builder
     */
    public Builder shutdownTimeout(Duration timeout) {
      this.shutdownTimeout = timeout;
      return this;
    }

    /**
     * The largest request line plus headers (default 16 KiB).
     *
     * @param bytes 1 KiB to 1 MiB
     * @return this builder
     */
    public Builder maxHeaderBytes(int bytes) {
      this.maxHeaderBytes = bytes;
      return this;
    }

    /**
     * The most request threads (default 200).
     *
     * @param threads 8 to 10,000
     * @return this builder
     */
    public Builder maxThreads(int threads) {
      this.maxThreads = threads;
      return this;
    }

    /**
     * The most concurrent watch streams (default 64). Streams hold no request thread.
     *
     * @param clients 0 to 100,000
     * @return this builder
     */
    public Builder maxWatchClients(int clients) {
      this.maxWatchClients = clients;
      return this;
    }

    /**
     * The most concurrent watch streams from one remote address (default 8); more get 429
     * {@code too_many_watchers_from_address}.
     *
     * @param clients 1 to 100,000
     * @return this builder
     */
    public Builder maxWatchClientsPerAddress(int clients) {
      this.maxWatchClientsPerAddress = clients;
      return this;
    }

    /**
     * The slowest a request body may arrive, in bytes per second averaged from its first byte
     * (default 1024); a slower body gets 408 {@code timeout}.
     *
     * @param bytesPerSecond 0 for no minimum, or positive
     * @return this builder
     */
    public Builder minRequestDataRate(long bytesPerSecond) {
      this.minRequestDataRate = bytesPerSecond;
      return this;
    }

    /**
     * The most bytes of JSON in one {@code GET /v1/kv} page (default 4 MiB); the page ends early,
     * with {@code nextStartAfter}, before it would grow beyond this.
     *
     * @param bytes 64 KiB to 1 GiB
     * @return this builder
     */
    public Builder maxListBytes(int bytes) {
      this.maxListBytes = bytes;
      return this;
    }

    /**
     * The most {@code GET /v1/kv} listings built at once (default 4); more get 503
     * {@code too_many_listings} with {@code Retry-After}.
     *
     * @param listings 1 to 10,000
     * @return this builder
     */
    public Builder maxConcurrentListings(int listings) {
      this.maxConcurrentListings = listings;
      return this;
    }

    /**
     * Changes buffered per watch stream before a slow client is disconnected (default 1024).
     *
     * @param capacity 1 to 1,000,000
     * @return this builder
     */
    public Builder watchQueueCapacity(int capacity) {
      this.watchQueueCapacity = capacity;
      return this;
    }

    /**
     * How often an idle watch stream sends a heartbeat comment (default 15 s).
     *
     * @param interval positive
     * @return this builder
     */
    public Builder watchHeartbeat(Duration interval) {
      this.watchHeartbeat = interval;
      return this;
    }

    /**
     * Adds metrics bound to the server's registry at start, for example replication statistics.
     *
     * @param binder the binder
     * @return this builder
     */
    public Builder meterBinder(MeterBinder binder) {
      this.meterBinders.add(Objects.requireNonNull(binder, "binder"));
      return this;
    }

    /**
     * Where {@code /v1/cluster} reads the node's partition map (default: none, and
     * {@code /v1/cluster} shows no partition fields). Called on each request; it must be cheap, must
     * not block, and may return null when there is no map.
     *
     * @param source the current map, or null to show none
     * @return this builder
     */
    public Builder partitionMap(Supplier<PartitionMapInfo> source) {
      this.partitionMap = source;
      return this;
    }

    /**
     * Where the key-addressed routes learn which nodes own a key (default: none, and no response
     * carries the owner headers; right for a single node). With a source, every response of
     * {@code /v1/kv/{key}}, {@code /put}, {@code /get}, {@code /delete} and {@code /set} whose key
     * is valid (errors such as 404 and 503 included) carries {@code X-Kvstore-Owners} (the owners'
     * node ids, comma-separated, in preference order) and {@code X-Kvstore-Local} ({@code true} when
     * this node's id is among them: it served the key itself; {@code false}: it forwarded to an
     * owner). See docs/HTTP.md, "Owner headers". The standalone server passes
     * {@code ClusterNode::ownersOf}.
     *
     * <p>Called once per request, on the request thread, with the decoded key (not yet validated by
     * the store): it must be cheap and must not block. A null or empty answer, or one that throws,
     * leaves the headers out of that response.
     *
     * @param source key to owner node ids, or null for none
     * @return this builder
     */
    public Builder keyOwners(Function<String, List<String>> source) {
      this.keyOwners = source;
      return this;
    }

    /**
     * The validated config these settings make.
     *
     * @return the config
     * @throws IllegalArgumentException naming the first invalid setting
     */
    public KvHttpServerConfig config() {
      return new KvHttpServerConfig(host, port, maxBodyBytes, authTokens, openHealth, idleTimeout,
          requestTimeout, shutdownTimeout, maxHeaderBytes, maxThreads, maxWatchClients,
          watchQueueCapacity, watchHeartbeat, meterBinders, tls, allowedHosts, console,
          maxWatchClientsPerAddress, minRequestDataRate, maxListBytes, maxConcurrentListings);
    }

    /**
     * Builds a server; call {@link KvHttpServer#start()} to serve.
     *
     * @return a server that is not started yet
     * @throws IllegalArgumentException naming the first invalid setting
     */
    public KvHttpServer build() {
      return new KvHttpServer(store, config(), partitionMap, keyOwners);
    }
  }
}
