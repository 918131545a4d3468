package io.kvstore.http;

import io.kvstore.core.ChangeListener;
import io.kvstore.core.ClusterView;
import io.kvstore.core.KvStore;
import io.kvstore.core.KvStoreConfig;
import io.kvstore.core.Registration;
import io.kvstore.core.StoreStats;
import io.kvstore.core.Version;
import io.kvstore.core.Versioned;
import io.kvstore.core.WriteOptions;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A store that forwards to another and counts live listener registrations; tests override single
 * methods to make a call block or fail.
 */
class ForwardingKvStore implements KvStore {
  final KvStore delegate;
  final AtomicInteger liveListeners = new AtomicInteger();

  ForwardingKvStore(KvStore delegate) {
    this.delegate = delegate;
  }

  @Override
  public Optional<byte[]> get(String key) {
    return delegate.get(key);
  }

  @Override
  public Optional<Versioned> getVersioned(String key) {
    return delegate.getVersioned(key);
  }

  @Override
  public Optional<Versioned> getVersioned(String key, io.kvstore.core.ReadOptions options) {
    return delegate.getVersioned(key, options);
  }

  @Override
  public java.util.concurrent.CompletableFuture<Optional<Versioned>> getAsync(String key,
      io.kvstore.core.ReadOptions options) {
    return delegate.getAsync(key, options);
  }

  @Override
  public List<Versioned> scan(String prefix, String startAfter, int limit) {
    return delegate.scan(prefix, startAfter, limit);
  }

  @Override
  public long size() {
    return delegate.size();
  }

  @Override
  public CompletableFuture<Version> putAsync(String key, byte[] value, WriteOptions options) {
    return delegate.putAsync(key, value, options);
  }

  @Override
  public CompletableFuture<Boolean> deleteAsync(String key, WriteOptions options) {
    return delegate.deleteAsync(key, options);
  }

  @Override
  public Version put(String key, byte[] value, WriteOptions options) {
    return delegate.put(key, value, options);
  }

  @Override
  public boolean putIfAbsent(String key, byte[] value) {
    return delegate.putIfAbsent(key, value);
  }

  @Override
  public boolean putIfVersion(String key, byte[] value, Version expected) {
    return delegate.putIfVersion(key, value, expected);
  }

  @Override
  public boolean delete(String key, WriteOptions options) {
    return delegate.delete(key, options);
  }

  @Override
  public boolean deleteIfVersion(String key, Version expected) {
    return delegate.deleteIfVersion(key, expected);
  }

  @Override
  public Registration addListener(String prefix, ChangeListener listener) {
    return counted(delegate.addListener(prefix, listener));
  }

  @Override
  public Registration addListener(String prefix, ChangeListener listener, Executor executor) {
    return counted(delegate.addListener(prefix, listener, executor));
  }

  private Registration counted(Registration r) {
    liveListeners.incrementAndGet();
    boolean[] closed = {false};
    return () -> {
      synchronized (closed) {
        if (!closed[0]) {
          closed[0] = true;
          liveListeners.decrementAndGet();
        }
      }
      r.close();
    };
  }

  @Override
  public StoreStats stats() {
    return delegate.stats();
  }

  @Override
  public ClusterView cluster() {
    return delegate.cluster();
  }

  @Override
  public KvStoreConfig config() {
    return delegate.config();
  }

  @Override
  public int runMaintenance() {
    return delegate.runMaintenance();
  }

  @Override
  public void close() {
    delegate.close();
  }
}
