package io.kvstore.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.config.JavalinConfig;
import io.javalin.http.Context;
import io.javalin.http.Handler;
import io.javalin.http.HandlerType;
import io.javalin.http.HttpResponseException;
import io.javalin.router.EndpointNotFound;
import io.kvstore.core.KvStore;
import io.kvstore.core.KvStoreException;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Executor;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Function;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The route table and the cross-cutting parts of every request: request ids, bearer-token auth,
 * error mapping (every error is {@code {"error", "message"}} JSON, 404 and 405 included) and request
 * metrics.
 *
 * <p>Routes whose path carries a key end in a wildcard; the handler takes the key from the raw
 * request URI after the route's prefix, so {@code /v1/kv/a/b} and {@code /v1/kv/a%2Fb} both name the
 * key {@code a/b} and Javalin's lenient decoding never touches a key.
 */
final class Routes {
  private static final Logger log = LoggerFactory.getLogger(Routes.class);
  private static final String START = "kvstore.start";
  private static final String ROUTE = "kvstore.route";
  private static final String REQUEST_ID = "kvstore.requestId";
  private static final long FATAL_LOG_INTERVAL_NANOS = 10_000_000_000L;
  /** The 500 body for when even building one fails (out of memory): allocated once, at start. */
  private static final byte[] FATAL_BODY = Json.bytes(Json.error("internal",
      "the server failed to handle this request (out of memory?); its log has the details"));
  private static final Set<String> METRIC_METHODS =
      Set.of("GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS");

  /** One path of the table: exact, or a prefix followed by a key. */
  private record Route(String template, String path, boolean keyed, Map<String, Handler> methods) {
    boolean matches(String rawPath) {
      return keyed ? rawPath.startsWith(path) : rawPath.equals(path);
    }

    String allow() {
      List<String> m = new ArrayList<>(methods.keySet());
      m.add("OPTIONS");
      return String.join(", ", m);
    }
  }

  private final KvHttpServerConfig config;
  private final HttpMetrics metrics;
  private final List<Route> table = new ArrayList<>();
  private final List<byte[]> tokenDigests = new ArrayList<>();
  private final String idPrefix = Long.toHexString(ThreadLocalRandom.current().nextLong() >>> 40);
  private final AtomicLong ids = new AtomicLong();
  private final AtomicLong lastFatalLog = new AtomicLong(System.nanoTime() - FATAL_LOG_INTERVAL_NANOS);

  Routes(KvStore store, KvHttpServerConfig config, HttpMetrics metrics, Watches watches,
      PrometheusMeterRegistry registry, Supplier<PartitionMapInfo> partitionMap,
      Function<String, List<String>> keyOwners, Executor completions) {
    this.config = config;
    this.metrics = metrics;
    for (String token : config.authTokens()) {
      tokenDigests.add(sha256(token));
    }
    KvApi kv = new KvApi(store, config, new OwnerHeaders(store.config().nodeId(), keyOwners),
        completions);
    OpsApi ops = new OpsApi(store, registry, partitionMap);

    exact("/put", Map.of("PUT", kv::put));
    exact("/get", getAndHead(ctx -> kv.get(ctx, null)));
    keyed("/get/{key}", "/get/", getAndHead(ctx -> kv.get(ctx, rest(ctx, "/get/"))));
    exact("/delete", Map.of("DELETE", ctx -> kv.delete(ctx, null)));
    keyed("/delete/{key}", "/delete/",
        Map.of("DELETE", ctx -> kv.delete(ctx, rest(ctx, "/delete/"))));
    keyed("/set/{key}/{value}", "/set/", Map.of("POST", ctx -> kv.set(ctx, rest(ctx, "/set/"))));

    exact("/v1/kv", getAndHead(kv::v1List));
    Map<String, Handler> v1 =
        new LinkedHashMap<>(getAndHead(ctx -> kv.v1Get(ctx, rest(ctx, "/v1/kv/"))));
    v1.put("PUT", ctx -> kv.v1Put(ctx, rest(ctx, "/v1/kv/")));
    v1.put("DELETE", ctx -> kv.v1Delete(ctx, rest(ctx, "/v1/kv/")));
    keyed("/v1/kv/{key}", "/v1/kv/", v1);
    exact("/v1/watch", Map.of("GET", watches::handle));
    exact("/v1/cluster", getAndHead(ops::cluster));
    exact("/health", getAndHead(ops::health));
    exact("/ready", getAndHead(ops::ready));
    exact("/metrics", getAndHead(ops::metrics));
    if (config.console()) {
      Console console = new Console();
      exact(Console.PATH, getAndHead(console::redirect));
      keyed("/ui/{file}", Console.PREFIX,
          getAndHead(ctx -> console.serve(ctx, rest(ctx, Console.PREFIX))));
    }
  }

