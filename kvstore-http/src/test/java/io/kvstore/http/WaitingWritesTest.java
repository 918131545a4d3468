package io.kvstore.http;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import io.kvstore.core.Durability;
import io.kvstore.core.KvStore;
import io.kvstore.core.StorageException;
import io.kvstore.core.Version;
import io.kvstore.core.WriteOptions;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Writes whose future the store completes later (a SYNC fsync, QUORUM/ALL acks) hold no request
 * thread while they wait, and are answered as before once the store completes them.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class WaitingWritesTest {
  private static final int THREADS = 8;
  private static final int WRITERS = 3 * THREADS;

  /** A store whose writes wait until the test completes them, as a SYNC write waits for fsync. */
  private static final class HeldWrites extends ForwardingKvStore {
    final ConcurrentLinkedQueue<CompletableFuture<Version>> held = new ConcurrentLinkedQueue<>();

    HeldWrites() {
      super(KvStore.builder().nodeId("node-1").build());
    }

    @Override
    public CompletableFuture<Version> putAsync(String key, byte[] value, WriteOptions options) {
      CompletableFuture<Version> done = super.putAsync(key, value, options);
      CompletableFuture<Version> later = new CompletableFuture<>();
      held.add(later);
      return later.thenCompose(ignored -> done);
    }

    @Override
    public CompletableFuture<Boolean> deleteAsync(String key, WriteOptions options) {
      CompletableFuture<Boolean> done = super.deleteAsync(key, options);
      CompletableFuture<Version> later = new CompletableFuture<>();
      held.add(later);
      return later.thenCompose(ignored -> done);
    }

    void releaseAll() {
      for (CompletableFuture<Version> f; (f = held.poll()) != null; ) {
        f.complete(null);
      }
    }
  }

  /** Without the asynchronous answer, 3 x maxThreads waiting writes took every request thread. */
  @Test
  void writesWaitingForTheStore_holdNoRequestThread_andAreAnsweredWhenDone() throws Exception {
    HeldWrites store = new HeldWrites();
    try (HttpFixture http = HttpFixture.start(store, b -> b.maxThreads(THREADS))) {
      List<CompletableFuture<HttpResponse<String>>> writes = new ArrayList<>();
      for (int i = 0; i < WRITERS; i++) {
        writes.add(http.client.sendAsync(request(http, i), HttpResponse.BodyHandlers.ofString()));
      }
      await().atMost(Duration.ofSeconds(20)).until(() -> store.held.size() == WRITERS);

      // Every write is waiting for the store; the server still answers other requests.
      assertThat(http.send("GET", "/health").status()).isEqualTo(200);
      assertThat(http.send("GET", "/v1/kv/none").status()).isEqualTo(404);
      assertThat(writes).noneMatch(CompletableFuture::isDone);

      store.releaseAll();
      for (int i = 0; i < WRITERS; i++) {
        HttpResponse<String> r = writes.get(i).get(20, TimeUnit.SECONDS);
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        JsonNode body = HttpFixture.JSON.readTree(r.body());
        assertThat(body.get("key").asText()).isEqualTo("k" + i);
        assertThat(r.headers().firstValue("ETag")).contains(
            ETags.of(Version.parse(body.get("version").asText())));
      }
      assertThat(store.getString("k0")).contains("v0");
      // The documented API answers the same way when it waits.
      CompletableFuture<HttpResponse<String>> legacy = http.client.sendAsync(
          HttpRequest.newBuilder(URI.create(http.base + "/delete?key=k1")).DELETE().build(),
          HttpResponse.BodyHandlers.ofString());
      await().atMost(Duration.ofSeconds(20)).until(() -> !store.held.isEmpty());
      store.releaseAll();
      HttpResponse<String> deleted = legacy.get(20, TimeUnit.SECONDS);
      assertThat(deleted.statusCode()).isEqualTo(200);
      assertThat(deleted.body()).contains("\"deleted\":true");
    }
  }

  @Test
  void aWaitingWriteThatTheStoreNeverCompletes_is503TimeoutAtTheRequestTimeout() {
    HeldWrites store = new HeldWrites();
    try (HttpFixture http = HttpFixture.start(store,
        b -> b.requestTimeout(Duration.ofMillis(300)))) {
      long t0 = System.nanoTime();
      HttpFixture.Response<String> r = http.send("PUT", "/v1/kv/slow", "v");
      long millis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
      assertThat(r.status()).isEqualTo(503);
      assertThat(r.body()).contains("\"error\":\"timeout\"");
      assertThat(millis).isBetween(250L, 10_000L);
    } finally {
      store.releaseAll();
    }
  }

  @Test
  void aWaitingWriteThatFails_isAnsweredWithTheMappedError() throws Exception {
    HeldWrites store = new HeldWrites();
    try (HttpFixture http = HttpFixture.start(store)) {
      CompletableFuture<HttpResponse<String>> w = http.client.sendAsync(
          HttpRequest.newBuilder(URI.create(http.base + "/put"))
              .header("Content-Type", "application/json")
              .PUT(HttpRequest.BodyPublishers.ofString("{\"key\":\"k\",\"value\":\"v\"}")).build(),
          HttpResponse.BodyHandlers.ofString());
      await().atMost(Duration.ofSeconds(20)).until(() -> !store.held.isEmpty());
      store.held.poll().completeExceptionally(new StorageException("disk gone"));
      HttpResponse<String> r = w.get(20, TimeUnit.SECONDS);
      assertThat(r.statusCode()).isEqualTo(503);
      assertThat(r.body()).contains("\"error\":\"storage_failed\"");
      assertThat(r.headers().firstValue("X-Request-Id")).isPresent();
    }
  }

  /** A real SYNC store: more concurrent writers than request threads, all durable, sharing fsyncs. */
  @Test
  void syncWrites_fromMoreClientsThanThreads_allSucceedAndSurviveARestart(@TempDir Path dir)
      throws Exception {
    KvStore store = KvStore.builder().nodeId("node-1").dataDir(dir).durability(Durability.SYNC)
        .build();
    try (HttpFixture http = HttpFixture.start(store, b -> b.maxThreads(THREADS))) {
      List<CompletableFuture<HttpResponse<String>>> writes = new ArrayList<>();
      for (int i = 0; i < 4 * WRITERS; i++) {
        writes.add(http.client.sendAsync(request(http, i), HttpResponse.BodyHandlers.ofString()));
      }
      for (CompletableFuture<HttpResponse<String>> w : writes) {
        assertThat(w.get(30, TimeUnit.SECONDS).statusCode()).isEqualTo(200);
      }
    }
    try (KvStore reopened = KvStore.builder().nodeId("node-1").dataDir(dir).build()) {
      for (int i = 0; i < 4 * WRITERS; i++) {
        assertThat(reopened.getString("k" + i)).contains("v" + i);
      }
    }
  }

  private static HttpRequest request(HttpFixture http, int i) {
    return HttpRequest.newBuilder(URI.create(http.base + "/v1/kv/k" + i))
        .PUT(HttpRequest.BodyPublishers.ofString("v" + i, StandardCharsets.UTF_8)).build();
  }
}
