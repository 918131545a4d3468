package io.kvstore.http;

import static io.kvstore.http.HttpFixture.assertError;
import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import io.kvstore.core.KvStore;
import io.kvstore.core.Version;
import io.kvstore.core.Versioned;
import io.kvstore.core.WriteOptions;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Routing errors, HTTP-level limits, timeouts and server failures: all JSON, never a stack trace. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class HttpErrorsTest {
  private HttpFixture http;

  private void start(KvStore store, UnaryOperator<KvHttpServer.Builder> custom) {
    http = HttpFixture.start(store, custom);
  }

  private void start() {
    start(KvStore.builder().nodeId("node-1").build(), b -> b);
  }

  @AfterEach
  void stop() {
    if (http != null) {
      http.close();
    }
  }

  @Test
  void unknownRoute_is404NoRoute() {
    start();
    assertError(http.send("GET", "/nowhere"), 404, "no_route");
    assertError(http.send("GET", "/v1"), 404, "no_route");
    assertError(http.send("GET", "/health/"), 404, "no_route");
  }

  @ParameterizedTest
  @CsvSource(delimiter = '|', value = {
      "GET|/put|PUT, OPTIONS",
      "PUT|/get/k|GET, HEAD, OPTIONS",
      "POST|/get?key=k|GET, HEAD, OPTIONS",
      "GET|/delete/k|DELETE, OPTIONS",
      "GET|/set/k/v|POST, OPTIONS",
      "POST|/v1/kv/k|GET, HEAD, PUT, DELETE, OPTIONS",
      "PATCH|/v1/kv/k|GET, HEAD, PUT, DELETE, OPTIONS",
      "DELETE|/v1/kv|GET, HEAD, OPTIONS",
      "HEAD|/v1/watch|GET, OPTIONS",
      "PUT|/health|GET, HEAD, OPTIONS",
      "FOO|/v1/kv/k|GET, HEAD, PUT, DELETE, OPTIONS",
      "get|/v1/kv/k|GET, HEAD, PUT, DELETE, OPTIONS"})
  void wrongMethod_is405WithAllow_andStoresNothing(String method, String path, String allow) {
    start();
    HttpFixture.Snapshot before = http.snapshot();
    HttpFixture.Response<String> r = http.raw(method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + "Content-Length: 1\r\nConnection: close\r\n\r\nv");

    if (method.equals("HEAD")) {
      assertThat(r.status()).isEqualTo(405);
    } else {
      assertError(r, 405, "method_not_allowed");
    }
    assertThat(r.header("allow")).isEqualTo(allow);
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @Test
  void methodOverrideHeader_isRefused_andStoresNothing() {
    start();
    http.store.put("k", "v");
    HttpFixture.Snapshot before = http.snapshot();

    assertError(http.send("GET", "/v1/kv/k", null, "X-HTTP-Method-Override", "DELETE"), 400,
        "bad_request");
    assertError(http.send("POST", "/v1/kv/k", "x", "X-HTTP-Method-Override", "PUT"), 400,
        "bad_request");

    assertThat(http.snapshot()).isEqualTo(before);
  }

  @Test
  void options_lists204Allow() {
    start();
    HttpFixture.Response<String> r = http.send("OPTIONS", "/v1/kv/k");
    assertThat(r.status()).isEqualTo(204);
    assertThat(r.header("allow")).isEqualTo("GET, HEAD, PUT, DELETE, OPTIONS");
  }

  @Test
  void urlOverTheLimit_is414Json() {
    start(KvStore.builder().nodeId("node-1").build(), b -> b.maxHeaderBytes(4096));
    HttpFixture.Snapshot before = http.snapshot();
    HttpFixture.Response<String> r = http.raw("PUT /v1/kv/" + "a".repeat(5000)
        + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\nConnection: close\r\n\r\nv");
    assertError(r, 414, "uri_too_long");
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @Test
  void headersOverTheLimit_is431Json() {
    start(KvStore.builder().nodeId("node-1").build(), b -> b.maxHeaderBytes(4096));
    HttpFixture.Snapshot before = http.snapshot();
    HttpFixture.Response<String> r = http.raw("PUT /v1/kv/k HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
        + "b".repeat(5000) + "\r\nContent-Length: 1\r\nConnection: close\r\n\r\nv");
    assertError(r, 431, "headers_too_large");
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @Test
  void pathClimbingAboveTheRoot_is400Json() {
    start();
    HttpFixture.Snapshot before = http.snapshot();
    assertError(http.raw("GET /get/%2e%2e/%2e%2e/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        400, "bad_request");
    assertError(http.raw("PUT /../x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n"
        + "Connection: close\r\n\r\n"), 400, "bad_request");
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @Test
  void malformedRequest_is400Json() {
    start();
    HttpFixture.Snapshot before = http.snapshot();
    assertError(http.raw("PUT /v1/kv/k HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n"
        + "Connection: close\r\n\r\n"), 400, "bad_request");
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @Test
  void serverFailure_is500WithRequestIdAndNoDetails() {
    KvStore failing = new ForwardingKvStore(KvStore.builder().nodeId("node-1").build()) {
      @Override
      public Optional<Versioned> getVersioned(String key) {
        throw new IllegalStateException("secret internal detail");
      }
    };
    start(failing, b -> b);

    HttpFixture.Response<String> r = http.send("GET", "/v1/kv/k");

    JsonNode body = assertError(r, 500, "internal");
    assertThat(r.body()).doesNotContain("secret internal detail").doesNotContain("IllegalState");
    assertThat(body.get("requestId").asText()).isEqualTo(r.header("x-request-id"));
    assertThat(body.get("message").asText()).contains(r.header("x-request-id"));
  }

  @Test
  void closedStore_is503Unavailable() {
    start();
    http.store.close();
    assertError(http.send("GET", "/v1/kv/k"), 503, "unavailable");
    assertError(http.send("PUT", "/v1/kv/k", "v"), 503, "unavailable");
  }

  @Test
  void bodyThatStopsArriving_is408AfterTheIdleTimeout_andStoresNothing() throws Exception {
    start(KvStore.builder().nodeId("node-1").build(), b -> b.idleTimeout(Duration.ofMillis(300)));
    HttpFixture.Snapshot before = http.snapshot();
    try (Socket s = new Socket("127.0.0.1", http.server.port())) {
      s.setSoTimeout(20_000);
      OutputStream out = s.getOutputStream();
      out.write(("PUT /v1/kv/slow HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n"
          + "Connection: close\r\n\r\nab").getBytes(StandardCharsets.ISO_8859_1));
      out.flush();

      HttpFixture.Response<String> r = HttpFixture.parse(s.getInputStream());

      assertError(r, 408, "timeout");
    }
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @Test
  void bodyTrickledSlowerThanTheRequestTimeout_is408_andStoresNothing() throws Exception {
    start(KvStore.builder().nodeId("node-1").build(),
        b -> b.requestTimeout(Duration.ofMillis(300)).idleTimeout(Duration.ofSeconds(20)));
    HttpFixture.Snapshot before = http.snapshot();
    ScheduledExecutorService trickler = Executors.newSingleThreadScheduledExecutor();
    try (Socket s = new Socket("127.0.0.1", http.server.port())) {
      s.setSoTimeout(20_000);
      OutputStream out = s.getOutputStream();
      out.write(("PUT /v1/kv/slow HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n"
          + "Connection: close\r\n\r\n").getBytes(StandardCharsets.ISO_8859_1));
      out.flush();
      // One byte every 50 ms: never idle, but far too slow.
      trickler.scheduleAtFixedRate(() -> {
        try {
          out.write('x');
          out.flush();
        } catch (java.io.IOException e) {
          throw new java.io.UncheckedIOException(e); // ends the schedule
        }
      }, 0, 50, TimeUnit.MILLISECONDS);

      HttpFixture.Response<String> r = HttpFixture.parse(s.getInputStream());

      assertError(r, 408, "timeout");
    } finally {
      trickler.shutdownNow();
    }
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @Test
  void writeThatOutlivesTheRequestTimeout_is503Timeout() {
    KvStore never = new ForwardingKvStore(KvStore.builder().nodeId("node-1").build()) {
      @Override
      public CompletableFuture<Version> putAsync(String key, byte[] value, WriteOptions options) {
        return new CompletableFuture<>();
      }
    };
    start(never, b -> b.requestTimeout(Duration.ofMillis(200)));

    JsonNode body = assertError(http.send("PUT", "/v1/kv/k", "v"), 503, "timeout");

    assertThat(body.get("message").asText()).contains("may still spread");
  }

  @Test
  void everyResponse_carriesARequestId() {
    start();
    assertThat(http.send("GET", "/health").header("x-request-id")).isNotBlank();
    assertThat(http.send("GET", "/nowhere").header("x-request-id")).isNotBlank();
  }
}
