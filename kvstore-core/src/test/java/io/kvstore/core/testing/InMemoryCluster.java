package io.kvstore.core.testing;

import io.kvstore.core.KvStore;
import io.kvstore.core.KvStoreBuilder;
import io.kvstore.core.NodeIds;
import io.kvstore.core.ReplicaStore;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;
import org.awaitility.Awaitility;
import org.awaitility.core.ConditionTimeoutException;

/**
 * N {@link KvStore}s wired through one {@link InMemoryNetwork}, in one line:
 *
 * <pre>{@code
 * // Deterministic: nothing moves until the test steps the network.
 * try (InMemoryCluster c = InMemoryCluster.builder().nodes(3).seed(seed).build()) {
 *   c.store(0).put("k", "v");
 *   c.settle();                                  // deliver, anti-entropy until digests agree
 *   assertThat(c.store(2).getString("k")).contains("v");
 * }
 *
 * // Like a real cluster: a pump thread delivers continuously; wait with Awaitility.
 * try (InMemoryCluster c = InMemoryCluster.builder().nodes(3).autoPump().build()) {
 *   c.store(0).put("k", "v".getBytes(UTF_8), WriteOptions.concern(WriteConcern.ALL)); // blocking is fine
 *   await().until(() -> c.store(2).get("k").isPresent());
 * }
 * }</pre>
 *
 * <p>Node ids are {@code node-1}, {@code node-2}, …; {@link #stores()} lists running stores in the order
 * they started. {@link Builder#build()} delivers the messages of the initial joins before it returns, so
 * a new cluster starts quiet; a node added later starts an anti-entropy exchange that is delivered like
 * any other message. Each store gets its own {@link ManualClock} (all starting at
 * {@link Builder#startTime(Instant)}, default {@link #DEFAULT_START}) unless {@link Builder#systemClock()}
 * is chosen, and all share one maintenance scheduler thread owned by the cluster. A store that stops and
 * starts again under the same id ({@link #stopNode}, {@link #addNode(String)}) comes back empty, as an
 * in-memory store does after a restart, and keeps its clock.
 *
 * <p>Waiting: without the pump, {@link #settle()}, {@link #await} and {@link #awaitUntil} step the
 * network on the calling thread (at most {@link #MAX_AWAIT_STEPS} steps; write timeouts are counted in
 * steps, see {@link InMemoryNetwork}); with the pump they poll for at most
 * {@link Builder#awaitTimeout(Duration)}. Blocking QUORUM/ALL writes need the pump.
 *
 * <p>{@link #close()} stops the pump, closes every store, then fails with an {@link AssertionError} if the
 * pump thread hit an exception. This class implements {@link ReplicatorContract.Fixture}, so it can run
 * the replicator contract directly.
 */
public final class InMemoryCluster implements ReplicatorContract.Fixture {
  /** Where manual clocks start by default: a fixed instant, so versions repeat from run to run. */
  public static final Instant DEFAULT_START = Instant.parse("2024-01-01T00:00:00Z");
  /** Default longest wait with the pump running. */
  public static final Duration DEFAULT_AWAIT_TIMEOUT = Duration.ofSeconds(30);
  /** Most steps a wait takes without the pump before it fails. */
  public static final int MAX_AWAIT_STEPS = 1_000_000;
  /** Most anti-entropy rounds {@link #settle()} runs without the pump before it fails. */
  public static final int MAX_SETTLE_ROUNDS = 500;
  /** Anti-entropy period when the pump runs and none was set: about every 20 ms when idle. */
  public static final int DEFAULT_PUMPED_ANTI_ENTROPY_EVERY_STEPS = 20;

  private final InMemoryNetwork network;
  private final ScheduledExecutorService scheduler;
  private final Consumer<KvStoreBuilder> configurer;
  private final boolean manualClocks;
  private final Duration awaitTimeout;
  private final String prefix;
  private final Map<String, ManualClock> clocks = new LinkedHashMap<>();
  private final LinkedHashMap<String, KvStore> running = new LinkedHashMap<>();
  private long elapsedMillis;
  private final long startMillis;
  private int lastNumber;
  private boolean closed;

