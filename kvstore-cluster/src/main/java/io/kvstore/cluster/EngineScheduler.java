package io.kvstore.cluster;

/**
 * The replication engine's one control thread and its timers. The engine has no thread of its own:
 * production nodes hand it a single-threaded scheduled executor, the deterministic simulation a
 * virtual clock whose queue of timed tasks it runs on one thread. Tasks run one at a time, in the
 * order of their due time (ties in submission order); a task that throws is logged and dropped, and
 * the scheduler carries on. After the node closes, new tasks are silently not run.
 */
interface EngineScheduler {
  /**
   * Runs a task on the control thread after a delay.
   *
   * @param task what to run
   * @param delayMillis at least 0
   * @return cancels the task
   */
  Cancellable schedule(Runnable task, long delayMillis);

  /** Runs a task on the control thread as soon as it is free. */
  default void execute(Runnable task) {
    schedule(task, 0);
  }
}
