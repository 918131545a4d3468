package io.kvstore.http;

import io.javalin.http.Context;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.Locale;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.eclipse.jetty.ee10.servlet.ServletContextRequest;
import org.eclipse.jetty.http.HttpException;
import org.eclipse.jetty.io.EndPoint;

/**
 * Request bodies: bounded reads and the JSON content-type check.
 *
 * <p><b>Threads:</b> a body that has not started arriving costs no request thread (Jetty's
 * {@code EagerContentHandler} holds the request back until its body is in, or a buffer's worth of
 * it). Once a handler reads, at most {@link #maxConcurrentReads} requests read a body at once; more
 * get 503 {@code busy} at once, so slow uploads can never take the threads that {@code /health},
 * {@code /ready} and reads need. While reading, the connection's idle timeout is cut to what is left
 * of {@code requestTimeout}, so a body that stops arriving is answered 408 by that deadline, and
 * Jetty's minimum request data rate ({@code minRequestDataRate}) cuts bodies that trickle.
 *
 * <p><b>Oversized bodies:</b> the server answers 413 only after reading and discarding the rest of
 * the body, up to {@link #drainLimit}, so the client (still sending) reliably reads the answer; a
 * larger body gets the 413 and {@code Connection: close} at once.
 */
final class Bodies {
  private final int limit;
  private final Semaphore reads;
  private final int maxConcurrentReads;
  private final long drainLimit;

  Bodies(KvHttpServerConfig config) {
    this.limit = config.maxBodyBytes();
    this.maxConcurrentReads = Math.max(1, config.maxThreads() / 2);
    this.reads = new Semaphore(maxConcurrentReads);
    this.drainLimit = Math.max((long) limit, DRAIN_MIN_BYTES);
  }

  /** Oversized bodies up to this size (or maxBodyBytes, if larger) are read to the end before 413. */
  static final long DRAIN_MIN_BYTES = 1024 * 1024;

  /**
   * Reads the whole body, refusing more than {@code maxBodyBytes}. The limit is enforced while
   * reading, so a chunked body or a lying {@code Content-Length} cannot make the server buffer more;
   * a declared length over the limit is refused before anything is buffered.
   *
   * @throws ApiError 413 {@code body_too_large}, 408 {@code timeout} when the body does not arrive by
   *     {@code deadlineNanos} or arrives slower than the minimum data rate, 400 {@code bad_request}
   *     when the body is cut short or its framing is broken, 503 {@code busy} when too many bodies are
   *     being read
   */
  byte[] read(Context ctx, long deadlineNanos) {
    if (!reads.tryAcquire()) {
      ctx.header("Connection", "close");
      throw new ApiError(503, "busy", "the server is already reading " + maxConcurrentReads
          + " request bodies (maxThreads / 2); try again shortly").header("Retry-After", "1");
    }
    EndPoint endPoint = endPoint(ctx);
    long idleBefore = endPoint == null ? 0 : endPoint.getIdleTimeout();
    try {
      long declared = ctx.req().getContentLengthLong();
      if (declared > limit) {
        if (declared - limit <= drainLimit) {
          drain(ctx, deadlineNanos, endPoint, idleBefore);
        } else {
          ctx.header("Connection", "close");
        }
        throw tooLarge("declares " + declared + " bytes");
      }
      ByteArrayOutputStream out =
          new ByteArrayOutputStream((int) Math.max(0, Math.min(declared, 65536)));
      byte[] chunk = new byte[8192];
      long total = 0;
      InputStream in = inputStream(ctx);
      int n;
      while ((n = readChunk(in, chunk, deadlineNanos, endPoint, idleBefore)) != -1) {
        total += n;
        if (total > limit) {
          drain(ctx, deadlineNanos, endPoint, idleBefore);
          throw tooLarge("has more than that");
        }
        out.write(chunk, 0, n);
        if (System.nanoTime() - deadlineNanos > 0) {
          throw timeout("the request body did not arrive within the request timeout");
        }
      }
      return out.toByteArray();
    } finally {
      if (endPoint != null) {
        endPoint.setIdleTimeout(idleBefore);
      }
      reads.release();
    }
  }

