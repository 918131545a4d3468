package io.kvstore.cluster;

import io.kvstore.core.ConditionFailedException;
import io.kvstore.core.KvStoreException;
import io.kvstore.core.ReadConcern;
import io.kvstore.core.Version;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteConcernException;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.ReplicaStore;
import io.kvstore.core.spi.Router;
import io.kvstore.core.spi.WriteRequest;
import io.kvstore.core.spi.WriteResult;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The store's {@link Router} in a cluster: where each key lives under the engine's current
 * {@link Placement}, and the client side of the two requests a node sends to a key's owners when it
 * does not own the key itself.
 *
 * <ul>
 *   <li><b>Ownership.</b> With no placement or a full-replication one every key is local, exactly as
 *       before partitioned mode existed. Otherwise a key is local when this node is one of the
 *       owners of its partition.
 *   <li><b>Forwarded writes.</b> A write of a key this node does not own goes, as a
 *       {@link Frames.Forward}, to the first owner (in the placement's preference order) with a ready
 *       connection. The owner runs it as its own local write ({@link ReplicaStore#write}): it stamps
 *       it, checks its condition, replicates it to the other owners and counts the concern among
 *       them, then answers. The owner never forwards it again (no loops, whatever its own view of the
 *       placement). A request whose answer does not come is never re-sent to another owner: it may
 *       have been applied (a conditional write must not run twice), so it fails with a
 *       {@link WriteConcernException} saying the outcome is unknown.
 *   <li><b>Remote reads.</b> {@link ReadConcern#ONE}: this node if it owns the key, else the first
 *       owner with a ready connection. {@link ReadConcern#QUORUM}: this node's own copy (if an owner)
 *       and every reachable owner are asked; once a majority of the key's owners answered, the highest
 *       version wins and every owner that answered with an older one (or none) is repaired: this node
 *       applies it, a peer gets it as an anti-entropy push.
 * </ul>
 *
 * <p>Futures complete on the engine's callback executor, never on a network thread. Requests waiting
 * for a peer fail at once when its connection is lost, and at their timeout otherwise.
 */
final class PartitionRouter implements Router {
  private static final Logger log = LoggerFactory.getLogger(PartitionRouter.class);
  /** Extra time a forwarding node waits beyond the owner's own write timeout. */
  static final long FORWARD_MARGIN_MILLIS = 1_000;
  /**
   * When every owner refused a forwarded write as pending (nothing ran anywhere: their maps differ
   * from this node's for a moment, around a join or leave, or they still pull the key's partition
   * and the write is conditional), it is tried again after this long, with the owners of the map
   * then, at most {@link #FORWARD_RETRIES} times and only within the write's timeout.
   */
  static final long FORWARD_RETRY_MILLIS = 100;
  static final int FORWARD_RETRIES = 5;

  private final ReplicationEngine engine;
  private final ReplicaStore store;
  private final String self;
  private final AtomicLong requestIds = new AtomicLong();
  private final Map<Long, Pending> pending = new ConcurrentHashMap<>();

  /** A request sent to a peer (over {@code link}), waiting for its answer. */
  private record Pending(PeerLink link, Consumer<Frames.Frame> onAnswer,
      Consumer<String> onFailure, Cancellable timer) {}

  PartitionRouter(ReplicationEngine engine) {
    this.engine = engine;
    this.store = engine.ctx.store();
    this.self = engine.nodeId();
  }

  // ---- ownership -------------------------------------------------------------------------------

  @Override
  public boolean isLocal(String key) {
    Placement p = engine.placement();
    return p == null || p.isFullReplication() || p.owns(self, Placement.partitionOf(key));
  }

  /**
   * Whether a read at ONE of the key is served by this node's own copy: it owns the key and is not
   * still pulling its partition (a pending owner's copy may lack data the old owners hold).
   */
  @Override
  public boolean isReadLocal(String key) {
    return isLocal(key) && !engine.isPending(key);
  }

  /**
   * The key's owners for a read or a forwarded write, preferred first: owners that are not pending
   * (as far as this node knows) before pending ones, each group in placement order.
   */
  List<String> readOrder(String key) {
    List<String> owners = owners(key);
    List<String> ready = new ArrayList<>(owners.size());
    List<String> pendingOwners = new ArrayList<>(0);
    for (String o : owners) {
      boolean pend = o.equals(self) ? engine.isPending(key) : engine.isPeerPending(o, key);
      (pend ? pendingOwners : ready).add(o);
    }
    ready.addAll(pendingOwners);
    return ready;
  }

  /** The key's owners, preferred first: the placement's, or with full replication every live node. */
  List<String> owners(String key) {
    Placement p = engine.placement();
    if (p != null && !p.isFullReplication()) {
      return p.ownersOf(key);
    }
    Set<String> all = new LinkedHashSet<>();
    all.add(self);
    for (PeerLink l : engine.liveLinks()) {
      all.add(l.nodeId);
    }
    return new ArrayList<>(all);
  }

  // ---- forwarded writes ------------------------------------------------------------------------

  @Override
  public CompletableFuture<WriteResult> forward(WriteRequest request) {
    CompletableFuture<WriteResult> result = new CompletableFuture<>();
    long deadline = engine.ctx.nanoTime().getAsLong() + request.timeoutMillis() * 1_000_000;
    forwardAttempt(request, result, deadline, 0);
    return result;
  }

  private void forwardAttempt(WriteRequest request, CompletableFuture<WriteResult> result,
      long deadlineNanos, int attempt) {
    List<String> owners = readOrder(request.key());
    int required = request.concern().requiredAcks(Math.max(1, owners.size()));
    forwardTo(request, owners, 0, required, result, null, () -> {
      long left = deadlineNanos - engine.ctx.nanoTime().getAsLong();
      if (attempt >= FORWARD_RETRIES || left <= FORWARD_RETRY_MILLIS * 1_000_000) {
        return false;
      }
      engine.ctx.control().schedule(() -> forwardAttempt(request, result, deadlineNanos,
          attempt + 1), FORWARD_RETRY_MILLIS);
      return true;
    });
  }

  /**
   * Sends the write to the first owner from {@code from} on with a ready connection. An owner that
   * refuses it as pending (it wrote nothing) passes it to the next; an unanswered one never does.
   */
  private void forwardTo(WriteRequest request, List<String> owners, int from, int required,
      CompletableFuture<WriteResult> result, String refusal,
      java.util.function.BooleanSupplier retryLater) {
    PeerLink link = null;
    int at = from;
    for (; at < owners.size() && link == null; at++) {
      if (!owners.get(at).equals(self)) {
        link = engine.readyLink(owners.get(at));
      }
    }
    if (link == null) {
      if (refusal != null && retryLater.getAsBoolean()) {
        return; // every owner refused as pending: nothing ran, so it is tried again
      }
      fail(result, new WriteConcernException(request.concern(), required, 0,
          (refusal != null ? refusal + "; " : "") + "no " + (from > 0 ? "other " : "")
              + "owner of key '" + request.key() + "' " + owners + " is reachable from node "
              + self + "; nothing was written"));
      return;
    }
    String owner = link.nodeId;
    int next = at;
    long id = requestIds.incrementAndGet();
    long timeout = request.timeoutMillis() + FORWARD_MARGIN_MILLIS;
    boolean sent = send(link, id, Frames.forward(ByteBufAllocator.DEFAULT, id, request), timeout,
        answer -> {
          Frames.ForwardResult a = (Frames.ForwardResult) answer;
          if (a.status() == Frames.FORWARD_PENDING) {
            forwardTo(request, owners, next, required, result, "owner " + owner + ": "
                + a.message(), retryLater);
          } else {
            complete(result, answerOf(request, owner, required, a));
          }
        },
        problem -> fail(result, new WriteConcernException(request.concern(), required, 0,
            "owner " + owner + " of key '" + request.key() + "' " + problem
                + "; the write may or may not have been applied there")));
    if (!sent) { // the link closed since it was picked: nothing left, so the next owner may run it
      forwardTo(request, owners, next, required, result, "owner " + owner + " is no longer "
          + "connected", retryLater);
    }
  }

  private static Object answerOf(WriteRequest r, String owner, int required,
      Frames.ForwardResult a) {
    return switch (a.status()) {
      case Frames.FORWARD_OK -> new WriteResult(a.version(), a.wasLive());
      case Frames.FORWARD_CONDITION_FAILED -> new ConditionFailedException(r.key(),
          r.ifAbsent() ? "no value" : "version " + r.expectedVersion(), a.version());
      case Frames.FORWARD_CONCERN_FAILED -> new WriteConcernException(r.concern(), a.required(),
          a.acked(), "on owner " + owner + ": " + a.message());
      case Frames.FORWARD_INVALID -> new IllegalArgumentException(
          "owner " + owner + " refused the write: " + a.message());
      default -> new KvStoreException("owner " + owner + " could not run the write: "
          + a.message());
    };
  }

  // ---- remote reads ----------------------------------------------------------------------------

  @Override
  public CompletableFuture<Mutation> read(String key, ReadConcern concern, Duration timeout) {
    List<String> owners = readOrder(key);
    boolean localOwner = owners.contains(self);
    int required = concern.requiredReplies(Math.max(1, owners.size()));
    ReadRound round = new ReadRound(key, concern, required, owners.size(), timeout);
    if (concern == ReadConcern.ONE) {
      readOne(round, key, owners, 0, timeout);
      return round.result;
    }
    if (localOwner) {
      round.answer(self, store.mutation(key), engine.isPending(key));
    }
    if (round.isDone()) {
      return round.result;
    }
    int asked = 0;
    for (String owner : owners) {
      if (owner.equals(self)) {
        continue;
      }
      PeerLink link = engine.readyLink(owner);
      if (link == null) {
        round.unreachable(owner);
        continue;
      }
      ask(round, link, key, timeout, () -> { });
      asked++;
    }
    if (asked == 0 && !round.isDone()) {
      round.fail("no owner " + owners + " is reachable from node " + self);
    }
    round.seal();
    return round.result;
  }

  /** Sends one owner a READ for the round; {@code then} runs after its answer or failure. */
  private void ask(ReadRound round, PeerLink link, String key, Duration timeout, Runnable then) {
    String owner = link.nodeId;
    long id = requestIds.incrementAndGet();
    round.asking();
    Consumer<String> failed = problem -> {
      round.failed(owner, problem);
      then.run();
    };
    if (!send(link, id, Frames.read(ByteBufAllocator.DEFAULT, id, key), timeout.toMillis(),
        answer -> {
          Frames.ReadResult r = (Frames.ReadResult) answer;
          round.answer(owner, r.mutation(), r.pending());
          then.run();
        }, failed)) {
      failed.accept("is not connected");
    }
  }

  /**
   * A read at ONE: the owners in {@link #readOrder}, one at a time, until one that is not pending
   * answers; when every reachable owner is pending, the newest of their answers.
   */
  private void readOne(ReadRound round, String key, List<String> owners, int from,
      Duration timeout) {
    for (int i = from; i < owners.size(); i++) {
      String owner = owners.get(i);
      if (owner.equals(self)) {
        round.answer(self, store.mutation(key), engine.isPending(key));
        if (round.isDone()) {
          return;
        }
        continue;
      }
      PeerLink link = engine.readyLink(owner);
      if (link == null) {
        round.unreachable(owner);
        continue;
      }
      int next = i + 1;
      ask(round, link, key, timeout, () -> {
        if (!round.isDone()) {
          readOne(round, key, owners, next, timeout);
        }
      });
      return;
    }
    round.exhausted("no owner " + owners + " is reachable from node " + self);
  }

  /**
   * The answers of one read. Synchronized: answers arrive on network threads, the timeout on the
   * control thread.
   */
  private final class ReadRound {
    final CompletableFuture<Mutation> result = new CompletableFuture<>();
    private final String key;
    private final ReadConcern concern;
    private final int required;
    private final int owners;
    private final Map<String, Mutation> answers = new java.util.LinkedHashMap<>();
    private final Set<String> answered = new LinkedHashSet<>();
    /** Answers of owners that are not pending: only these count toward {@code required}... */
    private int readyAnswers;
    private int outstanding;
    private boolean sealed;
    private String lastProblem;
    private boolean done;
    private final Cancellable timer;

    ReadRound(String key, ReadConcern concern, int required, int owners, Duration timeout) {
      this.key = key;
      this.concern = concern;
      this.required = required;
      this.owners = owners;
      this.timer = engine.ctx.control().schedule(() -> fail("only " + answeredCount() + " of "
          + required + " owner(s) answered within " + timeout.toMillis() + " ms"),
          Math.max(1, timeout.toMillis()));
    }

    synchronized boolean isDone() {
      return done;
    }

    private synchronized int answeredCount() {
      return answered.size();
    }

    /**
     * An owner's answer; {@code pending}: it is still pulling the partition, so its answer counts
     * toward the concern only when too few other owners can answer (see {@link #settle}).
     */
    void answer(String owner, Mutation m, boolean pending) {
      synchronized (this) {
        if (!owner.equals(self)) {
          outstanding--;
        }
        if (done || !answered.add(owner)) {
          return;
        }
        answers.put(owner, m);
        if (!pending) {
          readyAnswers++;
        }
        if (readyAnswers < required && !(sealed && outstanding == 0)) {
          return;
        }
      }
      settle();
    }

    /**
     * Completes the read if it can: once {@code required} owners that are not pending answered; or,
     * when no more answers are coming, with the newest of all answers if at least {@code required}
     * owners answered, pending ones included (every owner is still pulling, as right after a cluster
     * starts or loses rf - 1 owners of a partition: their answers are the best there is).
     */
    void settle() {
      Mutation found;
      Map<String, Mutation> snapshot;
      synchronized (this) {
        if (done || (readyAnswers < required
            && !(sealed && outstanding == 0 && answered.size() >= required))) {
          return;
        }
        done = true;
        found = newest(answers.values());
        if (readyAnswers < required && !answers.containsKey(self)) {
          // No owner could answer with authority (each is still pulling, or its map differs from
          // this node's for a moment, as right after a join moved the partition to new owners):
          // this node's own copy counts too, newest wins. It may be an old owner that still holds
          // the key until the new owners have pulled it (PartitionedClusterTest read empty there).
          found = newest(java.util.Arrays.asList(found, store.mutation(key)));
        }
        snapshot = Map.copyOf(withNulls(answers));
      }
      Mutation newest = found;
      timer.cancel();
      engine.runCallback(() -> result.complete(newest));
      if (concern == ReadConcern.QUORUM && newest != null) {
        repair(newest, snapshot);
      }
    }

    /** A request to one more owner is about to be sent. */
    synchronized void asking() {
      outstanding++;
    }

    /** Every owner that will be asked has been: fail now if the answers cannot suffice. */
    void seal() {
      synchronized (this) {
        sealed = true;
      }
      failIfShort(lastProblem);
    }

    /** Every owner has been tried (a read at ONE): the answers there are, or a failure. */
    void exhausted(String why) {
      synchronized (this) {
        sealed = true;
      }
      settle();
      String problem;
      synchronized (this) {
        problem = lastProblem;
      }
      fail(problem == null ? why : problem + "; " + why);
    }

    void unreachable(String owner) {
      synchronized (this) {
        lastProblem = "owner " + owner + " is not connected";
      }
    }

    void failed(String owner, String problem) {
      synchronized (this) {
        outstanding--;
        lastProblem = "owner " + owner + " " + problem;
      }
      failIfShort(lastProblem);
    }

    private void failIfShort(String problem) {
      synchronized (this) {
        if (done || !sealed) {
          return;
        }
      }
      settle(); // enough answers, pending ones among them, and no more to come: settle decides
      synchronized (this) {
        if (done || answered.size() + outstanding >= required) {
          return;
        }
      }
      fail((problem == null ? "" : problem + ", so ") + "fewer than " + required + " of "
          + owners + " owner(s) can answer");
    }

    void fail(String why) {
      synchronized (this) {
        if (done) {
          return;
        }
        done = true;
      }
      timer.cancel();
      KvStoreException e = new KvStoreException("read at " + concern + " of key '" + key + "': "
          + why);
      engine.runCallback(() -> result.completeExceptionally(e));
    }
  }

  private static Map<String, Mutation> withNulls(Map<String, Mutation> answers) {
    Map<String, Mutation> out = new java.util.HashMap<>();
    answers.forEach((k, v) -> out.put(k, v == null ? NONE : v));
    return out;
  }

  /** Stands for "held nothing" in an immutable map. */
  private static final Mutation NONE = Mutation.delete("-", Version.of(0, "-"));

  private static Mutation newest(Iterable<Mutation> ms) {
    Mutation best = null;
    for (Mutation m : ms) {
      if (m != null && (best == null || m.version().compareTo(best.version()) > 0)) {
        best = m;
      }
    }
    return best;
  }

  /** Read repair: every owner that answered with an older version (or none) gets the newest. */
  private void repair(Mutation newest, Map<String, Mutation> answers) {
    answers.forEach((owner, m) -> {
      if (m != NONE && m.version().compareTo(newest.version()) >= 0) {
        return;
      }
      if (owner.equals(self)) {
        store.apply(newest);
        return;
      }
      PeerLink link = engine.readyLink(owner);
      if (link != null) {
        link.pushAe(List.of(newest), Frames.mutationSize(newest));
      }
    });
    log.debug("node {}: read repair of '{}' at {}", self, newest.key(), newest.version());
  }

  // ---- scatter-gather scan ---------------------------------------------------------------------

  @Override
  public boolean isPartitioned() {
    Placement p = engine.placement();
    return p != null && !p.isFullReplication();
  }

  /**
   * Asks this node and every node with a ready connection for its first {@code limit} live entries
   * after {@code startAfter}; merges them by key, keeping the highest version. A key in the cluster's
   * first {@code limit} is in the first {@code limit} of every node holding it, so the merge is exact
   * once every partition has an owner among the nodes that answered (else the scan fails, naming the
   * partitions). A node that had to truncate its answer (bytes) caps the page at its last key.
   * Entries a stale owner still shows as live while a newer tombstone waits for anti-entropy on the
   * others can appear, as with a read at ONE.
   */
  @Override
  public CompletableFuture<List<Mutation>> scan(String prefix, String startAfter, int limit,
      Duration timeout) {
    Placement placement = engine.placement();
    CompletableFuture<List<Mutation>> result = new CompletableFuture<>();
    List<PeerLink> links = new ArrayList<>();
    Set<String> seen = new java.util.HashSet<>();
    for (PeerLink l : engine.liveLinks()) {
      if (l.isReady() && seen.add(l.nodeId)) {
        links.add(l);
      }
    }
    ScanRound round = new ScanRound(placement, limit, links.size() + 1, result, timeout);
    List<Mutation> mine;
    try {
      mine = store.scanLocal(prefix, startAfter, limit);
    } catch (RuntimeException e) {
      result.completeExceptionally(e);
      return result;
    }
    round.answer(self, false, mine);
    for (PeerLink link : links) {
      long id = requestIds.incrementAndGet();
      String node = link.nodeId;
      if (!send(link, id, Frames.scan(ByteBufAllocator.DEFAULT, id, prefix, startAfter, limit),
          timeout.toMillis(), answer -> {
            Frames.ScanResult r = (Frames.ScanResult) answer;
            round.answer(node, r.truncated(), r.mutations());
          }, problem -> round.answer(node, false, null))) {
        round.answer(node, false, null);
      }
    }
    return result;
  }

  /** The answers of one scan; null mutations: the node did not answer. */
  private final class ScanRound {
    private final Placement placement;
    private final int limit;
    private final CompletableFuture<List<Mutation>> result;
    private final java.util.TreeMap<String, Mutation> merged = new java.util.TreeMap<>();
    private final Set<String> answered = new java.util.HashSet<>();
    private final Cancellable timer;
    private int waiting;
    private String cap;
    private boolean done;

    ScanRound(Placement placement, int limit, int nodes, CompletableFuture<List<Mutation>> result,
        Duration timeout) {
      this.placement = placement;
      this.limit = limit;
      this.waiting = nodes;
      this.result = result;
      this.timer = engine.ctx.control().schedule(this::finish, Math.max(1, timeout.toMillis()));
    }

    void answer(String node, boolean truncated, List<Mutation> ms) {
      boolean last;
      synchronized (this) {
        if (done) {
          return;
        }
        if (ms != null) {
          answered.add(node);
          for (Mutation m : ms) {
            merged.merge(m.key(), m, (a, b) -> a.version().compareTo(b.version()) >= 0 ? a : b);
          }
          if (truncated && !ms.isEmpty()) {
            String lastKey = ms.get(ms.size() - 1).key();
            cap = cap == null || lastKey.compareTo(cap) < 0 ? lastKey : cap;
          }
        }
        last = --waiting == 0;
      }
      if (last) {
        finish();
      }
    }

    /** All answered, or the timeout: complete if every partition had an owner answer. */
    private void finish() {
      List<Mutation> page = new ArrayList<>();
      String missing = null;
      synchronized (this) {
        if (done) {
          return;
        }
        done = true;
        if (placement != null && !placement.isFullReplication()) {
          List<Integer> uncovered = new ArrayList<>();
          for (int p = 0; p < Placement.PARTITIONS; p++) {
            boolean covered = false;
            for (String o : placement.owners(p)) {
              if (answered.contains(o)) {
                covered = true;
                break;
              }
            }
            if (!covered) {
              uncovered.add(p);
            }
          }
          if (!uncovered.isEmpty()) {
            missing = uncovered.size() + " partition(s) (first " + uncovered.get(0)
                + ", owners " + placement.owners(uncovered.get(0)) + ") had no owner answer";
          }
        }
        for (Mutation m : merged.values()) {
          if (page.size() == limit || (cap != null && m.key().compareTo(cap) > 0)) {
            break;
          }
          page.add(m);
        }
      }
      timer.cancel();
      if (missing != null) {
        KvStoreException e = new KvStoreException("scan: " + missing + "; the page would be "
            + "incomplete");
        engine.runCallback(() -> result.completeExceptionally(e));
      } else {
        engine.runCallback(() -> result.complete(page));
      }
    }
  }

  // ---- requests --------------------------------------------------------------------------------

  /**
   * Sends a request and waits for its answer: exactly one of {@code onAnswer} and
   * {@code onFailure} runs later, unless this returns false: the link could not take the frame (it
   * is down or closed), nothing was sent and neither runs.
   */
  private boolean send(PeerLink link, long id, ByteBuf frame, long timeoutMillis,
      Consumer<Frames.Frame> onAnswer, Consumer<String> onFailure) {
    Cancellable timer = engine.ctx.control().schedule(() -> {
      Pending p = pending.remove(id);
      if (p != null) {
        p.onFailure.accept("did not answer within " + timeoutMillis + " ms");
        p.link.closeIfAnswered();
      }
    }, Math.max(1, timeoutMillis));
    // Registered before the frame goes, so an answer never finds it missing, and so a link that
    // closes meanwhile either sees it (and keeps the connection for its answer) or refuses it.
    pending.put(id, new Pending(link, onAnswer, onFailure, timer));
    if (!link.sendAe(frame)) {
      timer.cancel();
      if (pending.remove(id) == null) {
        return true; // the connection ended meanwhile and failed it (peerLost): it was sent
      }
      link.closeIfAnswered();
      return false;
    }
    return true;
  }

  /** An answer from a peer (on its connection's thread). Unknown ids (late answers) are ignored. */
  void onAnswer(String peer, long requestId, Frames.Frame answer) {
    Pending p = pending.get(requestId);
    if (p == null || !p.link.nodeId.equals(peer)) {
      return; // late (timed out), or not this peer's to answer
    }
    pending.remove(requestId);
    p.timer.cancel();
    p.onAnswer.accept(answer);
    p.link.closeIfAnswered();
  }

  /** Whether a request sent over {@code link} still awaits its answer. Any thread. */
  boolean awaitsAnswerOver(PeerLink link) {
    for (Pending p : pending.values()) {
      if (p.link == link) {
        return true;
      }
    }
    return false;
  }

  // ---- cluster-wide listeners -----------------------------------------------------------------

  /** A cluster-wide listener's subscription: sent to every peer on connect, ended on close. */
  private record Subscription(String prefix, Consumer<Mutation> sink) {}

  private final Map<Long, Subscription> subscriptions = new ConcurrentHashMap<>();
  private final AtomicLong subscriptionIds = new AtomicLong();

  /**
   * Subscribes to every peer with a ready connection now, and to each peer whose connection
   * becomes ready later ({@link #onLinkReady}); a peer sends the changes it applies, as an owner,
   * of keys starting with {@code prefix} that this node does not own in its view (so nothing under
   * full replication). Changes while a connection is down are not replayed.
   */
  @Override
  public io.kvstore.core.Registration subscribe(String prefix, Consumer<Mutation> sink) {
    long id = subscriptionIds.incrementAndGet();
    if (subscriptions.size() >= Frames.MAX_SUBSCRIPTIONS_PER_CONNECTION) {
      throw new IllegalStateException("at most " + Frames.MAX_SUBSCRIPTIONS_PER_CONNECTION
          + " cluster-wide listeners per node");
    }
    if (prefix == null
        || prefix.getBytes(java.nio.charset.StandardCharsets.UTF_8).length > Frames.MAX_KEY_BYTES) {
      throw new IllegalArgumentException("prefix must be a string of at most "
          + Frames.MAX_KEY_BYTES + " UTF-8 bytes");
    }
    subscriptions.put(id, new Subscription(prefix, sink));
    for (PeerLink l : engine.liveLinks()) {
      if (l.isReady()) {
        l.sendAe(Frames.subscribe(ByteBufAllocator.DEFAULT, id, prefix));
      }
    }
    return () -> {
      if (subscriptions.remove(id) != null) {
        for (PeerLink l : engine.liveLinks()) {
          if (l.isReady()) {
            l.sendAe(Frames.unsubscribe(ByteBufAllocator.DEFAULT, id));
          }
        }
      }
    };
  }

  /** A connection to a peer is ready: it gets every subscription (any thread). */
  void onLinkReady(PeerLink link) {
    subscriptions.forEach((id, s) ->
        link.sendAe(Frames.subscribe(ByteBufAllocator.DEFAULT, id, s.prefix())));
  }

  /** A peer's event for one of this node's subscriptions (on its connection's thread). */
  void onEvent(String peer, Frames.Event e) {
    Subscription s = subscriptions.get(e.subscriptionId());
    if (s != null && e.mutation().key().startsWith(s.prefix())) {
      s.sink().accept(e.mutation());
    }
  }

  /** The connection to a peer ended: its unanswered requests fail now. */
  void peerLost(String peer) {
    pending.forEach((id, p) -> {
      if (p.link.nodeId.equals(peer) && pending.remove(id, p)) {
        p.timer.cancel();
        p.onFailure.accept("lost its connection before answering");
      }
    });
  }

  private void complete(CompletableFuture<WriteResult> f, Object outcome) {
    if (outcome instanceof WriteResult r) {
      engine.runCallback(() -> f.complete(r));
    } else {
      fail(f, (RuntimeException) outcome);
    }
  }

  private void fail(CompletableFuture<WriteResult> f, RuntimeException e) {
    engine.runCallback(() -> f.completeExceptionally(e));
  }
}
