package io.kvstore.core;

/**
 * The store's disk storage failed or cannot be used: the data directory is locked by another process,
 * belongs to another node, is corrupted, or a write or sync failed. After a failed write or sync the
 * store is read-only ({@link StorageStatus#writable()} is false) until it is restarted; the writes
 * that were waiting for that sync fail with this exception and may or may not be on disk.
 */
public final class StorageException extends KvStoreException {
  private static final long serialVersionUID = 1L;

  /**
   * An exception with a message for a person.
   *
   * @param message what happened and what to do
   */
  public StorageException(String message) {
    super(message);
  }

  /**
   * An exception with a message and a cause.
   *
   * @param message what happened and what to do
   * @param cause what caused it
   */
  public StorageException(String message, Throwable cause) {
    super(message, cause);
  }
}
