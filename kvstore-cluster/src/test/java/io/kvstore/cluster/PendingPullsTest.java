package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.BitSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** What a pending owner still pulls, and streams, from each peer ({@link PendingPulls}). */
class PendingPullsTest {
  private static BitSet bits(int... ps) {
    BitSet b = new BitSet();
    for (int p : ps) {
      b.set(p);
    }
    return b;
  }

  @Test
  void aPartitionHeldNothingOf_isStreamedFromEverySource_untilOneRoundDeliversEntriesOfIt() {
    PendingPulls pulls = new PendingPulls();
    pulls.add(bits(1, 2, 3), List.of("a", "b", "c"), bits(1, 2));
    assertThat(pulls.pending()).isEqualTo(bits(1, 2, 3));
    for (String peer : List.of("a", "b", "c")) {
      assertThat(pulls.from(peer)).isEqualTo(bits(1, 2, 3));
      assertThat(pulls.streamFrom(peer)).as("3 held data: compared, not streamed")
          .isEqualTo(bits(1, 2));
    }

    // a holds nothing of 1 and 2 (a non-owner): its round completes them from a, streams nothing.
    pulls.pulled("a", bits(1, 2, 3), new BitSet());
    assertThat(pulls.hasWork("a")).isFalse();
    assertThat(pulls.streamFrom("b")).as("still to stream from the others").isEqualTo(bits(1, 2));

    // b streamed entries of 1 (it held it); 2 was left out of its round.
    pulls.pulled("b", bits(1, 3), bits(1));
    assertThat(pulls.from("b")).isEqualTo(bits(2));
    assertThat(pulls.streamFrom("b")).isEqualTo(bits(2));
    assertThat(pulls.streamFrom("c")).as("1 streamed from b: c is compared, only what differs")
        .isEqualTo(bits(2));
    assertThat(pulls.from("c")).as("c is still pulled").isEqualTo(bits(1, 2, 3));
  }

  @Test
  void streamsGoWithThePeersAndPartitionsTheyBelongTo() {
    PendingPulls pulls = new PendingPulls();
    pulls.add(bits(1, 2), List.of("a", "b"), bits(1, 2));
    pulls.retainOwned(bits(2));
    assertThat(pulls.streamFrom("a")).isEqualTo(bits(2));
    pulls.retainPeers(Set.of("b"));
    assertThat(pulls.streamFrom("a")).isEqualTo(new BitSet());
    assertThat(pulls.streamFrom("b")).isEqualTo(bits(2));
    pulls.clear();
    assertThat(pulls.streamFrom("b")).isEqualTo(new BitSet());
    assertThat(pulls.pending()).isEqualTo(new BitSet());
  }

  @Test
  void nothingHeldNothingOf_streamsNothing() {
    PendingPulls pulls = new PendingPulls();
    pulls.add(bits(7), List.of("a"), new BitSet());
    assertThat(pulls.from("a")).isEqualTo(bits(7));
    assertThat(pulls.streamFrom("a")).isEqualTo(new BitSet());
  }
}
