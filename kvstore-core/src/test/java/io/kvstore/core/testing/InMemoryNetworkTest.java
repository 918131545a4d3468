package io.kvstore.core.testing;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.kvstore.core.ChangeEvent;
import io.kvstore.core.KvStore;
import io.kvstore.core.MembershipEvent;
import io.kvstore.core.Version;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteConcernException;
import io.kvstore.core.WriteOptions;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The in-memory network's own mechanics: faults, partitions, timeouts, anti-entropy, pump. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class InMemoryNetworkTest {

  private static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  private static InMemoryCluster.Builder cluster(int nodes) {
    return InMemoryCluster.builder().nodes(nodes).seed(7);
  }

  // ---- determinism -----------------------------------------------------------------------------

  @Test
  void when_sameSeedAndCalls_then_sameTraceAndState() {
    List<String> first = runScripted(1234);
    List<String> second = runScripted(1234);
    assertThat(second).isEqualTo(first);
    assertThat(runScripted(1235)).as("another seed makes other fault decisions").isNotEqualTo(first);
  }

  private static List<String> runScripted(long seed) {
    NetworkFaults faults = NetworkFaults.none().withLoss(0.2).withDuplication(0.3).withDelay(1, 4)
        .withReorder(0.3, 6);
    try (InMemoryCluster c = InMemoryCluster.builder().nodes(4).seed(seed).faults(faults)
        .traceCapacity(100_000).antiEntropyChunkSize(2).build()) {
      for (int i = 0; i < 40; i++) {
        KvStore s = c.store(i % 4);
        if (i % 5 == 4) {
          s.delete("k" + (i % 7));
        } else {
          s.put("k" + (i % 7), "v" + i);
        }
        c.network().step();
      }
      c.settle();
      List<String> out = new ArrayList<>(c.network().trace());
      out.add(c.network().stats().toString());
      out.add(Replicas.mutations(c.replicaStore(0)).toString());
      return out;
    }
  }

  // ---- faults ----------------------------------------------------------------------------------

  @Test
  void when_lossIsTotal_then_nothingIsDelivered_andAntiEntropyCannotHelp() {
    try (InMemoryCluster c = cluster(2).faults(NetworkFaults.none().withLoss(1.0)).build()) {
      c.store(0).put("k", "v");
      c.network().antiEntropyRound();
      c.network().deliverAll();
      assertThat(c.store(1).get("k")).isEmpty();
      NetworkStats st = c.network().stats();
      assertThat(st.delivered()).isZero();
      assertThat(st.lost()).isEqualTo(st.sent()).isPositive();
    }
  }

  @Test
  void when_everyFanOutIsLost_then_antiEntropyStillConverges() {
    try (InMemoryCluster c = cluster(3)
        .faults(NetworkFaults.none().withLoss(MessageKind.MUTATION, 1.0)).build()) {
      c.store(0).put("a", "1");
      c.store(1).put("b", "2");
      c.store(2).delete("a");
      c.network().deliverAll();
      assertThat(c.store(1).get("a")).as("fan-out was lost").isEmpty();
      assertThat(c.store(0).get("b")).isEmpty();
      c.settle();
      for (KvStore s : c.stores()) {
        assertThat(s.get("a")).isEmpty();
        assertThat(s.getString("b")).contains("2");
      }
      NetworkStats st = c.network().stats();
      assertThat(st.delivered(MessageKind.MUTATION)).isZero();
      assertThat(st.sent(MessageKind.MUTATION)).isEqualTo(6);
      assertThat(st.delivered(MessageKind.AE_MUTATIONS)).isPositive();
    }
  }

  @Test
  void when_everyMessageIsDuplicated_then_eachArrivesTwice_butIsAppliedOnce() {
    try (InMemoryCluster c = cluster(2).faults(NetworkFaults.none().withDuplication(1.0)).build()) {
      List<ChangeEvent> remote = new CopyOnWriteArrayList<>();
      c.store(1).addListener("", remote::add);
      c.store(0).put("k", "v");
      c.store(0).delete("k");
      c.network().deliverAll();
      NetworkStats st = c.network().stats();
      assertThat(st.duplicated()).isEqualTo(st.sent());
      assertThat(st.delivered(MessageKind.MUTATION)).isEqualTo(4);
      assertThat(remote).extracting(ChangeEvent::type)
          .containsExactly(ChangeEvent.Type.PUT, ChangeEvent.Type.DELETE);
    }
  }

  @Test
  void when_delayed_then_deliveredExactlyAfterThatManySteps() {
    try (InMemoryCluster c = cluster(2).faults(NetworkFaults.none().withDelay(3, 3)).build()) {
      c.store(0).put("k", "v");
      c.network().step();
      c.network().step();
      assertThat(c.store(1).get("k")).isEmpty();
      assertThat(c.network().inFlight()).isEqualTo(1);
      assertThat(c.network().step()).isEqualTo(1);
      assertThat(c.store(1).getString("k")).contains("v");
    }
  }

  @Test
  void when_reordering_then_laterWritesOvertakeEarlierOnes_butLwwKeepsTheNewest() {
    try (InMemoryCluster c = cluster(2).faults(NetworkFaults.none().withReorder(0.5, 20)).build()) {
      List<String> arrivals = new CopyOnWriteArrayList<>();
      c.store(1).addListener("", e -> arrivals.add(e.key()));
      List<String> sent = new ArrayList<>();
      for (int i = 0; i < 30; i++) {
        c.store(0).put("k" + i, "v");
        sent.add("k" + i);
      }
      Version last = c.store(0).put("same", "last");
      for (int i = 0; i < 30; i++) {
        c.store(0).put("same", "older-" + i); // newer versions, sent after: overwritten below
      }
      last = c.store(0).put("same", "final");
      c.network().deliverAll();
      List<String> distinct = arrivals.stream().filter(k -> k.startsWith("k")).toList();
      assertThat(distinct).containsExactlyInAnyOrderElementsOf(sent).isNotEqualTo(sent);
      assertThat(c.store(1).getVersioned("same").orElseThrow().version()).isEqualTo(last);
      assertThat(c.store(1).getString("same")).contains("final");
    }
  }

  @Test
  void faults_rejectInvalidSettings() {
    assertThatThrownBy(() -> NetworkFaults.none().withLoss(1.5))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("loss");
    assertThatThrownBy(() -> NetworkFaults.none().withDuplication(-0.1))
        .hasMessageContaining("duplication");
    assertThatThrownBy(() -> NetworkFaults.none().withDelay(0, 2)).hasMessageContaining("delay");
    assertThatThrownBy(() -> NetworkFaults.none().withDelay(3, 2)).hasMessageContaining("delay");
    assertThatThrownBy(() -> NetworkFaults.none().withReorder(0.5, 0))
        .hasMessageContaining("reorder window");
    assertThatThrownBy(() -> InMemoryNetwork.builder().antiEntropyChunkSize(0).build())
        .hasMessageContaining("antiEntropyChunkSize");
    assertThatThrownBy(() -> InMemoryNetwork.builder().stepDuration(Duration.ZERO).build())
        .hasMessageContaining("stepDuration");
    assertThatThrownBy(() -> InMemoryNetwork.builder().antiEntropyEverySteps(-1).build())
        .hasMessageContaining("antiEntropyEverySteps");
    assertThat(NetworkFaults.none().withLoss(0.1).withLoss(MessageKind.ACK, 0.9).lossOf(MessageKind.ACK))
        .isEqualTo(0.9);
  }

  // ---- partitions ------------------------------------------------------------------------------

  @Test
  void when_partitioned_then_messagesAcrossGroupsAreDropped_andHealRestoresDelivery() {
    try (InMemoryCluster c = cluster(4).build()) {
      c.partition(List.of(Set.of("node-1", "node-2")));
      c.store(0).put("a", "1");
      c.store(2).put("b", "2");
      c.network().deliverAll();
      assertThat(c.store(1).getString("a")).contains("1");
      assertThat(c.store(3).getString("b")).as("unnamed nodes form one group").contains("2");
      assertThat(c.store(2).get("a")).isEmpty();
      assertThat(c.store(0).get("b")).isEmpty();
      assertThat(c.network().stats().droppedPartition()).isEqualTo(4);
      assertThatThrownBy(c::settle).isInstanceOf(AssertionError.class)
          .hasMessageContaining("did not converge").hasMessageContaining("seed 7");
      c.heal();
      c.settle();
      for (KvStore s : c.stores()) {
        assertThat(s.getString("a")).contains("1");
        assertThat(s.getString("b")).contains("2");
      }
    }
  }

  @Test
  void when_linkIsBlockedOneWay_then_onlyThatDirectionIsDropped() {
    try (InMemoryCluster c = cluster(2).build()) {
      c.network().block("node-1", "node-2");
      assertThat(c.network().isConnected("node-1", "node-2")).isFalse();
      assertThat(c.network().isConnected("node-2", "node-1")).isTrue();
      c.store(0).put("from1", "x");
      c.store(1).put("from2", "y");
      c.network().deliverAll();
      assertThat(c.store(1).get("from1")).isEmpty();
      assertThat(c.store(0).getString("from2")).contains("y");
      // node-2 receives the ALL write from... nobody: node-1's acks to node-2 are blocked.
      CompletableFuture<Version> all = c.store(1).putAsync("all", bytes("z"),
          WriteOptions.concern(WriteConcern.ALL).withTimeout(Duration.ofMillis(50)));
      assertThatThrownBy(() -> c.await(all)).isInstanceOf(WriteConcernException.class);
      assertThat(c.store(0).getString("all")).as("the write itself arrived").contains("z");
      c.network().unblock("node-1", "node-2");
      c.settle();
      assertThat(c.store(1).getString("from1")).contains("x");
    }
  }

  @Test
  void when_partitionStartsWhileMessageIsInFlight_then_itIsLost() {
    try (InMemoryCluster c = cluster(2).faults(NetworkFaults.none().withDelay(5, 5)).build()) {
      c.store(0).put("k", "v");
      c.network().step();
      c.isolate("node-2");
      c.network().deliverAll();
      c.heal();
      assertThat(c.store(1).get("k")).isEmpty();
      assertThat(c.network().stats().droppedPartition()).isEqualTo(1);
    }
  }

  @Test
  void when_nodeIsInTwoGroups_then_partitionIsRejected() {
    try (InMemoryCluster c = cluster(2).build()) {
      assertThatThrownBy(() -> c.partition(List.of(Set.of("node-1"), Set.of("node-1", "node-2"))))
          .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("two partition groups");
    }
  }

  // ---- write concerns --------------------------------------------------------------------------

  @Test
  void when_writeConcernTimesOut_then_itFailsExactlyAtTheDeadlineStep() {
    try (InMemoryCluster c = cluster(3).stepDuration(Duration.ofMillis(10)).build()) {
      c.isolate("node-3");
      CompletableFuture<Version> f = c.store(0).putAsync("k", bytes("v"),
          WriteOptions.concern(WriteConcern.ALL).withTimeout(Duration.ofMillis(100)));
      for (int i = 0; i < 9; i++) {
        c.network().step();
      }
      assertThat(f).as("after 9 of 10 steps").isNotDone();
      c.network().step();
      assertThat(f).isCompletedExceptionally();
      assertThatThrownBy(f::join).hasCauseInstanceOf(WriteConcernException.class)
          .hasMessageContaining("2 acknowledged").hasMessageContaining("10 steps");
      assertThat(c.network().pendingWrites()).isZero();
    }
  }

  @Test
  void expireTimeouts_failsEveryPendingWriteAtOnce() {
    try (InMemoryCluster c = cluster(3).build()) {
      CompletableFuture<Version> q = c.store(0).putAsync("a", bytes("1"),
          WriteOptions.concern(WriteConcern.QUORUM));
      CompletableFuture<Boolean> d = c.store(1).deleteAsync("a", WriteOptions.concern(WriteConcern.ALL));
      assertThat(c.network().pendingWrites()).isEqualTo(2);
      assertThat(c.network().expireTimeouts()).isEqualTo(2);
      assertThatThrownBy(q::join).hasCauseInstanceOf(WriteConcernException.class);
      assertThatThrownBy(d::join).hasCauseInstanceOf(WriteConcernException.class);
    }
  }

  @Test
  void when_writeConcernOne_then_completesBeforeAnyDelivery() {
    try (InMemoryCluster c = cluster(3).build()) {
      CompletableFuture<Version> f = c.store(0).putAsync("k", bytes("v"), WriteOptions.defaults());
      assertThat(f).isCompleted();
      assertThat(c.network().inFlight()).isEqualTo(2);
    }
  }

  @Test
  void when_linkQueueIsFull_then_furtherMessagesAreDroppedAndCounted() {
    try (InMemoryNetwork net = InMemoryNetwork.builder().maxInFlightPerLink(5).build();
        KvStore a = KvStore.builder().nodeId("a").replicator(net.newReplicator()).build();
        KvStore b = KvStore.builder().nodeId("b").replicator(net.newReplicator()).build()) {
      net.deliverAll();
      for (int i = 0; i < 12; i++) {
        a.put("k" + i, "v");
      }
      assertThat(net.inFlight()).isEqualTo(5);
      assertThat(net.stats().droppedOverflow()).isEqualTo(7);
      net.antiEntropyUntilConverged(20);
      assertThat(b.scan("", 100)).hasSize(12);
    }
  }

  // ---- anti-entropy ----------------------------------------------------------------------------

  @Test
  void oneExchange_pullsThePeersNewerEntries_andPushesItsOwn_inChunks() {
    try (InMemoryCluster c = cluster(2).antiEntropyChunkSize(3)
        .faults(NetworkFaults.none().withLoss(MessageKind.MUTATION, 1.0)).build()) {
      for (int i = 0; i < 20; i++) {
        c.store(0).put("mine-" + i, "a");
        c.store(1).put("theirs-" + i, "b");
      }
      c.store(1).delete("theirs-0");
      c.network().deliverAll();
      NetworkStats before = c.network().stats();
      c.network().startAntiEntropy("node-1", "node-2");
      c.network().deliverAll();
      assertThat(c.isConverged()).as("one exchange both pushes and pulls").isTrue();
      assertThat(c.store(0).getString("theirs-5")).contains("b");
      assertThat(c.store(0).get("theirs-0")).as("tombstones travel too").isEmpty();
      assertThat(c.store(1).getString("mine-5")).contains("a");
      NetworkStats after = c.network().stats();
      assertThat(after.sent(MessageKind.DIGEST) - before.sent(MessageKind.DIGEST)).isEqualTo(1);
      assertThat(after.sent(MessageKind.KEY_VERSIONS) - before.sent(MessageKind.KEY_VERSIONS))
          .as("20 keys of node-2 in chunks of at most 3").isGreaterThanOrEqualTo(7);
      assertThat(after.sent(MessageKind.PULL)).isGreaterThanOrEqualTo(7);
      assertThat(after.sent(MessageKind.AE_MUTATIONS)).isGreaterThanOrEqualTo(14);
    }
  }

  @Test
  void when_inSync_then_anExchangeSendsOnlyTheDigest() {
    try (InMemoryCluster c = cluster(2).build()) {
      c.store(0).put("k", "v");
      c.settle();
      NetworkStats before = c.network().stats();
      c.network().startAntiEntropy("node-2", "node-1");
      c.network().deliverAll();
      NetworkStats after = c.network().stats();
      assertThat(after.sent() - before.sent()).isEqualTo(1);
      assertThat(after.sent(MessageKind.DIGEST) - before.sent(MessageKind.DIGEST)).isEqualTo(1);
    }
  }

  @Test
  void when_antiEntropyIsPeriodic_then_lostFanOutIsRepairedWithoutExplicitRounds() {
    try (InMemoryCluster c = cluster(3).antiEntropyEverySteps(5)
        .faults(NetworkFaults.none().withLoss(MessageKind.MUTATION, 1.0)).build()) {
      c.store(0).put("k", "v");
      c.awaitUntil("periodic anti-entropy spreads k",
          () -> c.stores().stream().allMatch(s -> s.get("k").isPresent()));
      assertThat(c.network().now()).isGreaterThanOrEqualTo(5);
    }
  }

  // ---- membership ------------------------------------------------------------------------------

  @Test
  void when_nodeJoinsAndLeaves_then_peersSeeAddedAndRemoved_andTheJoinerCatchesUpAtOnce() {
    try (InMemoryCluster c = cluster(2).build()) {
      List<MembershipEvent> events = new CopyOnWriteArrayList<>();
      c.store(0).cluster().addListener(events::add);
      c.store(0).put("k", "v");
      c.network().deliverAll();
      KvStore joiner = c.addNode();
      c.network().deliverAll();
      assertThat(joiner.getString("k")).as("the join exchange alone").contains("v");
      assertThat(c.store(1).cluster().members()).extracting(m -> m.nodeId())
          .containsExactly("node-1", "node-2", "node-3");
      c.stopNode("node-3");
      assertThat(events).extracting(MembershipEvent::type, e -> e.member().nodeId()).containsExactly(
          org.assertj.core.groups.Tuple.tuple(MembershipEvent.Type.ADDED, "node-3"),
          org.assertj.core.groups.Tuple.tuple(MembershipEvent.Type.REMOVED, "node-3"));
      assertThat(c.store(0).cluster().members()).hasSize(2);
    }
  }

  @Test
  void when_stoppedNodeRestarts_then_itComesBackEmptyWithItsClock_andCatchesUp() {
    try (InMemoryCluster c = cluster(2).build()) {
      c.store("node-2").put("k", "v");
      c.settle();
      c.stopNode("node-2");
      c.advanceClocks(Duration.ofSeconds(5));
      KvStore back = c.addNode("node-2");
      assertThat(c.clock("node-2").millis())
          .isEqualTo(InMemoryCluster.DEFAULT_START.toEpochMilli() + 5_000);
      c.settle();
      assertThat(back.getString("k")).contains("v");
    }
  }

  @Test
  void when_nodeIdIsTaken_then_startingAnotherFails() {
    try (InMemoryNetwork net = InMemoryNetwork.builder().build();
        KvStore a = KvStore.builder().nodeId("a").replicator(net.newReplicator()).build()) {
      assertThat(a.cluster().members()).hasSize(1);
      assertThatThrownBy(() -> KvStore.builder().nodeId("a").replicator(net.newReplicator()).build())
          .isInstanceOf(IllegalStateException.class).hasMessageContaining("already in this");
      assertThat(net.nodeIds()).containsExactly("a");
    }
  }

  @Test
  void when_systemClocks_then_advancingClocksIsRefused() {
    try (InMemoryCluster c = cluster(1).systemClock().build()) {
      assertThatThrownBy(() -> c.advanceClocks(Duration.ofSeconds(1)))
          .isInstanceOf(IllegalStateException.class).hasMessageContaining("system clocks");
    }
  }

  // ---- pump ------------------------------------------------------------------------------------

  @Test
  void when_pumpRuns_then_blockingAllWritesComplete_andCloseStopsItsThread() {
    InMemoryCluster c = InMemoryCluster.builder().nodes(3).seed(987_654).autoPump().build();
    try {
      c.store(0).put("k", bytes("v"), WriteOptions.concern(WriteConcern.ALL));
      for (int i = 0; i < 3; i++) {
        assertThat(c.replicaStore(i).mutations(List.of("k"))).hasSize(1);
      }
      assertThat(pumpThreads(987_654)).hasSize(1);
    } finally {
      c.close();
    }
    assertThat(c.network().isPumping()).isFalse();
    assertThat(pumpThreads(987_654)).as("pump thread after close").isEmpty();
  }

  @Test
  void when_pumpRuns_then_writeConcernTimeoutIsRealTime() {
    try (InMemoryCluster c = InMemoryCluster.builder().nodes(3).autoPump().build()) {
      c.isolate("node-3");
      assertThatThrownBy(() -> c.store(0).put("k", bytes("v"),
          WriteOptions.concern(WriteConcern.ALL).withTimeout(Duration.ofMillis(200))))
          .isInstanceOfSatisfying(WriteConcernException.class, e -> {
            assertThat(e.required()).isEqualTo(3);
            // 2 normally; 1 if this machine stalled the pump for the whole 200 ms.
            assertThat(e.acknowledged()).isBetween(1, 2);
          });
    }
  }

  private static List<Thread> pumpThreads(long seed) {
    return Thread.getAllStackTraces().keySet().stream()
        .filter(t -> t.getName().equals("kvstore-inmemory-pump-" + seed) && t.isAlive()).toList();
  }
}
