package io.kvstore.http;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.kvstore.core.KvStore;
import io.kvstore.core.Version;
import io.kvstore.core.WriteOptions;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** The server's public API: config validation, lifecycle and graceful close. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class KvHttpServerTest {

  static Object[][] invalidSettings() {
    return new Object[][] {
        {"port", (UnaryOperator<KvHttpServer.Builder>) b -> b.port(-1)},
        {"port", (UnaryOperator<KvHttpServer.Builder>) b -> b.port(65536)},
        {"host", (UnaryOperator<KvHttpServer.Builder>) b -> b.host(" ")},
        {"maxBodyBytes", (UnaryOperator<KvHttpServer.Builder>) b -> b.maxBodyBytes(0)},
        {"authTokens", (UnaryOperator<KvHttpServer.Builder>) b -> b.authTokens(Set.of("a b"))},
        {"authTokens", (UnaryOperator<KvHttpServer.Builder>) b -> b.authTokens(Set.of(""))},
        {"idleTimeout", (UnaryOperator<KvHttpServer.Builder>) b -> b.idleTimeout(Duration.ZERO)},
        {"requestTimeout",
            (UnaryOperator<KvHttpServer.Builder>) b -> b.requestTimeout(Duration.ofSeconds(-1))},
        {"shutdownTimeout",
            (UnaryOperator<KvHttpServer.Builder>) b -> b.shutdownTimeout(Duration.ofSeconds(-1))},
        {"maxHeaderBytes", (UnaryOperator<KvHttpServer.Builder>) b -> b.maxHeaderBytes(100)},
        {"maxThreads", (UnaryOperator<KvHttpServer.Builder>) b -> b.maxThreads(2)},
        {"maxWatchClients", (UnaryOperator<KvHttpServer.Builder>) b -> b.maxWatchClients(-1)},
        {"maxWatchClientsPerAddress",
            (UnaryOperator<KvHttpServer.Builder>) b -> b.maxWatchClientsPerAddress(0)},
        {"minRequestDataRate", (UnaryOperator<KvHttpServer.Builder>) b -> b.minRequestDataRate(-1)},
        {"maxListBytes", (UnaryOperator<KvHttpServer.Builder>) b -> b.maxListBytes(1000)},
        {"maxConcurrentListings",
            (UnaryOperator<KvHttpServer.Builder>) b -> b.maxConcurrentListings(0)},
        {"watchQueueCapacity", (UnaryOperator<KvHttpServer.Builder>) b -> b.watchQueueCapacity(0)},
        {"watchHeartbeat", (UnaryOperator<KvHttpServer.Builder>) b -> b.watchHeartbeat(null)},
    };
  }

  @ParameterizedTest
  @MethodSource("invalidSettings")
  void build_invalidSetting_failsNamingIt(String name, UnaryOperator<KvHttpServer.Builder> set) {
    try (KvStore store = KvStore.builder().nodeId("node-1").build()) {
      assertThatThrownBy(() -> set.apply(KvHttpServer.builder(store)).build())
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessageContaining(name);
    }
  }

  @Test
  void config_hasDocumentedDefaults_andToStringHidesTokens() {
    try (KvStore store = KvStore.builder().nodeId("node-1").build()) {
      KvHttpServerConfig c = KvHttpServer.builder(store).authTokens(Set.of("top-secret")).config();
      assertThat(c.host()).isEqualTo("127.0.0.1");
      assertThat(c.port()).isEqualTo(8080);
      assertThat(c.maxBodyBytes()).isEqualTo(2 * 1024 * 1024);
      assertThat(c.openHealth()).isTrue();
      assertThat(c.toString()).doesNotContain("top-secret").contains("1 configured");
    }
  }

  @Test
  void lifecycle_startsOnce_portOnlyWhileStarted_closeIsIdempotent() {
    try (KvStore store = KvStore.builder().nodeId("node-1").build()) {
      KvHttpServer server = KvHttpServer.builder(store).port(0).build();
      assertThatThrownBy(server::port).isInstanceOf(IllegalStateException.class);

      server.start();
      assertThat(server.port()).isPositive();
      assertThatThrownBy(server::start).isInstanceOf(IllegalStateException.class);

      server.close();
      server.close();
      assertThatThrownBy(server::port).isInstanceOf(IllegalStateException.class);
      assertThatThrownBy(server::start).isInstanceOf(IllegalStateException.class);
      assertThat(store.put("still-open", "yes")).isNotNull();
    }
  }

  @Test
  void start_onATakenPort_failsClearly() {
    try (KvStore store = KvStore.builder().nodeId("node-1").build();
        KvHttpServer first = KvHttpServer.builder(store).port(0).build().start()) {
      KvHttpServer second = KvHttpServer.builder(store).port(first.port()).build();
      assertThatThrownBy(second::start)
          .isInstanceOf(IllegalStateException.class)
          .hasMessageContaining("could not start")
          .hasMessageContaining(Integer.toString(first.port()));
      second.close();
    }
  }

  @Test
  void close_letsAnInFlightRequestFinish() throws Exception {
    CountDownLatch entered = new CountDownLatch(1);
    CountDownLatch release = new CountDownLatch(1);
    ForwardingKvStore store = blockingPuts(entered, release);
    HttpFixture http = HttpFixture.start(store, b -> b.shutdownTimeout(Duration.ofSeconds(20)));
    CompletableFuture<HttpResponse<String>> inFlight = http.client.sendAsync(
        HttpRequest.newBuilder(URI.create(http.base + "/v1/kv/k"))
            .PUT(HttpRequest.BodyPublishers.ofString("v")).build(),
        HttpResponse.BodyHandlers.ofString());
    assertThat(entered.await(10, TimeUnit.SECONDS)).isTrue();
    int port = http.server.port();

    CompletableFuture<Void> closing = CompletableFuture.runAsync(http.server::close);
    // New connections are refused while the in-flight request is still running.
    await().atMost(Duration.ofSeconds(10)).until(() -> !accepts("127.0.0.1", port));
    release.countDown();

    assertThat(inFlight.get(10, TimeUnit.SECONDS).statusCode()).isEqualTo(200);
    closing.get(10, TimeUnit.SECONDS);
    assertThat(store.getString("k")).contains("v");
    store.close();
  }

  @Test
  void close_givesUpOnAStuckRequestAfterTheShutdownTimeout() throws Exception {
    CountDownLatch entered = new CountDownLatch(1);
    CountDownLatch release = new CountDownLatch(1);
    ForwardingKvStore store = blockingPuts(entered, release);
    HttpFixture http = HttpFixture.start(store, b -> b.shutdownTimeout(Duration.ofMillis(300)));
    http.client.sendAsync(HttpRequest.newBuilder(URI.create(http.base + "/v1/kv/k"))
        .PUT(HttpRequest.BodyPublishers.ofString("v")).build(), HttpResponse.BodyHandlers.ofString());
    assertThat(entered.await(10, TimeUnit.SECONDS)).isTrue();

    long t0 = System.nanoTime();
    http.server.close();
    long millis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);

    assertThat(millis).isLessThan(5_000);
    release.countDown();
    store.close();
  }

  private static boolean accepts(String host, int port) {
    try (java.net.Socket s = new java.net.Socket()) {
      s.connect(new java.net.InetSocketAddress(host, port), 1000);
      return true;
    } catch (java.io.IOException e) {
      return false;
    }
  }

  private static ForwardingKvStore blockingPuts(CountDownLatch entered, CountDownLatch release) {
    return new ForwardingKvStore(KvStore.builder().nodeId("node-1").build()) {
      @Override
      public CompletableFuture<Version> putAsync(String key, byte[] value, WriteOptions options) {
        entered.countDown();
        try {
          release.await(30, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
        return super.putAsync(key, value, options);
      }
    };
  }
}