  private static Map<String, Handler> getAndHead(Handler h) {
    Map<String, Handler> m = new LinkedHashMap<>();
    m.put("GET", h);
    m.put("HEAD", h);
    return m;
  }

  private void exact(String path, Map<String, Handler> methods) {
    table.add(new Route(path, path, false, methods));
  }

  private void keyed(String template, String prefix, Map<String, Handler> methods) {
    table.add(new Route(template, prefix, true, methods));
  }

  /** The raw (still percent-encoded) rest of the path after {@code prefix}. */
  private static String rest(Context ctx, String prefix) {
    return ctx.req().getRequestURI().substring(prefix.length());
  }

  /** When the request's time is up: its start plus the request timeout. */
  static long deadline(Context ctx, KvHttpServerConfig config) {
    Long start = ctx.attribute(START);
    return (start == null ? System.nanoTime() : start) + config.requestTimeout().toNanos();
  }

  static void json(Context ctx, int status, JsonNode body) {
    ctx.status(status).contentType(Json.CONTENT_TYPE).result(Json.bytes(body));
  }

  void register(JavalinConfig cfg) {
    for (Route route : table) {
      for (Map.Entry<String, Handler> e : route.methods().entrySet()) {
        Handler handler = e.getValue();
        HandlerType method = HandlerType.findOrCreate(e.getKey());
        if (route.keyed()) {
          // "<key>" needs at least one character; the bare prefix is an empty key (400).
          cfg.routes.addHttpHandler(method, route.path() + "<key>", handler);
          cfg.routes.addHttpHandler(method, route.path(), handler);
        } else {
          cfg.routes.addHttpHandler(method, route.path(), handler);
        }
      }
    }
    // HEAD on the watch stream would open a stream; answer it as not allowed.
    cfg.routes.head("/v1/watch", ctx -> {
      throw methodNotAllowed(ctx, "GET, OPTIONS");
    });
    cfg.routes.before(this::before);
    cfg.routes.exception(ApiError.class, (e, ctx) -> writeError(ctx, e));
    cfg.routes.exception(EndpointNotFound.class, (e, ctx) -> noRoute(ctx));
    // Javalin's own texts are not the API's: the code and message are ours.
    cfg.routes.exception(HttpResponseException.class, (e, ctx) -> writeError(ctx,
        new ApiError(e.getStatus(), JsonErrorHandler.codeFor(e.getStatus()),
            JsonErrorHandler.describe(e.getStatus()))));
    cfg.routes.exception(Exception.class, this::unexpected);
    cfg.router.javaLangErrorHandler(this::fatal);
  }

  /**
   * An {@link Error} thrown while handling a request (typically {@link OutOfMemoryError}): the
   * documented JSON 500, written from a body prepared at start if even that small allocation fails.
   * Javalin's default would answer 500 with an empty body.
   */
  private void fatal(HttpServletResponse res, Error error) {
    String id = res.getHeader("X-Request-Id");
    long now = System.nanoTime();
    long last = lastFatalLog.get();
    if (now - last > FATAL_LOG_INTERVAL_NANOS && lastFatalLog.compareAndSet(last, now)) {
      log.error("request {} failed with {} (logged at most every 10 s)", id, error.toString(),
          error);
    } else {
      log.debug("request {} failed with {}", id, error.toString());
    }
    if (res.isCommitted()) {
      return; // the client sees the connection end early; nothing else can be said
    }
    byte[] body;
    try {
      res.resetBuffer();
      body = Json.bytes(Json.error("internal", "the server failed to handle this request; its log "
          + "has the details under request id " + id).put("requestId", id));
    } catch (Error | RuntimeException again) {
      body = FATAL_BODY;
    }
    try {
      res.setStatus(500);
      res.setContentType(Json.CONTENT_TYPE);
      res.setContentLength(body.length);
      res.getOutputStream().write(body);
    } catch (IOException | RuntimeException e) {
      log.debug("could not write the 500 of request {}: {}", id, e.toString());
    }
  }

