package io.kvstore.http;

import io.kvstore.core.ConditionFailedException;
import io.kvstore.core.KvStore;
import io.kvstore.core.KvStoreException;
import io.kvstore.core.ReadConcern;
import io.kvstore.core.ReadOptions;
import io.kvstore.core.StorageException;
import io.kvstore.core.StoreClosedException;
import io.kvstore.core.Version;
import io.kvstore.core.Versioned;
import io.kvstore.core.WriteConcernException;
import io.kvstore.core.WriteOptions;
import io.javalin.http.Context;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;

/**
 * The store calls the handlers make, with the store's answers translated into HTTP errors: core's
 * {@link IllegalArgumentException} (naming the limit and the size) becomes 400 {@code invalid_key} or
 * 413 {@code value_too_large}; a failed condition 412; an unmet write concern 503. Core validates
 * before it changes anything, so none of these errors stores anything.
 *
 * <p><b>Writes that wait</b> ({@link #putAsync}, {@link #deleteAsync}): a write the store has already
 * completed when the call returns (in memory, {@code INTERVAL}, {@code NONE} at {@code ONE}) is
 * answered on the request thread at once. One that must wait (for a {@code SYNC} fsync, for
 * {@code QUORUM}/{@code ALL} acks) releases its request thread: the response is written when the
 * store's future completes, on {@code completions} (the server's request pool), never on the thread
 * that completed it (the store's sync thread, a replication thread), which must not be held up
 * writing HTTP responses. So concurrent {@code SYNC} writers are not capped by {@code maxThreads},
 * and all of them can share one fsync.
 */
final class StoreCalls {
  private final KvStore store;
  private final Executor completions;

  /** Blocking only: every write waits on its request thread (tests that call the store directly). */
  StoreCalls(KvStore store) {
    this(store, null);
  }

  /**
   * @param completions where a write that had to wait is answered; null to wait on the request
   *     thread instead
   */
  StoreCalls(KvStore store, Executor completions) {
    this.store = store;
    this.completions = completions == null ? null : inlineWhenRejected(completions);
  }

  /**
   * A rejecting pool (stopping, or its queue full) must not throw into the thread completing the
   * store's future: the answer is then written on that thread instead.
   */
  private static Executor inlineWhenRejected(Executor pool) {
    return task -> {
      try {
        pool.execute(task);
      } catch (RejectedExecutionException e) {
        task.run();
      }
    };
  }

  Optional<Versioned> read(String key) {
    try {
      return store.getVersioned(key);
    } catch (IllegalArgumentException e) {
      throw ApiError.invalidKey(e.getMessage());
    }
  }

  /**
   * A read at a concern, waiting at most until the deadline for the owners a remote read asks. A
   * read that could not reach enough owners is 503 {@code read_concern_not_met}.
   */
  Optional<Versioned> read(String key, ReadOptions options, long deadlineNanos) {
    if (options.concern() == ReadConcern.ONE) {
      // The blocking form, as before read concerns: local reads never wait.
      try {
        return read(key);
      } catch (KvStoreException e) {
        throw readFailure(e, options);
      }
    }
    CompletableFuture<Optional<Versioned>> f;
    try {
      f = store.getAsync(key, options);
    } catch (IllegalArgumentException e) {
      throw ApiError.invalidKey(e.getMessage());
    }
    try {
      return f.get(Math.max(0, deadlineNanos - System.nanoTime()), TimeUnit.NANOSECONDS);
    } catch (ExecutionException e) {
      Throwable cause = e.getCause();
      if (cause instanceof IllegalArgumentException iae) {
        throw ApiError.invalidKey(iae.getMessage());
      }
      if (cause instanceof KvStoreException k) {
        throw readFailure(k, options);
      }
      if (cause instanceof RuntimeException re) {
        throw re;
      }
      throw new IllegalStateException("read failed", cause);
    } catch (TimeoutException e) {
      throw new ApiError(503, "timeout", "the read did not complete within the request timeout");
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ApiError(503, "unavailable", "the server is shutting down");
    }
  }

  /** A failed read: core's mapped errors, else too few owners answered. */
  private static RuntimeException readFailure(KvStoreException e, ReadOptions options) {
    RuntimeException mapped = translate(e);
    if (mapped instanceof ApiError) {
      return mapped;
    }
    return new ApiError(503, "read_concern_not_met", e.getMessage())
        .field("concern", options.concern().name().toLowerCase(java.util.Locale.ROOT));
  }

