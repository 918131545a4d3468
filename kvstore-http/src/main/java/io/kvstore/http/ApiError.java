package io.kvstore.http;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * An error answer: HTTP status, a stable machine-readable code and a message for a person. Thrown by
 * handlers and turned into {@code {"error": code, "message": message, ...}} by the exception mapper.
 * Carries no stack trace: it is control flow, not a bug.
 */
final class ApiError extends RuntimeException {
  private static final long serialVersionUID = 1L;

  final int status;
  final String code;
  final transient Map<String, String> headers = new LinkedHashMap<>();
  final transient Map<String, Object> fields = new LinkedHashMap<>();

  ApiError(int status, String code, String message) {
    super(message, null, false, false);
    this.status = status;
    this.code = code;
  }

  ApiError header(String name, String value) {
    headers.put(name, value);
    return this;
  }

  ApiError field(String name, Object value) {
    fields.put(name, value);
    return this;
  }

  static ApiError badRequest(String message) {
    return new ApiError(400, "bad_request", message);
  }

  static ApiError invalidKey(String message) {
    return new ApiError(400, "invalid_key", message);
  }

  static ApiError invalidParameter(String message) {
    return new ApiError(400, "invalid_parameter", message);
  }
}
