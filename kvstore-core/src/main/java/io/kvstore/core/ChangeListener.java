package io.kvstore.core;

/**
 * Receives changes to keys under a prefix, local and remote, each exactly once, after the change is
 * visible to reads.
 *
 * <p>Without an executor, a listener runs on the thread that applied the change (the writer's thread
 * for local writes, a replicator thread for remote ones): it must be quick and must not block. Give
 * {@link KvStore#addListener(String, ChangeListener, java.util.concurrent.Executor)} an executor for
 * slow work. Events of different keys, or of one key written concurrently, may arrive in any order;
 * compare {@link ChangeEvent#version()} to order them. An exception thrown by a listener is logged and
 * does not affect the write or other listeners.
 */
@FunctionalInterface
public interface ChangeListener {
  /**
   * Called once per change.
   *
   * @param event the change
   */
  void onChange(ChangeEvent event);
}
