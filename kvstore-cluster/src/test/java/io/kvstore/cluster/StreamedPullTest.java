package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteOptions;
import io.kvstore.core.testing.Replicas;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.LongUnaryOperator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Three rules of streamed pulls (docs/CLUSTER.md, "Rebalancing"), each on the simulated network
 * without faults (seed 11, deterministic: a failure replays as it is): no streaming below
 * {@link ReplicationEngine#MIN_STREAM_RATE}; a node that just started pulls only once its map has
 * been quiet for {@link ReplicationEngine#FRESH_SETTLE_MILLIS}, and a map change ends its running
 * round; a streamed round's step timeout counts from its last AE_STREAM frame. A {@link SimNetwork.Tap}
 * counts and paces the frames.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class StreamedPullTest {
  private static final Logger log = LoggerFactory.getLogger(StreamedPullTest.class);
  private static final long SEED = 11;
  private static final List<String> FIVE = List.of("n1", "n2", "n3", "n4", "n5");
  private static final List<String> FOUR = FIVE.subList(0, 4);
  private static final Placement P4 = Placement.of(FOUR, 2);
  private static final Placement P5 = Placement.of(FIVE, 2);
  private static final int KEYS = 2_000;
  /** {@link SimNetwork#smallSettings()}'s step timeout. */
  private static final long STEP_TIMEOUT = SimNetwork.smallSettings().antiEntropyTimeout().toMillis();

  /** n1..n4 (rf 2) holding {@value #KEYS} keys, converged; n5 is not started. */
  private static SimNetwork fourLoaded(long antiEntropyBytesPerSecond) {
    ReplicationEngine.Settings s = SimNetwork.smallSettings();
    SimNetwork net = new SimNetwork(SEED, new ReplicationEngine.Settings(s.maxInFlightBytesPerPeer(),
        s.maxBatchBytes(), s.antiEntropyInterval(), s.antiEntropyTimeout(),
        antiEntropyBytesPerSecond), ReplicationEngine.Bug.NONE, b -> b.digestBuckets(1024));
    net.setPlacement(P4);
    for (String id : FOUR) {
      net.addNode(id, 0);
    }
    net.clock.runFor(100);
    WriteOptions one = WriteOptions.defaults().withConcern(WriteConcern.ONE)
        .withTimeout(Duration.ofMillis(500));
    for (int i = 0; i < KEYS; i++) {
      net.node(FOUR.get(i % 4)).store.putAsync("k" + i,
          ("value-" + i).getBytes(StandardCharsets.UTF_8), one);
    }
    net.clock.runFor(3_000);
    log.info("seed {}: four nodes loaded, {}", SEED, net.summary());
    return net;
  }

  /**
   * n5 joins as an old member would: started under P4 (owning nothing, so not "just started"),
   * then every node gets P5.
   */
  private static SimNetwork.SimNode joinAsMember(SimNetwork net) {
    SimNetwork.SimNode n5 = net.addNode("n5", 0);
    net.clock.runFor(100);
    net.setPlacement(P5);
    return n5;
  }

  /** Runs until n5 pulled everything (at most {@code maxMillis}); asserts it holds its keys. */
  private static void assertPullsEverything(SimNetwork net, long maxMillis) {
    ReplicationEngine n5 = net.node("n5").engine;
    assertThat(net.clock.runUntil(() -> n5.pendingPartitions().isEmpty(), maxMillis))
        .as("n5 pulled every partition within %d ms of virtual time (%s)", maxMillis,
            net.summary()).isTrue();
    List<String> missing = new ArrayList<>();
    for (int i = 0; i < KEYS; i++) {
      String k = "k" + i;
      if (P5.ownersOf(k).contains("n5") && Replicas.heldVersion(net.node("n5").replica, k)
          .isEmpty()) {
        missing.add(k);
      }
    }
    assertThat(missing).as("keys n5 owns and does not hold").isEmpty();
  }

  // ---- a. no streaming below MIN_STREAM_RATE ----------------------------------------------------

  /** What a joiner received: entries by AE_STREAM, AE_PULL requests it sent. */
  private record Received(long streamed, long pulls) {}

  private static Received joinAtRate(long bytesPerSecond) {
    try (SimNetwork net = fourLoaded(bytesPerSecond)) {
      long[] counts = new long[2];
      net.tap = new SimNetwork.Tap() {
        @Override
        public void delivered(String sender, String receiver, Frames.Frame f) {
          if (receiver.equals("n5") && f instanceof Frames.AeStream st) {
            counts[0] += st.mutations().size();
          } else if (sender.equals("n5") && f instanceof Frames.AePull) {
            counts[1]++;
          }
        }
      };
      joinAsMember(net);
      assertPullsEverything(net, 60_000);
      return new Received(counts[0], counts[1]);
    }
  }

  @Test
  void belowMinStreamRate_aJoinerPullsByKeyLists_atMinStreamRateItStreams() {
    Received below = joinAtRate(ReplicationEngine.MIN_STREAM_RATE - 1);
    Received at = joinAtRate(ReplicationEngine.MIN_STREAM_RATE);
    log.info("joiner at 16 MiB/s - 1: {}; at 16 MiB/s: {}", below, at);
    assertThat(below.streamed()).as("entries streamed to a joiner whose rate is below 16 MiB/s")
        .isZero();
    assertThat(below.pulls()).as("AE_PULL requests it sent instead").isPositive();
    assertThat(at.streamed()).as("entries streamed to a joiner at exactly 16 MiB/s").isPositive();
  }

  // ---- b. a node that just started waits for a quiet map ----------------------------------------

  /**
   * n5 starts knowing only itself (full replication), then learns the members one by one, a new
   * map every 300 ms (shorter than FRESH_SETTLE_MILLIS): {n1, n2, n5}, {n1, n2, n3, n5}, then all
   * five, which every node gets. It starts no anti-entropy round until the last map has been quiet
   * for 500 ms, starts one then, and pulls everything.
   */
  @Test
  void aNodeThatJustStarted_startsNoRound_untilItsMapHasBeenQuietForFreshSettleMillis() {
    try (SimNetwork net = fourLoaded(0)) {
      SimNetwork.SimNode n5 = net.addNode("n5", 0, null);
      net.clock.runFor(100); // connected, in full replication (its peers answer it nothing)
      List<Long> roundsStartedAt = new ArrayList<>();
      net.tap = new SimNetwork.Tap() {
        @Override
        public long sent(String sender, String receiver, Frames.Frame f) {
          if (sender.equals("n5") && (f instanceof Frames.AeDigest d && d.from() == 0
              || f instanceof Frames.AePullRequest)) {
            roundsStartedAt.add(net.clock.now());
          }
          return 0;
        }
      };
      n5.engine.setPlacement(Placement.of(List.of("n1", "n2", "n5"), 2));
      net.clock.runFor(300);
      n5.engine.setPlacement(Placement.of(List.of("n1", "n2", "n3", "n5"), 2));
      net.clock.runFor(300);
      net.setPlacement(P5);
      long lastChange = net.clock.now();
      net.clock.runFor(ReplicationEngine.FRESH_SETTLE_MILLIS - 1);
      assertThat(roundsStartedAt).as("rounds n5 started while its map changed and within %d ms "
          + "of the last change", ReplicationEngine.FRESH_SETTLE_MILLIS).isEmpty();
      net.clock.runFor(50);
      assertThat(roundsStartedAt).as("rounds n5 started within 50 ms after its map was quiet")
          .isNotEmpty();
      assertThat(roundsStartedAt.get(0) - lastChange).as("ms from the last change to n5's first"
          + " round").isGreaterThanOrEqualTo(ReplicationEngine.FRESH_SETTLE_MILLIS);
      assertPullsEverything(net, 30_000);
    }
  }

  /**
   * n5 just started and streams from a peer (the AE_STREAM frames 300 ms apart, so the round lasts);
   * when its map changes during the round, the round ends at once (failed), rather than go on
   * pulling under a map that is no longer its own. It pulls everything under the new map.
   */
  @Test
  void aNodeThatJustStarted_endsItsRunningRound_whenItsMapChanges() {
    try (SimNetwork net = fourLoaded(0)) {
      SimNetwork.SimNode n5 = net.addNode("n5", 0, null);
      net.clock.runFor(100);
      long[] streamFrames = new long[1];
      net.tap = new SimNetwork.Tap() {
        @Override
        public long sent(String sender, String receiver, Frames.Frame f) {
          return receiver.equals("n5") && f instanceof Frames.AeStream ? 300 : 0;
        }

        @Override
        public void delivered(String sender, String receiver, Frames.Frame f) {
          if (receiver.equals("n5") && f instanceof Frames.AeStream) {
            streamFrames[0]++;
          }
        }
      };
      n5.engine.setPlacement(Placement.of(List.of("n1", "n2", "n3", "n5"), 2));
      assertThat(net.clock.runUntil(() -> streamFrames[0] > 0, 5_000))
          .as("n5 receives a streamed frame").isTrue();
      long failedBefore = n5.stats.snapshot().antiEntropyRoundsFailed();
      long roundsBefore = n5.stats.snapshot().antiEntropyRounds();
      net.setPlacement(P5); // the round runs on: its next frame is 300 ms away
      net.clock.runFor(5);
      assertThat(n5.stats.snapshot().antiEntropyRoundsFailed() - failedBefore)
          .as("n5's rounds that ended (failed) within 5 ms of its map change").isEqualTo(1);
      assertThat(n5.stats.snapshot().antiEntropyRounds()).as("rounds n5 completed meanwhile")
          .isEqualTo(roundsBefore);
      net.tap = null;
      assertPullsEverything(net, 30_000);
    }
  }

  // ---- c. a streamed round's step timeout counts from the last AE_STREAM frame ------------------

  /**
   * Paces what peers stream to n5: the frame number {@code i} (from 0) of a round comes
   * {@code gap(i)} ms after the previous frame on that connection. Returns the delivery times of
   * each round's streamed frames, by round id.
   */
  private static Map<Long, List<Long>> paceStreamsTo(SimNetwork net, LongUnaryOperator gap) {
    Map<Long, Integer> sent = new HashMap<>();
    Map<Long, List<Long>> delivered = new HashMap<>();
    net.tap = new SimNetwork.Tap() {
      @Override
      public long sent(String sender, String receiver, Frames.Frame f) {
        if (receiver.equals("n5") && f instanceof Frames.AeStream st) {
          int i = sent.merge(st.roundId(), 1, Integer::sum) - 1;
          return gap.applyAsLong(i);
        }
        return 0;
      }

      @Override
      public void delivered(String sender, String receiver, Frames.Frame f) {
        if (receiver.equals("n5") && f instanceof Frames.AeStream st) {
          delivered.computeIfAbsent(st.roundId(), k -> new ArrayList<>()).add(net.clock.now());
        }
      }
    };
    return delivered;
  }

  /**
   * Every AE_STREAM frame to the joiner comes 300 ms after the one before (below the 400 ms step
   * timeout), so a round's stream lasts seconds: no round fails, and n5 pulls everything.
   */
  @Test
  void aStreamThatKeepsComing_outlastsTheStepTimeout_withoutFailingTheRound() {
    try (SimNetwork net = fourLoaded(0)) {
      Map<Long, List<Long>> streams = paceStreamsTo(net, i -> 300);
      SimNetwork.SimNode n5 = joinAsMember(net);
      assertPullsEverything(net, 60_000);
      long longest = 0;
      for (List<Long> times : streams.values()) {
        longest = Math.max(longest, times.get(times.size() - 1) - times.get(0));
      }
      log.info("longest stream {} ms; {}", longest, net.summary());
      assertThat(longest).as("ms the longest stream to n5 lasted").isGreaterThan(2 * STEP_TIMEOUT);
      assertThat(n5.stats.snapshot().antiEntropyRoundsFailed()).as("n5's failed rounds").isZero();
    }
  }

  /**
   * The peer streams three frames 300 ms apart, then nothing for 10 s: the round fails one step
   * timeout after the last frame that came (not one step timeout after it began, not when the
   * stream resumes).
   */
  @Test
  void aStreamThatStops_failsTheRound_oneStepTimeoutAfterItsLastFrame() {
    try (SimNetwork net = fourLoaded(0)) {
      Map<Long, List<Long>> streams = paceStreamsTo(net, i -> i < 3 ? 300 : 10_000);
      SimNetwork.SimNode n5 = joinAsMember(net);
      assertThat(net.clock.runUntil(() -> n5.stats.snapshot().antiEntropyRoundsFailed() > 0,
          5_000)).as("a round of n5 failed within 5 s (%s)", net.summary()).isTrue();
      long failedAt = net.clock.now();
      List<Long> stalled = null;
      for (List<Long> times : streams.values()) {
        if (times.size() == 3) {
          stalled = times;
        }
      }
      assertThat(stalled).as("a round whose stream stopped after 3 frames: %s", streams)
          .isNotNull();
      long last = stalled.get(2);
      log.info("stream frames at {}, round failed at {}", stalled, failedAt);
      assertThat(last - stalled.get(0)).as("ms between its first and last frame")
          .isGreaterThanOrEqualTo(600);
      assertThat(failedAt - last).as("ms from the last streamed frame to the round's failure")
          .isBetween(STEP_TIMEOUT, STEP_TIMEOUT + 10);
    }
  }
}
