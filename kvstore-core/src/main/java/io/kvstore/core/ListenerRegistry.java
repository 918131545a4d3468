package io.kvstore.core;

import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Change listeners by key prefix. Registration is copy-on-write; firing takes no lock. */
final class ListenerRegistry {
  private static final Logger log = LoggerFactory.getLogger(ListenerRegistry.class);

  private record Subscription(String prefix, ChangeListener listener, Executor executor) {}

  private final CopyOnWriteArrayList<Subscription> subscriptions = new CopyOnWriteArrayList<>();

  Registration add(String prefix, ChangeListener listener, Executor executor) {
    if (prefix == null) {
      throw new IllegalArgumentException("prefix must not be null (use \"\" for all keys)");
    }
    if (listener == null) {
      throw new IllegalArgumentException("listener must not be null");
    }
    Subscription s = new Subscription(prefix, listener, executor);
    subscriptions.add(s);
    return () -> subscriptions.remove(s);
  }

  boolean isEmpty() {
    return subscriptions.isEmpty();
  }

  void fire(ChangeEvent event) {
    for (Subscription s : subscriptions) {
      if (event.key().startsWith(s.prefix())) {
        deliver(s, event);
      }
    }
  }

  private static void deliver(Subscription s, ChangeEvent event) {
    if (s.executor() == null) {
      call(s.listener(), event);
      return;
    }
    try {
      s.executor().execute(() -> call(s.listener(), event));
    } catch (RejectedExecutionException e) {
      log.warn("listener executor rejected {}; the listener misses it", event, e);
    }
  }

  private static void call(ChangeListener listener, ChangeEvent event) {
    try {
      listener.onChange(event);
    } catch (RuntimeException | Error e) {
      if (e instanceof VirtualMachineError) {
        throw e;
      }
      log.warn("change listener {} threw on {}; ignored", listener, event, e);
    }
  }
}
