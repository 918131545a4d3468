package io.kvstore.cluster;

import java.util.ArrayList;
import java.util.List;
import java.util.PriorityQueue;
import java.util.concurrent.Executor;
import java.util.function.BooleanSupplier;

/**
 * The deterministic simulation's virtual time: a priority queue of timed tasks run one at a time on
 * the calling thread, ordered by due time and then by submission, so one seed always runs the same
 * tasks in the same order. It is every engine's control scheduler, anti-entropy executor and callback
 * executor, and every simulated channel's thread. Time moves only when the next task is due later.
 *
 * <p>A task that throws is a failure of the run: the first one is kept and rethrown by the
 * {@code run*} call that ran it.
 */
final class SimClock implements EngineScheduler, Executor {
  private static final class Task implements Comparable<Task> {
    final long at;
    final long seq;
    final Runnable run;
    boolean cancelled;

    Task(long at, long seq, Runnable run) {
      this.at = at;
      this.seq = seq;
      this.run = run;
    }

    @Override
    public int compareTo(Task o) {
      return at != o.at ? Long.compare(at, o.at) : Long.compare(seq, o.seq);
    }
  }

  private final PriorityQueue<Task> queue = new PriorityQueue<>();
  private final List<Throwable> failures = new ArrayList<>();
  private long now;
  private long seq;
  private long executed;

  /** Virtual milliseconds since the start of the run. */
  long now() {
    return now;
  }

  /** Tasks run so far. */
  long executed() {
    return executed;
  }

  @Override
  public Cancellable schedule(Runnable task, long delayMillis) {
    Task t = new Task(now + Math.max(0, delayMillis), seq++, task);
    queue.add(t);
    return () -> t.cancelled = true;
  }

  @Override
  public void execute(Runnable task) {
    schedule(task, 0);
  }

  /** Runs every task due within the next {@code millis}, then moves time to that instant. */
  void runFor(long millis) {
    long until = now + millis;
    while (!queue.isEmpty() && queue.peek().at <= until) {
      runNext();
    }
    now = until;
    rethrow();
  }

  /**
   * Runs tasks until the condition holds (checked before each task) or {@code maxMillis} of virtual
   * time pass.
   *
   * @return whether the condition holds
   */
  boolean runUntil(BooleanSupplier condition, long maxMillis) {
    long until = now + maxMillis;
    while (!condition.getAsBoolean()) {
      if (queue.isEmpty() || queue.peek().at > until) {
        now = Math.max(now, until);
        rethrow();
        return condition.getAsBoolean();
      }
      runNext();
      rethrow();
    }
    return true;
  }

  private void runNext() {
    Task t = queue.poll();
    if (t.cancelled) {
      return;
    }
    now = t.at;
    executed++;
    try {
      t.run.run();
    } catch (RuntimeException | AssertionError e) {
      failures.add(e);
    }
  }

  private void rethrow() {
    if (!failures.isEmpty()) {
      Throwable first = failures.get(0);
      failures.clear();
      throw new AssertionError("a simulated task failed at t=" + now + " ms: " + first, first);
    }
  }
}
