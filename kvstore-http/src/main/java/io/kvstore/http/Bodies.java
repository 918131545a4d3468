package io.kvstore.http;

import io.javalin.http.Context;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.Locale;
import java.util.concurrent.TimeoutException;

/** Request bodies: bounded reads and the JSON content-type check. */
final class Bodies {
  private Bodies() {}

  /**
   * Reads the whole body, refusing more than {@code limit} bytes. The limit is enforced while reading,
   * so a chunked body or a lying {@code Content-Length} cannot make the server buffer more; a declared
   * length over the limit is refused before anything is read.
   *
   * @throws ApiError 413 {@code body_too_large}, 408 {@code timeout} when the body does not arrive by
   *     {@code deadlineNanos}, 400 when the stream breaks
   */
  static byte[] read(Context ctx, int limit, long deadlineNanos) {
    long declared = ctx.req().getContentLengthLong();
    if (declared > limit) {
      throw tooLarge(limit, "declares " + declared + " bytes");
    }
    ByteArrayOutputStream out =
        new ByteArrayOutputStream((int) Math.max(0, Math.min(declared, 65536)));
    byte[] chunk = new byte[8192];
    long total = 0;
    try {
      InputStream in = ctx.req().getInputStream();
      int n;
      while ((n = in.read(chunk)) != -1) {
        total += n;
        if (total > limit) {
          throw tooLarge(limit, "has more than that");
        }
        out.write(chunk, 0, n);
        if (System.nanoTime() - deadlineNanos > 0) {
          throw new ApiError(408, "timeout", "the request body did not arrive within the request "
              + "timeout");
        }
      }
    } catch (IOException e) {
      if (isTimeout(e)) {
        throw new ApiError(408, "timeout", "the client stopped sending the request body");
      }
      throw ApiError.badRequest("could not read the request body: " + e.getMessage());
    }
    return out.toByteArray();
  }

  private static boolean isTimeout(Throwable e) {
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t instanceof TimeoutException) {
        return true;
      }
    }
    return false;
  }

  private static ApiError tooLarge(int limit, String detail) {
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
