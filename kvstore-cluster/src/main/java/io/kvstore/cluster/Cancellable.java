package io.kvstore.cluster;

/**
 * A task scheduled on an {@link EngineScheduler}: cancelling it before it runs stops it; cancelling
 * later does nothing.
 */
@FunctionalInterface
interface Cancellable {
  /** Cancellable that does nothing (for a task that was never scheduled). */
  Cancellable NONE = () -> { };

  void cancel();
}
