package io.kvstore.http;

import static io.kvstore.http.HttpFixture.assertError;
import static io.kvstore.http.HttpFixture.json;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import io.kvstore.core.KvStore;
import io.kvstore.core.Versioned;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * What one client can make the server spend: listing memory (encoded bytes, listings at once),
 * watch streams (per address, no thread each), request bodies (no thread while they do not arrive,
 * a minimum data rate, a bounded number read at once) and /health under that load; and the errors
 * of all of it, which are the documented JSON even when Jetty or a Java {@link Error} raises them.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class HttpResourceLimitsTest {
  private HttpFixture http;
  private final List<Socket> sockets = new ArrayList<>();

  private void start(KvStore store, UnaryOperator<KvHttpServer.Builder> custom) {
    http = HttpFixture.start(store, custom);
  }

  @AfterEach
  void stop() throws IOException {
    for (Socket s : sockets) {
      s.close();
    }
    if (http != null) {
      http.close();
    }
  }

  private Socket connect(String localAddress) throws IOException {
    Socket s = new Socket();
    sockets.add(s);
    if (localAddress != null) {
      s.bind(new InetSocketAddress(InetAddress.getByName(localAddress), 0));
    }
    s.connect(new InetSocketAddress("127.0.0.1", http.server.port()), 5000);
    s.setSoTimeout(20_000);
    return s;
  }

  private static void send(Socket s, String text) throws IOException {
    OutputStream out = s.getOutputStream();
    out.write(text.getBytes(StandardCharsets.ISO_8859_1));
    out.flush();
  }

  /** Opens a watch stream and waits for its first comment; returns the socket, still open. */
  private Socket openWatch(String localAddress) throws IOException {
    Socket s = connect(localAddress);
    send(s, "GET /v1/watch HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    InputStream in = s.getInputStream();
    String status = HttpFixture.readLine(in);
    assertThat(status).contains(" 200 ");
    while (!HttpFixture.readLine(in).isEmpty()) {
      // headers
    }
    readUntil(in, ": watching\n\n");
    return s;
  }

  private static String readUntil(InputStream in, String needle) throws IOException {
    StringBuilder text = new StringBuilder();
    while (!text.toString().contains(needle)) {
      int c = in.read();
      if (c < 0) {
        throw new IOException("stream ended before '" + needle + "': " + text);
      }
      text.append((char) c);
    }
    return text.toString();
  }

  // ---- item 4: listings -----------------------------------------------------------------------

  /**
   * Regression: 4 values of 1 MiB of 0x01 made one 24 MiB page (the budget counted raw bytes, and
   * each byte escapes to 6), built as a tree in memory; 8 such listings at once ran out of heap.
   */
  @Test
  void listing_valuesThatEscapeBadly_endThePageByEncodedBytes() {
    start(KvStore.builder().nodeId("node-1").maxValueBytes(1024 * 1024).build(), b -> b);
    byte[] ones = new byte[1024 * 1024];
    Arrays.fill(ones, (byte) 1);
    for (int i = 0; i < 4; i++) {
      http.store.put("k" + i, ones);
    }

    List<String> keys = new ArrayList<>();
    String startAfter = null;
    for (int pages = 0; pages < 10; pages++) {
      HttpFixture.Response<String> r = http.send("GET", "/v1/kv?values=true"
          + (startAfter == null ? "" : "&startAfter=" + startAfter));
      assertThat(r.status()).as("%s", r).isEqualTo(200);
      JsonNode page = json(r);
      // Each item is 6 MiB of JSON, over the 4 MiB budget: a page holds exactly one.
      assertThat(page.get("items")).hasSize(1);
      assertThat(page.get("items").get(0).get("value").asText()).hasSize(ones.length)
          .matches("\u0001+");
      keys.add(page.get("items").get(0).get("key").asText());
      if (page.get("nextStartAfter").isNull()) {
        break;
      }
      startAfter = page.get("nextStartAfter").asText();
    }
    assertThat(keys).containsExactly("k0", "k1", "k2", "k3");
  }

  @Test
  void listing_pagesStayWithinMaxListBytes_andWalkEveryKeyOnce() {
    start(KvStore.builder().nodeId("node-1").maxValueBytes(64 * 1024).build(),
        b -> b.maxListBytes(64 * 1024));
    byte[] ones = new byte[4096]; // 24 KiB of JSON each: two fit in a 64 KiB page
    Arrays.fill(ones, (byte) 1);
    byte[] binary = {(byte) 0xff, 0, 1};
    for (int i = 0; i < 8; i++) {
      http.store.put("k" + i + "\"\\", ones);
    }
    http.store.put("z-binary", binary);

    List<String> keys = new ArrayList<>();
    String startAfter = null;
    for (int pages = 0; pages < 20; pages++) {
      HttpFixture.Response<String> r = http.send("GET", "/v1/kv?values=true"
          + (startAfter == null ? "" : "&startAfter=" + UrlEncoding.query(startAfter)));
      assertThat(r.status()).as("%s", r).isEqualTo(200);
      JsonNode page = json(r);
      int bytes = r.body().getBytes(StandardCharsets.UTF_8).length;
      assertThat(bytes).as("page of %d items", page.get("items").size())
          .isLessThanOrEqualTo(64 * 1024);
      assertThat(r.header("content-length")).isEqualTo(Integer.toString(bytes));
      for (JsonNode item : page.get("items")) {
        keys.add(item.get("key").asText());
        if (item.has("valueBase64")) {
          assertThat(Base64.getDecoder().decode(item.get("valueBase64").asText()))
              .containsExactly(binary);
        } else {
          assertThat(item.get("value").asText()).hasSize(ones.length);
        }
      }
      if (page.get("nextStartAfter").isNull()) {
        break;
      }
      startAfter = page.get("nextStartAfter").asText();
    }
    assertThat(keys).hasSize(9).doesNotHaveDuplicates()
        .isEqualTo(http.store.scan("", null, 50).stream().map(Versioned::key).toList());
  }

  @Test
  void listing_encodedLengthEstimate_matchesJackson() throws Exception {
    long seed = Long.getLong("kvstore.test.seed", System.nanoTime());
    System.out.println("listing_encodedLengthEstimate_matchesJackson seed=" + seed
        + " (replay with -Dkvstore.test.seed=" + seed + ")");
    java.util.Random random = new java.util.Random(seed);
    for (int i = 0; i < 200; i++) {
      byte[] ascii = new byte[random.nextInt(300)];
      for (int j = 0; j < ascii.length; j++) {
        ascii[j] = (byte) random.nextInt(128);
      }
      String text = new String(ascii, StandardCharsets.US_ASCII) + (i % 2 == 0 ? "é€😀" : "");
      byte[] utf8 = text.getBytes(StandardCharsets.UTF_8);
      java.io.ByteArrayOutputStream written = new java.io.ByteArrayOutputStream();
      try (com.fasterxml.jackson.core.JsonGenerator g =
          Json.MAPPER.getFactory().createGenerator(written)) {
        g.writeUTF8String(utf8, 0, utf8.length); // as the listing writes values and keys
      }
      int jackson = written.size() - 2; // without the quotes
      assertThat(KvApi.escapedLength(utf8)).as("seed %d, %s", seed, Arrays.toString(utf8))
          .isEqualTo(jackson);
      assertThat(KvApi.isUtf8(utf8)).isTrue();
    }
    assertThat(KvApi.isUtf8(new byte[] {(byte) 0xc3, 0x28})).isFalse();
    assertThat(KvApi.isUtf8(new byte[] {(byte) 0xed, (byte) 0xa0, (byte) 0x80})).isFalse();
  }

  @Test
  void listingsBeyondTheLimit_get503WithRetryAfter() throws Exception {
    CountDownLatch inScan = new CountDownLatch(1);
    CountDownLatch release = new CountDownLatch(1);
    KvStore blocking = new ForwardingKvStore(KvStore.builder().nodeId("node-1").build()) {
      @Override
      public List<Versioned> scan(String prefix, String startAfter, int limit) {
        if (prefix.equals("slow")) {
          inScan.countDown();
          try {
            release.await(20, TimeUnit.SECONDS);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          }
        }
        return super.scan(prefix, startAfter, limit);
      }
    };
    start(blocking, b -> b.maxConcurrentListings(1));
    CompletableFuture<HttpResponse<String>> first = http.client.sendAsync(
        HttpRequest.newBuilder(URI.create(http.base + "/v1/kv?prefix=slow&values=true")).build(),
        HttpResponse.BodyHandlers.ofString());
    assertThat(inScan.await(10, TimeUnit.SECONDS)).isTrue();

    HttpFixture.Response<String> second = http.send("GET", "/v1/kv?values=true");

    assertError(second, 503, "too_many_listings");
    assertThat(second.header("retry-after")).isEqualTo("1");
    release.countDown();
    assertThat(first.get(10, TimeUnit.SECONDS).statusCode()).isEqualTo(200);
    assertThat(http.send("GET", "/v1/kv?values=true").status()).isEqualTo(200);
  }

  // ---- item 5: watch streams, bodies, /health ---------------------------------------------------

  @Test
  void watchesFromOneAddress_beyondTheLimit_get429_otherAddressesStillWatch() throws Exception {
    start(KvStore.builder().nodeId("node-1").build(),
        b -> b.maxWatchClients(10).maxWatchClientsPerAddress(2)
            .watchHeartbeat(Duration.ofMillis(100)));
    openWatch("127.0.0.1");
    Socket second = openWatch("127.0.0.1");

    HttpFixture.Response<String> third = http.send("GET", "/v1/watch");

    assertError(third, 429, "too_many_watchers_from_address");
    openWatch("127.0.0.2"); // another address (Linux routes all of 127/8 to loopback)
    second.close();
    // Its slot is freed once the server notices (at the latest at the next heartbeat).
    await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> openWatch("127.0.0.1"));
  }

  @Test
  void watchStreams_holdNoRequestThread() throws Exception {
    start(KvStore.builder().nodeId("node-1").build(),
        b -> b.maxThreads(12).maxWatchClients(40).maxWatchClientsPerAddress(40));
    List<Socket> streams = new ArrayList<>();
    for (int i = 0; i < 40; i++) {
      streams.add(openWatch(null));
    }

    assertThat(http.send("PUT", "/v1/kv/seen", "v").status()).isEqualTo(200);

    for (Socket s : streams) {
      assertThat(readUntil(s.getInputStream(), "\n\n")).contains("event: put", "seen");
    }
    assertThat(http.send("GET", "/health").status()).isEqualTo(200);
  }

  /**
   * Regression: 64 watch streams and 180 PUTs whose body never came held every request thread, and
   * /health took 13.5 s. The same load with the default settings: 64 streams (from 8 loopback
   * addresses, the per-address limit), 90 PUTs that send no body and 90 that send part of one and
   * stall.
   */
  @Test
  void whenWatchesAndStalledBodiesFillThePool_thenHealthAnswersWithinASecond() throws Exception {
    // A client that vanishes while its request waits for its body keeps its connection until the
    // idle timeout: do not let the graceful stop wait for them.
    start(KvStore.builder().nodeId("node-1").build(), b -> b.shutdownTimeout(Duration.ofMillis(200)));
    assertThat(http.send("GET", "/health").status()).isEqualTo(200); // the client's first use is slow
    for (int i = 0; i < 64; i++) {
      openWatch("127.0.0." + (1 + i % 8));
    }
    String head = "PUT /v1/kv/stalled HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n";
    for (int i = 0; i < 90; i++) {
      send(connect(null), head);
      send(connect(null), head + "x".repeat(8192));
    }

    for (String path : List.of("/health", "/ready")) {
      long t0 = System.nanoTime();
      HttpResponse<String> r = http.client.send(HttpRequest.newBuilder(URI.create(http.base + path))
          .timeout(Duration.ofSeconds(5)).build(), HttpResponse.BodyHandlers.ofString());
      Duration took = Duration.ofNanos(System.nanoTime() - t0);
      System.out.println(path + " under 64 watch streams and 180 stalled PUTs: " + took.toMillis()
          + " ms");
      assertThat(r.statusCode()).isEqualTo(200);
      assertThat(took).as(path).isLessThan(Duration.ofSeconds(1));
    }
    assertThat(http.store.get("stalled")).isEmpty();
  }

  @Test
  void bodyTrickledBelowTheMinimumDataRate_is408Early_andStoresNothing() throws Exception {
    start(KvStore.builder().nodeId("node-1").build(), b -> b.minRequestDataRate(1000)
        .requestTimeout(Duration.ofSeconds(20)).idleTimeout(Duration.ofSeconds(20)));
    HttpFixture.Snapshot before = http.snapshot();
    ScheduledExecutorService trickler = Executors.newSingleThreadScheduledExecutor();
    try {
      Socket s = connect(null);
      OutputStream out = s.getOutputStream();
      send(s, "PUT /v1/kv/slow HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10000\r\n"
          + "Connection: close\r\n\r\n" + "x".repeat(100));
      // 10 bytes per second: never idle, far below 1000 B/s.
      trickler.scheduleAtFixedRate(() -> {
        try {
          out.write('x');
          out.flush();
        } catch (IOException e) {
          throw new java.io.UncheckedIOException(e); // ends the schedule
        }
      }, 100, 100, TimeUnit.MILLISECONDS);
      long t0 = System.nanoTime();

      HttpFixture.Response<String> r = HttpFixture.parse(s.getInputStream());

      assertError(r, 408, "timeout");
      assertThat(Duration.ofNanos(System.nanoTime() - t0)).isLessThan(Duration.ofSeconds(5));
    } finally {
      trickler.shutdownNow();
    }
    assertThat(http.snapshot()).isEqualTo(before);
  }

  // ---- item 8: every error is the documented JSON -----------------------------------------------

  @Test
  void truncatedChunkedBody_isJson400WithoutJettyText_andStoresNothing() throws Exception {
    start(KvStore.builder().nodeId("node-1").build(), b -> b);
    HttpFixture.Snapshot before = http.snapshot();
    Socket s = connect(null);
    send(s, "PUT /v1/kv/cut HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        + "Connection: close\r\n\r\na\r\nhello");
    s.shutdownOutput(); // the body ends mid-chunk: Jetty's "Early EOF"

    HttpFixture.Response<String> r = HttpFixture.parse(s.getInputStream());

    assertError(r, 400, "bad_request");
    assertThat(r.body()).doesNotContain("EOF", "Eof", "jetty", "Jetty");
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @Test
  void brokenChunkFraming_isJson400WithoutJettyText() {
    start(KvStore.builder().nodeId("node-1").build(), b -> b);
    HttpFixture.Response<String> r = http.raw("PUT /v1/kv/bad HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nhello\r\n0\r\n\r\n");
    assertError(r, 400, "bad_request");
    assertThat(r.body()).doesNotContain("chunking", "jetty", "Jetty");
    assertThat(http.store.get("bad")).isEmpty();
  }

  @Test
  void errorsJettyRaises_carryTheServersOwnMessage() {
    start(KvStore.builder().nodeId("node-1").build(), b -> b);
    HttpFixture.Response<String> r = http.raw("PUT /v1/kv/k HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + "Content-Length: abc\r\nConnection: close\r\n\r\n");
    JsonNode body = assertError(r, 400, "bad_request");
    assertThat(body.get("message").asText()).isEqualTo(JsonErrorHandler.describe(400))
        .doesNotContainIgnoringCase("content-length");
  }

  /** Regression: an OutOfMemoryError in a handler answered 500 with an empty body. */
  @Test
  void errorThrownByAHandler_isJson500WithRequestId() {
    KvStore failing = new ForwardingKvStore(KvStore.builder().nodeId("node-1").build()) {
      @Override
      public Optional<Versioned> getVersioned(String key) {
        throw new OutOfMemoryError("Java heap space (simulated)");
      }
    };
    start(failing, b -> b);

    HttpFixture.Response<String> r = http.send("GET", "/v1/kv/k");

    JsonNode body = assertError(r, 500, "internal");
    assertThat(r.body()).doesNotContain("heap", "OutOfMemory");
    assertThat(body.get("requestId").asText()).isEqualTo(r.header("x-request-id"));
    assertThat(http.send("GET", "/health").status()).isEqualTo(200);
  }

  // ---- issue 13: an oversized body's 413 reaches a client that is still sending ---------------

  /**
   * Regression ({@code V1KvApiTest.put_chunkedBodyOverLimit_is413} failed in a clean verify): the
   * server answered 413 and closed while the client was still sending, and the reset could destroy
   * the answer before the client read it.
   */
  @Test
  void oversizedBodyStillBeingSent_getsItsJson413() throws Exception {
    start(KvStore.builder().nodeId("node-1").build(), b -> b.maxBodyBytes(2000));
    byte[] chunk = ("4000\r\n" + "y".repeat(0x4000) + "\r\n").getBytes(StandardCharsets.US_ASCII);
    for (int attempt = 0; attempt < 3; attempt++) {
      Socket s = connect(null);
      OutputStream out = s.getOutputStream();
      // The client sends the whole body (512 KiB, paced so the server has answered long before
      // the end) and reads only then, as a client that writes before it reads does.
      try {
        out.write(("PUT /v1/kv/big HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n")
            .getBytes(StandardCharsets.US_ASCII));
        for (int i = 0; i < 32; i++) {
          out.write(chunk);
          out.flush();
          TimeUnit.MILLISECONDS.sleep(5); // pacing the sender, not waiting for the server
        }
        out.write("0\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
        out.flush();
      } catch (IOException e) {
        // the old server had closed; whether the answer survived is what is checked below
      }

      HttpFixture.Response<String> r = HttpFixture.parse(s.getInputStream());

      assertError(r, 413, "body_too_large");
    }
    assertThat(http.store.get("big")).isEmpty();
  }

  /** Query-string encoding for keys in tests. */
  private static final class UrlEncoding {
    static String query(String s) {
      return java.net.URLEncoder.encode(s, StandardCharsets.UTF_8);
    }
  }
}
