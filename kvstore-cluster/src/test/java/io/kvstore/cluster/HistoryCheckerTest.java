package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import io.kvstore.core.Version;
import io.kvstore.core.WriteConcern;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The Jepsen checker on hand-made histories: it passes what is allowed and names what is not. */
@Timeout(value = 10, unit = TimeUnit.SECONDS)
class HistoryCheckerTest {
  private final List<HistoryOp> history = new ArrayList<>();
  private final Map<String, Map<String, HistoryChecker.Cell>> states = new TreeMap<>();

  private HistoryOp op(HistoryOp.Kind kind, String key, String value, WriteConcern concern,
      HistoryOp.Outcome outcome, long ts) {
    HistoryOp op = new HistoryOp(history.size() + 1, "c1", "n1", kind, key, value, concern, 0);
    op.version = Version.of(ts, 0, "n1");
    op.outcome = outcome;
    op.endNanos = 1;
    if (concern == WriteConcern.QUORUM && outcome == HistoryOp.Outcome.OK) {
      op.required = 2;
      op.holders = 2;
    }
    history.add(op);
    return op;
  }

  private void holds(String key, String value, long ts, String... nodes) {
    for (String n : nodes) {
      states.computeIfAbsent(n, x -> new TreeMap<>())
          .put(key, new HistoryChecker.Cell(Version.of(ts, 0, "n1"), value));
    }
  }

  private HistoryChecker.Verdict check() {
    states.computeIfAbsent("n1", x -> new TreeMap<>());
    states.computeIfAbsent("n2", x -> new TreeMap<>());
    return HistoryChecker.check(history, states, 0);
  }

  @Test
  void lwwMaximumOfAcknowledgedAndUnknownWrites_passes() {
    op(HistoryOp.Kind.PUT, "s", "a", WriteConcern.QUORUM, HistoryOp.Outcome.OK, 100);
    op(HistoryOp.Kind.PUT, "s", "b", WriteConcern.ONE, HistoryOp.Outcome.UNKNOWN, 200);
    op(HistoryOp.Kind.PUT, "u", "x", WriteConcern.ONE, HistoryOp.Outcome.OK, 150);
    op(HistoryOp.Kind.DELETE, "u", null, WriteConcern.ONE, HistoryOp.Outcome.OK, 160);
    holds("s", "b", 200, "n1", "n2");
    holds("u", null, 160, "n1", "n2");
    HistoryChecker.Verdict v = check();
    assertThat(v.violations()).isEmpty();
    assertThat(v.figures().ok()).isEqualTo(3);
    assertThat(v.figures().unknown()).isEqualTo(1);
  }

  /** A node restarted empty reused a version: either write may win the tie, both explain it. */
  @Test
  void twoWritesOfOneVersion_eitherValueIsExplained_aThirdIsNot() {
    op(HistoryOp.Kind.PUT, "s", "a", WriteConcern.ONE, HistoryOp.Outcome.OK, 100);
    op(HistoryOp.Kind.PUT, "s", "b", WriteConcern.ONE, HistoryOp.Outcome.OK, 100);
    op(HistoryOp.Kind.PUT, "t", "a", WriteConcern.ONE, HistoryOp.Outcome.OK, 100);
    op(HistoryOp.Kind.PUT, "t", "b", WriteConcern.ONE, HistoryOp.Outcome.OK, 100);
    op(HistoryOp.Kind.PUT, "u", "a", WriteConcern.ONE, HistoryOp.Outcome.OK, 100);
    op(HistoryOp.Kind.PUT, "u", "b", WriteConcern.ONE, HistoryOp.Outcome.OK, 100);
    holds("s", "a", 100, "n1", "n2");
    holds("t", "b", 100, "n1", "n2");
    holds("u", "c", 100, "n1", "n2");
    HistoryChecker.Verdict v = check();
    assertThat(v.violations()).extracting(HistoryChecker.Violation::kind)
        .containsExactly(HistoryChecker.Kind.UNEXPLAINED);
    assertThat(v.violations().get(0).key()).isEqualTo("u");
  }