  /** Reads and discards the rest of an oversized body (bounded), so the client can read the 413. */
  private void drain(Context ctx, long deadlineNanos, EndPoint endPoint, long idleBefore) {
    byte[] sink = new byte[8192];
    long discarded = 0;
    try {
      InputStream in = inputStream(ctx);
      int n;
      while (discarded <= drainLimit && System.nanoTime() - deadlineNanos < 0
          && (n = readChunk(in, sink, deadlineNanos, endPoint, idleBefore)) != -1) {
        discarded += n;
      }
      if (discarded > drainLimit || System.nanoTime() - deadlineNanos >= 0) {
        ctx.header("Connection", "close");
      }
    } catch (ApiError e) {
      ctx.header("Connection", "close");
    }
  }

  private static InputStream inputStream(Context ctx) {
    try {
      return ctx.req().getInputStream();
    } catch (IOException e) {
      throw ApiError.badRequest("could not read the request body");
    }
  }

  /**
   * One read, with the connection's idle timeout cut to what is left of the deadline; Jetty's read
   * failures become API errors with the server's own words.
   */
  private static int readChunk(InputStream in, byte[] buf, long deadlineNanos, EndPoint endPoint,
      long idleBefore) {
    if (endPoint != null) {
      long left = Math.max(1, TimeUnit.NANOSECONDS.toMillis(deadlineNanos - System.nanoTime()));
      endPoint.setIdleTimeout(idleBefore > 0 ? Math.min(idleBefore, left) : left);
    }
    try {
      return in.read(buf);
    } catch (RuntimeException e) {
      if (!(e instanceof HttpException h)) {
        throw e;
      }
      if (h.getCode() == 408) {
        throw timeout("the request body arrived slower than the server's minimum data rate "
            + "(minRequestDataRate)");
      }
      throw ApiError.badRequest("the request body is malformed (broken chunked encoding?)");
    } catch (IOException e) {
      if (isTimeout(e)) {
        throw timeout("the request body did not arrive in time: it stopped, or arrived slower "
            + "than the server's minimum data rate (minRequestDataRate)");
      }
      throw ApiError.badRequest("the request body ended before it was complete (the connection "
          + "closed early, or its chunked encoding is broken)");
    }
  }

  private static EndPoint endPoint(Context ctx) {
    try {
      ServletContextRequest request = ServletContextRequest.getServletContextRequest(ctx.req());
      return request == null ? null : request.getConnectionMetaData().getConnection().getEndPoint();
    } catch (RuntimeException e) {
      return null; // not served by Jetty's servlet layer (never in production): no per-read timeout
    }
  }

  private static ApiError timeout(String message) {
    return new ApiError(408, "timeout", message).header("Connection", "close");
  }

  private static boolean isTimeout(Throwable e) {
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t instanceof TimeoutException) {
        return true;
      }
    }
    return false;
  }

  private ApiError tooLarge(String detail) {
    return new ApiError(413, "body_too_large", "the request body is limited to " + limit
        + " bytes (maxBodyBytes) and this one " + detail);
  }

  /**
   * Requires a JSON body: no {@code Content-Type} (taken as JSON) or {@code application/json}, with
   * no charset or UTF-8.
   *
   * @throws ApiError 415 {@code unsupported_media_type}
   */
  static void requireJson(Context ctx) {
    String type = ctx.req().getHeader("Content-Type");
    if (type == null) {
      return;
    }
    String[] parts = type.split(";");
    boolean ok = parts[0].trim().toLowerCase(Locale.ROOT).equals("application/json");
    for (int i = 1; i < parts.length && ok; i++) {
      String p = parts[i].trim();
      int eq = p.indexOf('=');
      if (eq > 0 && p.substring(0, eq).trim().equalsIgnoreCase("charset")) {
        String cs = p.substring(eq + 1).trim().replace("\"", "");
        ok = cs.equalsIgnoreCase("utf-8") || cs.equalsIgnoreCase("utf8");
      }
    }
    if (!ok) {
      throw new ApiError(415, "unsupported_media_type", "this route takes a JSON body "
          + "(Content-Type: application/json, UTF-8), not '" + type + "'");
    }
  }
}
