package io.kvstore.http;

import io.micrometer.core.instrument.binder.MeterBinder;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.Set;

/**
 * The validated, immutable settings of a {@link KvHttpServer}. Build one through
 * {@link KvHttpServer#builder(io.kvstore.core.KvStore)}; each field has a {@code DEFAULT_*} constant
 * that explains its trade-off.
 *
 * @param host the address to bind, for example {@code 127.0.0.1}
 * @param port the port to bind; 0 picks a free one (see {@link KvHttpServer#port()})
 * @param maxBodyBytes the largest request body accepted, enforced while reading (chunked bodies too)
 * @param authTokens bearer tokens that may call the API; empty for no authentication
 * @param openHealth whether {@code GET /health} answers without a token when tokens are configured
 * @param idleTimeout how long a connection may stay silent, mid-request or between requests
 * @param requestTimeout how long a request may take to send its body, and how long a write waits for
 *     its write concern, before the server answers with an error
 * @param shutdownTimeout how long {@link KvHttpServer#close()} waits for in-flight requests
 * @param maxHeaderBytes the largest request line plus headers; a longer URL gets 414, longer headers
 *     431
 * @param maxThreads the most request threads (each open watch stream holds one)
 * @param maxWatchClients the most concurrent {@code /v1/watch} streams; more get 503
 * @param watchQueueCapacity changes buffered per watch stream; a client that falls further behind is
 *     disconnected
 * @param watchHeartbeat how often an idle watch stream sends a comment line (this is also how a
 *     vanished client is noticed)
 * @param meterBinders extra metrics bound to the server's registry at start (for example replication
 *     statistics)
 * @param tls the certificate and key to serve HTTPS with, or null for plain HTTP
 * @param allowedHosts {@code Host} names the node answers to besides IP addresses, {@code localhost},
 *     the bound host and (bound to a wildcard address) this machine's name; {@code "*"} for any. The
 *     check protects an API without tokens from DNS rebinding; with tokens it applies only when this
 *     is set. See {@code docs/SECURITY.md}
 * @param console whether the web console is served at {@code /ui} (see docs/HTTP.md)
 */