  Version put(String key, byte[] value, WriteOptions options, long deadlineNanos) {
    return await(startPut(key, value, options), deadlineNanos);
  }

  boolean delete(String key, WriteOptions options, long deadlineNanos) {
    return await(startDelete(key, options), deadlineNanos);
  }

  /**
   * Puts, and calls {@code respond} with the version once the write is done: at once, or later on
   * the completions pool (the class comment). An error, the store's or {@code respond}'s, reaches
   * the route's exception handlers either way.
   */
  void putAsync(Context ctx, String key, byte[] value, WriteOptions options, long deadlineNanos,
      Consumer<Version> respond) {
    whenDone(ctx, startPut(key, value, options), deadlineNanos, respond);
  }

  /** Deletes, and calls {@code respond} with whether a value was deleted; as {@link #putAsync}. */
  void deleteAsync(Context ctx, String key, WriteOptions options, long deadlineNanos,
      Consumer<Boolean> respond) {
    whenDone(ctx, startDelete(key, options), deadlineNanos, respond);
  }

  private CompletableFuture<Version> startPut(String key, byte[] value, WriteOptions options) {
    try {
      return store.putAsync(key, value, options);
    } catch (IllegalArgumentException e) {
      if (value.length > store.config().maxValueBytes()) {
        throw new ApiError(413, "value_too_large", e.getMessage());
      }
      throw ApiError.invalidKey(e.getMessage());
    }
  }

  private CompletableFuture<Boolean> startDelete(String key, WriteOptions options) {
    try {
      return store.deleteAsync(key, options);
    } catch (IllegalArgumentException e) {
      throw ApiError.invalidKey(e.getMessage());
    }
  }

  private <T> void whenDone(Context ctx, CompletableFuture<T> f, long deadlineNanos,
      Consumer<T> respond) {
    if (completions == null || f.isDone()) {
      respond.accept(await(f, deadlineNanos));
      return;
    }
    // A copy, so that the timeout never completes the store's own future.
    CompletableFuture<T> bounded = f.copy()
        .orTimeout(Math.max(0, deadlineNanos - System.nanoTime()), TimeUnit.NANOSECONDS);
    ctx.future(() -> bounded.handleAsync((value, failure) -> {
      if (failure != null) {
        throw writeFailure(failure instanceof CompletionException && failure.getCause() != null
            ? failure.getCause() : failure);
      }
      respond.accept(value);
      return null;
    }, completions));
  }

  private static <T> T await(CompletableFuture<T> f, long deadlineNanos) {
    try {
      return f.get(Math.max(0, deadlineNanos - System.nanoTime()), TimeUnit.NANOSECONDS);
    } catch (ExecutionException e) {
      throw writeFailure(e.getCause());
    } catch (TimeoutException e) {
      throw writeFailure(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ApiError(503, "unavailable", "the server is shutting down");
    }
  }

  /** A failed or timed-out write as the error to answer with. */
  private static RuntimeException writeFailure(Throwable cause) {
    if (cause instanceof TimeoutException) {
      return new ApiError(503, "timeout", "the write did not complete within the request timeout; "
          + "it is applied on this node and may still spread to the others");
    }
    if (cause instanceof RuntimeException re) {
      return translate(re);
    }
    return new IllegalStateException("write failed", cause);
  }

  /** Maps core's exceptions to HTTP errors; anything else is returned as is (a 500). */
  static RuntimeException translate(RuntimeException e) {
    if (e instanceof ConditionFailedException c) {
      ApiError error = new ApiError(412, "precondition_failed", c.getMessage());
      c.current().ifPresent(v -> error.header("ETag", ETags.of(v)).field("current", v.toString()));
      return error;
    }
    if (e instanceof WriteConcernException w) {
      return new ApiError(503, "write_concern_not_met", w.getMessage())
          .field("concern", w.concern().name().toLowerCase(java.util.Locale.ROOT))
          .field("required", w.required())
          .field("acknowledged", w.acknowledged());
    }
    if (e instanceof StoreClosedException) {
      return new ApiError(503, "unavailable", e.getMessage());
    }
    if (e instanceof StorageException) {
      // The cause names files and OS errors: for the operator's log (the store logs it).
      return new ApiError(503, "storage_failed", "this node's disk storage failed and it is "
          + "read-only until restarted; the write may or may not be on disk");
    }
    return e;
  }
}
