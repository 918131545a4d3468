package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import io.kvstore.core.testing.Seeds;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.LongStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The placement node set's rules, on a virtual clock ({@link SimClock}): suspicion never counts, an
 * absent node leaves only after the removal delay, a graceful leave at once, this node always stays,
 * and the same events per node in any interleaving give the same placement. Replay a seeded case
 * with {@code -Dkvstore.seed=N}.
 */
@Timeout(30)
class PlacementNodesTest {
  private static final long DELAY = 60_000;

  private final SimClock clock = new SimClock();
  private final List<Placement> changes = new ArrayList<>();

  private PlacementNodes tracker(String self, int rf) {
    return new PlacementNodes(self, rf, DELAY, clock, clock::now, changes::add);
  }

  private static Set<String> set(String... ids) {
    return new TreeSet<>(List.of(ids));
  }

  @Test
  void aFreshTracker_holdsOnlyThisNode() {
    PlacementNodes t = tracker("a", 2);
    assertThat(t.nodes()).containsExactly("a");
    assertThat(t.placement().partitionCount("a")).isEqualTo(Placement.PARTITIONS);
    assertThat(t.placement().isFullReplication()).isTrue();
  }

  @Test
  void aliveMembers_joinAtOnce_andEachChangeReachesTheListener() {
    PlacementNodes t = tracker("a", 2);
    t.alive("b-1", "b");
    t.alive("c-1", "c");
    t.alive("c-1", "c"); // UPDATED: no change
    assertThat(t.nodes()).containsExactly("a", "b", "c");
    assertThat(changes).hasSize(2);
    assertThat(changes.get(1)).isSameAs(t.placement());
    assertThat(t.placement().fingerprint())
        .isEqualTo(Placement.of(set("a", "b", "c"), 2).fingerprint());
    assertThat(t.changes()).isEqualTo(2);
  }

  @Test
  void suspicion_neverChangesTheSet() {
    PlacementNodes t = tracker("a", 2);
    t.alive("b-1", "b");
    t.alive("c-1", "c");
    changes.clear();
    long before = t.placement().fingerprint();
    for (int i = 0; i < 10; i++) {
      t.suspect("b-1", "b");
      clock.runFor(DELAY);
    }
    t.alive("b-1", "b"); // the refutation arrives as UPDATED
    assertThat(t.nodes()).containsExactly("a", "b", "c");
    assertThat(t.placement().fingerprint()).isEqualTo(before);
    assertThat(changes).isEmpty();
  }

  @Test
  void removedWithoutLeaving_changesTheSetOnlyAfterTheRemovalDelay() {
    PlacementNodes t = tracker("a", 2);
    t.alive("b-1", "b");
    t.alive("c-1", "c");
    changes.clear();
    t.removed("c-1", "c");
    clock.runFor(DELAY - 1);
    assertThat(t.nodes()).containsExactly("a", "b", "c");
    assertThat(changes).isEmpty();
    clock.runFor(1);
    assertThat(t.nodes()).containsExactly("a", "b");
    assertThat(changes).hasSize(1);
    assertThat(changes.get(0).fingerprint()).isEqualTo(Placement.of(set("a", "b"), 2).fingerprint());
  }

  @Test
  void aNodeBackBeforeTheDelay_keepsTheSetUnchanged_underTheSameOrANewIncarnation() {
    PlacementNodes t = tracker("a", 2);
    t.alive("b-1", "b");
    t.alive("c-1", "c");
    changes.clear();
    long before = t.placement().fingerprint();
    t.removed("c-1", "c");
    clock.runFor(DELAY / 2);
    t.alive("c-1", "c"); // a healed partition re-adds the same member
    clock.runFor(DELAY * 2);
    t.removed("b-1", "b");
    clock.runFor(DELAY - 1);
    t.alive("b-2", "b"); // b restarted: a new incarnation
    clock.runFor(DELAY * 2);
    assertThat(t.nodes()).containsExactly("a", "b", "c");
    assertThat(t.placement().fingerprint()).isEqualTo(before);
    assertThat(changes).isEmpty();
  }

  @Test
  void aRestartedNode_whoseOldIncarnationIsRemovedAfterTheNewJoined_neverLeaves() {
    PlacementNodes t = tracker("a", 2);
    t.alive("b-1", "b");
    changes.clear();
    t.alive("b-2", "b");
    t.removed("b-1", "b");
    clock.runFor(DELAY * 3);
    assertThat(t.nodes()).containsExactly("a", "b");
    assertThat(changes).isEmpty();
  }

  @Test
  void gracefulLeave_changesTheSetAtOnce_andTheRemovalThatFollowsChangesNothingMore() {
    PlacementNodes t = tracker("a", 2);
    t.alive("b-1", "b");
    t.alive("c-1", "c");
    changes.clear();
    t.leaving("c-1", "c");
    assertThat(t.nodes()).containsExactly("a", "b");
    assertThat(changes).hasSize(1);
    t.removed("c-1", "c");
    clock.runFor(DELAY * 2);
    assertThat(t.nodes()).containsExactly("a", "b");
    assertThat(changes).hasSize(1);
  }

  @Test
  void aGracefulLeaveOfANewIncarnation_doesNotWaitForTheCrashedOldOne() {
    PlacementNodes t = tracker("a", 2);
    t.alive("b-1", "b");
    t.removed("b-1", "b"); // crashed
    t.alive("b-2", "b"); // restarted
    t.leaving("b-2", "b"); // and left for good
    assertThat(t.nodes()).containsExactly("a");
  }