public record KvHttpServerConfig(
    String host,
    int port,
    int maxBodyBytes,
    Set<String> authTokens,
    boolean openHealth,
    Duration idleTimeout,
    Duration requestTimeout,
    Duration shutdownTimeout,
    int maxHeaderBytes,
    int maxThreads,
    int maxWatchClients,
    int watchQueueCapacity,
    Duration watchHeartbeat,
    List<MeterBinder> meterBinders,
    HttpTls tls,
    Set<String> allowedHosts,
    boolean console) {

  /** Loopback: a node's API is private unless the operator decides otherwise. */
  public static final String DEFAULT_HOST = "127.0.0.1";
  /** 8080, the usual port of a local HTTP service. */
  public static final int DEFAULT_PORT = 8080;
  /**
   * 2 MiB: room for the largest default value (1 MiB) even as escaped JSON; larger bodies are refused
   * before they are buffered, so memory per request stays bounded.
   */
  public static final int DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024;
  /** true: load balancers and orchestrators probe {@code /health} without credentials. */
  public static final boolean DEFAULT_OPEN_HEALTH = true;
  /**
   * false: a library adds no routes its application did not ask for (the application may serve its
   * own {@code /ui}); the standalone server turns the console on.
   */
  public static final boolean DEFAULT_CONSOLE = false;
  /** 30 s: long enough for slow clients, short enough that dead connections free their threads. */
  public static final Duration DEFAULT_IDLE_TIMEOUT = Duration.ofSeconds(30);
  /**
   * 10 s: longer than the store's default write timeout (5 s), so a write concern that cannot be met
   * is reported as such (503 {@code write_concern_not_met}) rather than as a timeout.
   */
  public static final Duration DEFAULT_REQUEST_TIMEOUT = Duration.ofSeconds(10);
  /** 5 s: in-flight requests are quick; a graceful stop should not hold a deployment up for long. */
  public static final Duration DEFAULT_SHUTDOWN_TIMEOUT = Duration.ofSeconds(5);
  /**
   * 16 KiB: a 1 KiB key percent-encoded is at most 3 KiB of URL, and there is room for ordinary
   * headers; a bigger limit only helps abusive clients.
   */
  public static final int DEFAULT_MAX_HEADER_BYTES = 16 * 1024;
  /** 200 request threads: requests are short; watch streams hold a thread each. */
  public static final int DEFAULT_MAX_THREADS = 200;
  /** 64 watch streams, well under {@link #DEFAULT_MAX_THREADS}, so watchers cannot starve requests. */
  public static final int DEFAULT_MAX_WATCH_CLIENTS = 64;
  /** 1024 buffered changes per watch stream: a burst is absorbed, a stalled client is dropped. */
  public static final int DEFAULT_WATCH_QUEUE_CAPACITY = 1024;
  /** 15 s: keeps proxies from closing idle streams and notices vanished clients within that time. */
  public static final Duration DEFAULT_WATCH_HEARTBEAT = Duration.ofSeconds(15);
  /**
   * No extra names: IP addresses, {@code localhost}, the bound host and, bound to a wildcard address,
   * this machine's host name are enough on a laptop; other names a node is reached by are a decision.
   */
  public static final Set<String> DEFAULT_ALLOWED_HOSTS = Set.of();

  /**
   * Validates every field; the message names the field and the value.
   *
   * @param host the address to bind
   * @param port the port, 0 to 65535
   * @param maxBodyBytes the largest request body, at least 1
   * @param authTokens bearer tokens, none blank or with whitespace
   * @param openHealth whether {@code /health} needs no token
   * @param idleTimeout positive
   * @param requestTimeout positive
   * @param shutdownTimeout zero or positive
   * @param maxHeaderBytes 1 KiB to 1 MiB
   * @param maxThreads 8 to 10,000
   * @param maxWatchClients 0 to {@code maxThreads - 4}
   * @param watchQueueCapacity 1 to 1,000,000
   * @param watchHeartbeat positive
   * @param meterBinders extra metrics
   * @param tls HTTPS settings, or null for plain HTTP
   * @param allowedHosts host names (no port or scheme), IP addresses or {@code "*"}
   * @param console whether {@code /ui} serves the web console
   */
  public KvHttpServerConfig {
    if (host == null || host.isBlank()) {
      throw new IllegalArgumentException("host must not be blank, was '" + host + "'");
    }
    requireRange("port", port, 0, 65535);
    requireRange("maxBodyBytes", maxBodyBytes, 1, Integer.MAX_VALUE - 8);
    Objects.requireNonNull(authTokens, "authTokens");
    for (String token : authTokens) {
      if (token == null || token.isEmpty() || token.chars().anyMatch(c -> c <= ' ' || c >= 0x7f)) {
        throw new IllegalArgumentException(
            "authTokens must be non-empty printable ASCII without spaces; one is not");
      }
    }
    authTokens = Set.copyOf(authTokens);
    requirePositive("idleTimeout", idleTimeout);
    requirePositive("requestTimeout", requestTimeout);
    if (shutdownTimeout == null || shutdownTimeout.isNegative()) {
      throw new IllegalArgumentException("shutdownTimeout must be zero or positive, was "
          + shutdownTimeout);
    }
    requireRange("maxHeaderBytes", maxHeaderBytes, 1024, 1024 * 1024);
    requireRange("maxThreads", maxThreads, 8, 10_000);
    requireRange("maxWatchClients", maxWatchClients, 0, maxThreads - 4);
    requireRange("watchQueueCapacity", watchQueueCapacity, 1, 1_000_000);
    requirePositive("watchHeartbeat", watchHeartbeat);
    meterBinders = List.copyOf(Objects.requireNonNull(meterBinders, "meterBinders"));
    Set<String> hosts = new java.util.LinkedHashSet<>();
    for (String entry : Objects.requireNonNull(allowedHosts, "allowedHosts")) {
      hosts.add(OriginGuard.normalizeAllowedHost(entry));
    }
    allowedHosts = java.util.Collections.unmodifiableSet(hosts);
  }

  @Override
  public String toString() {
    // Never print the tokens.
    return "KvHttpServerConfig{host=" + host + ", port=" + port + ", maxBodyBytes=" + maxBodyBytes
        + ", authTokens=" + authTokens.size() + " configured, openHealth=" + openHealth
        + ", idleTimeout=" + idleTimeout + ", requestTimeout=" + requestTimeout
        + ", shutdownTimeout=" + shutdownTimeout + ", maxHeaderBytes=" + maxHeaderBytes
        + ", maxThreads=" + maxThreads + ", maxWatchClients=" + maxWatchClients
        + ", watchQueueCapacity=" + watchQueueCapacity + ", watchHeartbeat=" + watchHeartbeat
        + ", meterBinders=" + meterBinders.size() + ", tls=" + (tls == null ? "off" : tls)
        + ", allowedHosts=" + allowedHosts + ", console=" + console + "}";
  }

  private static void requireRange(String name, int value, int min, int max) {
    if (value < min || value > max) {
      throw new IllegalArgumentException(name + " must be between " + min + " and " + max
          + ", was " + value);
    }
  }

  private static void requirePositive(String name, Duration value) {
    if (value == null || value.isNegative() || value.isZero()) {
      throw new IllegalArgumentException(name + " must be a positive duration, was " + value);
    }
  }
}
