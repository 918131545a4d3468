package io.kvstore.http;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.http.Context;
import io.kvstore.core.ChangeEvent;
import io.kvstore.core.KvStore;
import io.kvstore.core.Registration;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code GET /v1/watch}: Server-Sent Events of changes under a prefix, from the moment the stream
 * opens.
 *
 * <p><b>Threads and memory:</b> each stream is served by the request thread that opened it. The store
 * listener is registered with the stream itself as its {@link Executor}: the store's writer threads
 * only put a task into the stream's bounded queue, and the request thread takes tasks off it and
 * writes them. When the queue is full the client is too slow: the listener is unregistered at once,
 * the queue is cleared and the stream ends (after an {@code overflow} event if the socket still
 * accepts one), so a slow client costs at most {@code watchQueueCapacity} tasks. A heartbeat comment
 * every {@code watchHeartbeat} keeps proxies from timing out and notices clients that went away; a
 * failed write ends the stream and unregisters the listener.
 */
final class Watches {
  private static final Logger log = LoggerFactory.getLogger(Watches.class);
  private static final Set<String> PARAMS = Set.of("prefix");

  private final KvStore store;
  private final KvHttpServerConfig config;
  private final HttpMetrics metrics;
  private final Semaphore slots;
  private final Set<Stream> open = ConcurrentHashMap.newKeySet();
  private volatile boolean closed;

  Watches(KvStore store, KvHttpServerConfig config, HttpMetrics metrics) {
    this.store = store;
    this.config = config;
    this.metrics = metrics;
    this.slots = new Semaphore(config.maxWatchClients());
  }

  void handle(Context ctx) {
    QueryParams q = QueryParams.parse(ctx.queryString(), PARAMS);
    String prefix = q.get("prefix").orElse("");
    if (closed) {
      throw new ApiError(503, "unavailable", "the server is shutting down");
    }
    if (!slots.tryAcquire()) {
      throw new ApiError(503, "too_many_watchers", "this server already serves "
          + config.maxWatchClients() + " watch streams (maxWatchClients); try again later");
    }
    Stream stream = new Stream(config.watchQueueCapacity());
    open.add(stream);
    metrics.watchOpened();
    try {
      if (closed) {
        return;
      }
      HttpServletResponse res = ctx.res();
      try {
        stream.out = res.getOutputStream();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      res.setStatus(200);
      res.setContentType("text/event-stream;charset=utf-8");
      res.setHeader("Cache-Control", "no-cache");
      res.setHeader("X-Accel-Buffering", "no");
      stream.registration = store.addListener(prefix, stream::write, stream);
      // Headers and a first comment go out only now, so a client that sees the response is watching.
      stream.send(": watching\n\n");
      stream.pump(config.watchHeartbeat().toMillis());
      if (stream.overflowed) {
        metrics.watchOverflowed();
        log.info("watch stream for prefix '{}' fell {} changes behind and was disconnected",
            prefix, config.watchQueueCapacity());
        stream.send("event: overflow\ndata: " + new String(Json.bytes(Json.error("overflow",
            "this client fell too far behind and was disconnected; reconnect and re-read")),
            StandardCharsets.UTF_8) + "\n\n");
      }
    } finally {
      stream.close();
      open.remove(stream);
      metrics.watchClosed();
      slots.release();
    }
  }

  /** Ends every open stream and refuses new ones; called when the server closes. */
  void closeAll() {
    closed = true;
    for (Stream s : open) {
      s.close();
    }
  }

  /** One client's stream: the executor its listener runs on, and the loop that drains it. */
  private static final class Stream implements Executor {
    private static final Runnable WAKE_UP = () -> { };

    private final ArrayBlockingQueue<Runnable> queue;
    private volatile boolean closed;
    private volatile boolean overflowed;
    private volatile boolean failed;
    volatile Registration registration;
    OutputStream out;

    Stream(int capacity) {
      this.queue = new ArrayBlockingQueue<>(capacity);
    }

    @Override
    public void execute(Runnable task) {
      if (closed) {
        return;
      }
      if (!queue.offer(task)) {
        overflowed = true;
        close();
      }
    }

    /** Runs queued writes on the calling (request) thread until the stream ends. */
    void pump(long heartbeatMillis) {
      try {
        while (!closed && !failed) {
          Runnable task = queue.poll(heartbeatMillis, TimeUnit.MILLISECONDS);
          if (closed || failed) {
            return;
          }
          if (task == null) {
            send(": heartbeat\n\n");
          } else {
            task.run();
          }
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }

    /** The listener: runs on the request thread via {@link #execute}. */
    void write(ChangeEvent event) {
      ObjectNode data = Json.object();
      String type = event.type().name().toLowerCase(Locale.ROOT);
      data.put("type", type);
      data.put("key", event.key());
      data.put("version", event.version().toString());
      data.put("origin", event.origin().name().toLowerCase(Locale.ROOT));
      send("id: " + event.version() + "\nevent: " + type + "\ndata: "
          + new String(Json.bytes(data), StandardCharsets.UTF_8) + "\n\n");
    }

    void send(String text) {
      if (failed) {
        return;
      }
      try {
        out.write(text.getBytes(StandardCharsets.UTF_8));
        out.flush();
      } catch (IOException | RuntimeException e) {
        failed = true;
        close();
      }
    }

    void close() {
      closed = true;
      Registration r = registration;
      if (r != null) {
        r.close();
      }
      queue.clear();
      queue.offer(WAKE_UP);
    }
  }
}
