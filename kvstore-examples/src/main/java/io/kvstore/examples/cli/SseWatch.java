package io.kvstore.examples.cli;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.Flow;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * One {@code /v1/watch} stream: the HTTP client pushes the body's lines into a queue on its own
 * threads, and the calling thread takes them off with a deadline, so {@code --timeout} ends the
 * watch even when nothing changes. Closing cancels the subscription, which closes the connection
 * and frees the node's watch slot.
 */
final class SseWatch implements AutoCloseable {
  /**
   * Lines requested ahead of printing: the queue holds at most this many, so a slow stdout slows
   * the stream and the node, not this process's memory, deals with a client that falls behind.
   */
  private static final int WINDOW = 64;

  /** A line of the stream, or the end of it (with the error that ended it, if any). */
  private record Item(String line, Throwable end, int status) {}

  private final NodeClient client;
  private final String prefix;
  private final BlockingQueue<Item> lines = new LinkedBlockingQueue<>();
  private volatile Flow.Subscription subscription;

  SseWatch(NodeClient client, String prefix) {
    this.client = client;
    this.prefix = prefix;
  }

  interface Sink {
    void event(String type, JsonNode data);
  }

  /**
   * Reads events until {@code maxEvents}, {@code bound} or the end of the stream.
   *
   * @return the exit code
   */
  int run(Integer maxEvents, Duration bound, Sink sink, Runnable onWatching) {
    long deadline = bound == null ? Long.MAX_VALUE : System.nanoTime() + bound.toNanos();
    // The handler runs when the headers arrive; the future itself completes only at the end of
    // the body, so the status travels through the queue ahead of the lines.
    HttpResponse.BodyHandler<Void> handler = info -> {
      lines.add(new Item(null, null, info.statusCode()));
      return HttpResponse.BodySubscribers.fromLineSubscriber(new Lines());
    };
    CompletableFuture<HttpResponse<Void>> response = client.exchangeAsync(
        client.request("/v1/watch?prefix=" + NodeClient.query(prefix))
            .timeout(Duration.ofDays(365)).GET().build(), handler);
    response.whenComplete((r, e) -> {
      if (e != null) {
        lines.add(new Item(null, e instanceof CompletionException && e.getCause() != null
            ? e.getCause() : e, 0));
      }
    });
    try {
      long wait = Math.min(NodeClient.REQUEST_TIMEOUT.toNanos(), deadline - System.nanoTime());
      Item first = lines.poll(Math.max(wait, 0), TimeUnit.NANOSECONDS);
      if (first == null) {
        response.cancel(true);
        if (bound != null && System.nanoTime() >= deadline) {
          return KvCli.OK;
        }
        throw client.unreachable("no answer within " + NodeClient.REQUEST_TIMEOUT.toSeconds()
            + " s");
      }
      if (first.status() == 0) {
        throw client.failureOf(first.end());
      }
      if (first.status() / 100 != 2) {
        StringBuilder body = new StringBuilder();
        Item i;
        while ((i = lines.poll(5, TimeUnit.SECONDS)) != null && i.line() != null) {
          requestOne();
          body.append(i.line());
        }
        throw client.failure(first.status(), body.toString().getBytes(StandardCharsets.UTF_8));
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return KvCli.OK;
    }
    int events = 0;
    String type = "message";
    StringBuilder data = new StringBuilder();
    try {
      while (true) {
        long left = deadline - System.nanoTime();
        if (left <= 0) {
          return KvCli.OK;
        }
        Item item = lines.poll(left, TimeUnit.NANOSECONDS);
        if (item == null) {
          return KvCli.OK;
        }
        if (item.line() == null && item.status() == 0) {
          throw client.failureOf(item.end());
        }
        if (item.line() == null) {
          throw client.unreachable(item.end() == null ? "the node ended the watch stream"
              : "the watch stream broke: " + item.end().getMessage());
        }
        requestOne();
        String line = item.line();
        if (line.startsWith(":")) {
          if (line.startsWith(": watching")) {
            onWatching.run();
          }
        } else if (line.isEmpty()) {
          if (data.length() > 0) {
            if (type.equals("overflow")) {
              throw new NodeClient.Failure(KvCli.UNREACHABLE, "the node dropped this watch: it "
                  + "fell behind the changes (changes since are not shown)", null);
            }
            JsonNode node;
            try {
              node = NodeClient.JSON.readTree(data.toString());
            } catch (IOException e) {
              throw new NodeClient.Failure(KvCli.UNREACHABLE, "the node sent an event that is "
                  + "not JSON", null);
            }
            sink.event(type, node);
            events++;
            if (maxEvents != null && events >= maxEvents) {
              return KvCli.OK;
            }
          }
          type = "message";
          data.setLength(0);
        } else if (line.startsWith("event:")) {
          type = line.substring(6).strip();
        } else if (line.startsWith("data:")) {
          if (data.length() > 0) {
            data.append('\n');
          }
          data.append(line.substring(5).strip());
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return KvCli.OK;
    }
  }

  private void requestOne() {
    Flow.Subscription s = subscription;
    if (s != null) {
      s.request(1);
    }
  }

  @Override
  public void close() {
    Flow.Subscription s = subscription;
    if (s != null) {
      s.cancel();
    }
  }

  private final class Lines implements Flow.Subscriber<String> {
    @Override
    public void onSubscribe(Flow.Subscription s) {
      subscription = s;
      s.request(WINDOW);
    }

    @Override
    public void onNext(String line) {
      lines.add(new Item(line, null, -1));
    }

    @Override
    public void onError(Throwable t) {
      lines.add(new Item(null, t, -1));
    }

    @Override
    public void onComplete() {
      lines.add(new Item(null, null, -1));
    }
  }
}
