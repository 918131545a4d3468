package io.kvstore.http;

import static io.kvstore.http.HttpFixture.assertError;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import io.kvstore.core.KvStore;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** {@code GET /v1/watch}: Server-Sent Events of changes. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class WatchTest {
  private final TestClock clock = new TestClock();
  private ForwardingKvStore store;
  private HttpFixture http;

  private void start(UnaryOperator<KvHttpServer.Builder> custom) {
    store = new ForwardingKvStore(KvStore.builder().nodeId("node-1").clock(clock).build());
    http = HttpFixture.start(store, custom);
  }

  @AfterEach
  void stop() {
    if (http != null) {
      http.close();
    }
  }

  /** A watch stream over a raw socket: the test decides when (and whether) to read. */
  private final class Stream implements AutoCloseable {
    final Socket socket;
    final InputStream in;
    final BlockingQueue<Map<String, String>> events = new LinkedBlockingQueue<>();
    final StringBuilder text = new StringBuilder();
    volatile boolean ended;

    Stream(String query, int receiveBuffer) throws IOException {
      socket = new Socket();
      if (receiveBuffer > 0) {
        socket.setReceiveBufferSize(receiveBuffer);
      }
      socket.connect(new InetSocketAddress("127.0.0.1", http.server.port()), 5000);
      socket.setSoTimeout(30_000);
      OutputStream out = socket.getOutputStream();
      out.write(("GET /v1/watch" + query + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
          + "Connection: close\r\n\r\n").getBytes(StandardCharsets.ISO_8859_1));
      out.flush();
      in = socket.getInputStream();
    }

    /** Reads the status line and headers; returns the status. */
    int readHead() throws IOException {
      int status = Integer.parseInt(HttpFixture.readLine(in).split(" ")[1]);
      while (!HttpFixture.readLine(in).isEmpty()) {
        // headers
      }
      return status;
    }

    /** Reads the rest of the stream on a background thread, parsing events. */
    void readInBackground() {
      Thread t = new Thread(() -> {
        try {
          Map<String, String> event = new HashMap<>();
          byte[] buf = new byte[8192];
          StringBuilder line = new StringBuilder();
          int n;
          while ((n = in.read(buf)) != -1) {
            String s = new String(buf, 0, n, StandardCharsets.UTF_8);
            synchronized (text) {
              text.append(s);
            }
            for (char c : s.toCharArray()) {
              if (c != '\n') {
                line.append(c);
                continue;
              }
              String l = line.toString().replace("\r", "");
              line.setLength(0);
              if (l.isEmpty()) {
                if (!event.isEmpty()) {
                  events.add(event);
                  event = new HashMap<>();
                }
              } else if (l.startsWith("event: ") || l.startsWith("data: ") || l.startsWith("id: ")) {
                int sp = l.indexOf(": ");
                event.put(l.substring(0, sp), l.substring(sp + 2));
              }
            }
          }
        } catch (IOException e) {
          // the socket was closed by the test
        } finally {
          ended = true;
        }
      }, "sse-reader");
      t.setDaemon(true);
      t.start();
    }

    Map<String, String> next() throws InterruptedException {
      Map<String, String> e = events.poll(20, TimeUnit.SECONDS);
      assertThat(e).as("an event within 20 s; stream so far: %s", text).isNotNull();
      return e;
    }

    @Override
    public void close() throws IOException {
      socket.close();
    }
  }

  private Stream openWatch(String query) throws IOException {
    Stream s = new Stream(query, 0);
    assertThat(s.readHead()).isEqualTo(200);
    s.readInBackground();
    // The first comment is sent after the listener is registered.
    await().atMost(Duration.ofSeconds(10)).until(() -> s.text.toString().contains(": watching"));
    return s;
  }

  private static JsonNode data(Map<String, String> event) throws IOException {
    return HttpFixture.JSON.readTree(event.get("data"));
  }

  @Test
  void watch_receivesChangesMadeThroughOtherEndpoints_underItsPrefixOnly() throws Exception {
    start(b -> b);
    try (Stream s = openWatch("?prefix=app/")) {
      String tag = http.send("PUT", "/v1/kv/app/x", "1").header("etag");
      http.send("PUT", "/put", "{\"key\":\"other\",\"value\":\"2\"}");
      http.send("DELETE", "/delete/app%2Fx");

      Map<String, String> put = s.next();
      Map<String, String> delete = s.next();

      assertThat(put.get("event")).isEqualTo("put");
      assertThat(data(put).get("key").asText()).isEqualTo("app/x");
      assertThat(data(put).get("type").asText()).isEqualTo("put");
      assertThat(data(put).get("origin").asText()).isEqualTo("local");
      assertThat("\"" + data(put).get("version").asText() + "\"").isEqualTo(tag);
      assertThat(put.get("id")).isEqualTo(data(put).get("version").asText());
      assertThat(delete.get("event")).isEqualTo("delete");
      assertThat(data(delete).get("key").asText()).isEqualTo("app/x");
      assertThat(s.events).isEmpty();
    }
  }

  @Test
  void watch_reportsExpiry() throws Exception {
    start(b -> b);
    try (Stream s = openWatch("")) {
      http.send("PUT", "/v1/kv/session?ttl=1s", "v");
      assertThat(s.next().get("event")).isEqualTo("put");

      clock.advance(Duration.ofSeconds(2));
      store.runMaintenance();

      Map<String, String> expire = s.next();
      assertThat(expire.get("event")).isEqualTo("expire");
      assertThat(data(expire).get("key").asText()).isEqualTo("session");
    }
  }

  @Test
  void whenClientDisconnects_thenListenerIsUnregistered() throws Exception {
    start(b -> b.watchHeartbeat(Duration.ofMillis(50)));
    Stream s = openWatch("?prefix=a");
    assertThat(store.liveListeners.get()).isEqualTo(1);

    s.close();

    await().atMost(Duration.ofSeconds(10)).until(() -> store.liveListeners.get() == 0);
    await().atMost(Duration.ofSeconds(10)).until(() -> metric("kvstore_http_watch_clients") == 0);
  }

  @Test
  void slowClient_isDisconnected_andItsListenerUnregisteredAtOnce() throws Exception {
    start(b -> b.watchQueueCapacity(8));
    Stream s = new Stream("", 1024);
    assertThat(s.readHead()).isEqualTo(200);
    String key = "k".repeat(1000);
    // The client reads nothing more: socket buffers fill, then the stream's queue.
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    int writes = 0;
    while (store.liveListeners.get() > 0 && writes < 500_000 && System.nanoTime() < deadline) {
      store.put(key, "v");
      writes++;
    }
    assertThat(store.liveListeners.get()).as("listener gone after %d writes", writes).isZero();
    assertThat(metric("kvstore_http_watch_overflows_total")).isEqualTo(1);

    // Once the client reads again, it gets what was in flight, an overflow event, and the end.
    s.readInBackground();
    await().atMost(Duration.ofSeconds(20)).until(() -> s.ended);
    assertThat(s.text.toString()).contains("event: overflow");
    s.close();
  }

  @Test
  void watchersBeyondTheLimit_get503() throws Exception {
    start(b -> b.maxWatchClients(1));
    Stream first = openWatch("");
    assertError(http.send("GET", "/v1/watch"), 503, "too_many_watchers");
    first.close();
  }

  @Test
  void watch_unknownParameter_is400() {
    start(b -> b);
    assertError(http.send("GET", "/v1/watch?prefx=a"), 400, "invalid_parameter");
    assertThat(store.liveListeners.get()).isZero();
  }

  @Test
  void close_endsOpenStreamsPromptly() throws Exception {
    start(b -> b.shutdownTimeout(Duration.ofSeconds(30)));
    Stream s = openWatch("");
    long t0 = System.nanoTime();

    http.server.close();

    await().atMost(Duration.ofSeconds(10)).until(() -> s.ended);
    assertThat(Duration.ofNanos(System.nanoTime() - t0)).isLessThan(Duration.ofSeconds(10));
    assertThat(store.liveListeners.get()).isZero();
    s.close();
  }

  private double metric(String name) {
    String text = http.send("GET", "/metrics").body();
    for (String line : text.split("\n")) {
      if (line.startsWith(name + " ") || line.startsWith(name + "{")) {
        return Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
      }
    }
    throw new UncheckedIOException(new IOException("no metric " + name + " in\n" + text));
  }
}