  private void before(Context ctx) {
    ctx.attribute(START, System.nanoTime());
    String id = idPrefix + "-" + Long.toHexString(ids.incrementAndGet());
    ctx.attribute(REQUEST_ID, id);
    ctx.header("X-Request-Id", id);
    Route route = find(ctx.req().getRequestURI());
    if (route != null) {
      ctx.attribute(ROUTE, route.template());
    }
    // The console's files hold no data and must load before the user has given a token.
    boolean consoleFile = config.console() && Console.isConsolePath(ctx.req().getRequestURI());
    if (consoleFile) {
      Console.secure(ctx);
    }
    if (!tokenDigests.isEmpty() && !consoleFile
        && !(config.openHealth() && ctx.req().getRequestURI().equals("/health"))) {
      authenticate(ctx);
    }
    // Javalin routes by this header when present, so a GET could delete: refuse it outright.
    if (ctx.req().getHeader("X-HTTP-Method-Override") != null) {
      throw ApiError.badRequest("X-HTTP-Method-Override is not supported; send the method itself");
    }
  }

  /** Bearer tokens, compared as SHA-256 digests with {@link MessageDigest#isEqual}. */
  private void authenticate(Context ctx) {
    String header = ctx.req().getHeader("Authorization");
    if (header == null) {
      throw new ApiError(401, "unauthorized", "this server requires a bearer token: "
          + "Authorization: Bearer <token>").header("WWW-Authenticate", "Bearer realm=\"kvstore\"");
    }
    boolean ok = false;
    if (header.length() > 7 && header.regionMatches(true, 0, "Bearer ", 0, 7)) {
      byte[] presented = sha256(header.substring(7).trim());
      for (byte[] token : tokenDigests) {
        ok |= MessageDigest.isEqual(presented, token);
      }
    }
    if (!ok) {
      throw new ApiError(401, "unauthorized", "the bearer token is not valid")
          .header("WWW-Authenticate", "Bearer realm=\"kvstore\", error=\"invalid_token\"");
    }
  }

  private static byte[] sha256(String s) {
    try {
      return MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("every Java platform has SHA-256", e);
    }
  }

  private Route find(String rawPath) {
    for (Route route : table) {
      if (route.matches(rawPath)) {
        return route;
      }
    }
    return null;
  }

  /** No handler for this method and path: 404, 405 with {@code Allow}, or 204 for OPTIONS. */
  private void noRoute(Context ctx) {
    String path = ctx.req().getRequestURI();
    String method = ctx.req().getMethod();
    Route route = find(path);
    if (route != null) {
      if (method.equals("OPTIONS")) {
        ctx.status(204).header("Allow", route.allow());
        return;
      }
      writeError(ctx, methodNotAllowed(ctx, route.allow()));
      return;
    }
    writeError(ctx, new ApiError(404, "no_route", "there is no route " + method + " " + path
        + "; see docs/HTTP.md"));
  }

  private static ApiError methodNotAllowed(Context ctx, String allow) {
    return new ApiError(405, "method_not_allowed", ctx.req().getMethod() + " is not allowed on "
        + ctx.req().getRequestURI() + "; allowed: " + allow).header("Allow", allow);
  }

  private void unexpected(Exception e, Context ctx) {
    if (e instanceof KvStoreException k) {
      RuntimeException mapped = StoreCalls.translate(k);
      if (mapped instanceof ApiError api) {
        writeError(ctx, api);
        return;
      }
    }
    String id = ctx.attribute(REQUEST_ID);
    log.error("request {} ({} {}) failed", id, ctx.req().getMethod(), ctx.req().getRequestURI(), e);
    writeError(ctx, new ApiError(500, "internal", "the server failed to handle this request; "
        + "its log has the details under request id " + id).field("requestId", id));
  }

  private static void writeError(Context ctx, ApiError e) {
    if (ctx.res().isCommitted()) {
      log.debug("cannot report {} {}: the response is already committed", e.status, e.code);
      return;
    }
    if (e.code.equals("invalid_key")) {
      // The owner headers name where a valid key lives; a refused key has none.
      OwnerHeaders.remove(ctx);
    }
    ObjectNode body = Json.error(e.code, e.getMessage());
    e.fields.forEach((k, v) -> body.set(k, Json.MAPPER.valueToTree(v)));
    e.headers.forEach(ctx::header);
    json(ctx, e.status, body);
  }

  /** Javalin's request logger: called once the response is written. */
  void onRequestDone(Context ctx, Float millis) {
    String method = ctx.req().getMethod().toUpperCase(Locale.ROOT);
    String route = ctx.attribute(ROUTE);
    metrics.recordRequest(METRIC_METHODS.contains(method) ? method : "OTHER",
        route == null ? "unmatched" : route, ctx.statusCode(),
        (long) (millis == null ? 0 : millis * 1_000_000L));
    if (log.isDebugEnabled()) {
      log.debug("{} {} {} -> {} in {} ms", ctx.attribute(REQUEST_ID), method,
          ctx.req().getRequestURI(), ctx.statusCode(), millis);
    }
  }
}
