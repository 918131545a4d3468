package io.kvstore.http;

import java.nio.ByteBuffer;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.http.HttpStatus;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.server.handler.ErrorHandler;
import org.eclipse.jetty.util.Callback;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Jetty's own error answers (a malformed request line or URL, a URL or headers over the size limit,
 * a broken body, requests refused while shutting down, failures outside the API's handlers) in the
 * API's JSON error shape instead of HTML, for every method. The message is the server's own text for
 * the status: Jetty's reason (which can name internal classes or echo input) is never sent; it is
 * logged at debug level.
 */
final class JsonErrorHandler extends ErrorHandler {
  private static final Logger log = LoggerFactory.getLogger(JsonErrorHandler.class);

  @Override
  public boolean errorPageForMethod(String method) {
    return true;
  }

  @Override
  protected void generateResponse(Request request, Response response, int code, String message,
      Throwable cause, Callback callback) {
    if (log.isDebugEnabled()) {
      log.debug("Jetty answered {} {} to {} {}: {}", code, codeFor(code), request.getMethod(),
          request.getHttpURI().getPathQuery(), message, cause);
    }
    byte[] body = Json.bytes(Json.error(codeFor(code), describe(code)));
    response.getHeaders().put(HttpHeader.CONTENT_TYPE, Json.CONTENT_TYPE);
    response.getHeaders().put(HttpHeader.CONTENT_LENGTH, body.length);
    response.write(true, ByteBuffer.wrap(body), callback);
  }

  static String codeFor(int status) {
    return switch (status) {
      case 400 -> "bad_request";
      case 401 -> "unauthorized";
      case 404 -> "no_route";
      case 405 -> "method_not_allowed";
      case 408 -> "timeout";
      case 413 -> "body_too_large";
      case 414 -> "uri_too_long";
      case 415 -> "unsupported_media_type";
      case 431 -> "headers_too_large";
      case 500 -> "internal";
      case 503 -> "unavailable";
      default -> "http_" + status;
    };
  }

  /** The server's own words for a status that Jetty raised. */
  static String describe(int status) {
    return switch (status) {
      case 400 -> "the request is malformed (its request line, URL, headers or body framing); "
          + "see docs/HTTP.md";
      case 404 -> "there is no such route; see docs/HTTP.md";
      case 408 -> "the request did not arrive in time";
      case 413 -> "the request body is larger than the server accepts (maxBodyBytes)";
      case 414 -> "the URL is longer than the server accepts (maxHeaderBytes)";
      case 431 -> "the request headers are larger than the server accepts (maxHeaderBytes)";
      case 500 -> "the server failed to handle this request; its log has the details";
      case 503 -> "the server is not accepting requests (shutting down?)";
      default -> "HTTP " + status + " " + HttpStatus.getMessage(status);
    };
  }
}
