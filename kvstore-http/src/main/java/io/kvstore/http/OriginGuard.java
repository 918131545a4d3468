package io.kvstore.http;

import io.javalin.http.Context;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Keeps web pages a user visits from using a node through the user's browser: the defence of an API
 * that any local process may call but that browsers reach too (a node on a laptop, on loopback).
 *
 * <p><b>Host allow-list (DNS rebinding).</b> A page on {@code evil.example} whose name is later
 * re-pointed at 127.0.0.1 talks to the node as its own origin, with {@code Host: evil.example}. The
 * node answers only to: IP addresses (a browser that sends an IP literal connected to that address,
 * so no foreign name is involved), {@code localhost}, the bound host if it is a name, this machine's
 * host name when bound to a wildcard address, and {@link KvHttpServerConfig#allowedHosts()} ({@code
 * "*"} turns the check off). A request without {@code Host} (HTTP/1.0) passes. The port is not
 * checked: the connection reached this port. Refused with 403 {@code host_not_allowed}.
 *
 * <p><b>Cross-site requests.</b> {@code POST /set/k/v} from a form or a no-cors fetch is a CORS
 * "simple" request: the browser sends it without asking. So a request is refused with 403 {@code
 * cross_site_request} when its {@code Origin} is not this node's own origin (its scheme, and the
 * host and port of {@code Host}; {@code Origin: null} included), or its {@code Sec-Fetch-Site} is
 * {@code cross-site}, {@code same-site} (another port on localhost is "same-site") or unknown. A cross-site top-level
 * navigation ({@code GET}/{@code HEAD} with {@code Sec-Fetch-Mode: navigate}, {@code
 * Sec-Fetch-Dest: document}), a link a user follows, passes: it cannot change anything and the page
 * that linked cannot read the answer. Requests without these headers (curl, other non-browser
 * clients) pass.
 *
 * <p><b>When.</b> Without tokens (the open mode) both checks apply. With tokens, browsers cannot send
 * a request the node accepts (they do not attach bearer tokens on their own, and the node sends no
 * CORS headers), so cross-site requests are harmless and not checked; the Host check then applies
 * only if {@code allowedHosts} is configured, so token deployments reached under any name keep
 * working. Refusals are logged at most every 10 s.
 */
final class OriginGuard {
  private static final Logger log = LoggerFactory.getLogger(OriginGuard.class);
  private static final long LOG_INTERVAL_NANOS = TimeUnit.SECONDS.toNanos(10);
  private static final Pattern NAME = Pattern.compile("[a-z0-9_-]+(\\.[a-z0-9_-]+)*");
  private static final Pattern IPV4 = Pattern.compile(
      "(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)(\\.(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)){3}");
  private static final Pattern IPV6 = Pattern.compile("\\[[0-9a-f:.]*:[0-9a-f:.]*]");
  private static final Pattern PORT = Pattern.compile("\\d{1,5}");
  /** The entry of {@code allowedHosts} that turns the Host check off. */
  static final String ANY_HOST = "*";

  private final boolean checkHost;
  private final boolean checkSite;
  private final boolean secure;
  private final Set<String> names;
  private final AtomicLong nextLog = new AtomicLong(System.nanoTime());
  private final AtomicLong unlogged = new AtomicLong();

  private OriginGuard(boolean checkHost, boolean checkSite, boolean secure, Set<String> names) {
    this.checkHost = checkHost;
    this.checkSite = checkSite;
    this.secure = secure;
    this.names = names;
  }

  /**
   * The guard for a server with this config: the default names are worked out here, once.
   *
   * @param config the server's config
   * @return the guard
   */
  static OriginGuard of(KvHttpServerConfig config) {
    boolean open = config.authTokens().isEmpty();
    boolean any = config.allowedHosts().contains(ANY_HOST);
    boolean checkHost = !any && (open || !config.allowedHosts().isEmpty());
    Set<String> names = new LinkedHashSet<>();
    names.add("localhost");
    if (checkHost) {
      String bound = normalizeHost(config.host());
      if (bound != null && !isIpLiteral(bound)) {
        names.add(bound);
      }
      if (isWildcard(config.host())) {
        try {
          String own = normalizeHost(InetAddress.getLocalHost().getHostName());
          if (own != null) {
            names.add(own);
          }
        } catch (UnknownHostException | RuntimeException e) {
          log.debug("cannot tell this machine's host name ({}); reach it by IP or --allowed-host",
              e.toString());
        }
      }
      names.addAll(config.allowedHosts());
    }
    OriginGuard guard = new OriginGuard(checkHost, open, config.tls() != null,
        Collections.unmodifiableSet(names));
    if (open) {
      log.info("HTTP API without auth token: answering only to IP addresses and Host {}, and "
          + "refusing cross-site browser requests (see docs/SECURITY.md)", guard.names);
    } else if (checkHost) {
      log.info("HTTP API answering only to IP addresses and Host {}", guard.names);
    }
    return guard;
  }

