package io.kvstore.examples.load;

import io.kvstore.core.Durability;
import io.kvstore.core.KvStore;
import io.kvstore.core.KvStoreBuilder;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteOptions;
import java.io.PrintWriter;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.LockSupport;
import org.HdrHistogram.Recorder;
import org.HdrHistogram.Histogram;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Drives a node with a chosen mix of gets, puts and deletes and prints throughput and latency
 * percentiles (HdrHistogram). The target is an in-process store ({@code embedded}) or a node's HTTP
 * API ({@code http://host:port}, documented or /v1 routes).
 *
 * <pre>
 * java -cp kvstore-server.jar io.kvstore.examples.load.LoadTool --target http://127.0.0.1:8080 \
 *     --mix get=80,put=20 --keys 100000 --value-size 100 --concurrency 16 --duration 10s
 * </pre>
 */
@Command(name = "kvstore-load", mixinStandardHelpOptions = true, sortOptions = false,
    description = "Load generator for kvstore: embedded or over HTTP.")
public final class LoadTool implements Callable<Integer> {

  enum Op { GET, PUT, DELETE }

  enum Api { LEGACY, V1 }

  enum HttpClientKind { SOCKET, JDK }

  @Option(names = "--target", defaultValue = "embedded",
      description = "'embedded' (an in-process store) or a node's base URL, e.g. "
          + "http://127.0.0.1:8080 (default: ${DEFAULT-VALUE}).")
  String target;

  @Option(names = "--api", defaultValue = "legacy",
      description = "HTTP routes: legacy (PUT /put, GET /get?key=) or v1 (/v1/kv/{key}) "
          + "(default: ${DEFAULT-VALUE}).")
  Api api;

  @Option(names = "--http-client", defaultValue = "socket",
      description = "socket: one blocking keep-alive connection per client thread, read and "
          + "written by that thread (cheap, like wrk; plain http only); jdk: java.net.http."
          + "HttpClient, which hands each request to its own selector and worker threads and costs "
          + "several times more CPU per request (default: ${DEFAULT-VALUE}).")
  HttpClientKind httpClient;

  @Option(names = "--mix", defaultValue = "get=80,put=20", split = ",",
      description = "Operation weights, e.g. get=80,put=15,delete=5 (default: ${DEFAULT-VALUE}).")
  Map<Op, Integer> mix;

  @Option(names = "--keys", defaultValue = "100000", description = "Key space (default: ${DEFAULT-VALUE}).")
  int keys;

  @Option(names = "--value-size", defaultValue = "100",
      description = "Bytes per value (default: ${DEFAULT-VALUE}).")
  int valueSize;

  @Option(names = "--concurrency", defaultValue = "8",
      description = "Client threads (default: ${DEFAULT-VALUE}).")
  int concurrency;

  @Option(names = "--duration", defaultValue = "10s",
      description = "Measured run time, e.g. 10s, 500ms, 2m (default: ${DEFAULT-VALUE}).")
  String duration;

  @Option(names = "--warmup", defaultValue = "2s",
      description = "Unmeasured run time before it (default: ${DEFAULT-VALUE}).")
  String warmup;

  @Option(names = "--rate", defaultValue = "0",
      description = "Target operations per second over all threads; 0 = as fast as possible "
          + "(default: ${DEFAULT-VALUE}). Latency is measured from the intended start time, so "
          + "queueing delay counts (no coordinated omission).")
  long rate;

  @Option(names = "--consistency", defaultValue = "one",
      description = "Write concern of writes: one, quorum or all (default: ${DEFAULT-VALUE}).")
  WriteConcern consistency;

  // fallbackValue "true": without it picocli makes --no-preload mean true for a default-true flag
  // (and --preload false), so every "--no-preload" run preloaded 100,000 keys one at a time.
  @Option(names = "--preload", defaultValue = "true", negatable = true, fallbackValue = "true",
      description = "Write every key once before the run (default: ${DEFAULT-VALUE}; "
          + "--no-preload skips it).")
  boolean preload;

  @Option(names = "--seed", defaultValue = "42", description = "Random seed (default: ${DEFAULT-VALUE}).")
  long seed;

  @Option(names = "--data-dir", paramLabel = "<dir>",
      description = "For --target embedded: keep the store's data in this directory (default: "
          + "in memory only). Use a fresh directory per run.")
  Path dataDir;

  @Option(names = "--durability", paramLabel = "<level>", defaultValue = "interval",
      description = "For --target embedded with --data-dir: sync, interval or none "
          + "(default: ${DEFAULT-VALUE}).")
  Durability durability;

  @Option(names = "--auth-token", description = "Bearer token for the HTTP API.")
  String authToken;

  @CommandLine.Spec
  CommandLine.Model.CommandSpec spec;

  /**
   * Runs the tool.
   *
   * @param args flags; {@code --help} lists them
   */
  public static void main(String[] args) {
    System.exit(commandLine().execute(args));
  }

  /**
   * The command line, with case-insensitive enum values.
   *
   * @return the command line
   */
  public static CommandLine commandLine() {
    CommandLine cl = new CommandLine(new LoadTool());
    cl.setCaseInsensitiveEnumValuesAllowed(true);
    return cl;
  }

  /** What a client does to the target; one instance per thread. */
  interface Client extends AutoCloseable {
    boolean run(Op op, String key, byte[] value) throws Exception;

    @Override
    default void close() {}
  }

  @Override
  public Integer call() throws Exception {
    long measureNanos = parseDuration(duration).toNanos();
    long warmupNanos = parseDuration(warmup).toNanos();
    if (keys < 1 || valueSize < 0 || concurrency < 1 || rate < 0) {
      throw new CommandLine.ParameterException(spec.commandLine(),
          "--keys and --concurrency must be positive, --value-size and --rate not negative");
    }
    Op[] table = opTable();
    String[] keyNames = new String[keys];
    for (int i = 0; i < keys; i++) {
      keyNames[i] = "load:" + i;
    }
    byte[] value = new byte[valueSize];
    new SplittableRandom(seed).nextBytes(value);
    PrintWriter out = spec.commandLine().getOut();

    KvStore embedded = null;
    HttpClient http = null;
    if (dataDir != null && !"embedded".equals(target)) {
      throw new CommandLine.ParameterException(spec.commandLine(),
          "--data-dir is for --target embedded; an HTTP target keeps its data as its server says");
    }
    if ("embedded".equals(target)) {
      KvStoreBuilder b = KvStore.builder().nodeId("load");
      if (dataDir != null) {
        b.dataDir(dataDir).durability(durability);
      }
      embedded = b.build();
    } else if (httpClient == HttpClientKind.JDK) {
      http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
          .connectTimeout(Duration.ofSeconds(5)).build();
    }
    try {
      KvStore store = embedded;
      HttpClient httpClient = http;
      if (preload) {
        try (Client c = client(store, httpClient)) {
          for (String k : keyNames) {
            c.run(Op.PUT, k, value);
          }
        }
      }
      Map<Op, Recorder> recorders = new LinkedHashMap<>();
      for (Op op : Op.values()) {
        recorders.put(op, new Recorder(3));
      }
      LongAdder errors = new LongAdder();
      long start = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(50);
      long measureFrom = start + warmupNanos;
      long end = measureFrom + measureNanos;
      ExecutorService pool = Executors.newFixedThreadPool(concurrency);
      List<Future<Long>> futures = new ArrayList<>();
      for (int t = 0; t < concurrency; t++) {
        int thread = t;
        futures.add(pool.submit(() -> {
          SplittableRandom r = new SplittableRandom(seed * 31 + thread);
          long done = 0;
          long intervalNanos = rate == 0 ? 0 : Math.max(1, 1_000_000_000L * concurrency / rate);
          long next = start + (intervalNanos == 0 ? 0 : r.nextLong(intervalNanos));
          try (Client c = client(store, httpClient)) {
            while (true) {
              long intended;
              if (intervalNanos > 0) {
                intended = next;
                next += intervalNanos;
                long wait = intended - System.nanoTime();
                if (wait > 0) {
                  LockSupport.parkNanos(wait);
                }
              } else {
                intended = System.nanoTime();
              }
              if (intended >= end) {
                return done;
              }
              Op op = table[r.nextInt(table.length)];
              String key = keyNames[r.nextInt(keys)];
              boolean ok;
              try {
                ok = c.run(op, key, value);
              } catch (Exception e) {
                ok = false;
              }
              long now = System.nanoTime();
              if (intended >= measureFrom) {
                if (ok) {
                  recorders.get(op).recordValue(Math.max(1, (now - intended) / 1_000));
                  done++;
                } else {
                  errors.increment();
                }
              }
            }
          }
        }));
      }
      long total = 0;
      for (Future<Long> f : futures) {
        total += f.get();
      }
      pool.shutdown();
      double seconds = measureNanos / 1e9;
      out.printf(Locale.ROOT, "target=%s api=%s mix=%s keys=%d valueSize=%d concurrency=%d "
              + "duration=%s rate=%s consistency=%s storage=%s%n", target,
          embedded != null ? "embedded"
              : api.name().toLowerCase(Locale.ROOT) + " client="
                  + this.httpClient.name().toLowerCase(Locale.ROOT), mix, keys,
          valueSize, concurrency, duration, rate == 0 ? "max" : rate,
          consistency.name().toLowerCase(Locale.ROOT), embedded == null ? "server"
              : dataDir == null ? "memory" : durability.name().toLowerCase(Locale.ROOT));
      out.printf(Locale.ROOT, "total ops=%d throughput=%.0f ops/s errors=%d%n", total,
          total / seconds, errors.sum());
      out.printf(Locale.ROOT, "%-7s %10s %12s %9s %9s %9s %9s %9s  (latency in ms)%n", "op",
          "count", "ops/s", "p50", "p90", "p99", "p99.9", "max");
      for (Map.Entry<Op, Recorder> e : recorders.entrySet()) {
        Histogram h = e.getValue().getIntervalHistogram();
        if (h.getTotalCount() == 0) {
          continue;
        }
        out.printf(Locale.ROOT, "%-7s %10d %12.0f %9.3f %9.3f %9.3f %9.3f %9.3f%n",
            e.getKey().name().toLowerCase(Locale.ROOT), h.getTotalCount(),
            h.getTotalCount() / seconds, ms(h.getValueAtPercentile(50)),
            ms(h.getValueAtPercentile(90)), ms(h.getValueAtPercentile(99)),
            ms(h.getValueAtPercentile(99.9)), ms(h.getMaxValue()));
      }
      out.flush();
      return errors.sum() == 0 ? 0 : 1;
    } finally {
      if (embedded != null) {
        embedded.close();
      }
    }
  }

  private static double ms(long micros) {
    return micros / 1000.0;
  }

  private Op[] opTable() {
    List<Op> ops = new ArrayList<>();
    for (Map.Entry<Op, Integer> e : mix.entrySet()) {
      if (e.getValue() < 0) {
        throw new CommandLine.ParameterException(spec.commandLine(), "--mix weights must be >= 0");
      }
      for (int i = 0; i < e.getValue(); i++) {
        ops.add(e.getKey());
      }
    }
    if (ops.isEmpty()) {
      throw new CommandLine.ParameterException(spec.commandLine(), "--mix needs a positive weight");
    }
    return ops.toArray(new Op[0]);
  }

  private Client client(KvStore store, HttpClient http) {
    if (store != null) {
      WriteOptions w = WriteOptions.concern(consistency);
      return (op, key, value) -> {
        switch (op) {
          case GET -> store.get(key);
          case PUT -> store.put(key, value, w);
          case DELETE -> store.delete(key, w);
          default -> throw new IllegalStateException();
        }
        return true;
      };
    }
    return new HttpTarget(http, target.endsWith("/") ? target.substring(0, target.length() - 1)
        : target, api, consistency, authToken);
  }

  /**
   * Sends one operation per call over HTTP; any 2xx (and 404 for reads) counts as success. One
   * instance per client thread: with the socket client it owns that thread's connection.
   */
  private static final class HttpTarget implements Client {
    private final HttpClient http;
    private final SocketHttpConnection socket;
    private final String base;
    private final Api api;
    private final String concern;
    private final String token;

    HttpTarget(HttpClient http, String base, Api api, WriteConcern consistency, String token) {
      this.http = http;
      this.socket = http == null ? new SocketHttpConnection(URI.create(base), 10_000) : null;
      this.base = base;
      this.api = api;
      this.concern = consistency.name().toLowerCase(Locale.ROOT);
      this.token = token;
    }

    @Override
    public boolean run(Op op, String key, byte[] value) throws Exception {
      String k = URLEncoder.encode(key, StandardCharsets.UTF_8);
      String method = switch (op) {
        case GET -> "GET";
        case PUT -> "PUT";
        default -> "DELETE";
      };
      String target;
      String contentType = null;
      byte[] body = null;
      if (api == Api.V1) {
        target = "/v1/kv/" + k + (op == Op.GET ? "" : "?consistency=" + concern);
        if (op == Op.PUT) {
          contentType = "application/octet-stream";
          body = value;
        }
      } else {
        switch (op) {
          case GET -> target = "/get?key=" + k;
          case PUT -> {
            target = "/put";
            contentType = "application/json";
            body = ("{\"key\":\"" + key + "\",\"value\":\"" + hex(value) + "\"}")
                .getBytes(StandardCharsets.UTF_8);
          }
          default -> target = "/delete?key=" + k;
        }
      }
      int s = socket != null ? sendOverSocket(method, target, contentType, body)
          : sendWithJdkClient(method, target, contentType, body);
      return (s >= 200 && s < 300) || (s == 404 && op != Op.PUT);
    }

    private int sendOverSocket(String method, String target, String contentType, byte[] body)
        throws Exception {
      StringBuilder h = new StringBuilder();
      if (contentType != null) {
        h.append("Content-Type: ").append(contentType).append("\r\n");
      }
      if (token != null) {
        h.append("Authorization: Bearer ").append(token).append("\r\n");
      }
      return socket.send(method, target, h.toString(), body);
    }

    private int sendWithJdkClient(String method, String target, String contentType, byte[] body)
        throws Exception {
      HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + target)).method(method,
          body == null ? HttpRequest.BodyPublishers.noBody()
              : HttpRequest.BodyPublishers.ofByteArray(body));
      if (contentType != null) {
        b.header("Content-Type", contentType);
      }
      if (token != null) {
        b.header("Authorization", "Bearer " + token);
      }
      return http.send(b.timeout(Duration.ofSeconds(10)).build(),
          HttpResponse.BodyHandlers.discarding()).statusCode();
    }

    @Override
    public void close() {
      if (socket != null) {
        socket.close();
      }
    }

    private static String hex(byte[] v) {
      StringBuilder sb = new StringBuilder(v.length * 2);
      for (byte x : v) {
        sb.append(Character.forDigit((x >> 4) & 15, 16)).append(Character.forDigit(x & 15, 16));
      }
      return sb.toString();
    }
  }

  /**
   * Parses 500ms, 10s, 2m, 1h or an ISO-8601 duration.
   *
   * @param text the text
   * @return the duration
   */
  static Duration parseDuration(String text) {
    String t = text.trim().toLowerCase(Locale.ROOT);
    try {
      if (t.startsWith("p")) {
        return Duration.parse(t.toUpperCase(Locale.ROOT));
      }
      if (t.endsWith("ms")) {
        return Duration.ofMillis(Long.parseLong(t.substring(0, t.length() - 2)));
      }
      long n = Long.parseLong(t.substring(0, t.length() - 1));
      return switch (t.charAt(t.length() - 1)) {
        case 's' -> Duration.ofSeconds(n);
        case 'm' -> Duration.ofMinutes(n);
        case 'h' -> Duration.ofHours(n);
        default -> throw new IllegalArgumentException();
      };
    } catch (RuntimeException e) {
      throw new IllegalArgumentException("not a duration (want e.g. 500ms, 10s, 2m): " + text, e);
    }
  }
}
