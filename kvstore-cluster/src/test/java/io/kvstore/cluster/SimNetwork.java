package io.kvstore.cluster;

import io.kvstore.core.ClusterView;
import io.kvstore.core.KvStore;
import io.kvstore.core.KvStoreBuilder;
import io.kvstore.core.Member;
import io.kvstore.core.MembershipEvent;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.Registration;
import io.kvstore.core.spi.ReplicaStore;
import io.kvstore.core.spi.Replicator;
import io.kvstore.core.WriteConcern;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.Unpooled;
import io.netty.buffer.UnpooledByteBufAllocator;
import io.netty.util.ReferenceCountUtil;
import java.time.Duration;
import java.time.Instant;
import java.time.InstantSource;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.function.Consumer;
import java.util.function.UnaryOperator;

/**
 * N real {@link ReplicationEngine}s over an in-memory network that carries their encoded
 * {@link Frames}, on one {@link SimClock}: the deterministic simulation's world.
 *
 * <p>Each ordered pair of nodes has one connection (the first node's {@link PeerLink} to the
 * second's {@link ReplicationEngine.Responder}), as on the Netty data plane, minus the handshake.
 * Every frame is copied to bytes when sent and decoded when delivered. The {@link Faults} decide, from
 * the network's own seeded random stream, whether a frame is lost, duplicated, how long it takes and
 * whether it is held back (reordered). A partition closes the connections it cuts and refuses new
 * ones across it until healed; a closed connection is reconnected after a short random backoff, as
 * the Netty data plane does. Membership is static apart from {@link #addNode} and closing a store:
 * every node knows every other at once.
 */
