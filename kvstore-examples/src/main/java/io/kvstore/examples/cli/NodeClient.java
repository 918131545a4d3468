package io.kvstore.examples.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.net.ConnectException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpConnectTimeoutException;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.time.Duration;
import java.util.Collection;
import java.util.concurrent.CompletableFuture;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLException;
import javax.net.ssl.TrustManagerFactory;

/**
 * The CLI's side of the {@code /v1} API over {@code java.net.http}: builds requests (keys
 * percent-encoded as UTF-8, the bearer token when one is given) and turns every way a call can fail
 * into a {@link Failure} with the CLI's exit code and a one-line message, never a stack trace.
 */
final class NodeClient {
  static final ObjectMapper JSON = new ObjectMapper();
  private static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(5);
  /** Longer than the server's own request timeout (10 s), so its 503 answer arrives first. */
  static final Duration REQUEST_TIMEOUT = Duration.ofSeconds(30);

  private final URI base;
  private final String token;
  private final HttpClient http;

  NodeClient(URI base, String token, SSLContext tls) {
    this.base = base;
    this.token = token;
    HttpClient.Builder b = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
        .connectTimeout(CONNECT_TIMEOUT).followRedirects(HttpClient.Redirect.NEVER);
    if (tls != null) {
      b.sslContext(tls);
    }
    this.http = b.build();
  }

  /** A TLS context that trusts exactly the certificates of a PEM file. */
  static SSLContext trusting(Path pem) throws IOException, GeneralSecurityException {
    Collection<? extends Certificate> certs;
    try (InputStream in = Files.newInputStream(pem)) {
      certs = CertificateFactory.getInstance("X.509").generateCertificates(in);
    }
    if (certs.isEmpty()) {
      throw new GeneralSecurityException("no certificate in it");
    }
    KeyStore store = KeyStore.getInstance(KeyStore.getDefaultType());
    store.load(null, null);
    int i = 0;
    for (Certificate c : certs) {
      store.setCertificateEntry("ca-" + i++, c);
    }
    TrustManagerFactory tmf = TrustManagerFactory.getInstance(
        TrustManagerFactory.getDefaultAlgorithm());
    tmf.init(store);
    SSLContext ctx = SSLContext.getInstance("TLS");
    ctx.init(null, tmf.getTrustManagers(), null);
    return ctx;
  }

  URI base() {
    return base;
  }

  /** A call failed: the message for stderr and the exit code. */
  static final class Failure extends RuntimeException {
    private static final long serialVersionUID = 1L;
    final int exitCode;
    /** The server's JSON error body, or null when there was none. */
    final transient JsonNode body;

    Failure(int exitCode, String message, JsonNode body) {
      super(message, null, false, false);
      this.exitCode = exitCode;
      this.body = body;
    }
  }

  /** {@code /v1/kv/<key>} with the key percent-encoded, so any key reaches the server intact. */
  static String keyPath(String key) {
    return "/v1/kv/" + encodePath(key);
  }

  static String encodePath(String s) {
    StringBuilder b = new StringBuilder();
    for (byte x : s.getBytes(StandardCharsets.UTF_8)) {
      int c = x & 0xff;
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'
          || c == '_' || c == '~') {
        b.append((char) c);
      } else {
        b.append('%').append(Character.toUpperCase(Character.forDigit(c >> 4, 16)))
            .append(Character.toUpperCase(Character.forDigit(c & 15, 16)));
      }
    }
    return b.toString();
  }

  static String query(String s) {
    return URLEncoder.encode(s, StandardCharsets.UTF_8);
  }

  HttpRequest.Builder request(String pathAndQuery) {
    HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + pathAndQuery))
        .timeout(REQUEST_TIMEOUT);
    if (token != null) {
      b.header("Authorization", "Bearer " + token);
    }
    return b;
  }

  /** Sends a request; a non-2xx answer becomes a {@link Failure}. */
  HttpResponse<byte[]> send(HttpRequest request) {
    HttpResponse<byte[]> res = exchange(request, HttpResponse.BodyHandlers.ofByteArray());
    if (res.statusCode() / 100 != 2) {
      throw failure(res.statusCode(), res.body());
    }
    return res;
  }

  /** Sends a request and reads its JSON answer. */
  JsonNode json(HttpRequest request) {
    byte[] body = send(request).body();
    try {
      return JSON.readTree(body);
    } catch (IOException e) {
      throw new Failure(KvCli.UNREACHABLE, "the node at " + base + " answered with something that "
          + "is not JSON; is it a kvstore node?", null);
    }
  }

  <T> HttpResponse<T> exchange(HttpRequest request, HttpResponse.BodyHandler<T> handler) {
    try {
      return http.send(request, handler);
    } catch (IOException e) {
      throw failureOf(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw unreachable("interrupted");
    }
  }

  <T> CompletableFuture<HttpResponse<T>> exchangeAsync(HttpRequest request,
      HttpResponse.BodyHandler<T> handler) {
    return http.sendAsync(request, handler);
  }

  /** The failure for an exception of a call that got no answer. */
  Failure failureOf(Throwable e) {
    if (e instanceof HttpConnectTimeoutException) {
      return unreachable("connecting timed out");
    } else if (e instanceof HttpTimeoutException) {
      return unreachable("no answer within " + REQUEST_TIMEOUT.toSeconds() + " s");
    } else if (e instanceof ConnectException) {
      return unreachable("connection refused");
    } else if (e instanceof SSLException) {
      return unreachable("TLS failed: " + e.getMessage());
    }
    return unreachable(e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage());
  }

  Failure unreachable(String why) {
    return new Failure(KvCli.UNREACHABLE, "cannot reach the node at " + base + ": " + why, null);
  }

  /**
   * The exit code of an HTTP error: 1 for a missing key or a failed condition, 3 when the node
   * cannot do it now (5xx: retrying later may help), 2 for any other refusal of the request as
   * given (a bad key, TTL or parameter, a missing or wrong token: retrying will not help).
   */
  Failure failure(int status, byte[] body) {
    JsonNode json = null;
    try {
      json = body == null || body.length == 0 ? null : JSON.readTree(body);
    } catch (IOException e) {
      json = null;
    }
    String error = json != null && json.hasNonNull("error") ? json.get("error").asText() : null;
    String message = json != null && json.hasNonNull("message") ? json.get("message").asText()
        : "HTTP " + status + " from " + base;
    int code;
    if ((status == 404 && "not_found".equals(error)) || status == 412) {
      code = KvCli.NOT_FOUND;
    } else if (status >= 500) {
      code = KvCli.UNREACHABLE;
    } else {
      code = KvCli.USAGE;
    }
    if (status == 401 && token == null) {
      message += " (give one with --token-file or KVSTORE_TOKEN_FILE)";
    }
    return new Failure(code, message, json);
  }
}