  @Test
  void unknownWriteThatNeverSpread_isAllowed_butAnAcknowledgedOneIsRequired() {
    op(HistoryOp.Kind.PUT, "u1", "x", WriteConcern.QUORUM, HistoryOp.Outcome.UNKNOWN, 100);
    op(HistoryOp.Kind.PUT, "u2", "y", WriteConcern.ONE, HistoryOp.Outcome.OK, 100);
    HistoryChecker.Verdict v = check();
    assertThat(v.violations()).extracting(HistoryChecker.Violation::kind)
        .containsExactly(HistoryChecker.Kind.LOST);
    assertThat(v.violations().get(0).key()).isEqualTo("u2");
    assertThat(v.evidence()).contains("history of u2").contains("#2").contains("final on n1: nothing");
  }

  @Test
  void acknowledgedOneWriteLostToAKill_isAllowedAndCounted() {
    HistoryOp lost = op(HistoryOp.Kind.PUT, "u", "x", WriteConcern.ONE, HistoryOp.Outcome.OK, 100);
    lost.lostToCrash = "kill 1 of n1";
    lost.lostAtCrash = 1;
    HistoryChecker.Verdict v = check();
    assertThat(v.violations()).isEmpty();
    assertThat(v.figures().oneLostToCrash()).isEqualTo(1);
  }

  @Test
  void quorumWriteHeldByTwoAndLostToTheNextSingleKill_isAViolation() {
    HistoryOp lost = op(HistoryOp.Kind.PUT, "u", "x", WriteConcern.QUORUM, HistoryOp.Outcome.OK, 100);
    lost.lostToCrash = "kill 1 of n1";
    lost.lostAtCrash = 1;
    assertThat(check().violations()).extracting(HistoryChecker.Violation::kind)
        .containsExactly(HistoryChecker.Kind.QUORUM_LOST);
  }

  /** Under SYNC an acknowledged write was on disk: no crash, however wide, excuses losing it. */
  @Test
  void syncAcknowledgedQuorumWriteNoNodeHolds_isLost_evenWhenACrashTookIt() {
    HistoryOp lost = op(HistoryOp.Kind.PUT, "u", "x", WriteConcern.QUORUM, HistoryOp.Outcome.OK, 100);
    lost.durableAck = true;
    lost.lostToCrash = "crash 1 of every node";
    lost.lostAtCrash = 3; // not the first crash after it: the non-durable QUORUM_LOST rule is silent
    lost.crashesAtEnd = 1;
    HistoryOp one = op(HistoryOp.Kind.PUT, "v", "y", WriteConcern.ONE, HistoryOp.Outcome.OK, 100);
    one.durableAck = true;
    one.lostToCrash = "kill 1 of n1";
    HistoryChecker.Verdict v = check();
    assertThat(v.violations()).extracting(HistoryChecker.Violation::kind)
        .containsExactlyInAnyOrder(HistoryChecker.Kind.LOST, HistoryChecker.Kind.LOST,
            HistoryChecker.Kind.SYNC_QUORUM_LOST);
    assertThat(v.figures().syncQuorumLost()).isEqualTo(1);
    assertThat(v.figures().syncQuorumAcked()).isEqualTo(1);
    assertThat(v.figures().quorumLostToCrash()).isZero();
    assertThat(v.figures().oneLostToCrash()).isZero();
    assertThat(v.evidence()).contains("acknowledged at QUORUM under SYNC");
  }

