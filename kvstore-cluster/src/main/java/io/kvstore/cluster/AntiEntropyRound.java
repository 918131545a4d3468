package io.kvstore.cluster;

import io.kvstore.core.spi.AntiEntropy;
import io.kvstore.core.spi.Digest;
import io.kvstore.core.spi.KeyVersion;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.ReplicaStore;
import io.netty.buffer.ByteBufAllocator;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One anti-entropy round this node starts with one peer, over this node's outgoing connection.
 *
 * <ol>
 *   <li>Send the digest (chunks of {@value #DIGEST_CHUNK} buckets).</li>
 *   <li>The peer answers with the differing buckets it covers (AE_DIFF; "more" if it left some out to
 *       bound the round) and its keys and versions in them (AE_KEYS chunks).</li>
 *   <li>Compare with this node's keys of the same buckets ({@link AntiEntropy#compare}).</li>
 *   <li>Push what this node holds newer, one frame of up to {@code maxBatchBytes} at a time, each
 *       acknowledged before the next.</li>
 *   <li>Pull what the peer holds newer: ask for up to {@value #PULL_KEYS} keys; the peer answers with
 *       as many mutations as fit in one frame and says how many keys it covered; ask again for the
 *       rest.</li>
 * </ol>
 * Both sides apply with the ordinary last-writer-wins merge, so a lost, repeated or crossed message is
 * harmless, and memory on both sides stays within a frame or two besides the key lists. Every wait has
 * the round's step timeout. Computation runs on the node's anti-entropy executor, never on a network
 * thread; frames arrive through {@link #onFrame} from the link's event loop.
 *
 * <p><b>Partitioned mode</b> (an {@link Ownership} is given): a pull round (this node has pending
 * partitions to pull from the peer) compares only those ({@link Ownership#pullMask}); any other
 * round only the buckets of {@link Ownership#initiatorMask}: partitions both nodes own (in this
 * node's view) that the peer is not pulling itself, and, for a handoff, the non-empty buckets of
 * partitions the peer owns and this node no longer does. It keeps
 * only the differing buckets the peer covers (the peer masks with its own view, see
 * {@link ReplicationEngine}) that are also in that mask, pushes what it holds newer in them, and
 * pulls only keys of partitions it owns itself; a handoff bucket is push only. Keys the peer refuses
 * (it does not own them in its view) are not counted as handed off. A round whose mask is empty ends
 * at once without a message.
 *
 * <p><b>Streaming</b> (partitioned mode, {@link PendingPulls}): of the pulled partitions, those
 * this node held nothing of when it gained them are named again in AE_PULL_REQUEST's second bitmap,
 * and the peer sends its entries of their differing buckets at once as AE_STREAM frames (before its
 * AE_DIFF, on the same connection) instead of listing their keys: no compare, no pull round trips,
 * each entry moved once. This node applies them as they arrive (on the link's thread, like fan-out;
 * only entries of partitions it asked to stream and owns) and leaves those buckets out of the
 * compare, so nothing of them is pushed back. The peer leaves whole buckets out like any others when
 * the round's key budget is used up; such a partition is not complete from that peer and the next
 * round streams the rest.
 *
 * <p>A pulled partition counts as complete from the peer only if the peer's AE_DIFF says it saw the
 * round's AE_PULL_REQUEST (else it answered with its own view, maybe without those partitions) and,
 * for a streamed one, if every entry it says it streamed arrived before its AE_KEYS ended. The
 * simulation loses, duplicates and reorders single frames, which TCP never does; the protocol
 * holds under both.
 *
 * <p>A long round shows progress at INFO, at most every {@link #PROGRESS_INTERVAL_NANOS} ("catch-up
 * from p1: 12000 entries received (~20000 estimated)"), and a round that moved at least
 * {@value #SUMMARY_THRESHOLD} entries ends with a summary line; the steady state logs nothing.
 */
final class AntiEntropyRound {
  static final int DIGEST_CHUNK = 16 * 1024;
  /** While fan-out is behind, a difference this many intervals young is left to it. */
  static final int YOUNG_INTERVALS = 5;
  static final int PULL_KEYS = 4096;
  /** A round that moves at least this many entries logs a summary at INFO. */
  static final int SUMMARY_THRESHOLD = 1_000;
  /** The least time between two progress lines of one round. */
  static final long PROGRESS_INTERVAL_NANOS = TimeUnit.SECONDS.toNanos(5);

  private static final Logger log = LoggerFactory.getLogger(AntiEntropyRound.class);

  /** Tests shorten the progress interval; production rounds use {@link #PROGRESS_INTERVAL_NANOS}. */
  static volatile long progressIntervalNanos = PROGRESS_INTERVAL_NANOS;

  /** What a completed round found. */
  /**
   * What a completed round found.
   *
   * @param youngSkipped differing keys left to the live path because fan-out was behind and their
   *     newer version was young ({@link #reconcile}): in sync but for writes still on their way
   * @param yielded the round stopped early because fan-out became behind ({@link #yieldToFanOut})
   */
  record Outcome(boolean more, int pushed, int pulled, int handedOff, boolean handoffDeferred,
      int youngSkipped, boolean yielded) {
    Outcome(boolean more, int pushed, int pulled) {
      this(more, pushed, pulled, 0, false, 0, false);
    }
  }

  final long roundId;
  private final ReplicationEngine.Context ctx;
  private final PeerLink link;
  private final ReplicaStore store;
  private final Executor executor;
  private final EngineScheduler timers;
  private final LongSupplier nanoTime;
  private final long stepTimeoutMillis;
  private final int maxBatchBytes;
  /** This node's view of the placement in partitioned mode; null in full replication. */
  private final Ownership own;
  private final boolean handoff;
  /** Partitions this node pulls from the peer whoever owns them (pending ones); never null. */
  private final BitSet pull;
  /** The partitions the peer pulls itself (its STATUS); never null. */
  private final BitSet peerPulls;
  /** Of {@link #pull}, those the peer is asked to stream; never null. */
  private final BitSet stream;
  /** The covered buckets of streamed partitions (set with the AE_DIFF). */
  private final BitSet streamed = new BitSet();
  /** Entries received by stream, of them applied, and their bytes (the link's thread). */
  private int streamReceived;
  private final BitSet streamedPartitions = new BitSet();
  private int streamEntries;
  private long streamBytes;
  /** When the last AE_STREAM frame arrived (nanoTime). */
  private volatile long lastStreamNanos;
  /** What the AE_DIFF said: the pull request was seen; how many entries were streamed. */
  private boolean pullSeen;
  private int streamExpected;
  /** The engine's anti-entropy byte rate, or null for none. */
  private final Throttle throttle;
  /** The buckets this round may compare (partitioned mode), set before the digest is sent. */
  private BitSet mask;
  private int bucketCount;
  private int handedOff;
  /** Data to hand off was left out because the peer pulls it itself: the handoff is not done. */
  private boolean handoffDeferred;

  private final CompletableFuture<Void> keysReceived = new CompletableFuture<>();
  private BitSet covered;
  private boolean more;
  /** Partitions with a differing bucket the peer left out of this round (it said "more"). */
  private final BitSet leftOutPartitions = new BitSet();
  private final List<KeyVersion> theirs = new ArrayList<>();
  private CompletableFuture<Frames.AePullResponse> pendingPull;
  private int pushed;
  private int pulled;
  private volatile String failure;
  private final String self;
  // Progress, touched only on the anti-entropy executor (one step at a time).
  private long startedNanos;
  private long lastProgressNanos;
  private int toPull;
  private int toPush;
  /** Milliseconds this round waited for the byte rate. */
  private long throttled;
  /** Whether fan-out to or from this node is behind now (the engine's view); any thread. */
  private final java.util.function.BooleanSupplier fanOutBehind;
  /** How young a differing version is left to the live path while fan-out is behind. */
  private final long youngMillis;
  private int youngSkipped;
  /**
   * Whether the round may stop early when fan-out becomes behind: a periodic plain round (no pull,
   * no handoff) that started while it was not (one started while it was is overdue: it must run;
   * so must a round at once on a link coming up, the catch-up of a restarted node, and the
   * follow-up of one that said "more").
   */
  private final boolean yieldable;
  private volatile boolean yielded;

  /**
   * A round; in partitioned mode when {@code own} is not null.
   *
   * @param own this node's view of the placement, or null for full replication
   * @param handoff whether to push the data this node holds for partitions the peer owns and it no
   *     longer does
   * @param pull partitions this node owns and has not pulled from the peer yet (maybe empty): the
   *     peer is asked to answer them whatever its view of their owners
   *     ({@link Frames#AE_PULL_REQUEST})
   * @param stream of {@code pull}, the partitions this node holds nothing of: the peer is asked to
   *     stream them ({@link Frames#AE_STREAM})
   * @param peerPulls the partitions the peer reported pending: not pushed to it as a co-owner (it
   *     pulls them from this node itself)
   * @param throttle the engine's anti-entropy byte rate, or null for none
   * @param fanOutBehind whether fan-out to or from this node is behind (a batch flagged
   *     {@link Frames#FLAG_BACKLOG} within the last interval): a plain round (no pull, no
   *     handoff) then leaves differences of which either side lists a version younger than
   *     {@value #YOUNG_INTERVALS} anti-entropy intervals to the live path, which is
   *     still carrying them (a behind link's queue sends each key once per pass over the queue,
   *     which took ~2.5 s under the ONE burst, docs/BENCHMARKS.md §3a⁶)
   * @param periodic whether the periodic tick started it (only such a round may yield)
   */
  AntiEntropyRound(ReplicationEngine.Context ctx, long roundId, PeerLink link, Ownership own,
      boolean handoff, BitSet pull, BitSet stream, BitSet peerPulls, Throttle throttle,
      java.util.function.BooleanSupplier fanOutBehind, boolean periodic) {
    this.fanOutBehind = fanOutBehind;
    this.yieldable = periodic && (own == null || pull.isEmpty()) && !handoff
        && !fanOutBehind.getAsBoolean();
    this.youngMillis = YOUNG_INTERVALS * ctx.settings().antiEntropyInterval().toMillis();
    this.throttle = throttle;
    this.peerPulls = peerPulls;
    this.own = own;
    this.handoff = handoff;
    this.pull = own == null ? new BitSet() : pull;
    this.stream = own == null ? new BitSet() : (BitSet) stream.clone();
    this.stream.and(this.pull);
    this.ctx = ctx;
    this.self = ctx.nodeId();
    this.roundId = roundId;
    this.link = link;
    this.store = ctx.store();
    this.executor = ctx.antiEntropy();
    this.timers = ctx.control();
    this.nanoTime = ctx.nanoTime();
    this.stepTimeoutMillis = ctx.settings().antiEntropyTimeout().toMillis();
    this.maxBatchBytes = ctx.settings().maxBatchBytes();
  }

  /**
   * The partitions with a differing bucket the peer left out of this round; read once the round
   * completed.
   */
  synchronized BitSet leftOutPartitions() {
    return (BitSet) leftOutPartitions.clone();
  }

  /** The partitions of which entries arrived by stream; read once the round completed. */
  synchronized BitSet streamedPartitions() {
    return (BitSet) streamedPartitions.clone();
  }

  /** The partitions this round pulls whoever owns them (a copy is not made: do not modify). */
  BitSet pulls() {
    return pull;
  }

  /** Runs the round; call on the anti-entropy executor. */
  CompletableFuture<Outcome> run() {
    startedNanos = nanoTime.getAsLong();
    lastProgressNanos = startedNanos;
    long[] buckets = store.digest().toArray();
    if (own != null) {
      boolean pulling = !pull.isEmpty();
      BitSet m = pulling ? own.pullMask(buckets.length, pull)
          : own.initiatorMask(link.nodeId, buckets, handoff, peerPulls);
      // A pull round hands nothing off: the handoff waits for a later round.
      handoffDeferred = handoff && (pulling || own.defersHandoff(link.nodeId, buckets, peerPulls));
      if (m.isEmpty()) {
        return CompletableFuture.completedFuture(new Outcome(false, 0, 0, 0, handoffDeferred, 0,
            false));
      }
      synchronized (this) {
        mask = m;
        bucketCount = buckets.length;
      }
      if (!pull.isEmpty() && !link.sendAe(Frames.aePullRequest(ByteBufAllocator.DEFAULT, roundId,
          pull, stream))) {
        return CompletableFuture.failedFuture(new IllegalStateException("link to "
            + link.nodeId + " is down"));
      }
    }
    for (int from = 0; from < buckets.length; from += DIGEST_CHUNK) {
      int n = Math.min(DIGEST_CHUNK, buckets.length - from);
      boolean last = from + n == buckets.length;
      if (!link.sendAe(Frames.aeDigest(ByteBufAllocator.DEFAULT, roundId,
          Digest.FORMAT, buckets, from, n, last))) {
        return CompletableFuture.failedFuture(new IllegalStateException("link to "
            + link.nodeId + " is down"));
      }
    }
    return timedWhileStreaming(keysReceived)
        .thenComposeAsync(v -> reconcile(), executor);
  }

  private CompletableFuture<Outcome> reconcile() {
    if (yielded) {
      return CompletableFuture.completedFuture(new Outcome(false, 0, 0, 0, handoffDeferred, 0,
          true));
    }
    BitSet compared;
    long streamedBytes;
    synchronized (this) {
      compared = (BitSet) covered.clone();
      compared.andNot(streamed); // streamed buckets were applied as they came: nothing to compare
      pulled += streamEntries;
      streamedBytes = streamBytes;
      if (!pull.isEmpty() && !pullSeen) {
        leftOutPartitions.or(pull); // answered without the pull request: nothing pulled is complete
      } else if (streamReceived != streamExpected) {
        leftOutPartitions.or(stream); // a streamed frame was lost or repeated: stream again
      }
    }
    List<KeyVersion> mine = compared.isEmpty() ? List.of() : store.keyVersions(compared);
    AntiEntropy.Plan plan;
    java.util.Set<String> young = null;
    synchronized (this) {
      plan = AntiEntropy.compare(mine, theirs);
      if (pull.isEmpty() && !handoff && !plan.isEmpty() && fanOutBehind.getAsBoolean()) {
        young = youngKeys(mine, theirs, youngMillis);
      }
      theirs.clear();
    }
    if (young != null && !young.isEmpty()) {
      int before = plan.push().size() + plan.pull().size();
      plan = new AntiEntropy.Plan(without(plan.push(), young), without(plan.pull(), young));
      youngSkipped = before - plan.push().size() - plan.pull().size();
    }
    List<String> toFetch = plan.pull();
    if (own != null) {
      // Never fetch a partition this node does not own (a handoff bucket is push only).
      toFetch = new ArrayList<>(toFetch.size());
      for (String k : plan.pull()) {
        if (own.ownsKey(k)) {
          toFetch.add(k);
        }
      }
    }
    List<String> fetch = toFetch;
    List<String> send = plan.push();
    if (own != null && !pull.isEmpty()) {
      // A pulled partition the peer does not own (an old owner) gets nothing pushed back.
      send = new ArrayList<>(plan.push().size());
      for (String k : plan.push()) {
        if (own.ownsKey(link.nodeId, k)) {
          send.add(k);
        }
      }
    }
    toPush = send.size();
    toPull = fetch.size();
    List<String> pushKeys = send;
    return later(streamedBytes, () -> push(pushKeys, 0))
        .thenComposeAsync(v -> pull(fetch, 0), executor)
        .thenApply(v -> summarize(new Outcome(more && !yielded, pushed, pulled, handedOff,
            handoffDeferred, youngSkipped, yielded)));
  }

  /**
   * The keys of which either side lists a version at most {@code youngMillis} older than the newest
   * version that side lists (its "now" when it listed, without a clock: under a burst its newest
   * versions are milliseconds old; the two listings may be seconds apart when the round is slow).
   * A clock ahead on one node only makes fewer keys young.
   */
  private static java.util.Set<String> youngKeys(List<KeyVersion> mine, List<KeyVersion> theirs,
      long youngMillis) {
    java.util.Set<String> young = new java.util.HashSet<>();
    addYoung(mine, youngMillis, young);
    addYoung(theirs, youngMillis, young);
    return young;
  }

  private static void addYoung(List<KeyVersion> listed, long youngMillis,
      java.util.Set<String> young) {
    long newest = 0;
    for (KeyVersion kv : listed) {
      newest = Math.max(newest, kv.version().physicalMillis());
    }
    for (KeyVersion kv : listed) {
      if (kv.version().physicalMillis() > newest - youngMillis) {
        young.add(kv.key());
      }
    }
  }

  private static List<String> without(List<String> keys, java.util.Set<String> young) {
    List<String> kept = new ArrayList<>(keys.size());
    for (String k : keys) {
      if (!young.contains(k)) {
        kept.add(k);
      }
    }
    return kept;
  }

  /** Logs how far a long round has come, at most once per progress interval. */
  private void progress() {
    long now = nanoTime.getAsLong();
    if (now - lastProgressNanos < progressIntervalNanos) {
      return;
    }
    lastProgressNanos = now;
    if (toPull > 0) {
      log.info("node {}: catch-up from {}: {} entries received (~{} estimated{})", self,
          link.nodeId, pulled, toPull, more ? " in this round, more to follow" : "");
    }
    if (toPush > 0) {
      log.info("node {}: catch-up of {}: {} entries sent (~{} estimated{})", self, link.nodeId,
          pushed, toPush, more ? " in this round, more to follow" : "");
    }
  }

  private Outcome summarize(Outcome o) {
    if (o.pulled() + o.pushed() >= SUMMARY_THRESHOLD) {
      log.info("node {}: anti-entropy round with {} done in {} ms: {} entries received, {} sent"
          + "{}{}{}",
          self, link.nodeId, (nanoTime.getAsLong() - startedNanos) / 1_000_000, o.pulled(),
          o.pushed(), throttled > 0 ? " (" + throttled + " ms waiting for antiEntropyBytesPerSecond "
              + throttle.bytesPerSecond() + ")" : "",
          o.more() ? "; more differ, the next round follows at once" : "",
          o.youngSkipped() > 0 ? "; " + o.youngSkipped() + " young differences left to the fan-out,"
              + " which is behind" : o.yielded() ? "; stopped early: fan-out is behind" : "");
    }
    return o;
  }

  private CompletableFuture<Void> push(List<String> keys, int from) {
    if (yielded) {
      return CompletableFuture.completedFuture(null);
    }
    Chunker.Mutations batch = Chunker.mutations(ctx, keys, from);
    if (batch.mutations().isEmpty()) {
      return CompletableFuture.completedFuture(null);
    }
    int count = batch.mutations().size();
    return timed(link.pushAe(batch.mutations(), batch.bytes())).thenComposeAsync(ack -> {
      pushed += count;
      if (own != null) {
        List<Mutation> ms = batch.mutations();
        for (int i = 0; i < ms.size(); i++) {
          if (i < ack.count() && ack.held().get(i) && !own.ownsKey(ms.get(i).key())) {
            handedOff++;
          }
        }
      }
      progress();
      return later(batch.bytes(), () -> push(keys, batch.next()));
    }, executor);
  }

  private CompletableFuture<Void> pull(List<String> keys, int from) {
    if (from >= keys.size() || yielded) {
      return CompletableFuture.completedFuture(null);
    }
    List<String> chunk = new ArrayList<>();
    int bytes = 0;
    for (int i = from; i < keys.size() && chunk.size() < PULL_KEYS && bytes < maxBatchBytes; i++) {
      chunk.add(keys.get(i));
      bytes += Frames.stringSize(keys.get(i));
    }
    CompletableFuture<Frames.AePullResponse> answer = new CompletableFuture<>();
    synchronized (this) {
      if (failure != null) {
        return CompletableFuture.failedFuture(new IllegalStateException(failure));
      }
      pendingPull = answer;
    }
    if (!link.sendAe(Frames.aePull(ByteBufAllocator.DEFAULT, roundId, chunk, bytes))) {
      return CompletableFuture.failedFuture(new IllegalStateException("link to " + link.nodeId
          + " is down"));
    }
    return timed(answer).thenComposeAsync(resp -> {
      if (resp.processed() < 1 || resp.processed() > chunk.size()
          || resp.mutations().size() > resp.processed()) {
        throw new IllegalStateException("peer " + link.nodeId + " answered a pull of "
            + chunk.size() + " keys with processed=" + resp.processed() + " and "
            + resp.mutations().size() + " mutations");
      }
      for (Mutation m : resp.mutations()) {
        if (own == null || own.ownsKey(m.key())) {
          store.apply(m);
        }
      }
      pulled += resp.mutations().size();
      progress();
      long received = 0;
      for (Mutation m : resp.mutations()) {
        received += Frames.mutationSize(m);
      }
      return later(received, () -> pull(keys, from + resp.processed()));
    }, executor);
  }

  /**
   * Runs the next step at once, or, when the engine's byte rate says so after {@code bytes} just
   * moved, after waiting on the timers (never blocking a thread).
   */
  private <T> CompletableFuture<T> later(long bytes, java.util.function.Supplier<CompletableFuture<T>>
      next) {
    long wait = throttle == null ? 0 : throttle.reserve(bytes);
    if (wait <= 0) {
      return next.get();
    }
    throttled += wait;
    CompletableFuture<T> out = new CompletableFuture<>();
    timers.schedule(() -> {
      try {
        executor.execute(() -> next.get().whenComplete((v, e) -> {
          if (e != null) {
            out.completeExceptionally(e);
          } else {
            out.complete(v);
          }
        }));
      } catch (java.util.concurrent.RejectedExecutionException e) {
        out.completeExceptionally(e);
      }
    }, wait);
    return out;
  }

  /** A frame for this round arrived (on the link's event loop). */
  void onFrame(Frames.Frame frame) {
    if (frame instanceof Frames.AeDiff diff && diff.roundId() == roundId) {
      synchronized (this) {
        covered = diff.covered();
        if (mask != null) {
          covered.and(mask);
        }
        if (!stream.isEmpty()) {
          for (int b = covered.nextSetBit(0); b >= 0; b = covered.nextSetBit(b + 1)) {
            if (stream.get(Ownership.partitionOfBucket(b))) {
              streamed.set(b);
            }
          }
        }
        more = diff.more();
        pullSeen = diff.pullSeen();
        streamExpected = diff.streamed();
        BitSet left = diff.leftOut();
        for (int b = left.nextSetBit(0); b >= 0; b = left.nextSetBit(b + 1)) {
          leftOutPartitions.set(Ownership.partitionOfBucket(b));
        }
        if (more && left.isEmpty()) {
          leftOutPartitions.set(0, Placement.PARTITIONS); // a peer that does not say which
        }
      }
    } else if (frame instanceof Frames.AeStream st && st.roundId() == roundId) {
      onStream(st);
    } else if (frame instanceof Frames.AeKeys keys && keys.roundId() == roundId) {
      synchronized (this) {
        if (covered == null) {
          fail("peer sent keys before the bucket list");
          return;
        }
        if (theirs.size() + keys.keys().size() > ReplicationEngine.MAX_KEYS_PER_ROUND) {
          fail("peer listed more than " + ReplicationEngine.MAX_KEYS_PER_ROUND + " keys in one round");
          return;
        }
        if (mask == null) {
          theirs.addAll(keys.keys());
        } else {
          for (KeyVersion kv : keys.keys()) {
            if (covered.get(Digest.bucketOf(kv.key(), bucketCount))) {
              theirs.add(kv);
            }
          }
        }
      }
      if (keys.last()) {
        keysReceived.complete(null);
      }
    } else if (frame instanceof Frames.AePullResponse resp && resp.roundId() == roundId) {
      CompletableFuture<Frames.AePullResponse> p;
      synchronized (this) {
        p = pendingPull;
        pendingPull = null;
      }
      if (p != null) {
        p.complete(resp);
      }
    } else if (frame instanceof Frames.AeAbort abort && abort.roundId() == roundId) {
      fail("peer " + link.nodeId + " aborted the round: " + abort.message());
    }
  }

  /**
   * Applies streamed entries (on the link's thread) of partitions this node asked to stream and
   * owns; they come before the peer's AE_DIFF.
   */
  private void onStream(Frames.AeStream st) {
    synchronized (this) {
      if (covered != null || failure != null) {
        return; // after the AE_DIFF (reordered): not counted, so the partitions stream again
      }
    }
    int applied = 0;
    long bytes = 0;
    BitSet parts = new BitSet();
    for (Mutation m : st.mutations()) {
      bytes += Frames.mutationSize(m);
      int p = Placement.partitionOf(m.key());
      if (stream.get(p) && own.ownsKey(m.key())) {
        store.apply(m);
        applied++;
        parts.set(p);
      }
    }
    lastStreamNanos = nanoTime.getAsLong();
    synchronized (this) {
      streamedPartitions.or(parts);
      streamReceived += st.mutations().size();
      streamEntries += applied;
      streamBytes += bytes;
    }
  }

  /** The peer this round runs with. */
  PeerLink link() {
    return link;
  }

  /**
   * Fan-out to or from this node became behind while this round runs: a round that may yield
   * ({@link #yieldable}) asks the peer to list nothing for it (AE_ABORT; a peer that has listed
   * already sends its keys anyway, and they are dropped) and ends without comparing, pushing or
   * pulling more: under a burst a round that started before it waited ~10 s for the saturated
   * writer's key list, and its listing and compare of every key then fell on the drain after the
   * burst (docs/BENCHMARKS.md §3a⁶). It completes as {@link Outcome#yielded}, not as a failure.
   * Any thread; idempotent.
   */
  void yieldToFanOut() {
    synchronized (this) {
      if (!yieldable || yielded || failure != null) {
        return;
      }
      yielded = true;
    }
    link.sendAe(Frames.aeAbort(ByteBufAllocator.DEFAULT, roundId, "fan-out is behind"));
    keysReceived.complete(null);
  }

  /** Ends the round with an error (connection lost, peer left, protocol problem). */
  void fail(String why) {
    CompletableFuture<Frames.AePullResponse> p;
    synchronized (this) {
      if (failure == null) {
        failure = why;
      }
      p = pendingPull;
      pendingPull = null;
    }
    IllegalStateException e = new IllegalStateException(why);
    keysReceived.completeExceptionally(e);
    if (p != null) {
      p.completeExceptionally(e);
    }
  }

  /** Fails the step if it takes longer than the step timeout (timed on the engine's scheduler). */
  /**
   * Like {@link #timed}, but the step timeout counts from the last AE_STREAM frame: a large stream
   * on a busy machine may take longer than one step timeout to arrive, and failing it would make
   * the next round stream it all again.
   */
  private <T> CompletableFuture<T> timedWhileStreaming(CompletableFuture<T> f) {
    if (stream.isEmpty()) {
      return timed(f);
    }
    lastStreamNanos = nanoTime.getAsLong();
    checkStreamProgress(f, stepTimeoutMillis);
    return f;
  }

  private <T> void checkStreamProgress(CompletableFuture<T> f, long waitMillis) {
    Cancellable timer = timers.schedule(() -> {
      long idle = (nanoTime.getAsLong() - lastStreamNanos) / 1_000_000;
      if (idle >= stepTimeoutMillis) {
        f.completeExceptionally(new TimeoutException("peer " + link.nodeId
            + " sent nothing of its stream for " + idle + " ms"));
      } else if (!f.isDone()) {
        checkStreamProgress(f, stepTimeoutMillis - idle);
      }
    }, Math.max(1, waitMillis));
    f.whenComplete((v, e) -> timer.cancel());
  }

  private <T> CompletableFuture<T> timed(CompletableFuture<T> f) {
    Cancellable timer = timers.schedule(() -> f.completeExceptionally(
        new TimeoutException("peer " + link.nodeId + " did not answer within "
            + stepTimeoutMillis + " ms")), stepTimeoutMillis);
    f.whenComplete((v, e) -> timer.cancel());
    return f;
  }
}
