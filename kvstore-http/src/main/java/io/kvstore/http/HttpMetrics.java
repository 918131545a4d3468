package io.kvstore.http;

import io.kvstore.core.KvStore;
import io.kvstore.core.StoreStats;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.ToDoubleFunction;

/**
 * The server's meters: request count and latency per method, route and status; the store's counters
 * from {@link KvStore#stats()}; watch streams. Replication and other layers add theirs through
 * {@link KvHttpServerConfig#meterBinders()}.
 */
final class HttpMetrics {
  private static final Duration[] LATENCY_BUCKETS = {
      Duration.ofMillis(1), Duration.ofMillis(5), Duration.ofMillis(10), Duration.ofMillis(50),
      Duration.ofMillis(100), Duration.ofMillis(500), Duration.ofSeconds(1), Duration.ofSeconds(5)};

  private final MeterRegistry registry;
  private final AtomicInteger watchClients = new AtomicInteger();
  private final Counter watchOverflows;

  HttpMetrics(MeterRegistry registry, KvStore store) {
    this.registry = registry;
    storeCounter(store, "kvstore.store.gets", "Reads", StoreStats::gets);
    storeCounter(store, "kvstore.store.puts", "Local puts applied", StoreStats::puts);
    storeCounter(store, "kvstore.store.deletes", "Local deletes applied", StoreStats::deletes);
    storeCounter(store, "kvstore.store.condition.failures",
        "Conditional writes refused because their condition did not hold",
        StoreStats::conditionFailures);
    storeCounter(store, "kvstore.store.remote.applied", "Mutations from other nodes applied",
        StoreStats::remoteApplied);
    storeCounter(store, "kvstore.store.remote.ignored",
        "Mutations from other nodes ignored as not newer", StoreStats::remoteIgnored);
    storeCounter(store, "kvstore.store.refused.clock.drift",
        "Mutations from other nodes refused for clock drift", StoreStats::refusedClockDrift);
    storeCounter(store, "kvstore.store.refused.invalid",
        "Mutations from other nodes refused as invalid", StoreStats::refusedInvalid);
    storeCounter(store, "kvstore.store.purged", "Tombstones and expired entries purged",
        StoreStats::purged);
    storeGauge(store, "kvstore.store.live.entries", "Keys holding a value", StoreStats::liveEntries);
    storeGauge(store, "kvstore.store.tombstones", "Deleted or expired keys still remembered",
        StoreStats::tombstones);
    FunctionCounter.builder("kvstore.storage.syncs", store, s -> s.storage().syncs())
        .description("Syncs (fdatasync) of the data directory's log").register(registry);
    FunctionCounter.builder("kvstore.storage.failed.syncs", store, s -> s.storage().failedSyncs())
        .description("Failed log writes or syncs (the first turns the store read-only)")
        .register(registry);
    FunctionCounter.builder("kvstore.storage.log.bytes", store, s -> s.storage().logBytes())
        .description("Bytes appended to the log").register(registry);
    FunctionCounter.builder("kvstore.storage.snapshots", store, s -> s.storage().snapshots())
        .description("Shard snapshots written (compaction steps)").register(registry);
    FunctionCounter.builder("kvstore.storage.stalled.writes", store,
            s -> s.storage().stalledWrites())
        .description("Writes that first waited for compaction to catch up with the log")
        .register(registry);
    Gauge.builder("kvstore.storage.writable", store, s -> s.storage().writable() ? 1 : 0)
        .description("1 while the store accepts writes, 0 once its storage failed")
        .register(registry);
    Gauge.builder("kvstore.http.watch.clients", watchClients, AtomicInteger::get)
        .description("Open /v1/watch streams").register(registry);
    watchOverflows = Counter.builder("kvstore.http.watch.overflows")
        .description("Watch streams disconnected because the client fell too far behind")
        .register(registry);
  }

  private void storeCounter(KvStore store, String name, String description,
      ToDoubleFunction<StoreStats> f) {
    FunctionCounter.builder(name, store, s -> f.applyAsDouble(s.stats()))
        .description(description).register(registry);
  }

  private void storeGauge(KvStore store, String name, String description,
      ToDoubleFunction<StoreStats> f) {
    Gauge.builder(name, store, s -> f.applyAsDouble(s.stats()))
        .description(description).register(registry);
  }

  void recordRequest(String method, String route, int status, long nanos) {
    Timer.builder("kvstore.http.requests")
        .description("HTTP requests by method, route and status")
        .tag("method", method)
        .tag("route", route)
        .tag("status", Integer.toString(status))
        .serviceLevelObjectives(LATENCY_BUCKETS)
        .register(registry)
        .record(Duration.ofNanos(Math.max(0, nanos)));
  }

  void watchOpened() {
    watchClients.incrementAndGet();
  }

  void watchClosed() {
    watchClients.decrementAndGet();
  }

  void watchOverflowed() {
    watchOverflows.increment();
  }

  int watchClients() {
    return watchClients.get();
  }
}
