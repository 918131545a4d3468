package io.kvstore.core;

/** A handle to a listener; closing it stops further calls. Closing twice is harmless. */
@FunctionalInterface
public interface Registration extends AutoCloseable {
  /** Removes the listener. */
  @Override
  void close();
}
