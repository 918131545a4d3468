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
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The store calls the handlers make, with the store's answers translated into HTTP errors: core's
 * {@link IllegalArgumentException} (naming the limit and the size) becomes 400 {@code invalid_key} or
 * 413 {@code value_too_large}; a failed condition 412; an unmet write concern 503. Core validates
 * before it changes anything, so none of these errors stores anything.
 */
final class StoreCalls {
  private final KvStore store;

  StoreCalls(KvStore store) {
    this.store = store;
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
    CompletableFuture<Version> f;
    try {
      f = store.putAsync(key, value, options);
    } catch (IllegalArgumentException e) {
      if (value.length > store.config().maxValueBytes()) {
        throw new ApiError(413, "value_too_large", e.getMessage());
      }
      throw ApiError.invalidKey(e.getMessage());
    }
    return await(f, deadlineNanos);
  }

  boolean delete(String key, WriteOptions options, long deadlineNanos) {
    CompletableFuture<Boolean> f;
    try {
      f = store.deleteAsync(key, options);
    } catch (IllegalArgumentException e) {
      throw ApiError.invalidKey(e.getMessage());
    }
    return await(f, deadlineNanos);
  }

  private static <T> T await(CompletableFuture<T> f, long deadlineNanos) {
    try {
      return f.get(Math.max(0, deadlineNanos - System.nanoTime()), TimeUnit.NANOSECONDS);
    } catch (ExecutionException e) {
      Throwable cause = e.getCause();
      if (cause instanceof RuntimeException re) {
        throw translate(re);
      }
      throw new IllegalStateException("write failed", cause);
    } catch (TimeoutException e) {
      throw new ApiError(503, "timeout", "the write did not complete within the request timeout; "
          + "it is applied on this node and may still spread to the others");
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ApiError(503, "unavailable", "the server is shutting down");
    }
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
