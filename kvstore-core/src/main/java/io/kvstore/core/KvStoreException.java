package io.kvstore.core;

/** Base of the unchecked exceptions the store throws or fails futures with. */
public class KvStoreException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  /**
   * An exception with a message for a person.
   *
   * @param message what happened and what to do
   */
  public KvStoreException(String message) {
    super(message);
  }

  /**
   * An exception with a message and a cause.
   *
   * @param message what happened and what to do
   * @param cause what caused it
   */
  public KvStoreException(String message, Throwable cause) {
    super(message, cause);
  }
}
