package io.kvstore.cluster;

import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteConcernException;
import java.time.Duration;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;

/**
 * Counts acknowledgements of one QUORUM or ALL write (or, in partitioned mode, of a write this node
 * coordinates without owning its key, at any concern). The local apply is the first (unless this node
 * is not one of the key's owners in partitioned mode: then it counts none); each distinct peer node
 * that reports holding the mutation adds one. The future completes as soon as enough have,
 * fails at once when the remaining peers can no longer make up the number (a peer dropped the mutation
 * or left), and fails at the timeout otherwise. It completes on the callback executor, never on a
 * network thread, so a caller's continuation cannot stall replication.
 */
final class WriteTracker {
  private final WriteConcern concern;
  private final int required;
  private final int replicas;
  private final Duration timeout;
  private final Executor callbacks;
  private final CompletableFuture<Void> future = new CompletableFuture<>();
  private final Set<String> acked = new HashSet<>();
  private int acks;
  private int outstanding;
  private boolean done;
  private String lastProblem;
  private Cancellable timer;

  WriteTracker(WriteConcern concern, int required, int replicas, int outstanding, Duration timeout,
      Executor callbacks) {
    this(concern, required, replicas, 1, outstanding, timeout, callbacks);
  }

  /**
   * A tracker whose local apply may not count.
   *
   * @param concern the write concern, for messages
   * @param required acknowledgements needed, the local one included
   * @param replicas the replicas the write is for (every node, or the key's owners), for messages
   * @param localAcks 1 if the local apply counts (this node is a replica), else 0
   * @param outstanding the peer links the mutation was queued on
   * @param timeout for the timeout message
   * @param callbacks completes the future
   */
  WriteTracker(WriteConcern concern, int required, int replicas, int localAcks, int outstanding,
      Duration timeout, Executor callbacks) {
    this.acks = localAcks;
    this.concern = concern;
    this.required = required;
    this.replicas = replicas;
    this.outstanding = outstanding;
    this.timeout = timeout;
    this.callbacks = callbacks;
  }

  CompletableFuture<Void> future() {
    return future;
  }

  synchronized void setTimer(Cancellable timer) {
    if (done) {
      timer.cancel();
    } else {
      this.timer = timer;
    }
  }

  /** One more peer link the mutation was queued on (a write re-targeted after a map change). */
  synchronized void addTarget() {
    if (!done) {
      outstanding++;
    }
  }

  /** A peer holds the mutation (at its version or newer). */
  void ack(String nodeId) {
    boolean complete;
    synchronized (this) {
      if (done) {
        return;
      }
      outstanding--;
      if (acked.add(nodeId)) {
        acks++;
      }
      complete = acks >= required;
      if (complete) {
        finish();
      }
    }
    if (complete) {
      callbacks.execute(() -> future.complete(null));
    }
  }

  /** A peer will not acknowledge: it refused the mutation, dropped it, or left. */
  void nack(String nodeId, String problem) {
    WriteConcernException failure = null;
    synchronized (this) {
      if (done) {
        return;
      }
      outstanding--;
      lastProblem = "node " + nodeId + " " + problem;
      if (acks + outstanding < required) {
        failure = exception("only " + (acks + outstanding) + " of " + replicas
            + " replicas could still acknowledge; " + lastProblem);
        finish();
      }
    }
    fail(failure);
  }

  void onTimeout() {
    WriteConcernException failure;
    synchronized (this) {
      if (done) {
        return;
      }
      failure = exception("timed out after " + timeout.toMillis() + " ms"
          + (lastProblem == null ? "" : "; " + lastProblem));
      finish();
    }
    fail(failure);
  }

  private void fail(WriteConcernException failure) {
    if (failure != null) {
      callbacks.execute(() -> future.completeExceptionally(failure));
    }
  }

  private void finish() {
    done = true;
    if (timer != null) {
      timer.cancel();
    }
  }

  private WriteConcernException exception(String detail) {
    return new WriteConcernException(concern, required, acks, detail);
  }
}
