package io.kvstore.core.testing;

import io.kvstore.core.Digest;
import io.kvstore.core.Member;
import io.kvstore.core.MembershipEvent;
import io.kvstore.core.Mutation;
import io.kvstore.core.ReplicaStore;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteConcernException;
import io.kvstore.core.testing.Envelope.MutationMsg;
import io.kvstore.core.testing.Envelope.Payload;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.PriorityQueue;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A simulated network connecting {@link InMemoryReplicator}s: the replication layer of core's tests and
 * of other modules' tests that need a cluster without sockets.
 *
 * <pre>{@code
 * InMemoryNetwork net = InMemoryNetwork.builder().seed(seed)
 *     .faults(NetworkFaults.none().withLoss(0.1).withDuplication(0.05).withDelay(1, 4)).build();
 * KvStore a = KvStore.builder().nodeId("a").replicator(net.newReplicator()).build();
 * KvStore b = KvStore.builder().nodeId("b").replicator(net.newReplicator()).build();
 * a.put("k", "v");            // fan-out queued, not delivered
 * net.deliverAll();           // or step(), runUntilQuiet(n), antiEntropyUntilConverged(n)
 * }</pre>
 * {@link InMemoryCluster} wraps this in a one-line fixture.
 *
 * <h2>Time and determinism</h2>
 * Time is a step counter. {@link #step()} advances it by one and delivers every message due at the new
 * step, in (due step, send order) order; messages sent while delivering are due in a later step. Every
 * fault decision (loss, duplication, delay, reordering) and every random peer choice is drawn at send
 * time from one {@link SplittableRandom} seeded by {@link Builder#seed(long)}; nothing reads the wall
 * clock. So with the same seed and the same calls from one thread, a run is exactly repeatable. (Stores'
 * versions depend on their clocks: inject a {@link ManualClock} for fully repeatable versions.)
 *
 * <h2>Partitions</h2>
 * {@link #partition(Collection)} splits nodes into groups, {@link #isolate(String)} cuts one node off,
 * {@link #block(String, String)} drops one direction of one link, {@link #heal()} restores everything.
 * They are checked when a message is delivered: a message in flight when a partition starts is lost.
 * Membership does not change on a partition (there is no failure detector), so write concerns count
 * partitioned members and fail, as with a real cluster before it declares the member dead.
 *
 * <h2>Write concerns and timeouts</h2>
 * ONE completes at once. QUORUM/ALL complete when {@code concern.requiredAcks(members)} nodes, the
 * writer included, have acknowledged; a peer acknowledges when its {@code ReplicaStore.apply} answers
 * {@code isHeld()}. A write fails with {@link WriteConcernException} when its timeout passes. While
 * {@link #startPump() the pump} is off, a timeout is measured in steps: {@code ceil(timeout /
 * stepDuration)}, with {@link Builder#stepDuration(Duration)} 10 ms by default (so 1 s = 100 steps);
 * {@link #expireTimeouts()} fails every pending write at once. While the pump runs, timeouts are real
 * time. Blocking writes with QUORUM/ALL ({@code store.put(..., concern(ALL))}) therefore need the pump;
 * without it use {@code putAsync} and step until the future is done.
 *
 * <h2>Anti-entropy</h2>
 * {@link #startAntiEntropy(String, String)}: A sends its digest to B; B answers with its keys and
 * versions for the differing buckets, in chunks of whole buckets of at most
 * {@link Builder#antiEntropyChunkSize(int)} keys (a bigger bucket goes alone); A runs
 * {@code AntiEntropy.compare} per chunk, pushes its newer mutations and pulls B's, again in chunks.
 * {@link #antiEntropyRound()} has every node start one exchange with a random other node;
 * {@link Builder#antiEntropyEverySteps(int)} runs a round periodically; a joining node starts one at once.
 *
 * <h2>Pump</h2>
 * {@link #startPump()} delivers messages continuously on a background thread, so tests can use the
 * stores like a real cluster and wait with Awaitility; {@link #stopPump()} or {@link #close()} stops it.
 * An exception escaping delivery on the pump thread is recorded in {@link #failures()} (and
 * {@link InMemoryCluster#close()} fails with it).
 *
 * <h2>Bounded memory</h2>
 * At most {@link Builder#maxInFlightPerLink(int)} copies are queued per directed link; more are dropped
 * and counted, left to anti-entropy, as the {@code Replicator} SPI requires.
 *
 * <p>Thread-safe: any thread may send, step or change faults; one step runs at a time.
 */
public final class InMemoryNetwork implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(InMemoryNetwork.class);

  /** Default simulated duration of one step, used to turn write timeouts into steps. */
  public static final Duration DEFAULT_STEP_DURATION = Duration.ofMillis(10);
  /** Default most keys (or mutations) per anti-entropy message. */
  public static final int DEFAULT_CHUNK_SIZE = 256;
  /** Default most copies queued per directed link. */
  public static final int DEFAULT_MAX_IN_FLIGHT_PER_LINK = 10_000;
  /** Steps {@link #deliverAll()} allows before it gives up. */
  public static final int DEFAULT_MAX_STEPS = 1_000_000;

  private static final long PUMP_IDLE_NANOS = TimeUnit.MILLISECONDS.toNanos(1);
  private static final Comparator<Envelope> DUE_ORDER =
      Comparator.<Envelope>comparingLong(e -> e.deliverAt).thenComparingLong(e -> e.seq);

  private final long seed;
  private final Duration stepDuration;
  private final int chunkSize;
  private final int maxInFlightPerLink;
  private final int traceCapacity;
  private volatile int antiEntropyEverySteps;

  /** Held by whoever is delivering; taken before {@link #lock}, never after. */
  private final ReentrantLock stepLock = new ReentrantLock();
  /** Guards every field below; never held while calling into a store, a future or a listener. */
  private final ReentrantLock lock = new ReentrantLock();
  private final Condition messageSent = lock.newCondition();

  private final SplittableRandom random;
  private final PriorityQueue<Envelope> queue = new PriorityQueue<>(DUE_ORDER);
  private final TreeMap<String, InMemoryReplicator> nodes = new TreeMap<>();
  private final Map<String, Integer> groupOf = new HashMap<>();
  private final Set<String> blockedLinks = new HashSet<>();
  private final Map<String, Integer> inFlightByLink = new HashMap<>();
  private final TreeMap<Long, PendingWrite> pending = new TreeMap<>();
  private final ArrayDeque<TraceEntry> trace = new ArrayDeque<>();
  private NetworkFaults faults;
  private long now;
  private long nextSeq;
  private long nextWriteId = 1;
  private long nextSession = 1;
  private int nextGroup = 1;
  private long sent;
  private long duplicated;
  private long lost;
  private long droppedOverflow;
  private long droppedPartition;
  private long droppedNoNode;
  private long delivered;
  private final EnumMap<MessageKind, Long> sentByKind = new EnumMap<>(MessageKind.class);
  private final EnumMap<MessageKind, Long> deliveredByKind = new EnumMap<>(MessageKind.class);
  private volatile List<Member> members = List.of();
  private boolean closed;

  private ExecutorService pump;
  private volatile boolean pumping;
  private volatile Thread pumpThread;
  private final List<Throwable> failures = new CopyOnWriteArrayList<>();

  private InMemoryNetwork(Builder b) {
    this.seed = b.seed;
    this.random = new SplittableRandom(b.seed);
    this.faults = b.faults;
    this.stepDuration = b.stepDuration;
    this.chunkSize = b.chunkSize;
    this.maxInFlightPerLink = b.maxInFlightPerLink;
    this.traceCapacity = b.traceCapacity;
    this.antiEntropyEverySteps = b.antiEntropyEverySteps;
  }

  /**
   * A builder with the defaults: seed 0, no faults, 10 ms steps, no periodic anti-entropy.
   *
   * @return a new builder
   */
  public static Builder builder() {
    return new Builder();
  }

  /** Settings of a network; {@link #build()} validates them. */
  public static final class Builder {
    private long seed;
    private NetworkFaults faults = NetworkFaults.none();
    private Duration stepDuration = DEFAULT_STEP_DURATION;
    private int chunkSize = DEFAULT_CHUNK_SIZE;
    private int maxInFlightPerLink = DEFAULT_MAX_IN_FLIGHT_PER_LINK;
    private int antiEntropyEverySteps;
    private int traceCapacity;

    private Builder() {}

    /**
     * The seed of every random decision (default 0).
     *
     * @param seed the seed
     * @return this builder
     */
    public Builder seed(long seed) {
      this.seed = seed;
      return this;
    }

    /**
     * The faults to inject (default none); changeable later with {@link #setFaults}.
     *
     * @param faults the faults
     * @return this builder
     */
    public Builder faults(NetworkFaults faults) {
      this.faults = Objects.requireNonNull(faults, "faults");
      return this;
    }

    /**
     * Simulated time per step, which turns write timeouts into steps when the pump is off (default
     * 10 ms).
     *
     * @param duration positive
     * @return this builder
     */
    public Builder stepDuration(Duration duration) {
      this.stepDuration = duration;
      return this;
    }

    /**
     * Most keys or mutations per anti-entropy message (default 256).
     *
     * @param size 1 to 1,000,000
     * @return this builder
     */
    public Builder antiEntropyChunkSize(int size) {
      this.chunkSize = size;
      return this;
    }

    /**
     * Most copies queued per directed link before more are dropped (default 10,000).
     *
     * @param max at least 1
     * @return this builder
     */
    public Builder maxInFlightPerLink(int max) {
      this.maxInFlightPerLink = max;
      return this;
    }

    /**
     * Runs an {@link InMemoryNetwork#antiEntropyRound()} every this many steps (default 0: never).
     *
     * @param steps 0 to turn off, else positive
     * @return this builder
     */
    public Builder antiEntropyEverySteps(int steps) {
      this.antiEntropyEverySteps = steps;
      return this;
    }

    /**
     * Keeps the last this many network events for {@link InMemoryNetwork#trace()} (default 0: off).
     *
     * @param events 0 to 10,000,000
     * @return this builder
     */
    public Builder traceCapacity(int events) {
      this.traceCapacity = events;
      return this;
    }

    /**
     * The network.
     *
     * @return a network with no nodes yet
     * @throws IllegalArgumentException naming the first invalid setting
     */
    public InMemoryNetwork build() {
      if (stepDuration == null || stepDuration.isNegative() || stepDuration.isZero()) {
        throw new IllegalArgumentException("stepDuration must be positive, was " + stepDuration);
      }
      if (chunkSize < 1 || chunkSize > 1_000_000) {
        throw new IllegalArgumentException("antiEntropyChunkSize must be 1 to 1000000, was " + chunkSize);
      }
      if (maxInFlightPerLink < 1) {
        throw new IllegalArgumentException("maxInFlightPerLink must be at least 1, was "
            + maxInFlightPerLink);
      }
      checkAntiEntropyEvery(antiEntropyEverySteps);
      if (traceCapacity < 0 || traceCapacity > 10_000_000) {
        throw new IllegalArgumentException("traceCapacity must be 0 to 10000000, was " + traceCapacity);
      }
      return new InMemoryNetwork(this);
    }
  }

  private static void checkAntiEntropyEvery(int steps) {
    if (steps < 0) {
      throw new IllegalArgumentException("antiEntropyEverySteps must be 0 (off) or positive, was "
          + steps);
    }
  }

  // ---- nodes -----------------------------------------------------------------------------------

  /**
   * A replicator for one store of this network; give it to {@code KvStoreBuilder.replicator(...)}. The
   * node joins when the store starts it (under the store's node id, which must be unique in the
   * network) and leaves when the store closes.
   *
   * @return a new, unstarted replicator
   */
  public InMemoryReplicator newReplicator() {
    return new InMemoryReplicator(this);
  }

  /**
   * The ids of the nodes currently in the network.
   *
   * @return ascending node ids
   */
  public List<String> nodeIds() {
    lock.lock();
    try {
      return List.copyOf(nodes.keySet());
    } finally {
      lock.unlock();
    }
  }

  /**
   * The store side a node's replicator works with, for inspecting its full state (tombstones
   * included) or injecting mutations in tests.
   *
   * @param nodeId a node in the network
   * @return its replica store
   * @throws IllegalArgumentException if no such node is in the network
   */
  public ReplicaStore replicaStore(String nodeId) {
    return node(nodeId).store();
  }

  /**
   * The seed this network was built with.
   *
   * @return the seed
   */
  public long seed() {
    return seed;
  }

  List<Member> members() {
    return members;
  }

  private InMemoryReplicator node(String nodeId) {
    lock.lock();
    try {
      InMemoryReplicator r = nodes.get(nodeId);
      if (r == null) {
        throw new IllegalArgumentException("no node '" + nodeId + "' in the network; nodes are "
            + nodes.keySet());
      }
      return r;
    } finally {
      lock.unlock();
    }
  }

  void join(InMemoryReplicator joiner) {
    List<InMemoryReplicator> peers;
    String aePeer = null;
    lock.lock();
    try {
      if (closed) {
        throw new IllegalStateException("the in-memory network is closed");
      }
      if (nodes.containsKey(joiner.nodeId())) {
        throw new IllegalStateException("node id '" + joiner.nodeId()
            + "' is already in this in-memory network; node ids must be unique");
      }
      peers = new ArrayList<>(nodes.values());
      nodes.put(joiner.nodeId(), joiner);
      refreshMembers();
      if (!peers.isEmpty()) {
        aePeer = peers.get(random.nextInt(peers.size())).nodeId();
      }
      record(null, "JOIN " + joiner.nodeId());
    } finally {
      lock.unlock();
    }
    MembershipEvent added = new MembershipEvent(MembershipEvent.Type.ADDED, joiner.self());
    for (InMemoryReplicator p : peers) {
      p.fire(added);
    }
    if (aePeer != null) {
      joiner.startAntiEntropy(aePeer);
    }
  }

  void leave(InMemoryReplicator leaver) {
    List<InMemoryReplicator> peers;
    List<PendingWrite> orphaned = new ArrayList<>();
    lock.lock();
    try {
      if (nodes.get(leaver.nodeId()) != leaver) {
        return;
      }
      nodes.remove(leaver.nodeId());
      refreshMembers();
      peers = new ArrayList<>(nodes.values());
      for (Iterator<PendingWrite> it = pending.values().iterator(); it.hasNext(); ) {
        PendingWrite w = it.next();
        if (w.origin.equals(leaver.nodeId())) {
          it.remove();
          orphaned.add(w);
        }
      }
      record(null, "LEAVE " + leaver.nodeId());
    } finally {
      lock.unlock();
    }
    for (PendingWrite w : orphaned) {
      w.fail("the writing node closed before enough replicas acknowledged");
    }
    MembershipEvent removed = new MembershipEvent(MembershipEvent.Type.REMOVED, leaver.self());
    for (InMemoryReplicator p : peers) {
      p.fire(removed);
    }
  }

  private void refreshMembers() {
    List<Member> list = new ArrayList<>(nodes.size());
    for (InMemoryReplicator r : nodes.values()) {
      list.add(r.self());
    }
    members = List.copyOf(list);
  }

  // ---- faults and partitions -------------------------------------------------------------------

  /**
   * Replaces the injected faults; applies to messages sent from now on.
   *
   * @param faults the new faults
   */
  public void setFaults(NetworkFaults faults) {
    Objects.requireNonNull(faults, "faults");
    lock.lock();
    try {
      this.faults = faults;
      record(null, "FAULTS " + faults);
    } finally {
      lock.unlock();
    }
  }

  /**
   * The faults injected now.
   *
   * @return the faults
   */
  public NetworkFaults faults() {
    lock.lock();
    try {
      return faults;
    } finally {
      lock.unlock();
    }
  }

  /**
   * Splits the network: nodes in different groups cannot exchange messages; nodes named in no group
   * form one more group together. Replaces any earlier partition; one-way blocks stay.
   *
   * @param groups disjoint groups of node ids (nodes need not have joined yet)
   * @throws IllegalArgumentException if a node is named in two groups
   */
  public void partition(Collection<? extends Collection<String>> groups) {
    Objects.requireNonNull(groups, "groups");
    Map<String, Integer> assignment = new HashMap<>();
    int g = 0;
    for (Collection<String> group : groups) {
      g++;
      for (String id : group) {
        Integer prev = assignment.put(Objects.requireNonNull(id, "node id"), g);
        if (prev != null && prev != g) {
          throw new IllegalArgumentException("node '" + id + "' is in two partition groups: " + groups);
        }
      }
    }
    lock.lock();
    try {
      groupOf.clear();
      groupOf.putAll(assignment);
      nextGroup = g + 1;
      record(null, "PARTITION " + groups);
    } finally {
      lock.unlock();
    }
  }

  /**
   * Cuts one node off from every other node, keeping any other partition in place.
   *
   * @param nodeId the node
   */
  public void isolate(String nodeId) {
    Objects.requireNonNull(nodeId, "nodeId");
    lock.lock();
    try {
      groupOf.put(nodeId, nextGroup++);
      record(null, "ISOLATE " + nodeId);
    } finally {
      lock.unlock();
    }
  }

  /**
   * Drops every message from {@code from} to {@code to} (one direction only) until unblocked or healed.
   *
   * @param from sending node
   * @param to receiving node
   */
  public void block(String from, String to) {
    lock.lock();
    try {
      blockedLinks.add(link(Objects.requireNonNull(from, "from"), Objects.requireNonNull(to, "to")));
      record(null, "BLOCK " + from + "->" + to);
    } finally {
      lock.unlock();
    }
  }

  /**
   * Removes a one-way block.
   *
   * @param from sending node
   * @param to receiving node
   */
  public void unblock(String from, String to) {
    lock.lock();
    try {
      blockedLinks.remove(link(from, to));
      record(null, "UNBLOCK " + from + "->" + to);
    } finally {
      lock.unlock();
    }
  }

  /** Removes every partition and block; messages already dropped stay dropped. */
  public void heal() {
    lock.lock();
    try {
      groupOf.clear();
      blockedLinks.clear();
      nextGroup = 1;
      record(null, "HEAL");
    } finally {
      lock.unlock();
    }
  }

  /**
   * Whether a message from one node to another would be delivered now (no partition or block between).
   *
   * @param from sending node
   * @param to receiving node
   * @return true if connected in that direction
   */
  public boolean isConnected(String from, String to) {
    lock.lock();
    try {
      return connected(from, to);
    } finally {
      lock.unlock();
    }
  }

  private boolean connected(String from, String to) {
    return Objects.equals(groupOf.getOrDefault(from, 0), groupOf.getOrDefault(to, 0))
        && !blockedLinks.contains(link(from, to));
  }

  private static String link(String from, String to) {
    return from + '\u0000' + to;
  }

  // ---- sending ---------------------------------------------------------------------------------

  void send(String from, String to, MessageKind kind, Payload payload) {
    lock.lock();
    try {
      sendLocked(from, to, kind, payload);
    } finally {
      lock.unlock();
    }
  }

  private void sendLocked(String from, String to, MessageKind kind, Payload payload) {
    if (closed) {
      return;
    }
    sent++;
    sentByKind.merge(kind, 1L, Long::sum);
    NetworkFaults f = faults;
    int copies = f.duplication() > 0 && random.nextDouble() < f.duplication() ? 2 : 1;
    if (copies == 2) {
      duplicated++;
    }
    double lossP = f.lossOf(kind);
    for (int c = 0; c < copies; c++) {
      long seq = nextSeq++;
      long delay = f.minDelay() + (f.maxDelay() > f.minDelay()
          ? random.nextInt(f.maxDelay() - f.minDelay() + 1) : 0);
      if (f.reorder() > 0 && random.nextDouble() < f.reorder()) {
        delay += 1 + random.nextInt(f.reorderWindow());
      }
      Envelope e = new Envelope(seq, from, to, kind, payload, now, now + delay);
      if (lossP > 0 && random.nextDouble() < lossP) {
        lost++;
        record(e, "LOST");
        continue;
      }
      String l = link(from, to);
      int inFlight = inFlightByLink.getOrDefault(l, 0);
      if (inFlight >= maxInFlightPerLink) {
        droppedOverflow++;
        record(e, "OVERFLOW");
        continue;
      }
      inFlightByLink.put(l, inFlight + 1);
      queue.add(e);
      if (copies == 2) {
        record(e, c == 0 ? "SENT (duplicated)" : "SENT (duplicate)");
      }
    }
    messageSent.signalAll();
  }

  // ---- write concerns --------------------------------------------------------------------------

  CompletableFuture<Void> replicate(InMemoryReplicator origin, Mutation mutation, WriteConcern concern,
      Duration timeout) {
    PendingWrite w = null;
    lock.lock();
    try {
      if (nodes.get(origin.nodeId()) != origin) {
        return concern == WriteConcern.ONE ? CompletableFuture.completedFuture(null)
            : CompletableFuture.failedFuture(new WriteConcernException(concern,
                concern.requiredAcks(Math.max(1, members.size())), 1,
                "the node is not in the in-memory network (closed?)"));
      }
      int required = concern.requiredAcks(nodes.size());
      long writeId = 0;
      if (required > 1) {
        writeId = nextWriteId++;
        long steps = timeoutSteps(timeout);
        w = new PendingWrite(writeId, origin.nodeId(), concern, required, timeout, steps,
            now + steps, System.nanoTime() + timeout.toNanos());
        pending.put(writeId, w);
      }
      MutationMsg msg = new MutationMsg(mutation, writeId);
      for (String peer : nodes.keySet()) {
        if (!peer.equals(origin.nodeId())) {
          sendLocked(origin.nodeId(), peer, MessageKind.MUTATION, msg);
        }
      }
    } finally {
      lock.unlock();
    }
    return w == null ? CompletableFuture.completedFuture(null) : w.future;
  }

  private long timeoutSteps(Duration timeout) {
    long t = Math.max(1, timeout.toNanos());
    long d = stepDuration.toNanos();
    return Math.max(1, t / d + (t % d == 0 ? 0 : 1));
  }

  void acknowledge(long writeId, String ackingNode) {
    PendingWrite done = null;
    lock.lock();
    try {
      PendingWrite w = pending.get(writeId);
      if (w != null) {
        w.ackers.add(ackingNode);
        if (w.ackers.size() >= w.required) {
          pending.remove(writeId);
          done = w;
        }
      }
    } finally {
      lock.unlock();
    }
    if (done != null) {
      done.future.complete(null);
    }
  }

  /**
   * Fails every write still waiting for acknowledgements, now, with {@link WriteConcernException}.
   *
   * @return how many writes failed
   */
  public int expireTimeouts() {
    List<PendingWrite> expired;
    lock.lock();
    try {
      expired = new ArrayList<>(pending.values());
      pending.clear();
    } finally {
      lock.unlock();
    }
    for (PendingWrite w : expired) {
      w.fail("expired by expireTimeouts()");
    }
    return expired.size();
  }

  /**
   * Writes still waiting for acknowledgements.
   *
   * @return the count
   */
  public int pendingWrites() {
    lock.lock();
    try {
      return pending.size();
    } finally {
      lock.unlock();
    }
  }

  /** A QUORUM/ALL write waiting for acks; its fields other than {@code ackers} are fixed. */
  private static final class PendingWrite {
    final long id;
    final String origin;
    final WriteConcern concern;
    final int required;
    final Duration timeout;
    final long timeoutSteps;
    final long deadlineStep;
    final long deadlineNanos;
    final TreeSet<String> ackers = new TreeSet<>();
    final CompletableFuture<Void> future = new CompletableFuture<>();

    PendingWrite(long id, String origin, WriteConcern concern, int required, Duration timeout,
        long timeoutSteps, long deadlineStep, long deadlineNanos) {
      this.id = id;
      this.origin = origin;
      this.concern = concern;
      this.required = required;
      this.timeout = timeout;
      this.timeoutSteps = timeoutSteps;
      this.deadlineStep = deadlineStep;
      this.deadlineNanos = deadlineNanos;
      ackers.add(origin);
    }

    /** Fails the future; called without the network lock, after the write left {@code pending}. */
    void fail(String why) {
      // ackers no longer changes once the write is out of the pending map.
      future.completeExceptionally(new WriteConcernException(concern, required, ackers.size(),
          "write#" + id + " acknowledged by " + ackers + " within " + timeout + " ("
              + timeoutSteps + " steps of the in-memory network): " + why));
    }
  }

  // ---- stepping --------------------------------------------------------------------------------

  /**
   * Advances time one step: runs a periodic anti-entropy round if one is due, delivers every message
   * due at the new step, and fails writes whose timeout passed.
   *
   * @return how many message copies were delivered
   */
  public int step() {
    stepLock.lock();
    try {
      long at;
      boolean aeRound;
      lock.lock();
      try {
        at = ++now;
        int every = antiEntropyEverySteps;
        aeRound = every > 0 && at % every == 0;
      } finally {
        lock.unlock();
      }
      if (aeRound) {
        antiEntropyRound();
      }
      List<Envelope> due = new ArrayList<>();
      List<InMemoryReplicator> targets = new ArrayList<>();
      List<PendingWrite> expired = new ArrayList<>();
      lock.lock();
      try {
        while (!queue.isEmpty() && queue.peek().deliverAt <= at) {
          Envelope e = queue.poll();
          inFlightByLink.computeIfPresent(link(e.from, e.to), (k, n) -> n <= 1 ? null : n - 1);
          InMemoryReplicator target = nodes.get(e.to);
          if (target == null) {
            droppedNoNode++;
            record(e, "DROPPED (no such node)");
          } else if (!connected(e.from, e.to)) {
            droppedPartition++;
            record(e, "DROPPED (partition)");
          } else {
            delivered++;
            deliveredByKind.merge(e.kind, 1L, Long::sum);
            record(e, "DELIVERED");
            due.add(e);
            targets.add(target);
          }
        }
        boolean realTime = pumping;
        long nanos = realTime ? System.nanoTime() : 0;
        for (Iterator<PendingWrite> it = pending.values().iterator(); it.hasNext(); ) {
          PendingWrite w = it.next();
          if (realTime ? nanos - w.deadlineNanos >= 0 : at >= w.deadlineStep) {
            it.remove();
            expired.add(w);
          }
        }
      } finally {
        lock.unlock();
      }
      for (int i = 0; i < due.size(); i++) {
        targets.get(i).receive(due.get(i));
      }
      for (PendingWrite w : expired) {
        w.fail("timed out");
      }
      return due.size();
    } finally {
      stepLock.unlock();
    }
  }

  /**
   * The current step.
   *
   * @return steps taken since the network was built
   */
  public long now() {
    lock.lock();
    try {
      return now;
    } finally {
      lock.unlock();
    }
  }

  /**
   * Whether no message is in flight.
   *
   * @return true when the queue is empty
   */
  public boolean isQuiet() {
    return inFlight() == 0;
  }

  /**
   * Message copies queued now.
   *
   * @return the count
   */
  public int inFlight() {
    lock.lock();
    try {
      return queue.size();
    } finally {
      lock.unlock();
    }
  }

  /**
   * Steps until no message is in flight.
   *
   * @param maxSteps the most steps to take
   * @return steps taken
   * @throws IllegalStateException if messages are still in flight after {@code maxSteps}
   */
  public int runUntilQuiet(int maxSteps) {
    int steps = 0;
    while (!isQuiet()) {
      if (steps >= maxSteps) {
        throw new IllegalStateException("the in-memory network is not quiet after " + maxSteps
            + " steps: " + inFlight() + " messages in flight");
      }
      step();
      steps++;
    }
    return steps;
  }

  /**
   * Steps until no message is in flight, at most {@value #DEFAULT_MAX_STEPS} steps.
   *
   * @return steps taken
   */
  public int deliverAll() {
    return runUntilQuiet(DEFAULT_MAX_STEPS);
  }

  // ---- anti-entropy ----------------------------------------------------------------------------

  /**
   * Starts one anti-entropy exchange: {@code from} sends its digest to {@code to}. The rest of the
   * exchange happens as its messages are delivered.
   *
   * @param from the initiator
   * @param to the peer
   */
  public void startAntiEntropy(String from, String to) {
    if (from.equals(to)) {
      throw new IllegalArgumentException("anti-entropy needs two different nodes, got " + from + " twice");
    }
    node(to);
    node(from).startAntiEntropy(to);
  }

  /** Every node starts one anti-entropy exchange with a random other node. */
  public void antiEntropyRound() {
    List<String[]> pairs = new ArrayList<>();
    lock.lock();
    try {
      List<String> ids = new ArrayList<>(nodes.keySet());
      if (ids.size() < 2) {
        return;
      }
      for (int i = 0; i < ids.size(); i++) {
        int j = random.nextInt(ids.size() - 1);
        pairs.add(new String[] {ids.get(i), ids.get(j >= i ? j + 1 : j)});
      }
    } finally {
      lock.unlock();
    }
    for (String[] p : pairs) {
      InMemoryReplicator r;
      lock.lock();
      try {
        r = nodes.get(p[0]);
      } finally {
        lock.unlock();
      }
      if (r != null) {
        r.startAntiEntropy(p[1]);
      }
    }
  }

  /**
   * Whether every node's digest is equal: all hold the same keys at the same versions.
   *
   * @return true if converged (trivially with fewer than two nodes)
   */
  public boolean isConverged() {
    List<InMemoryReplicator> all;
    lock.lock();
    try {
      all = new ArrayList<>(nodes.values());
    } finally {
      lock.unlock();
    }
    Digest first = null;
    for (InMemoryReplicator r : all) {
      Digest d = r.store().digest();
      if (first == null) {
        first = d;
      } else if (!first.equals(d)) {
        return false;
      }
    }
    return true;
  }

  /**
   * Delivers everything in flight, then runs anti-entropy rounds (each followed by delivering
   * everything) until every digest is equal.
   *
   * @param maxRounds the most rounds
   * @return rounds it took
   * @throws IllegalStateException if the digests still differ after {@code maxRounds} (for example
   *     because a partition is still in place)
   */
  public int antiEntropyUntilConverged(int maxRounds) {
    for (int round = 0; ; round++) {
      deliverAll();
      if (isConverged()) {
        return round;
      }
      if (round >= maxRounds) {
        throw new IllegalStateException("digests still differ after " + maxRounds
            + " anti-entropy rounds; nodes with the first node's digest: " + agreeingWithFirst()
            + " of " + nodeIds());
      }
      antiEntropyRound();
    }
  }

  private List<String> agreeingWithFirst() {
    List<String> ids = nodeIds();
    List<String> same = new ArrayList<>();
    Digest first = null;
    for (String id : ids) {
      Digest d = replicaStore(id).digest();
      if (first == null) {
        first = d;
      }
      if (first.equals(d)) {
        same.add(id);
      }
    }
    return same;
  }

  /**
   * Changes how often anti-entropy runs by itself.
   *
   * @param steps 0 to turn off, else a round every this many steps
   */
  public void setAntiEntropyEverySteps(int steps) {
    checkAntiEntropyEvery(steps);
    antiEntropyEverySteps = steps;
  }

  int chunkSize() {
    return chunkSize;
  }

  long newSession() {
    lock.lock();
    try {
      return nextSession++;
    } finally {
      lock.unlock();
    }
  }

  // ---- pump ------------------------------------------------------------------------------------

  /**
   * Starts delivering messages continuously on a background thread (about one step per millisecond
   * when idle, as fast as possible when busy). Write timeouts become real time while it runs.
   *
   * @throws IllegalStateException if already pumping or closed
   */
  public void startPump() {
    lock.lock();
    try {
      if (closed) {
        throw new IllegalStateException("the in-memory network is closed");
      }
      if (pumping) {
        throw new IllegalStateException("the pump is already running");
      }
      pumping = true;
      pump = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "kvstore-inmemory-pump-" + seed);
        t.setDaemon(true);
        return t;
      });
      pump.execute(this::pumpLoop);
    } finally {
      lock.unlock();
    }
  }

  /**
   * Whether the pump runs.
   *
   * @return true between {@link #startPump()} and {@link #stopPump()}
   */
  public boolean isPumping() {
    return pumping;
  }

  /**
   * Stops the pump and waits (up to 10 s) for its thread to end; does nothing if it is not running.
   * Messages in flight stay queued.
   */
  public void stopPump() {
    ExecutorService p;
    lock.lock();
    try {
      if (!pumping) {
        return;
      }
      pumping = false;
      p = pump;
      pump = null;
      messageSent.signalAll();
    } finally {
      lock.unlock();
    }
    p.shutdown();
    if (Thread.currentThread() == pumpThread) {
      return;
    }
    try {
      if (!p.awaitTermination(10, TimeUnit.SECONDS)) {
        p.shutdownNow();
        failures.add(new IllegalStateException("the pump thread did not stop within 10 s"));
      }
    } catch (InterruptedException e) {
      p.shutdownNow();
      Thread.currentThread().interrupt();
    }
  }

  private void pumpLoop() {
    pumpThread = Thread.currentThread();
    try {
      while (pumping) {
        try {
          step();
        } catch (RuntimeException | Error e) {
          failures.add(e);
          log.error("delivery failed on the in-memory network's pump thread", e);
          if (e instanceof VirtualMachineError) {
            throw e;
          }
        }
        lock.lock();
        try {
          if (pumping && queue.isEmpty()) {
            messageSent.awaitNanos(PUMP_IDLE_NANOS);
          }
        } catch (InterruptedException e) {
          return;
        } finally {
          lock.unlock();
        }
      }
    } finally {
      pumpThread = null;
    }
  }

  /**
   * Exceptions that escaped delivery on the pump thread.
   *
   * @return a snapshot, empty when all is well
   */
  public List<Throwable> failures() {
    return List.copyOf(failures);
  }

  // ---- observation -----------------------------------------------------------------------------

  /**
   * A snapshot of the counters.
   *
   * @return the stats
   */
  public NetworkStats stats() {
    lock.lock();
    try {
      return new NetworkStats(sent, duplicated, lost, droppedOverflow, droppedPartition, droppedNoNode,
          delivered, queue.size(), sentByKind, deliveredByKind);
    } finally {
      lock.unlock();
    }
  }

  /**
   * The last {@link Builder#traceCapacity(int)} events (sends of duplicates, losses, drops, deliveries,
   * partitions, joins), oldest first.
   *
   * @return one line per event; empty when tracing is off
   */
  public List<String> trace() {
    return trace(null);
  }

  /**
   * The traced events about one key, plus every partition, fault and membership change, oldest first:
   * what to print when that key diverged.
   *
   * @param key the key
   * @return one line per event
   */
  public List<String> trace(String key) {
    lock.lock();
    try {
      List<String> out = new ArrayList<>();
      for (TraceEntry t : trace) {
        if (key == null || t.envelope == null || t.envelope.payload.mentions(key)) {
          out.add(t.toString());
        }
      }
      return out;
    } finally {
      lock.unlock();
    }
  }

  private void record(Envelope e, String event) {
    if (traceCapacity == 0) {
      return;
    }
    if (trace.size() == traceCapacity) {
      trace.removeFirst();
    }
    trace.addLast(new TraceEntry(now, event, e));
  }

  /** One traced event: a message's fate, or a change of the network itself. */
  private record TraceEntry(long step, String event, Envelope envelope) {
    @Override
    public String toString() {
      return "step " + step + ": " + event + (envelope == null ? "" : " " + envelope);
    }
  }

  /**
   * Stops the pump and refuses further sends. Stores using this network should be closed first
   * ({@link InMemoryCluster} does that).
   */
  @Override
  public void close() {
    stopPump();
    List<PendingWrite> orphaned;
    lock.lock();
    try {
      closed = true;
      queue.clear();
      inFlightByLink.clear();
      orphaned = new ArrayList<>(pending.values());
      pending.clear();
    } finally {
      lock.unlock();
    }
    for (PendingWrite w : orphaned) {
      w.fail("the in-memory network closed");
    }
  }

  @Override
  public String toString() {
    return "InMemoryNetwork{seed=" + seed + ", nodes=" + nodeIds() + ", step=" + now() + "}";
  }
}
