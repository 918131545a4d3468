package io.kvstore.core;

/** The store was closed; it accepts no more reads or writes. */
public final class StoreClosedException extends KvStoreException {
  private static final long serialVersionUID = 1L;

  /**
   * The store is closed.
   *
   * @param nodeId the node whose store it was
   */
  public StoreClosedException(String nodeId) {
    super("the store of node '" + nodeId + "' is closed");
  }
}
