package io.kvstore.http;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvstore.core.KvStore;
import io.kvstore.core.StoreStats;
import io.kvstore.core.Versioned;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.UnaryOperator;

/**
 * A {@link KvHttpServer} over any {@link KvStore} on 127.0.0.1 and an ephemeral port, with a real
 * {@link HttpClient} and a raw-socket client for requests {@code java.net.http} refuses to send.
 * The store can be single-node or one node of a cluster: tests written against this fixture run
 * against either.
 */
final class HttpFixture implements AutoCloseable {
  static final ObjectMapper JSON = new ObjectMapper();

  final KvStore store;
  final KvHttpServer server;
  final HttpClient client;
  final String base;

  private HttpFixture(KvStore store, KvHttpServer server) {
    this.store = store;
    this.server = server;
    this.client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
        .connectTimeout(Duration.ofSeconds(5)).build();
    this.base = "http://127.0.0.1:" + server.port();
  }

  static HttpFixture start(KvStore store) {
    return start(store, b -> b);
  }

  static HttpFixture start(KvStore store, UnaryOperator<KvHttpServer.Builder> custom) {
    KvHttpServer server = custom.apply(KvHttpServer.builder(store).host("127.0.0.1").port(0))
        .build().start();
    return new HttpFixture(store, server);
  }

  // ---- java.net.http --------------------------------------------------------------------------

  Response<String> send(String method, String path) {
    return send(method, path, null);
  }

  Response<String> send(String method, String path, String body, String... headers) {
    return sendBytes(method, path, body == null ? null : body.getBytes(StandardCharsets.UTF_8),
        headers).map(b -> new String(b, StandardCharsets.UTF_8));
  }

  Response<byte[]> sendBytes(String method, String path, byte[] body, String... headers) {
    HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path))
        .timeout(Duration.ofSeconds(20))
        .method(method, body == null ? HttpRequest.BodyPublishers.noBody()
            : HttpRequest.BodyPublishers.ofByteArray(body));
    for (int i = 0; i < headers.length; i += 2) {
      b.header(headers[i], headers[i + 1]);
    }
    try {
      HttpResponse<byte[]> r = client.send(b.build(), HttpResponse.BodyHandlers.ofByteArray());
      Map<String, String> h = new LinkedHashMap<>();
      r.headers().map().forEach((k, v) -> h.put(k.toLowerCase(Locale.ROOT), String.join(", ", v)));
      return new Response<>(r.statusCode(), h, r.body());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /** Sends a hand-written request over a plain socket; the caller adds {@code Connection: close}. */
  Response<String> raw(byte[] request) {
    try (Socket s = new Socket("127.0.0.1", server.port())) {
      s.setSoTimeout(20_000);
      OutputStream out = s.getOutputStream();
      out.write(request);
      out.flush();
      return parse(s.getInputStream());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  Response<String> raw(String request) {
    return raw(request.getBytes(StandardCharsets.ISO_8859_1));
  }

  /** Reads one HTTP/1.1 response (Content-Length, chunked or until close). */
  static Response<String> parse(InputStream in) throws IOException {
    String statusLine = readLine(in);
    int status = Integer.parseInt(statusLine.split(" ")[1]);
    Map<String, String> headers = new LinkedHashMap<>();
    for (String line = readLine(in); !line.isEmpty(); line = readLine(in)) {
      int colon = line.indexOf(':');
      headers.merge(line.substring(0, colon).trim().toLowerCase(Locale.ROOT),
          line.substring(colon + 1).trim(), (a, b) -> a + ", " + b);
    }
    ByteArrayOutputStream body = new ByteArrayOutputStream();
    if ("chunked".equalsIgnoreCase(headers.get("transfer-encoding"))) {
      for (int size = Integer.parseInt(readLine(in).trim(), 16); size > 0;
          size = Integer.parseInt(readLine(in).trim(), 16)) {
        body.write(in.readNBytes(size));
        readLine(in);
      }
    } else if (headers.containsKey("content-length")) {
      body.write(in.readNBytes(Integer.parseInt(headers.get("content-length"))));
    } else if (status != 204 && status != 304) {
      body.write(in.readAllBytes());
    }
    return new Response<>(status, headers, body.toString(StandardCharsets.UTF_8));
  }

  static String readLine(InputStream in) throws IOException {
    ByteArrayOutputStream line = new ByteArrayOutputStream();
    int c;
    while ((c = in.read()) != -1 && c != '\n') {
      if (c != '\r') {
        line.write(c);
      }
    }
    if (c == -1 && line.size() == 0) {
      throw new IOException("connection closed before a complete line");
    }
    return line.toString(StandardCharsets.UTF_8);
  }

  // ---- assertions -------------------------------------------------------------------------------

  /** Everything observable about the store's contents: live entries and write counters. */
  record Snapshot(List<Versioned> entries, long puts, long deletes, long tombstones) {}

  Snapshot snapshot() {
    StoreStats s = store.stats();
    return new Snapshot(store.scan("", null, store.config().maxScanLimit()), s.puts(), s.deletes(),
        s.tombstones());
  }

  /** Asserts a JSON error answer with this status and error code, and returns its body. */
  static JsonNode assertError(Response<String> r, int status, String code) {
    assertThat(r.status()).as("status of %s", r).isEqualTo(status);
    assertThat(r.header("content-type")).as("content type of %s", r).startsWith("application/json");
    JsonNode body = json(r);
    assertThat(body.path("error").asText()).as("error code of %s", r).isEqualTo(code);
    assertThat(body.path("message").asText()).as("message of %s", r).isNotBlank();
    assertThat(r.body()).as("no stack trace in %s", r).doesNotContain("\tat ", "Exception:");
    return body;
  }

  static JsonNode json(Response<String> r) {
    try {
      return JSON.readTree(r.body());
    } catch (IOException e) {
      throw new AssertionError("not JSON: " + r, e);
    }
  }

  @Override
  public void close() {
    server.close();
    store.close();
  }

  /** A response: status, lower-cased headers, body. */
  record Response<T>(int status, Map<String, String> headers, T body) {
    String header(String name) {
      return headers.get(name.toLowerCase(Locale.ROOT));
    }

    <U> Response<U> map(java.util.function.Function<T, U> f) {
      return new Response<>(status, headers, f.apply(body));
    }

    @Override
    public String toString() {
      String b = body instanceof byte[] bytes ? bytes.length + " bytes" : String.valueOf(body);
      return status + " " + headers + " " + (b.length() > 500 ? b.substring(0, 500) + "..." : b);
    }
  }
}