  /**
   * A configured {@code allowedHosts} entry in the form requests are compared in.
   *
   * @param entry a host name, an IP address ({@code [..]} for IPv6) or {@code *}
   * @return the entry, lower case, without a trailing dot
   * @throws IllegalArgumentException if it is not a host name (for example it has a port or scheme)
   */
  static String normalizeAllowedHost(String entry) {
    if (entry != null && entry.strip().equals(ANY_HOST)) {
      return ANY_HOST;
    }
    String e = entry == null ? "" : entry.strip();
    String host = normalizeHost(e);
    boolean hasPort = e.startsWith("[") ? !e.endsWith("]") : e.contains(":");
    if (host == null || hasPort) {
      throw new IllegalArgumentException("allowedHosts holds host names, IP addresses or '*', "
          + "without scheme, port or path; '" + printable(entry) + "' is not one");
    }
    return host;
  }

  /** A Javalin before-handler: throws {@link ApiError} 403 for a refused request. */
  void check(Context ctx) {
    ApiError refusal = refusal(ctx.req().getMethod(), ctx.req().getHeader("Host"),
        ctx.req().getHeader("Origin"), ctx.req().getHeader("Sec-Fetch-Site"),
        ctx.req().getHeader("Sec-Fetch-Mode"), ctx.req().getHeader("Sec-Fetch-Dest"));
    if (refusal != null) {
      throw refusal;
    }
  }

  /**
   * Why a request with these headers is refused.
   *
   * @return the 403 to answer with, or null if the request may go on
   */
  ApiError refusal(String method, String host, String origin, String site, String mode,
      String dest) {
    if (checkHost && host != null) {
      String name = normalizeHost(host.strip());
      if (name == null || !isIpLiteral(name) && !names.contains(name)) {
        String shown = printable(host);
        warn("refused a request for Host '{}', not a name of this node (DNS rebinding protection); "
            + "if it is one, start the node with --allowed-host {} (KvHttpServerConfig.allowedHosts)",
            shown, name == null ? "<name>" : name);
        return new ApiError(403, "host_not_allowed", "this node does not answer to Host '" + shown
            + "'. If that is one of its names, start it with --allowed-host " + (name == null
                ? "<name>" : name) + " (KvHttpServerConfig.allowedHosts). It answers to IP "
            + "addresses, localhost and the names its log lists at start");
      }
    }
    if (!checkSite) {
      return null;
    }
    if (origin != null && !sameOrigin(origin.strip(), host)) {
      warn("refused a cross-site request from Origin '{}' (the API has no auth token)",
          printable(origin));
      return crossSite("its Origin '" + printable(origin) + "' is not this node's own");
    }
    if (site != null) {
      String s = site.strip().toLowerCase(Locale.ROOT);
      boolean navigation = (method.equals("GET") || method.equals("HEAD"))
          && "navigate".equalsIgnoreCase(mode) && (dest == null || "document".equalsIgnoreCase(dest));
      if (!s.equals("same-origin") && !s.equals("none") && !navigation) {
        warn("refused a request with Sec-Fetch-Site '{}' (the API has no auth token)",
            printable(site));
        return crossSite("the browser says it comes from another site (Sec-Fetch-Site: "
            + printable(site) + ")");
      }
    }
    return null;
  }

  private static ApiError crossSite(String why) {
    return new ApiError(403, "cross_site_request", "refused a browser request from another web "
        + "site: " + why + ". This node has no auth token, so it serves browsers only its own pages; "
        + "call it from a non-browser client, or configure an auth token");
  }