  @Test
  void syncAcknowledgedQuorumWrite_heldByOneNodeOrOverwritten_isNotLost() {
    op(HistoryOp.Kind.PUT, "u", "x", WriteConcern.QUORUM, HistoryOp.Outcome.OK, 100).durableAck = true;
    op(HistoryOp.Kind.PUT, "s", "a", WriteConcern.QUORUM, HistoryOp.Outcome.OK, 100).durableAck = true;
    op(HistoryOp.Kind.DELETE, "s", null, WriteConcern.ONE, HistoryOp.Outcome.UNKNOWN, 200);
    holds("u", "x", 100, "n2");
    holds("s", null, 200, "n1", "n2");
    HistoryChecker.Verdict v = check();
    // n1 lacks u: divergent and lost on n1, but the cluster still holds it.
    assertThat(v.violations()).extracting(HistoryChecker.Violation::kind)
        .containsExactlyInAnyOrder(HistoryChecker.Kind.DIVERGENT, HistoryChecker.Kind.LOST);
    assertThat(v.figures().syncQuorumAcked()).isEqualTo(2);
    assertThat(v.figures().syncQuorumLost()).isZero();
  }

  @Test
  void sharedKeyOlderThanAnAcknowledgedWrite_isLost() {
    op(HistoryOp.Kind.PUT, "s", "a", WriteConcern.ONE, HistoryOp.Outcome.OK, 100);
    op(HistoryOp.Kind.PUT, "s", "b", WriteConcern.QUORUM, HistoryOp.Outcome.OK, 200);
    holds("s", "a", 100, "n1", "n2");
    assertThat(check().violations()).extracting(HistoryChecker.Violation::kind)
        .containsExactly(HistoryChecker.Kind.LOST);
  }

  @Test
  void deletedKeyHoldingAnOlderValueAgain_isResurrected() {
    op(HistoryOp.Kind.PUT, "u", "x", WriteConcern.ONE, HistoryOp.Outcome.OK, 100);
    op(HistoryOp.Kind.DELETE, "u", null, WriteConcern.QUORUM, HistoryOp.Outcome.OK, 200);
    holds("u", "x", 100, "n1", "n2");
    assertThat(check().violations()).extracting(HistoryChecker.Violation::kind)
        .containsExactly(HistoryChecker.Kind.RESURRECTED);
  }

  @Test
  void valueNoCandidateWrote_isUnexplained_evenAtAKnownVersion() {
    op(HistoryOp.Kind.PUT, "s", "a", WriteConcern.ONE, HistoryOp.Outcome.OK, 100);
    op(HistoryOp.Kind.PUT, "f", "z", WriteConcern.ONE, HistoryOp.Outcome.FAILED, 300);
    holds("s", "other", 100, "n1", "n2");
    holds("f", "z", 300, "n1", "n2");
    assertThat(check().violations()).extracting(HistoryChecker.Violation::kind)
        .containsExactlyInAnyOrder(HistoryChecker.Kind.UNEXPLAINED, HistoryChecker.Kind.UNEXPLAINED);
  }

  @Test
  void nodesDisagreeing_isDivergent() {
    op(HistoryOp.Kind.PUT, "s", "a", WriteConcern.ONE, HistoryOp.Outcome.OK, 100);
    op(HistoryOp.Kind.PUT, "s", "b", WriteConcern.ONE, HistoryOp.Outcome.UNKNOWN, 200);
    holds("s", "a", 100, "n1");
    holds("s", "b", 200, "n2");
    HistoryChecker.Verdict v = check();
    assertThat(v.violations()).extracting(HistoryChecker.Violation::kind)
        .containsExactly(HistoryChecker.Kind.DIVERGENT);
    assertThat(v.figures().divergentKeys()).isEqualTo(1);
  }

  @Test
  void quorumAckHeldByTooFewReplicas_isUnderReplicated() {
    HistoryOp op = op(HistoryOp.Kind.PUT, "u", "x", WriteConcern.QUORUM, HistoryOp.Outcome.OK, 100);
    op.required = 3;
    op.holders = 2;
    holds("u", "x", 100, "n1", "n2");
    assertThat(check().violations()).extracting(HistoryChecker.Violation::kind)
        .containsExactly(HistoryChecker.Kind.QUORUM_UNDER_REPLICATED);
  }
}