  @Test
  void thisNode_isAlwaysInItsOwnSet_whateverIsReportedAboutItsId() {
    PlacementNodes t = tracker("a", 1);
    t.alive("b-1", "b");
    t.alive("a-old", "a");
    t.leaving("a-old", "a");
    t.removed("a-old", "a");
    t.removed("a-other", "a");
    clock.runFor(DELAY * 2);
    assertThat(t.nodes()).contains("a");
    t.leaving("b-1", "b");
    assertThat(t.nodes()).containsExactly("a");
    assertThat(t.placement().partitionCount("a")).isEqualTo(Placement.PARTITIONS);
  }

  @Test
  void afterThisNodeLeaves_theSetIsFrozen() {
    PlacementNodes t = tracker("a", 2);
    t.alive("b-1", "b");
    t.alive("c-1", "c");
    t.removed("c-1", "c");
    changes.clear();
    t.selfLeaving();
    t.leaving("b-1", "b");
    t.alive("d-1", "d");
    clock.runFor(DELAY * 2);
    assertThat(t.nodes()).containsExactly("a", "b", "c");
    assertThat(changes).isEmpty();
  }

  @Test
  void fullReplication_placesEveryPartitionOnEveryNode() {
    PlacementNodes t = tracker("a", KvClusterConfig.FULL_REPLICATION);
    for (int i = 0; i < 5; i++) {
      t.alive("n" + i + "-1", "n" + i);
    }
    assertThat(t.placement().isFullReplication()).isTrue();
    assertThat(t.placement().replicationFactor()).isEqualTo(6);
    assertThat(t.placement().partitionCount("n3")).isEqualTo(Placement.PARTITIONS);
  }

  // ---- interleavings ---------------------------------------------------------------------------

  static LongStream seeds() {
    return Seeds.seeds(14_100, 30);
  }

  /** One membership event about one node, at a virtual time offset. */
  private record Event(String kind, String memberId, String nodeId) {}

  /** A random history of one node: incarnations that come, get suspected, crash or leave. */
  private static List<Event> historyOf(String node, Random r) {
    List<Event> out = new ArrayList<>();
    int incarnations = 1 + r.nextInt(3);
    for (int i = 0; i < incarnations; i++) {
      String member = node + "-" + i;
      out.add(new Event("alive", member, node));
      for (int k = r.nextInt(4); k > 0; k--) {
        switch (r.nextInt(4)) {
          case 0 -> out.add(new Event("suspect", member, node));
          case 1 -> out.add(new Event("alive", member, node));
          case 2 -> {
            out.add(new Event("removed", member, node));
            out.add(new Event("alive", member, node));
          }
          default -> out.add(new Event("suspect", member, node));
        }
      }
      switch (r.nextInt(3)) {
        case 0 -> { } // stays
        case 1 -> out.add(new Event("removed", member, node)); // crashes
        default -> {
          out.add(new Event("leaving", member, node));
          if (r.nextBoolean()) {
            out.add(new Event("removed", member, node));
          }
        }
      }
    }
    return out;
  }

  /** The per-node histories merged in a random interleaving (each node's own order kept). */
  private static List<Event> interleave(List<List<Event>> histories, Random r) {
    List<Event> out = new ArrayList<>();
    int[] next = new int[histories.size()];
    int left = histories.stream().mapToInt(List::size).sum();
    while (left > 0) {
      int h = r.nextInt(histories.size());
      if (next[h] < histories.get(h).size()) {
        out.add(histories.get(h).get(next[h]++));
        left--;
      }
    }
    return out;
  }

  private static Placement replay(List<Event> events, Random r) {
    SimClock clock = new SimClock();
    PlacementNodes t = new PlacementNodes("self", 3, DELAY, clock, clock::now, p -> { });
    for (Event e : events) {
      switch (e.kind()) {
        case "alive" -> t.alive(e.memberId(), e.nodeId());
        case "suspect" -> t.suspect(e.memberId(), e.nodeId());
        case "leaving" -> t.leaving(e.memberId(), e.nodeId());
        default -> t.removed(e.memberId(), e.nodeId());
      }
      clock.runFor(r.nextInt(3) == 0 ? r.nextInt((int) DELAY * 2) : r.nextInt(100));
    }
    clock.runFor(DELAY * 3); // every removal delay has run out
    assertThat(t.nodes()).contains("self");
    return t.placement();
  }

  @ParameterizedTest(name = "seed={0}")
  @MethodSource("seeds")
  void theSameEventsPerNode_inAnyInterleaving_endInTheSamePlacement(long seed) {
    Random r = new Random(seed);
    List<List<Event>> histories = new ArrayList<>();
    int nodes = 2 + r.nextInt(7);
    for (int i = 0; i < nodes; i++) {
      histories.add(historyOf("n" + i, r));
    }
    Placement first = replay(interleave(histories, r), r);
    Placement second = replay(interleave(histories, r), r);
    assertThat(second.fingerprint()).as(Seeds.describe(seed) + ": %s vs %s", first.nodes(),
        second.nodes()).isEqualTo(first.fingerprint());
    assertThat(second.nodes()).as(Seeds.describe(seed)).isEqualTo(first.nodes());
  }
}