  /** Whether {@code origin} ({@code scheme://host[:port]}) names the host and port of {@code host}. */
  private boolean sameOrigin(String origin, String host) {
    int sep = origin.indexOf("://");
    if (host == null || sep <= 0) {
      return false; // "null" (an opaque origin), or nothing to compare with
    }
    String scheme = origin.substring(0, sep).toLowerCase(Locale.ROOT);
    if (!scheme.equals(secure ? "https" : "http")) {
      return false;
    }
    String[] o = hostAndPort(origin.substring(sep + 3), secure ? 443 : 80);
    String[] h = hostAndPort(host.strip(), secure ? 443 : 80);
    return o != null && h != null && o[0].equals(h[0]) && o[1].equals(h[1]);
  }

  /** {@code [name, port]} of an authority, the port defaulted; null if malformed. */
  private static String[] hostAndPort(String authority, int defaultPort) {
    String name = normalizeHost(authority);
    if (name == null) {
      return null;
    }
    String a = authority.toLowerCase(Locale.ROOT);
    if (name.startsWith("[") != a.startsWith("[")) {
      return null; // an IPv6 address without brackets is not an authority
    }
    int colon = a.startsWith("[") ? a.indexOf(':', a.indexOf(']')) : a.indexOf(':');
    String port = colon < 0 ? Integer.toString(defaultPort)
        : Integer.toString(Integer.parseInt(a.substring(colon + 1)));
    return new String[] {name, port};
  }

  /**
   * The host name of a {@code Host} value ({@code name}, {@code name:port}, {@code [v6]:port}):
   * lower case, port and trailing dot removed.
   *
   * @return the name, or null if the value is malformed
   */
  static String normalizeHost(String value) {
    if (value == null) {
      return null;
    }
    String h = value.toLowerCase(Locale.ROOT);
    String name;
    String port;
    if (h.startsWith("[")) {
      int end = h.indexOf(']');
      if (end < 0) {
        return null;
      }
      name = h.substring(0, end + 1);
      String rest = h.substring(end + 1);
      if (!rest.isEmpty() && !rest.startsWith(":")) {
        return null;
      }
      port = rest.isEmpty() ? null : rest.substring(1);
      if (!IPV6.matcher(name).matches()) {
        return null;
      }
    } else {
      int colon = h.indexOf(':');
      name = colon < 0 ? h : h.substring(0, colon);
      port = colon < 0 ? null : h.substring(colon + 1);
      if (name.endsWith(".")) {
        name = name.substring(0, name.length() - 1);
      }
      if (!NAME.matcher(name).matches()) {
        // A bare IPv6 address (a bind host such as "::"): bracket it like a Host header would.
        return colon >= 0 && IPV6.matcher("[" + h + "]").matches() ? "[" + h + "]" : null;
      }
    }
    if (port != null && (!PORT.matcher(port).matches() || Integer.parseInt(port) > 65535)) {
      return null;
    }
    return name;
  }

  private static boolean isIpLiteral(String name) {
    return IPV4.matcher(name).matches() || name.startsWith("[");
  }

  private static boolean isWildcard(String bindHost) {
    String h = normalizeHost(bindHost);
    return "0.0.0.0".equals(h) || "[::]".equals(h) || "[0:0:0:0:0:0:0:0]".equals(h);
  }

  /** At most 80 printable ASCII characters of a header, for messages and logs. */
  private static String printable(String value) {
    if (value == null) {
      return "";
    }
    StringBuilder b = new StringBuilder();
    for (int i = 0; i < value.length() && b.length() < 80; i++) {
      char c = value.charAt(i);
      b.append(c >= ' ' && c < 0x7f && c != '\'' ? c : '?');
    }
    return value.length() > 80 ? b + "..." : b.toString();
  }

  /** A warning at most every 10 s; the ones in between are counted into the next. */
  private void warn(String format, Object... args) {
    long now = System.nanoTime();
    long next = nextLog.get();
    if (now - next < 0 || !nextLog.compareAndSet(next, now + LOG_INTERVAL_NANOS)) {
      unlogged.incrementAndGet();
      return;
    }
    long more = unlogged.getAndSet(0);
    if (log.isWarnEnabled()) {
      log.warn(format + (more > 0 ? " (and " + more + " more refusals since the last report)" : ""),
          args);
    }
  }
}
