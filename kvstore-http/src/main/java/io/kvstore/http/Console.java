package io.kvstore.http;

import io.javalin.http.Context;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * {@code GET /ui}: the web console, a handful of static files shipped in this jar and read into
 * memory once, when the server starts. Only the files named in {@link #FILES} are served: a path is
 * looked up in that table, never resolved against a directory, so there is nothing to traverse.
 *
 * <p>Every {@code /ui} response, errors included, carries {@link #CSP} and the other headers of
 * {@link #secure(Context)}: scripts, styles, images and connections come from this origin only, no
 * inline script or style runs, nothing may frame the page. Files are revalidated on every load
 * ({@code Cache-Control: no-cache} with a content-hash {@code ETag}, 304 when it matches), so a new
 * jar's console is picked up at once while an unchanged one costs a 304.
 *
 * <p>The files answer without a bearer token (the sign-in page has to load); they hold no data. The
 * page calls the API from the browser with the token the user gives it.
 */
final class Console {
  static final String PATH = "/ui";
  static final String PREFIX = "/ui/";
  private static final String RESOURCES = "/io/kvstore/http/console/";
  private static final Set<String> NONE = Set.of();

  /**
   * No source but this origin, no inline code, no plugins, no {@code <base>}, no form posts, no
   * framing. {@code default-src 'none'} with each needed kind listed is stricter than
   * {@code default-src 'self'}: fonts, media, workers and frames are refused outright.
   */
  static final String CSP = "default-src 'none'; script-src 'self'; style-src 'self'; "
      + "img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
      + "frame-ancestors 'none'";

  /** The files of the console and their content types; the first is the page itself. */
  static final Map<String, String> FILES = files();

  private static Map<String, String> files() {
    Map<String, String> m = new LinkedHashMap<>();
    m.put("index.html", "text/html; charset=utf-8");
    m.put("console.css", "text/css; charset=utf-8");
    m.put("app.js", "text/javascript; charset=utf-8");
    m.put("api.js", "text/javascript; charset=utf-8");
    m.put("cluster.js", "text/javascript; charset=utf-8");
    m.put("keys.js", "text/javascript; charset=utf-8");
    m.put("live.js", "text/javascript; charset=utf-8");
    m.put("chart.js", "text/javascript; charset=utf-8");
    m.put("format.js", "text/javascript; charset=utf-8");
    m.put("favicon.svg", "image/svg+xml");
    return Map.copyOf(m);
  }

  private record Asset(String contentType, byte[] bytes, String etag) {}

  private final Map<String, Asset> assets;

  /**
   * Reads every file of the console from the class path.
   *
   * @throws IllegalStateException if one is missing (a broken jar fails at start, not at a request)
   */
  Console() {
    Map<String, Asset> m = new LinkedHashMap<>();
    FILES.forEach((name, type) -> {
      byte[] bytes = read(name);
      m.put(name, new Asset(type, bytes, "\"" + hash(bytes) + "\""));
    });
    this.assets = Map.copyOf(m);
  }

  private static byte[] read(String name) {
    try (InputStream in = Console.class.getResourceAsStream(RESOURCES + name)) {
      if (in == null) {
        throw new IllegalStateException("the console file " + RESOURCES + name
            + " is missing from the class path; the kvstore-http jar is incomplete");
      }
      return in.readAllBytes();
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read the console file " + name, e);
    }
  }

  private static String hash(byte[] bytes) {
    try {
      byte[] d = MessageDigest.getInstance("SHA-256").digest(bytes);
      return HexFormat.of().formatHex(d, 0, 12);
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("every Java platform has SHA-256", e);
    }
  }

  static boolean isConsolePath(String rawPath) {
    return rawPath.equals(PATH) || rawPath.startsWith(PREFIX);
  }

  /** The headers of every {@code /ui} response; called before the route runs, so errors get them. */
  static void secure(Context ctx) {
    ctx.header("Content-Security-Policy", CSP);
    ctx.header("X-Content-Type-Options", "nosniff");
    ctx.header("X-Frame-Options", "DENY");
    ctx.header("Referrer-Policy", "no-referrer");
    ctx.header("Cross-Origin-Opener-Policy", "same-origin");
    ctx.header("Cross-Origin-Resource-Policy", "same-origin");
    ctx.header("Cache-Control", "no-cache");
  }

  /** {@code /ui}: the page lives at {@code /ui/}, so its relative links resolve inside it. */
  void redirect(Context ctx) {
    QueryParams.parse(ctx.queryString(), NONE);
    ctx.status(308).header("Location", PREFIX);
  }

  /** {@code /ui/} and {@code /ui/<file>}. */
  void serve(Context ctx, String rawName) {
    QueryParams.parse(ctx.queryString(), NONE);
    Asset asset = assets.get(rawName.isEmpty() ? "index.html" : rawName);
    if (asset == null) {
      throw new ApiError(404, "no_route", "the console has no file '" + rawName + "'");
    }
    ctx.header("ETag", asset.etag());
    if (matches(ctx.req().getHeader("If-None-Match"), asset.etag())) {
      ctx.status(304);
      return;
    }
    ctx.res().setCharacterEncoding(null); // the content type names its charset itself
    ctx.status(200).contentType(asset.contentType()).result(asset.bytes());
  }

  /** Weak comparison (RFC 9110 13.1.2), as for GET; a malformed header simply does not match. */
  private static boolean matches(String ifNoneMatch, String etag) {
    if (ifNoneMatch == null) {
      return false;
    }
    for (String tag : ifNoneMatch.split(",")) {
      String t = tag.trim();
      if (t.startsWith("W/")) {
        t = t.substring(2);
      }
      if (t.equals("*") || t.equals(etag)) {
        return true;
      }
    }
    return false;
  }
}
