package io.kvstore.cluster;

/** A data-plane frame that breaks the wire format; the connection it came on is closed. */
final class MalformedFrameException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  MalformedFrameException(String message) {
    super(message, null, false, false);
  }
}
