package io.kvstore.cluster;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Consumer;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The set of stable node ids that {@link Placement} is computed over, kept from membership changes,
 * and the placement of that set.
 *
 * <p><b>Rules.</b> A node joins the set as soon as one of its incarnations (ScaleCube members,
 * which change with every restart) is alive. It leaves the set only
 * <ul>
 *   <li>on a graceful leave: its member announced LEAVING (or was REMOVED after LEAVING), and no
 *       other incarnation of it is alive; or
 *   <li>after it has been continuously absent (REMOVED without LEAVING, no incarnation alive) for
 *       {@code removalDelay}; a node back before that, under the same or a new incarnation, never
 *       left, so it keeps its partitions and nothing moves.
 * </ul>
 * A SWIM suspicion changes nothing (ScaleCube 2.7 does not even report one; {@link #suspect} exists
 * so the rule is stated and tested). This node is always in its own set, whatever is reported about
 * its id. Because each node's fate depends only on the events about that node id, two trackers fed
 * the same events per node, in any interleaving between nodes, end with the same set, and so the
 * same placement, once their removal delays have run out.
 *
 * <p>When an incarnation goes alive or leaves, the absent incarnations of the same node id are
 * forgotten: the newer statement about the node wins, so a restarted node that then leaves
 * gracefully leaves at once, not when its crashed predecessor's delay runs out.
 *
 * <p>After {@link #selfLeaving()} (this node is closing) the tracker is frozen: no further change,
 * so a node shutting down with its peers does not compute placements it will never serve.
 *
 * <p><b>Map version.</b> {@link Placement#fingerprint()} of the current placement: a pure function
 * of the set and the replication factor, so nodes that agree on the set show the same version, and
 * an operator compares them across nodes. It is not monotonic (a set that returns to an earlier
 * value returns to the earlier version); {@link #changes()} counts this node's changes, for logs.
 *
 * <p><b>Threads.</b> Every method but {@link #placement()} runs on the control thread (the
 * {@link EngineScheduler} given), and so does the listener; {@link #placement()} may be read from
 * any thread.
 */
final class PlacementNodes {
  private static final Logger log = LoggerFactory.getLogger(PlacementNodes.class);

  private enum State { ALIVE, LEAVING, ABSENT }

  /** One ScaleCube member (incarnation) of a node id. */
  private static final class Incarnation {
    final String nodeId;
    State state;
    long absentSince;
    Cancellable expiry = Cancellable.NONE;

    Incarnation(String nodeId) {
      this.nodeId = nodeId;
    }
  }

  private final String self;
  private final int replicationFactor;
  private final long removalDelayMillis;
  private final EngineScheduler scheduler;
  private final LongSupplier clockMillis;
  private final Consumer<Placement> listener;

  // Confined to the control thread.
  private final Map<String, Incarnation> incarnations = new HashMap<>();
  private Set<String> nodes;
  private boolean frozen;
  private long changes;

  private volatile Placement placement;

  /**
   * @param self this node's id, always in the set
   * @param replicationFactor owners per partition; {@link KvClusterConfig#FULL_REPLICATION} (0) for
   *     every node owning every partition
   * @param removalDelayMillis how long a node must be absent before it leaves the set
   * @param scheduler the control thread, whose timers run the removal delay
   * @param clockMillis milliseconds on the same clock as the scheduler's delays
   * @param listener called on the control thread with each new placement
   */
  PlacementNodes(String self, int replicationFactor, long removalDelayMillis,
      EngineScheduler scheduler, LongSupplier clockMillis, Consumer<Placement> listener) {
    this.self = Objects.requireNonNull(self, "self");
    if (replicationFactor < 0) {
      throw new IllegalArgumentException("replicationFactor must be at least 1 (or 0 for full "
          + "replication), was " + replicationFactor);
    }
    if (removalDelayMillis <= 0) {
      throw new IllegalArgumentException("removalDelayMillis must be positive, was "
          + removalDelayMillis);
    }
    this.replicationFactor = replicationFactor;
    this.removalDelayMillis = removalDelayMillis;
    this.scheduler = Objects.requireNonNull(scheduler, "scheduler");
    this.clockMillis = Objects.requireNonNull(clockMillis, "clockMillis");
    this.listener = Objects.requireNonNull(listener, "listener");
    this.nodes = Set.of(self);
    this.placement = placementOf(nodes, replicationFactor);
  }

  /** The placement of a set: full replication when {@code replicationFactor} is 0. */
  static Placement placementOf(Set<String> nodes, int replicationFactor) {
    return Placement.of(nodes, replicationFactor == KvClusterConfig.FULL_REPLICATION
        ? Integer.MAX_VALUE : replicationFactor);
  }

  /** The current placement; any thread. */
  Placement placement() {
    return placement;
  }

  /** The node ids in the set, sorted (control thread). */
  List<String> nodes() {
    return List.copyOf(new TreeSet<>(nodes));
  }

  /** How many times the set changed on this node (control thread). */
  long changes() {
    return changes;
  }

  /** A member is alive: ScaleCube ADDED or UPDATED, with valid metadata. */
  void alive(String memberId, String nodeId) {
    if (ignored(nodeId)) {
      return;
    }
    forgetAbsent(nodeId, memberId);
    Incarnation inc = incarnations.computeIfAbsent(memberId, m -> new Incarnation(nodeId));
    inc.expiry.cancel();
    inc.expiry = Cancellable.NONE;
    inc.state = State.ALIVE;
    update(nodeId + " alive");
  }

  /** A member is suspected by the failure detector: changes nothing, by design. */
  void suspect(String memberId, String nodeId) {
    log.debug("node {}: member {} ({}) suspected; the placement set keeps it", self, memberId,
        nodeId);
  }

  /** A member announced a graceful leave (ScaleCube LEAVING). */
  void leaving(String memberId, String nodeId) {
    if (ignored(nodeId)) {
      return;
    }
    forgetAbsent(nodeId, memberId);
    Incarnation inc = incarnations.computeIfAbsent(memberId, m -> new Incarnation(nodeId));
    inc.expiry.cancel();
    inc.expiry = Cancellable.NONE;
    inc.state = State.LEAVING;
    update(nodeId + " left gracefully");
  }

  /**
   * A member was removed (ScaleCube REMOVED): after a LEAVING that completes the leave; otherwise
   * the node is absent, and leaves the set once it has stayed so for the removal delay.
   */
  void removed(String memberId, String nodeId) {
    if (ignored(nodeId)) {
      return;
    }
    Incarnation inc = incarnations.get(memberId);
    if (inc == null) {
      return; // never seen alive: this incarnation never put the node in the set
    }
    if (inc.state == State.LEAVING) {
      incarnations.remove(memberId);
      update(nodeId + " left gracefully");
    } else if (inc.state == State.ALIVE) {
      inc.state = State.ABSENT;
      inc.absentSince = clockMillis.getAsLong();
      inc.expiry = scheduler.schedule(this::expire, removalDelayMillis);
      log.info("node {}: member {} ({}) removed without leaving; it stays in the placement set "
          + "unless it is still absent in {} ms", self, memberId, nodeId, removalDelayMillis);
      update(nodeId + " absent");
    }
  }

  /** This node is leaving gracefully: freeze the set (see the class comment). */
  void selfLeaving() {
    frozen = true;
    for (Incarnation inc : incarnations.values()) {
      inc.expiry.cancel();
    }
  }

  private boolean ignored(String nodeId) {
    return frozen || self.equals(nodeId);
  }

  /** Drops the absent incarnations of a node other than {@code memberId}: superseded. */
  private void forgetAbsent(String nodeId, String memberId) {
    Iterator<Map.Entry<String, Incarnation>> it = incarnations.entrySet().iterator();
    while (it.hasNext()) {
      Map.Entry<String, Incarnation> e = it.next();
      Incarnation inc = e.getValue();
      if (inc.nodeId.equals(nodeId) && !e.getKey().equals(memberId)
          && inc.state != State.ALIVE) {
        inc.expiry.cancel();
        it.remove();
      }
    }
  }

  /** A removal delay ran out (control thread): drop what has been absent long enough. */
  private void expire() {
    if (frozen) {
      return;
    }
    long now = clockMillis.getAsLong();
    long soonest = Long.MAX_VALUE;
    List<String> expired = new ArrayList<>();
    Iterator<Incarnation> it = incarnations.values().iterator();
    while (it.hasNext()) {
      Incarnation inc = it.next();
      if (inc.state != State.ABSENT) {
        continue;
      }
      long left = inc.absentSince + removalDelayMillis - now;
      if (left <= 0) {
        it.remove();
        expired.add(inc.nodeId);
      } else {
        soonest = Math.min(soonest, left);
      }
    }
    if (soonest != Long.MAX_VALUE && expired.isEmpty()) {
      // Woken early (a timer of another incarnation, or a coarse clock): wait for the next one.
      scheduler.schedule(this::expire, soonest);
    }
    if (!expired.isEmpty()) {
      update(String.join(", ", new TreeSet<>(expired)) + " absent for " + removalDelayMillis
          + " ms");
    }
  }

  private Set<String> computeSet() {
    Set<String> set = new TreeSet<>();
    set.add(self);
    for (Incarnation inc : incarnations.values()) {
      if (inc.state == State.ALIVE || inc.state == State.ABSENT) {
        set.add(inc.nodeId);
      }
    }
    return set;
  }

  private void update(String why) {
    Set<String> next = computeSet();
    if (next.equals(nodes)) {
      return;
    }
    Placement before = placement;
    Placement after = placementOf(next, replicationFactor);
    TreeSet<String> joined = new TreeSet<>(next);
    joined.removeAll(nodes);
    TreeSet<String> left = new TreeSet<>(nodes);
    left.removeAll(next);
    nodes = next;
    placement = after;
    changes++;
    int gained = 0;
    int lost = 0;
    for (int p = 0; p < Placement.PARTITIONS; p++) {
      boolean had = before.owns(self, p);
      boolean has = after.owns(self, p);
      gained += !had && has ? 1 : 0;
      lost += had && !has ? 1 : 0;
    }
    log.info("node {}: placement set change #{} ({}): {}{}now {} nodes, rf {}, map version {}; this "
        + "node owns {} of {} partitions (+{} moving to it, -{} moving away)", self, changes, why,
        joined.isEmpty() ? "" : "joined " + joined + ", ", left.isEmpty() ? "" : "left " + left
        + ", ", next.size(), after.replicationFactor(), Long.toHexString(after.fingerprint()),
        after.partitionCount(self), Placement.PARTITIONS, gained, lost);
    listener.accept(after);
  }
}
