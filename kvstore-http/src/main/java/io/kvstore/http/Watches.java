package io.kvstore.http;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.http.Context;
import io.kvstore.core.ChangeEvent;
import io.kvstore.core.KvStore;
import io.kvstore.core.Registration;
import jakarta.servlet.AsyncContext;
import jakarta.servlet.AsyncEvent;
import jakarta.servlet.AsyncListener;
import jakarta.servlet.ServletOutputStream;
import jakarta.servlet.WriteListener;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.eclipse.jetty.ee10.servlet.ServletContextRequest;
import org.eclipse.jetty.util.thread.Scheduler;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code GET /v1/watch}: Server-Sent Events of changes under a prefix, from the moment the stream
 * opens.
 *
 * <p><b>Threads:</b> a stream holds no thread. The handler opens the stream with servlet async I/O
 * (through Javalin's {@code ctx.future}) and returns its request thread at once. Output is
 * non-blocking ({@link WriteListener}): a drain writes queued events while the connection accepts
 * them, and when it does not, Jetty calls back once it does. Drains run as short tasks on the
 * server's pool; heartbeats come from Jetty's scheduler.
 *
 * <p><b>Memory:</b> the store listener is registered with the stream as its {@link Executor}: the
 * store's writer threads only put a task into the stream's bounded queue and schedule a drain. When
 * the queue is full the client is too slow: the listener is unregistered at once, the queue is
 * cleared and the stream ends after an {@code overflow} event (sent if the client reads again), so a
 * slow client costs at most {@code watchQueueCapacity} tasks and one connection.
 *
 * <p><b>Limits:</b> at most {@code maxWatchClients} streams (503 beyond), at most
 * {@code maxWatchClientsPerAddress} from one remote address (429 beyond). A heartbeat comment every
 * {@code watchHeartbeat} keeps proxies from timing out and notices clients that went away; a failed
 * write ends the stream and unregisters the listener.
 */
final class Watches {
  private static final Logger log = LoggerFactory.getLogger(Watches.class);
  private static final Set<String> PARAMS = Set.of("prefix");
  private static final byte[] WATCHING = ascii(": watching\n\n");
  private static final byte[] HEARTBEAT = ascii(": heartbeat\n\n");
  private static final byte[] OVERFLOW = ascii("event: overflow\ndata: " + new String(
      Json.bytes(Json.error("overflow", "this client fell too far behind and was disconnected; "
          + "reconnect and re-read")), StandardCharsets.UTF_8) + "\n\n");

  private final KvStore store;
  private final KvHttpServerConfig config;
  private final HttpMetrics metrics;
  private final Semaphore slots;
  private final Map<String, Integer> perAddress = new ConcurrentHashMap<>();
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
    String address = String.valueOf(ctx.req().getRemoteAddr());
    if (!slots.tryAcquire()) {
      throw new ApiError(503, "too_many_watchers", "this server already serves "
          + config.maxWatchClients() + " watch streams (maxWatchClients); try again later")
          .header("Retry-After", "5");
    }
    if (!takeAddressSlot(address)) {
      slots.release();
      throw new ApiError(429, "too_many_watchers_from_address", "this client address already has "
          + config.maxWatchClientsPerAddress() + " watch streams open "
          + "(maxWatchClientsPerAddress); close one first").header("Retry-After", "5");
    }
    Stream stream = new Stream(prefix, address, config.watchQueueCapacity());
    open.add(stream);
    metrics.watchOpened();
    HttpServletResponse res = ctx.res();
    res.setStatus(200);
    res.setContentType("text/event-stream;charset=utf-8");
    res.setHeader("Cache-Control", "no-cache");
    res.setHeader("X-Accel-Buffering", "no");
    // Javalin starts servlet async before it calls the supplier and releases this thread after.
    ctx.future(() -> stream.start(ctx));
  }

  private boolean takeAddressSlot(String address) {
    boolean[] taken = {false};
    perAddress.compute(address, (a, n) -> {
      int now = n == null ? 0 : n;
      if (now >= config.maxWatchClientsPerAddress()) {
        return n;
      }
      taken[0] = true;
      return now + 1;
    });
    return taken[0];
  }

  private void releaseAddressSlot(String address) {
    perAddress.computeIfPresent(address, (a, n) -> n <= 1 ? null : n - 1);
  }

  /** Ends every open stream and refuses new ones; called when the server closes. */
  void closeAll() {
    closed = true;
    for (Stream s : open) {
      s.end();
    }
  }

  private static byte[] ascii(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  /**
   * One client's stream: the executor its listener runs on, the non-blocking writer that drains it,
   * and the async request it belongs to. {@link #drain()} runs under the stream's lock, never
   * blocks, and is the only code that writes; {@link #finish()} releases everything exactly once.
   */
  private final class Stream implements Executor, WriteListener, AsyncListener {
    private final String prefix;
    private final String address;
    private final ArrayBlockingQueue<Runnable> queue;
    private final CompletableFuture<Void> done = new CompletableFuture<>();
    private final AtomicBoolean finished = new AtomicBoolean();
    private final AtomicBoolean drainScheduled = new AtomicBoolean();
    private volatile boolean started;
    private volatile boolean ending;
    private volatile long lastWriteNanos = System.nanoTime();
    private volatile Registration registration;
    private volatile Scheduler.Task heartbeat;
    private Executor executor;
    private Scheduler scheduler;
    private ServletOutputStream out;
    private boolean dirty;

    Stream(String prefix, String address, int capacity) {
      this.prefix = prefix;
      this.address = address;
      this.queue = new ArrayBlockingQueue<>(capacity);
    }

    /** Runs once servlet async has started; returns the future that ends the request. */
    CompletableFuture<Void> start(Context ctx) {
      try {
        ServletContextRequest request = ServletContextRequest.getServletContextRequest(ctx.req());
        executor = request.getContext();
        scheduler = request.getComponents().getScheduler();
        AsyncContext async = ctx.req().getAsyncContext();
        async.setTimeout(0);
        async.addListener(this);
        out = ctx.res().getOutputStream();
        if (closed) {
          finish();
          return done;
        }
        // The first comment is queued ahead of every change, and can only be written (with the
        // headers) once the listener is registered, so a client that sees it is watching.
        queue.offer(() -> send(WATCHING));
        // Cluster-wide: in partitioned mode a node applies only the keys it owns; this also
        // subscribes to the peers (the same as addListener otherwise).
        registration = store.addClusterListener(prefix, this::write, this);
        if (finished.get()) {
          registration.close(); // the server closed meanwhile
          return done;
        }
        out.setWriteListener(this); // Jetty calls onWritePossible: the first drain
        started = true;
        scheduleDrain(); // for changes queued before started was set
        scheduleHeartbeat();
        return done;
      } catch (IOException | RuntimeException e) {
        finish();
        throw e instanceof RuntimeException r ? r : new IllegalStateException(e);
      }
    }

    /** The listener's executor: called on the store's writer threads; never blocks. */
    @Override
    public void execute(Runnable task) {
      if (ending) {
        return;
      }
      if (!queue.offer(task)) {
        overflow();
        return;
      }
      scheduleDrain();
    }

    private void enqueue(Runnable task) {
      if (queue.offer(task)) {
        scheduleDrain();
      }
    }

    private void overflow() {
      // Under the drain's lock: a drain must never see the emptied queue before the overflow event
      // is in it, or it would end the stream without it. The lock is only ever held briefly.
      synchronized (this) {
        if (ending) {
          return;
        }
        ending = true;
        queue.clear();
        queue.offer(() -> send(OVERFLOW));
      }
      Registration r = registration;
      if (r != null) {
        r.close();
      }
      metrics.watchOverflowed();
      log.info("watch stream for prefix '{}' fell {} changes behind and was disconnected", prefix,
          config.watchQueueCapacity());
      scheduleDrain();
    }

    /** Ends the stream once what is queued is written (the server is closing). */
    void end() {
      ending = true;
      Registration r = registration;
      if (r != null) {
        r.close();
      }
      if (!started) {
        finish();
        return;
      }
      scheduleDrain();
    }

    private void scheduleDrain() {
      if (!started || finished.get() || !drainScheduled.compareAndSet(false, true)) {
        return;
      }
      try {
        executor.execute(() -> {
          drainScheduled.set(false);
          drain();
        });
      } catch (RuntimeException e) {
        drainScheduled.set(false);
        finish(); // the pool refused: the server is stopping
      }
    }

    private void scheduleHeartbeat() {
      long every = config.watchHeartbeat().toNanos();
      if (finished.get()) {
        return;
      }
      heartbeat = scheduler.schedule(() -> {
        if (finished.get()) {
          return;
        }
        if (System.nanoTime() - lastWriteNanos >= every / 2) {
          enqueue(() -> send(HEARTBEAT));
        }
        scheduleHeartbeat();
      }, every, TimeUnit.NANOSECONDS);
    }

    @Override
    public void onWritePossible() {
      drain();
    }

    @Override
    public void onError(Throwable t) {
      log.debug("watch stream for prefix '{}' failed: {}", prefix, t.toString());
      finish();
    }

    /** Writes queued events while the connection takes them; never blocks. */
    private void drain() {
      boolean complete = false;
      synchronized (this) {
        try {
          while (!finished.get() && out.isReady()) {
            Runnable task = queue.poll();
            if (task != null) {
              task.run();
            } else if (dirty) {
              dirty = false;
              out.flush();
            } else {
              complete = ending;
              break;
            }
          }
        } catch (IOException | RuntimeException e) {
          log.debug("watch stream for prefix '{}' ends: {}", prefix, e.toString());
          complete = true;
        }
      }
      if (complete) {
        finish();
      }
    }

    /** The listener: runs inside {@link #drain()}, after the stream was found writable. */
    void write(ChangeEvent event) {
      ObjectNode data = Json.object();
      String type = event.type().name().toLowerCase(Locale.ROOT);
      data.put("type", type);
      data.put("key", event.key());
      data.put("version", event.version().toString());
      data.put("origin", event.origin().name().toLowerCase(Locale.ROOT));
      send(ascii("id: " + event.version() + "\nevent: " + type + "\ndata: "
          + new String(Json.bytes(data), StandardCharsets.UTF_8) + "\n\n"));
    }

    private void send(byte[] bytes) {
      try {
        out.write(bytes);
        dirty = true;
        lastWriteNanos = System.nanoTime();
      } catch (IOException e) {
        throw new IllegalStateException("watch stream write failed", e);
      }
    }

    /** Releases the listener, the slots and the request; idempotent. */
    void finish() {
      if (!finished.compareAndSet(false, true)) {
        return;
      }
      ending = true;
      Registration r = registration;
      if (r != null) {
        r.close();
      }
      Scheduler.Task h = heartbeat;
      if (h != null) {
        h.cancel();
      }
      queue.clear();
      open.remove(this);
      metrics.watchClosed();
      releaseAddressSlot(address);
      slots.release();
      done.complete(null);
    }

    @Override
    public void onComplete(AsyncEvent event) {
      finish();
    }

    @Override
    public void onTimeout(AsyncEvent event) {
      finish();
    }

    @Override
    public void onError(AsyncEvent event) {
      log.debug("watch stream for prefix '{}' failed: {}", prefix, String.valueOf(event.getThrowable()));
      finish();
    }

    @Override
    public void onStartAsync(AsyncEvent event) {
      // not re-dispatched
    }
  }
}
