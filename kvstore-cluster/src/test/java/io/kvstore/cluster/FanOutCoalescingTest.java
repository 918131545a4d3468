package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import io.kvstore.core.spi.Mutation;
import io.kvstore.core.Version;
import io.kvstore.core.Versioned;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteOptions;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A peer's fan-out queue holds each not-yet-sent key once and sends the store's newest mutation of
 * it: its ack completes the QUORUM/ALL writes it covers, and at the in-flight limit a write of a key
 * already queued joins it rather than being dropped. On the real engine over
 * {@link SimNetwork}, with anti-entropy effectively off (one round an hour) so only the fan-out can
 * deliver.
 */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class FanOutCoalescingTest {
  private static final WriteOptions QUORUM =
      WriteOptions.concern(WriteConcern.QUORUM).withTimeout(Duration.ofSeconds(60));

  private static SimNetwork network(long maxInFlightBytes) {
    return new SimNetwork(1, new ReplicationEngine.Settings(maxInFlightBytes, 8 * 1024,
        Duration.ofHours(1), Duration.ofMillis(400)), ReplicationEngine.Bug.NONE, b -> b);
  }

  @Test
  void queuedWritesOfOneKey_sendOnlyTheNewest_andItsAckCompletesTheSupersededQuorumWrites() {
    try (SimNetwork net = network(1024 * 1024)) {
      SimNetwork.SimNode one = net.addNode("n1", 0);
      net.addNode("n2", 0);
      net.addNode("n3", 0);
      net.clock.runFor(100);
      // Both of n1's links are down: its writes wait in the queues.
      net.partition(List.of(Set.of("n1")));
      long sentBefore = one.stats.mutationsSent.sum();
      long ackedBefore = one.stats.mutationsAcked.sum();
      CompletableFuture<Version> first = one.store.putAsync("k", bytes("v1"), QUORUM);
      one.store.put("k", bytes("v2"));
      CompletableFuture<Version> third = one.store.putAsync("k", bytes("v3"), QUORUM);
      // When a QUORUM write completes, a quorum must hold the key at its version or newer (the
      // simulation's own check): had the queue kept v1, v3's write would complete on v1's ack.
      List<String> violations = new java.util.ArrayList<>();
      for (CompletableFuture<Version> f : List.of(first, third)) {
        f.thenAccept(v -> {
          long holding = net.nodes().stream()
              .filter(n -> n.store.getVersioned("k").filter(h -> h.version().compareTo(v) >= 0)
                  .isPresent())
              .count();
          if (holding < 2) {
            violations.add("write at " + v + " completed while " + holding + " of 3 held it");
          }
        });
      }
      net.clock.runFor(10);
      assertThat(first).isNotDone();
      assertThat(one.stats.mutationsCoalesced.sum()).as("2 superseded x 2 peers").isEqualTo(4);

      net.heal();
      assertThat(net.clock.runUntil(() -> first.isDone() && third.isDone()
          && one.stats.mutationsAcked.sum() - ackedBefore == 2, 5_000)).isTrue();
      assertThat(violations).isEmpty();
      assertThat(first).isCompleted();
      assertThat(third).isCompleted();
      Version newest = third.join();
      for (String peer : List.of("n2", "n3")) {
        Versioned held = net.node(peer).store.getVersioned("k").orElseThrow();
        assertThat(held.version()).as(peer + " holds the newest version").isEqualTo(newest);
        assertThat(new String(held.value(), StandardCharsets.UTF_8)).isEqualTo("v3");
      }
      assertThat(one.stats.mutationsSent.sum() - sentBefore).as("one mutation per peer").isEqualTo(2);
      assertThat(one.stats.mutationsAcked.sum() - ackedBefore).isEqualTo(2);
      assertThat(one.stats.mutationsCoalescedAcked.sum()).isEqualTo(4);
      assertThat(one.stats.mutationsDropped.sum()).isZero();
    }
  }

  @Test
  void atTheInFlightLimit_aWriteOfAQueuedKeyReplacesIt_insteadOfBeingDropped() {
    try (SimNetwork net = network(4 * 1024)) {
      SimNetwork.SimNode one = net.addNode("n1", 0);
      SimNetwork.SimNode two = net.addNode("n2", 0);
      net.clock.runFor(100);
      net.partition(List.of(Set.of("n1")));
      byte[] filler = new byte[200];
      int i = 0;
      while (one.stats.mutationsDropped.sum() == 0) {
        one.store.put("fill" + i++, filler);
      }
      one.store.put("fill0", bytes("newest"));
      assertThat(one.stats.mutationsDropped.sum()).as("no further drop").isEqualTo(1);
      assertThat(one.stats.mutationsCoalesced.sum()).isEqualTo(1);

      net.heal();
      assertThat(net.clock.runUntil(() -> one.stats.mutationsCoalescedAcked.sum() == 1, 5_000))
          .as("the fan-out delivered the replacing mutation").isTrue();
      assertThat(two.store.getString("fill0")).contains("newest");
    }
  }

  /**
   * On one link with a channel that records frames: two QUORUM writes of one key queued before the
   * link is up go out as one mutation, the store's newest, and the single ack completes both writes.
   * Fails if the link sent what was queued instead of the store's newest version (the frame would
   * carry the older one when it is queued first), or if a coalesced write's tracker were forgotten
   * (its future would never complete).
   */
  @Test
  void supersededQuorumWrite_completesOnTheAckOfTheNewerVersion_andOnlyTheNewerIsSent() {
    for (boolean newerFirst : new boolean[] {false, true}) {
      try (SimNetwork net = network(1024 * 1024)) {
        SimNetwork.SimNode one = net.addNode("n1", 0);
        PeerLink link = one.engine.newLink("peer", "peer");
        Mutation older = Mutation.put("k", bytes("old"), Version.of(1000, 0, "n1"), 0);
        Mutation newer = Mutation.put("k", bytes("new"), Version.of(1000, 1, "n1"), 0);
        one.replica.apply(newerFirst ? newer : older);
        WriteTracker olderWrite = tracker();
        WriteTracker newerWrite = tracker();
        Mutation first = newerFirst ? newer : older;
        link.enqueue(first, Frames.mutationSize(first), newerFirst ? newerWrite : olderWrite);
        one.replica.apply(newerFirst ? older : newer); // the store keeps the newer either way
        Mutation second = newerFirst ? older : newer;
        link.enqueue(second, Frames.mutationSize(second), newerFirst ? olderWrite : newerWrite);
        assertThat(one.stats.mutationsCoalesced.sum()).isEqualTo(1);

        RecordingChannel ch = new RecordingChannel();
        link.connected(ch);
        assertThat(ch.frames).hasSize(1);
        Frames.MutationBatch batch = (Frames.MutationBatch) ch.frames.get(0);
        assertThat(batch.mutations()).as("newer first: " + newerFirst).containsExactly(newer);
        assertThat(olderWrite.future()).isNotDone();
        assertThat(newerWrite.future()).isNotDone();

        ack(link, ch, batch);
        assertThat(olderWrite.future()).isCompleted();
        assertThat(newerWrite.future()).isCompleted();
        assertThat(one.stats.mutationsAcked.sum()).isEqualTo(1);
        assertThat(one.stats.mutationsCoalescedAcked.sum()).isEqualTo(1);
      }
    }
  }

  /**
   * Writers on four threads overwrite 32 keys while the link flushes and the peer acknowledges
   * everything: afterwards the newest mutation each key was last sent with is exactly the store's
   * entry. Checks the claim that reading the store at send time loses no write that found its key
   * queued (a write that saw the key queued just before the flush removed it must be covered by the
   * flush's read). Seeded; {@code -Dkvstore.coalesce.seed=N} replays a seed's key choices.
   */
  @Test
  void concurrentWritersAndFlushes_theLastSentVersionOfEveryKeyIsTheStoresNewest() throws Exception {
    long seed = Long.getLong("kvstore.coalesce.seed", System.nanoTime());
    System.out.println("FanOutCoalescingTest seed " + seed + " (-Dkvstore.coalesce.seed=" + seed + ")");
    try (SimNetwork net = network(1024 * 1024)) {
      SimNetwork.SimNode one = net.addNode("n1", 0);
      PeerLink link = one.engine.newLink("peer", "peer");
      java.util.Map<String, Mutation> lastSent = new java.util.concurrent.ConcurrentHashMap<>();
      AckingChannel ch = new AckingChannel(link, lastSent);
      link.connected(ch);
      java.util.concurrent.atomic.AtomicLong stamps = new java.util.concurrent.atomic.AtomicLong();
      List<Thread> writers = new java.util.ArrayList<>();
      for (int t = 0; t < 4; t++) {
        java.util.SplittableRandom random = new java.util.SplittableRandom(seed + t);
        writers.add(new Thread(() -> {
          for (int i = 0; i < 20_000; i++) {
            String key = "k" + random.nextInt(32);
            Mutation m = Mutation.put(key, bytes("v" + i),
                Version.of(1000 + stamps.incrementAndGet(), 0, "n1"), 0);
            one.replica.apply(m);
            link.enqueue(m, Frames.mutationSize(m), null);
          }
        }));
      }
      writers.forEach(Thread::start);
      for (Thread w : writers) {
        w.join(20_000);
      }
      ch.drain();
      for (int k = 0; k < 32; k++) {
        Mutation held = one.replica.mutation("k" + k);
        if (held != null) {
          assertThat(lastSent.get("k" + k)).as("k" + k + ", seed " + seed).isEqualTo(held);
        }
      }
      assertThat(one.stats.mutationsSent.sum() + one.stats.mutationsCoalesced.sum())
          .as("every write was sent or coalesced").isEqualTo(80_000);
    }
  }

  /**
   * The send window: with 600 keys of ~1 KiB queued (~86 frames of 8 KiB), a link whose peer has
   * acknowledged nothing sends frames until {@link PeerLink#WINDOW_BATCHES} x 8 KiB are
   * unacknowledged and keeps the rest queued, where a rewrite of a queued key coalesces; an ack lets
   * more out, and an ack arriving before an older one's frees both (acks come in order, so the older
   * one was lost). Fails without the window (every frame goes out at once).
   */
  @Test
  void unacknowledgedFanOut_isHeldToTheWindow_andAcksLetMoreOut() {
    try (SimNetwork net = network(64L * 1024 * 1024)) {
      SimNetwork.SimNode one = net.addNode("n1", 0);
      PeerLink link = one.engine.newLink("peer", "peer");
      RecordingChannel ch = connectWithQueuedKeys(one, link, 600);
      java.util.Set<Integer> acked = new java.util.HashSet<>();
      assertHeldToTheWindow(fanOut(ch), acked);
      int before = fanOut(ch).size();
      assertThat(one.stats.mutationsSent.sum()).isLessThan(300);

      // A key still queued: the rewrite coalesces.
      put(one, link, "w599", new byte[1000], 5000);
      assertThat(one.stats.mutationsCoalesced.sum()).isEqualTo(1);

      ack(link, ch, (Frames.MutationBatch) fanOut(ch).get(0));
      acked.add(0);
      assertThat(fanOut(ch).size()).as("an ack lets more out").isGreaterThan(before);
      assertHeldToTheWindow(fanOut(ch), acked);
      before = fanOut(ch).size();
      ack(link, ch, (Frames.MutationBatch) fanOut(ch).get(2)); // frame 1's ack was lost
      acked.add(1);
      acked.add(2);
      assertThat(fanOut(ch).size()).isGreaterThan(before);
      assertHeldToTheWindow(fanOut(ch), acked);

      for (int i = 3; i < fanOut(ch).size(); i++) {
        ack(link, ch, (Frames.MutationBatch) fanOut(ch).get(i));
      }
      long total = fanOut(ch).stream()
          .mapToLong(f -> ((Frames.MutationBatch) f).mutations().size()).sum();
      assertThat(total).as("every key sent once").isEqualTo(600);
      assertThat(link.unacknowledgedBytes()).as("only frame 1, never acknowledged")
          .isEqualTo(frameBytes(fanOut(ch).get(1)));
    }
  }

  /**
   * A full window whose acks never come (the simulated network lost them) does not stop the link:
   * after {@link PeerLink#WINDOW_EXPIRY_MILLIS} the unacknowledged frames stop counting and the
   * flush goes on. Fails if the link waited for acks only.
   */
  @Test
  void fullWindowWithoutAcks_resumesAfterTheExpiry() {
    try (SimNetwork net = network(64L * 1024 * 1024)) {
      SimNetwork.SimNode one = net.addNode("n1", 0);
      PeerLink link = one.engine.newLink("peer", "peer");
      RecordingChannel ch = connectWithQueuedKeys(one, link, 600);
      int window = fanOut(ch).size();
      assertHeldToTheWindow(fanOut(ch), java.util.Set.of());
      net.clock.runFor(PeerLink.WINDOW_EXPIRY_MILLIS - 10);
      assertThat(fanOut(ch)).as("before the expiry").hasSize(window);
      net.clock.runFor(20);
      assertThat(fanOut(ch).size()).as("after the expiry").isGreaterThan(window);
    }
  }

  /**
   * The frames not acknowledged (nor older than an acknowledged one) hold at least the window's bytes
   * without the newest frame, and fewer than the window without it: the flush stopped when full.
   */
  private static void assertHeldToTheWindow(List<Frames.Frame> frames, java.util.Set<Integer> acked) {
    long window = PeerLink.WINDOW_BATCHES * 8L * 1024;
    int newestAck = acked.stream().mapToInt(Integer::intValue).max().orElse(-1);
    long unacked = 0;
    for (int i = newestAck + 1; i < frames.size() - 1; i++) {
      unacked += frameBytes(frames.get(i));
    }
    assertThat(unacked).as("unacknowledged before the newest frame").isLessThan(window);
    assertThat(unacked + frameBytes(frames.get(frames.size() - 1)))
        .as("unacknowledged with the newest frame").isGreaterThanOrEqualTo(window);
  }

  /** The fan-out frames sent on the channel (not the anti-entropy round the link starts). */
  private static List<Frames.Frame> fanOut(RecordingChannel ch) {
    return ch.frames.stream()
        .filter(f -> f instanceof Frames.MutationBatch b && !b.isAntiEntropy()).toList();
  }

  private static long frameBytes(Frames.Frame f) {
    return ((Frames.MutationBatch) f).mutations().stream().mapToLong(Frames::mutationSize).sum();
  }

  /** Queues {@code keys} keys of 1,000-byte values on the link, then connects it. */
  private static RecordingChannel connectWithQueuedKeys(SimNetwork.SimNode one, PeerLink link,
      int keys) {
    for (int i = 0; i < keys; i++) {
      put(one, link, "w" + i, new byte[1000], 1000 + i);
    }
    RecordingChannel ch = new RecordingChannel();
    link.connected(ch);
    return ch;
  }

  /** Applies a put of {@code key} at {@code stamp} to n1's store and queues it on the link. */
  private static void put(SimNetwork.SimNode node, PeerLink link, String key, byte[] value,
      long stamp) {
    Mutation m = Mutation.put(key, value, Version.of(stamp, 0, "n1"), 0);
    node.replica.apply(m);
    link.enqueue(m, Frames.mutationSize(m), null);
  }

  private static void ack(PeerLink link, PeerChannel ch, Frames.MutationBatch batch) {
    java.util.BitSet held = new java.util.BitSet();
    held.set(0, batch.mutations().size());
    io.netty.buffer.ByteBuf ack = Frames.ack(ch.alloc(), batch.batchId(), batch.mutations().size(),
        held);
    Frames.Frame decoded = Frames.decode(ack);
    ack.release();
    link.onFrame(ch, decoded);
  }

  /**
   * A channel whose tasks run on one thread of its own (like a Netty event loop): it records the
   * newest mutation sent per key and acknowledges every batch.
   */
  private static final class AckingChannel implements PeerChannel {
    private final java.util.concurrent.ExecutorService loop =
        java.util.concurrent.Executors.newSingleThreadExecutor();
    private final PeerLink link;
    private final java.util.Map<String, Mutation> lastSent;

    AckingChannel(PeerLink link, java.util.Map<String, Mutation> lastSent) {
      this.link = link;
      this.lastSent = lastSent;
    }

    /** Waits until every task queued so far (and the flushes they schedule) has run. */
    void drain() throws Exception {
      for (int i = 0; i < 3; i++) {
        loop.submit(() -> { }).get(10, TimeUnit.SECONDS);
      }
      loop.shutdown();
    }

    @Override
    public io.netty.buffer.ByteBufAllocator alloc() {
      return io.netty.buffer.UnpooledByteBufAllocator.DEFAULT;
    }

    @Override
    public boolean send(io.netty.buffer.ByteBuf frame, boolean flush) {
      Frames.Frame f;
      try {
        f = Frames.decode(frame);
      } finally {
        frame.release();
      }
      if (f instanceof Frames.MutationBatch batch && !batch.isAntiEntropy()) {
        for (Mutation m : batch.mutations()) {
          lastSent.merge(m.key(), m, (a, b) -> a.version().compareTo(b.version()) >= 0 ? a : b);
        }
        ack(link, this, batch);
      }
      return true;
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
      loop.execute(task);
    }

    @Override
    public void close() {
    }

    @Override
    public String remote() {
      return "acking";
    }
  }

  /** QUORUM of two replicas (self + the one peer), one link outstanding; completes inline. */
  private static WriteTracker tracker() {
    return new WriteTracker(WriteConcern.QUORUM, 2, 2, 1, Duration.ofMinutes(1), Runnable::run);
  }

  /** A channel that is always writable, runs tasks inline and decodes what is sent to it. */
  private static final class RecordingChannel implements PeerChannel {
    final List<Frames.Frame> frames = new java.util.ArrayList<>();

    @Override
    public io.netty.buffer.ByteBufAllocator alloc() {
      return io.netty.buffer.UnpooledByteBufAllocator.DEFAULT;
    }

    @Override
    public boolean send(io.netty.buffer.ByteBuf frame, boolean flush) {
      try {
        frames.add(Frames.decode(frame));
      } finally {
        frame.release();
      }
      return true;
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
      task.run();
    }

    @Override
    public void close() {
    }

    @Override
    public String remote() {
      return "recording";
    }
  }

  private static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }
}