final class SimNetwork implements AutoCloseable {
  /** The start of virtual time as the stores' clocks show it. */
  static final Instant EPOCH = Instant.parse("2026-01-01T00:00:00Z");
  /** The stores' maintenance never runs during a simulation (their purge interval is a year). */
  private static final ScheduledExecutorService IDLE_MAINTENANCE =
      Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "kvstore-sim-idle-maintenance");
        t.setDaemon(true);
        return t;
      });

  /** What the network does to frames; mutable between steps. */
  static final class Faults {
    double loss;
    double duplication;
    /** The chance that a frame is held back by up to {@link #reorderMillis} more. */
    double reorder;
    long reorderMillis;
    long minDelayMillis = 1;
    long maxDelayMillis = 1;
    /** The chance that a fan-out MUTATIONS frame (not an anti-entropy push) is lost. */
    double fanOutLoss;

    static Faults none() {
      return new Faults();
    }

    /** Faults without fan-out loss. */
    static Faults of(double loss, double duplication, long minDelayMillis, long maxDelayMillis,
        double reorder, long reorderMillis) {
      Faults f = new Faults();
      f.loss = loss;
      f.duplication = duplication;
      f.minDelayMillis = minDelayMillis;
      f.maxDelayMillis = maxDelayMillis;
      f.reorder = reorder;
      f.reorderMillis = reorderMillis;
      return f;
    }

    @Override
    public String toString() {
      return String.format("loss %.2f, duplication %.2f, delay %d-%d ms, reorder %.2f by <= %d ms%s",
          loss, duplication, minDelayMillis, maxDelayMillis, reorder, reorderMillis,
          fanOutLoss > 0 ? String.format(", fan-out loss %.2f", fanOutLoss) : "");
    }
  }

  /**
   * Watches (and may pace) the frames of the network; none by default, and then frames are not
   * decoded when sent, so a run without a tap is exactly what it was before taps existed.
   */
  interface Tap {
    /**
     * The frame is sent now (called once per copy the network delivers, never for a lost frame);
     * returns how many milliseconds after the previous frame in the same direction of its
     * connection it is delivered at the earliest. With a tap each direction delivers its frames in
     * the order sent (a held-back frame holds back the ones after it), so a stream can be spread
     * out in time without being reordered.
     */
    default long sent(String sender, String receiver, Frames.Frame frame) {
      return 0;
    }

    /** The frame is being delivered now (before its receiver handles it). */
    default void delivered(String sender, String receiver, Frames.Frame frame) {
    }
  }

  final SimClock clock = new SimClock();
  final Random random;
  /** See {@link Tap}; null: none. */
  Tap tap;
  final ReplicationEngine.Settings settings;
  final ReplicationEngine.Bug bug;
  Faults faults = Faults.none();
  private final UnaryOperator<KvStoreBuilder> configurer;
  private final long seed;
  private final Map<String, SimNode> nodes = new LinkedHashMap<>();
  private final Set<String> cuts = new HashSet<>();
  private final List<Conn> conns = new ArrayList<>();
  private long framesDelivered;
  private long trace = 17;
  /** The placement every engine gets (null: full replication, as without one). */
  private Placement placement;
  /** Set only while {@link #addNode(String, long, Placement)} starts its node. */
  private boolean startAlone;

  SimNetwork(long seed, ReplicationEngine.Settings settings, ReplicationEngine.Bug bug,
      UnaryOperator<KvStoreBuilder> configurer) {
    this.seed = seed;
    this.random = new Random(seed);
    this.settings = settings;
    this.bug = bug;
    this.configurer = configurer;
  }

  /** The engine settings simulations use: small frames and queues, frequent anti-entropy. */
  static ReplicationEngine.Settings smallSettings() {
    return new ReplicationEngine.Settings(8 * 1024, 1024, Duration.ofMillis(200),
        Duration.ofMillis(400));
  }

  // ---- nodes -----------------------------------------------------------------------------------

  /** One simulated node: a real store, its replicator and engine. */
  final class SimNode {
    final String id;
    final int index;
    final long skewMillis;
    long offsetMillis;
    /** When set, the node's clock shows exactly this (the test drives it); else virtual time. */
    Long fixedMillis;
    KvStore store;
    ReplicaStore replica;
    ReplicationEngine engine;
    final Stats stats = new Stats(() -> 0);
    final Map<String, PeerLink> links = new LinkedHashMap<>();
    final SimReplicator replicator = new SimReplicator(this);
    boolean closed;

    SimNode(String id, int index, long skewMillis) {
      this.id = id;
      this.index = index;
      this.skewMillis = skewMillis;
    }

    long millis() {
      if (fixedMillis != null) {
        return fixedMillis;
      }
      return EPOCH.toEpochMilli() + clock.now() + skewMillis + offsetMillis;
    }

    @Override
    public String toString() {
      return id;
    }
  }

  /**
   * Starts a node (empty) and connects it to every running node; an id whose node was closed starts
   * a new incarnation of it (a node restarted empty).
   */
  SimNode addNode(String id, long skewMillis) {
    SimNode old = nodes.get(id);
    if (old != null && !old.closed) {
      throw new IllegalArgumentException("node " + id + " is running");
    }
    nodes.remove(id);
    SimNode n = new SimNode(id, nodes.size(), skewMillis);
    nodes.put(id, n);
    InstantSource time = new InstantSource() {
      @Override
      public Instant instant() {
        return Instant.ofEpochMilli(n.millis());
      }

      @Override
      public long millis() {
        return n.millis();
      }
    };
    KvStoreBuilder b = KvStore.builder().nodeId(id).clock(time).scheduler(IDLE_MAINTENANCE)
        .purgeInterval(Duration.ofDays(365)).digestBuckets(64);
    n.store = configurer.apply(b).replicator(n.replicator).build();
    return n;
  }

  /**
   * Starts a node as {@link #addNode(String, long)} does, but its engine starts in full replication
   * and then gets {@code first} (null: it stays in full replication until the test sets one), as a
   * real node that has just started and knows only itself: its first maps come later, one by one,
   * from a partial view of the members. The network's placement is not changed.
   */
  SimNode addNode(String id, long skewMillis, Placement first) {
    startAlone = true;
    SimNode n;
    try {
      n = addNode(id, skewMillis);
    } finally {
      startAlone = false;
    }
    if (first != null) {
      n.engine.setPlacement(first);
    }
    return n;
  }

  /** Sets the placement on every running engine now, and on every engine started later. */
  void setPlacement(Placement p) {
    placement = p;
    for (SimNode n : nodes()) {
      if (n.engine != null) {
        n.engine.setPlacement(p);
      }
    }
  }

  Placement placement() {
    return placement;
  }

  SimNode node(String id) {
    return nodes.get(id);
  }

  List<SimNode> nodes() {
    List<SimNode> out = new ArrayList<>();
    for (SimNode n : nodes.values()) {
      if (!n.closed) {
        out.add(n);
      }
    }
    return out;
  }

  private void started(SimNode n, ReplicaStore replica) {
    n.replica = replica;
    n.engine = new ReplicationEngine(new ReplicationEngine.Context(n.id, settings, replica, n.stats,
        clock, clock, clock, new Random(seed * 31 + n.index), () -> clock.now() * 1_000_000L,
        () -> { }, bug));
    if (placement != null && !startAlone) {
      n.engine.setPlacement(placement);
    }
    clock.execute(n.engine::start);
    for (SimNode other : nodes()) {
      if (other != n && other.engine != null) {
        link(n, other);
        link(other, n);
        fire(other, MembershipEvent.Type.ADDED, n);
        fire(n, MembershipEvent.Type.ADDED, other);
      }
    }
  }

  private void link(SimNode from, SimNode to) {
    PeerLink link = from.engine.newLink(to.id, to.id);
    from.links.put(to.id, link);
    from.engine.setLive(from.links.values());
    clock.schedule(() -> connect(from, link, to), 1);
  }

  private void stopped(SimNode n) {
    if (n.closed) {
      return;
    }
    n.closed = true;
    n.engine.beginClose();
    for (PeerLink l : n.links.values()) {
      l.close();
    }
    n.engine.close();
    for (Conn c : List.copyOf(conns)) {
      if (c.from == n || c.to == n) {
        c.close();
      }
    }
    for (SimNode other : nodes()) {
      PeerLink l = other.links.remove(n.id);
      if (l != null) {
        l.close();
        other.engine.forget(l);
        other.engine.setLive(other.links.values());
        fire(other, MembershipEvent.Type.REMOVED, n);
      }
    }
  }

  private void fire(SimNode to, MembershipEvent.Type type, SimNode about) {
    MembershipEvent e = new MembershipEvent(type, member(about));
    for (Consumer<MembershipEvent> l : to.replicator.listeners) {
      clock.execute(() -> l.accept(e));
    }
  }

  private static Member member(SimNode n) {
    return new Member(n.id, null, null, Member.Status.ALIVE);
  }

  // ---- partitions ------------------------------------------------------------------------------

  /** Cuts every pair of nodes in different groups; nodes in no group form one more group. */
  void partition(Collection<? extends Collection<String>> groups) {
    Map<String, Integer> groupOf = new LinkedHashMap<>();
    int g = 0;
    for (Collection<String> group : groups) {
      for (String id : group) {
        groupOf.put(id, g);
      }
      g++;
    }
    List<SimNode> all = nodes();
    for (SimNode a : all) {
      for (SimNode b : all) {
        if (a.id.compareTo(b.id) < 0
            && !Objects.equals(groupOf.getOrDefault(a.id, -1), groupOf.getOrDefault(b.id, -1))) {
          cuts.add(pair(a.id, b.id));
        }
      }
    }
    for (Conn c : List.copyOf(conns)) {
      if (isCut(c.from, c.to)) {
        c.close();
      }
    }
  }

  void heal() {
    cuts.clear();
  }

  /** Cuts the pair of nodes (both ways), closing their connections. */
  void cut(String a, String b) {
    cuts.add(pair(a, b));
    for (Conn c : List.copyOf(conns)) {
      if (isCut(c.from, c.to)) {
        c.close();
      }
    }
  }

  /** Whether every running node has the same digest. */
  boolean converged() {
    io.kvstore.core.spi.Digest first = null;
    for (SimNode n : nodes()) {
      io.kvstore.core.spi.Digest d = n.replica.digest();
      if (first == null) {
        first = d;
      } else if (!first.equals(d)) {
        return false;
      }
    }
    return true;
  }

  /**
   * Runs until every digest agrees, for at most that many anti-entropy intervals of virtual time.
   *
   * @return the virtual milliseconds it took
   * @throws IllegalStateException if the digests still differ
   */
  long runUntilConverged(int maxIntervals) {
    long start = clock.now();
    if (!clock.runUntil(this::converged, maxIntervals * settings.antiEntropyInterval().toMillis())) {
      throw new IllegalStateException("digests still differ after " + maxIntervals
          + " anti-entropy intervals (" + (clock.now() - start) + " ms of virtual time)");
    }
    return clock.now() - start;
  }

  boolean isPartitioned() {
    return !cuts.isEmpty();
  }

  private boolean isCut(SimNode a, SimNode b) {
    return cuts.contains(pair(a.id, b.id));
  }

  private static String pair(String a, String b) {
    return a.compareTo(b) < 0 ? a + "|" + b : b + "|" + a;
  }

  // ---- connections -----------------------------------------------------------------------------

  private void connect(SimNode from, PeerLink link, SimNode to) {
    if (link.isClosed() || from.closed) {
      return;
    }
    if (to.closed || isCut(from, to)) {
      clock.schedule(() -> connect(from, link, to), 50 + random.nextInt(100));
      return;
    }
    Conn c = new Conn(from, to, link);
    conns.add(c);
    c.responder = to.engine.accept(c.serverEnd, from.id);
    link.connected(c.clientEnd);
  }

  /** One connection: {@code from}'s link to {@code to}'s responder. */
  private final class Conn {
    final SimNode from;
    final SimNode to;
    final PeerLink link;
    final End clientEnd = new End(true);
    final End serverEnd = new End(false);
    ReplicationEngine.Responder responder;
    boolean open = true;
    /** Per direction (client, server): when its last paced frame is delivered ({@link Tap}). */
    final long[] lastPacedAt = new long[2];

    Conn(SimNode from, SimNode to, PeerLink link) {
      this.from = from;
      this.to = to;
      this.link = link;
    }

    void close() {
      if (!open) {
        return;
      }
      open = false;
      conns.remove(this);
      link.disconnected(clientEnd);
      responder.closed();
      if (!link.isClosed() && !from.closed) {
        clock.schedule(() -> connect(from, link, to), 20 + random.nextInt(100));
      }
    }

    /** One side of the connection, as its owner's engine sees it. */
    final class End implements PeerChannel {
      private final boolean client;

      End(boolean client) {
        this.client = client;
      }

      @Override
      public ByteBufAllocator alloc() {
        return UnpooledByteBufAllocator.DEFAULT;
      }

      @Override
      public boolean send(ByteBuf frame, boolean flush) {
        if (!open || isCut(from, to)) {
          ReferenceCountUtil.release(frame);
          close();
          return false;
        }
        byte[] bytes = new byte[frame.readableBytes()];
        frame.readBytes(bytes);
        frame.release();
        (client ? from : to).stats.frameSent(bytes.length);
        if (random.nextDouble() < faults.loss) {
          return true;
        }
        if (faults.fanOutLoss > 0 && client && random.nextDouble() < faults.fanOutLoss
            && Frames.decode(Unpooled.wrappedBuffer(bytes)) instanceof Frames.MutationBatch b
            && !b.isAntiEntropy()) {
          return true;
        }
        int copies = random.nextDouble() < faults.duplication ? 2 : 1;
        for (int i = 0; i < copies; i++) {
          long delay = faults.minDelayMillis + (faults.maxDelayMillis > faults.minDelayMillis
              ? random.nextInt((int) (faults.maxDelayMillis - faults.minDelayMillis + 1)) : 0);
          if (faults.reorder > 0 && random.nextDouble() < faults.reorder) {
            delay += 1 + random.nextInt((int) Math.max(1, faults.reorderMillis));
          }
          clock.schedule(() -> deliver(bytes), delay + paced(bytes, delay));
        }
        return true;
      }

      /** The extra delay the {@link Tap} asks for (0 without one). */
      private long paced(byte[] bytes, long delay) {
        Tap t = tap;
        if (t == null) {
          return 0;
        }
        long gap = t.sent(sender(), receiver(), Frames.decode(Unpooled.wrappedBuffer(bytes)));
        int dir = client ? 0 : 1;
        long at = Math.max(clock.now() + delay, lastPacedAt[dir] + gap);
        lastPacedAt[dir] = at;
        return at - clock.now() - delay;
      }

      private String sender() {
        return client ? from.id : to.id;
      }

      private String receiver() {
        return client ? to.id : from.id;
      }

      private void deliver(byte[] bytes) {
        if (!open || isCut(from, to)) {
          return;
        }
        framesDelivered++;
        trace = trace * 31 + Arrays.hashCode(bytes) * 7 + clock.now() + (client ? 1 : 2);
        Frames.Frame f = Frames.decode(Unpooled.wrappedBuffer(bytes));
        Tap t = tap;
        if (t != null) {
          t.delivered(sender(), receiver(), f);
        }
        if (client) {
          responder.onFrame(f);
        } else {
          link.onFrame(serverEnd, f);
        }
      }

      @Override
      public void flush() {
      }

      @Override
      public boolean isWritable() {
        return true;
      }

      @Override
      public void execute(Runnable task) {
        clock.execute(task);
      }

      @Override
      public void close() {
        Conn.this.close();
      }

      @Override
      public String remote() {
        return client ? to.id : from.id;
      }
    }
  }

  /** The nodes' counters, summed, and the frames delivered. */
  String summary() {
    long sent = 0;
    long acked = 0;
    long dropped = 0;
    long rounds = 0;
    long roundsFailed = 0;
    long pushed = 0;
    long pulled = 0;
    long malformed = 0;
    for (SimNode n : nodes()) {
      ReplicationStats st = n.stats.snapshot();
      sent += st.mutationsSent();
      acked += st.mutationsAcked();
      dropped += st.mutationsDropped();
      rounds += st.antiEntropyRounds();
      roundsFailed += st.antiEntropyRoundsFailed();
      pushed += st.antiEntropyKeysPushed();
      pulled += st.antiEntropyKeysPulled();
      malformed += st.malformedFrames();
    }
    return "t=" + clock.now() + " ms, " + framesDelivered + " frames delivered; fan-out mutations "
        + "sent " + sent + ", acked " + acked + ", dropped " + dropped + "; anti-entropy rounds "
        + rounds + " (+" + roundsFailed + " failed), keys pushed " + pushed + ", pulled " + pulled
        + "; protocol errors " + malformed;
  }

  /** Frames delivered so far. */
  long framesDelivered() {
    return framesDelivered;
  }

  /** A fingerprint of everything delivered (what, when, which way): equal runs have equal ones. */
  long trace() {
    return trace;
  }

  @Override
  public void close() {
    for (SimNode n : nodes()) {
      try {
        n.store.close();
      } catch (RuntimeException e) {
        // keep closing the others
      }
    }
  }

  // ---- the replicator --------------------------------------------------------------------------

  /** A node's {@link Replicator}: the engine, with the network's static membership. */
  final class SimReplicator implements Replicator {
    private final SimNode node;
    final List<Consumer<MembershipEvent>> listeners = new CopyOnWriteArrayList<>();

    SimReplicator(SimNode node) {
      this.node = node;
    }

    @Override
    public void start(ReplicaStore store) {
      started(node, store);
    }

    @Override
    public CompletableFuture<Void> replicate(Mutation mutation, WriteConcern concern,
        Duration timeout) {
      return node.engine.replicate(mutation, concern, timeout);
    }

    @Override
    public io.kvstore.core.spi.Router router() {
      return node.engine.router;
    }

    @Override
    public ClusterView clusterView() {
      return new ClusterView() {
        @Override
        public Member self() {
          return member(node);
        }

        @Override
        public List<Member> members() {
          List<Member> ms = new ArrayList<>();
          for (SimNode n : nodes()) {
            ms.add(member(n));
          }
          ms.sort(java.util.Comparator.comparing(Member::nodeId));
          return ms;
        }

        @Override
        public boolean isReady() {
          return true;
        }

        @Override
        public Registration addListener(Consumer<MembershipEvent> listener) {
          listeners.add(listener);
          return () -> listeners.remove(listener);
        }
      };
    }

    @Override
    public void close() {
      stopped(node);
    }
  }
}
