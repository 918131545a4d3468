package io.kvstore.http;

import java.nio.ByteBuffer;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.http.HttpStatus;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.server.handler.ErrorHandler;
import org.eclipse.jetty.util.Callback;

/**
 * Jetty's own error answers (a malformed request line or URL, a URL or headers over the size limit,
 * requests refused while shutting down) in the API's JSON error shape instead of HTML, for every
 * method.
 */
final class JsonErrorHandler extends ErrorHandler {

  @Override
  public boolean errorPageForMethod(String method) {
    return true;
  }

  @Override
  protected void generateResponse(Request request, Response response, int code, String message,
      Throwable cause, Callback callback) {
    String reason = code >= 500 || message == null || message.contains("Exception")
        ? HttpStatus.getMessage(code) : message;
    byte[] body = Json.bytes(Json.error(codeFor(code), describe(code, reason)));
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

  private static String describe(int status, String reason) {
    return switch (status) {
      case 400 -> "the request is malformed: " + reason;
      case 414 -> "the URL is longer than the server accepts (maxHeaderBytes)";
      case 431 -> "the request headers are larger than the server accepts (maxHeaderBytes)";
      case 503 -> "the server is not accepting requests (shutting down?)";
      default -> reason;
    };
  }
}