  private InMemoryCluster(Builder b) {
    InMemoryNetwork.Builder nb = InMemoryNetwork.builder().seed(b.seed).faults(b.faults)
        .antiEntropyChunkSize(b.chunkSize).traceCapacity(b.traceCapacity);
    if (b.stepDuration != null) {
      nb.stepDuration(b.stepDuration);
    }
    nb.antiEntropyEverySteps(b.antiEntropyEverySteps != null ? b.antiEntropyEverySteps
        : b.autoPump ? DEFAULT_PUMPED_ANTI_ENTROPY_EVERY_STEPS : 0);
    this.network = nb.build();
    this.configurer = b.configurer;
    this.manualClocks = !b.systemClock;
    this.startMillis = b.startTime.toEpochMilli();
    this.awaitTimeout = b.awaitTimeout;
    this.prefix = b.prefix;
    this.scheduler = Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, "kvstore-inmemory-maintenance");
      t.setDaemon(true);
      return t;
    });
    try {
      for (int i = 0; i < b.nodes; i++) {
        addNode();
      }
      // The joins' first anti-entropy exchanges: a new cluster starts quiet.
      network.deliverAll();
      if (b.autoPump) {
        network.startPump();
      }
    } catch (RuntimeException | Error e) {
      close();
      throw e;
    }
  }

  /**
   * A builder: 3 nodes, seed 0, no faults, manual clocks, no pump.
   *
   * @return a new builder
   */
  public static Builder builder() {
    return new Builder();
  }

  /** Settings of an {@link InMemoryCluster}. */
  public static final class Builder {
    private int nodes = 3;
    private long seed;
    private NetworkFaults faults = NetworkFaults.none();
    private Duration stepDuration;
    private Integer antiEntropyEverySteps;
    private int chunkSize = InMemoryNetwork.DEFAULT_CHUNK_SIZE;
    private int traceCapacity;
    private boolean autoPump;
    private boolean systemClock;
    private Instant startTime = DEFAULT_START;
    private Duration awaitTimeout = DEFAULT_AWAIT_TIMEOUT;
    private String prefix = "node-";
    private Consumer<KvStoreBuilder> configurer = b -> { };

    private Builder() {}

    /**
     * Stores started at once (default 3).
     *
     * @param nodes 0 to 1000
     * @return this builder
     */
    public Builder nodes(int nodes) {
      if (nodes < 0 || nodes > 1000) {
        throw new IllegalArgumentException("nodes must be 0 to 1000, was " + nodes);
      }
      this.nodes = nodes;
      return this;
    }

    /**
     * Seed of the network's random decisions (default 0).
     *
     * @param seed the seed
     * @return this builder
     */
    public Builder seed(long seed) {
      this.seed = seed;
      return this;
    }

    /**
     * Faults of the network (default none).
     *
     * @param faults the faults
     * @return this builder
     */
    public Builder faults(NetworkFaults faults) {
      this.faults = Objects.requireNonNull(faults, "faults");
      return this;
    }

    /**
     * See {@link InMemoryNetwork.Builder#stepDuration(Duration)}.
     *
     * @param duration positive
     * @return this builder
     */
    public Builder stepDuration(Duration duration) {
      this.stepDuration = duration;
      return this;
    }

    /**
     * See {@link InMemoryNetwork.Builder#antiEntropyEverySteps(int)}; default 0 (off) without the
     * pump, {@link InMemoryCluster#DEFAULT_PUMPED_ANTI_ENTROPY_EVERY_STEPS} with it.
     *
     * @param steps 0 for off
     * @return this builder
     */
    public Builder antiEntropyEverySteps(int steps) {
      this.antiEntropyEverySteps = steps;
      return this;
    }

    /**
     * See {@link InMemoryNetwork.Builder#antiEntropyChunkSize(int)}.
     *
     * @param size keys per message
     * @return this builder
     */
    public Builder antiEntropyChunkSize(int size) {
      this.chunkSize = size;
      return this;
    }

    /**
     * See {@link InMemoryNetwork.Builder#traceCapacity(int)}.
     *
     * @param events events kept
     * @return this builder
     */
    public Builder traceCapacity(int events) {
      this.traceCapacity = events;
      return this;
    }

    /**
     * Starts the network's pump, so messages flow by themselves and blocking writes work.
     *
     * @return this builder
     */
    public Builder autoPump() {
      this.autoPump = true;
      return this;
    }

    /**
     * Uses the system clock for every store instead of manual clocks ({@link #advanceClocks} then
     * fails).
     *
     * @return this builder
     */
    public Builder systemClock() {
      this.systemClock = true;
      return this;
    }

    /**
     * Where manual clocks start (default {@link #DEFAULT_START}).
     *
     * @param start the instant
     * @return this builder
     */
    public Builder startTime(Instant start) {
      this.startTime = Objects.requireNonNull(start, "start");
      return this;
    }

    /**
     * Longest wait of {@link #settle()}, {@link #await} and {@link #awaitUntil} with the pump
     * (default 30 s).
     *
     * @param timeout positive
     * @return this builder
     */
    public Builder awaitTimeout(Duration timeout) {
      if (timeout == null || timeout.isNegative() || timeout.isZero()) {
        throw new IllegalArgumentException("awaitTimeout must be positive, was " + timeout);
      }
      this.awaitTimeout = timeout;
      return this;
    }

    /**
     * Prefix of generated node ids (default {@code node-}).
     *
     * @param prefix a valid start of a node id
     * @return this builder
     */
    public Builder nodeIdPrefix(String prefix) {
      NodeIds.validate(prefix + "1");
      this.prefix = prefix;
      return this;
    }

    /**
     * Adjusts every store's builder (limits, digest buckets, write timeout, …). The cluster then sets
     * node id, clock, scheduler and replicator itself, overriding those.
     *
     * @param configurer called once per store
     * @return this builder
     */
    public Builder configure(Consumer<KvStoreBuilder> configurer) {
      this.configurer = Objects.requireNonNull(configurer, "configurer");
      return this;
    }

    /**
     * Starts the cluster.
     *
     * @return the running cluster; close it
     */
    public InMemoryCluster build() {
      return new InMemoryCluster(this);
    }
  }

  // ---- nodes -----------------------------------------------------------------------------------

  /**
   * The network, for faults, partitions, stepping and stats.
   *
   * @return the network
   */
  public InMemoryNetwork network() {
    return network;
  }

  @Override
  public synchronized List<KvStore> stores() {
    return List.copyOf(running.values());
  }

  /**
   * The ids of the running stores, in start order.
   *
   * @return node ids
   */
  public synchronized List<String> nodeIds() {
    return List.copyOf(running.keySet());
  }

  /**
   * A running store by position.
   *
   * @param index index into {@link #stores()}
   * @return the store
   */
  public KvStore store(int index) {
    return stores().get(index);
  }

  /**
   * A running store by node id.
   *
   * @param nodeId the id
   * @return the store
   * @throws IllegalArgumentException if no such store runs
   */
  public synchronized KvStore store(String nodeId) {
    KvStore s = running.get(nodeId);
    if (s == null) {
      throw new IllegalArgumentException("no running node '" + nodeId + "'; running: " + running.keySet());
    }
    return s;
  }

  @Override
  public ReplicaStore replicaStore(int index) {
    return network.replicaStore(nodeIds().get(index));
  }

  /**
   * The replica side of a running store.
   *
   * @param nodeId the id
   * @return its replica store
   */
  public ReplicaStore replicaStore(String nodeId) {
    return network.replicaStore(nodeId);
  }

  @Override
  public KvStore addNode() {
    String id;
    synchronized (this) {
      do {
        id = prefix + (++lastNumber);
      } while (running.containsKey(id) || clocks.containsKey(id));
    }
    return addNode(id);
  }

  /**
   * Starts an empty store with this id (a restart, if the id ran before: it keeps its clock).
   *
   * @param nodeId a node id not running now
   * @return the new store
   */
  public KvStore addNode(String nodeId) {
    NodeIds.validate(nodeId);
    KvStoreBuilder b = KvStore.builder();
    configurer.accept(b);
    b.nodeId(nodeId).scheduler(scheduler).replicator(network.newReplicator());
    synchronized (this) {
      if (closed) {
        throw new IllegalStateException("the cluster is closed");
      }
      if (running.containsKey(nodeId)) {
        throw new IllegalArgumentException("node '" + nodeId + "' is already running");
      }
      if (manualClocks) {
        b.clock(clocks.computeIfAbsent(nodeId,
            k -> new ManualClock(Instant.ofEpochMilli(startMillis + elapsedMillis))));
      }
    }
    KvStore store = b.build();
    synchronized (this) {
      running.put(nodeId, store);
    }
    return store;
  }

  /**
   * Closes a running store; it leaves the network (its state is gone, as for a crashed in-memory node).
   *
   * @param nodeId the id
   */
  public void stopNode(String nodeId) {
    KvStore s;
    synchronized (this) {
      s = running.remove(nodeId);
    }
    if (s == null) {
      throw new IllegalArgumentException("no running node '" + nodeId + "'");
    }
    s.close();
  }

  // ---- clocks ----------------------------------------------------------------------------------

  /**
   * The manual clock of a node (running or stopped).
   *
   * @param nodeId the id
   * @return its clock
   * @throws IllegalStateException with {@link Builder#systemClock()}
   */
  public synchronized ManualClock clock(String nodeId) {
    requireManualClocks();
    ManualClock c = clocks.get(nodeId);
    if (c == null) {
      throw new IllegalArgumentException("no node '" + nodeId + "' has run in this cluster");
    }
    return c;
  }

  @Override
  public synchronized void advanceClocks(Duration duration) {
    requireManualClocks();
    if (duration.isNegative()) {
      throw new IllegalArgumentException("clocks advance by a non-negative duration, was " + duration);
    }
    elapsedMillis += duration.toMillis();
    for (ManualClock c : clocks.values()) {
      c.advance(duration);
    }
  }

  private void requireManualClocks() {
    if (!manualClocks) {
      throw new IllegalStateException("this cluster uses system clocks (Builder.systemClock())");
    }
  }

  // ---- partitions ------------------------------------------------------------------------------

  @Override
  public boolean supportsPartitions() {
    return true;
  }

  @Override
  public void partition(List<Set<String>> groups) {
    network.partition(groups);
  }

  /**
   * Cuts one node off; see {@link InMemoryNetwork#isolate(String)}.
   *
   * @param nodeId the node
   */
  public void isolate(String nodeId) {
    network.isolate(nodeId);
  }

  @Override
  public void heal() {
    network.heal();
  }

  // ---- waiting ---------------------------------------------------------------------------------

  /**
   * Whether every running store has the same digest.
   *
   * @return true if converged
   */
  public boolean isConverged() {
    return network.isConverged();
  }

  @Override
  public void settle() {
    if (network.isPumping()) {
      awaitUntil("every replica holds the same keys and versions", network::isConverged);
      return;
    }
    try {
      network.antiEntropyUntilConverged(MAX_SETTLE_ROUNDS);
    } catch (IllegalStateException e) {
      throw new AssertionError("the cluster did not converge (seed " + network.seed() + "): "
          + e.getMessage(), e);
    }
  }

  @Override
  public <T> T await(CompletableFuture<T> future) {
    Objects.requireNonNull(future, "future");
    try {
      if (network.isPumping()) {
        return future.get(awaitTimeout.toMillis(), TimeUnit.MILLISECONDS);
      }
      for (int steps = 0; !future.isDone(); steps++) {
        if (steps >= MAX_AWAIT_STEPS) {
          throw new AssertionError("the future did not complete within " + MAX_AWAIT_STEPS
              + " steps of the in-memory network");
        }
        network.step();
      }
      return future.join();
    } catch (ExecutionException | CompletionException e) {
      throw unwrap(e.getCause() != null ? e.getCause() : e);
    } catch (TimeoutException e) {
      throw new AssertionError("the future did not complete within " + awaitTimeout, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError("interrupted while waiting", e);
    }
  }

  private static RuntimeException unwrap(Throwable t) {
    if (t instanceof RuntimeException re) {
      return re;
    }
    if (t instanceof Error err) {
      throw err;
    }
    return new CompletionException(t);
  }

  @Override
  public void awaitUntil(String description, BooleanSupplier condition) {
    if (network.isPumping()) {
      try {
        Awaitility.await(description).atMost(awaitTimeout).pollDelay(Duration.ZERO)
            .pollInterval(Duration.ofMillis(5)).until(() -> {
              failOnPumpFailure();
              return condition.getAsBoolean();
            });
      } catch (ConditionTimeoutException e) {
        throw new AssertionError("not within " + awaitTimeout + ": " + description, e);
      }
      return;
    }
    for (int steps = 0; !condition.getAsBoolean(); steps++) {
      if (steps >= MAX_AWAIT_STEPS) {
        throw new AssertionError("not within " + MAX_AWAIT_STEPS + " steps of the in-memory network "
            + "(seed " + network.seed() + "): " + description);
      }
      network.step();
    }
  }

  private void failOnPumpFailure() {
    List<Throwable> failures = network.failures();
    if (!failures.isEmpty()) {
      throw new AssertionError("the in-memory network's pump thread failed", failures.get(0));
    }
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  /**
   * Stops the pump, closes every store and the network, and stops the maintenance thread. Fails with an
   * {@link AssertionError} if the pump thread had failed. Safe to call twice.
   */
  @Override
  public void close() {
    List<KvStore> toClose;
    synchronized (this) {
      if (closed) {
        return;
      }
      closed = true;
      toClose = new ArrayList<>(running.values());
      running.clear();
    }
    network.stopPump();
    RuntimeException first = null;
    for (KvStore s : toClose) {
      try {
        s.close();
      } catch (RuntimeException e) {
        if (first == null) {
          first = e;
        } else {
          first.addSuppressed(e);
        }
      }
    }
    network.close();
    scheduler.shutdownNow();
    List<Throwable> failures = network.failures();
    if (!failures.isEmpty()) {
      AssertionError err = new AssertionError("the in-memory network's pump thread failed "
          + failures.size() + " time(s)", failures.get(0));
      failures.stream().skip(1).forEach(err::addSuppressed);
      if (first != null) {
        err.addSuppressed(first);
      }
      throw err;
    }
    if (first != null) {
      throw first;
    }
  }

  @Override
  public String toString() {
    return "InMemoryCluster{" + nodeIds() + ", " + network + "}";
  }
}
