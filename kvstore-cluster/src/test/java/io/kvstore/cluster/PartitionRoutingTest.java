package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import io.kvstore.core.KvStoreException;
import io.kvstore.core.ReadConcern;
import io.kvstore.core.ReadOptions;
import io.kvstore.core.Version;
import io.kvstore.core.Versioned;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteConcernException;
import io.kvstore.core.WriteOptions;
import io.kvstore.core.spi.Mutation;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Forwarded writes and remote reads of partitioned mode, over real engines in the deterministic
 * simulation: 5 nodes, replication factor 3, one placement set on every node. A node that does not own
 * a key never runs its writes: the first reachable owner stamps and replicates them; reads of a foreign
 * key go to the owners, a QUORUM read returns the newest version and repairs a stale owner.
 */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class PartitionRoutingTest {
  private static final List<String> NODES = List.of("n1", "n2", "n3", "n4", "n5");

  private static SimNetwork cluster(long seed) {
    return cluster(seed, 3);
  }

  /** {@link #NODES} with replication factor {@code rf}, connected, every node on one map. */
  private static SimNetwork cluster(long seed, int rf) {
    SimNetwork net = new SimNetwork(seed, new ReplicationEngine.Settings(1024 * 1024, 8 * 1024,
        Duration.ofHours(1), Duration.ofMillis(400)), ReplicationEngine.Bug.NONE,
        b -> b.digestBuckets(1024));
    for (String id : NODES) {
      net.addNode(id, 0);
    }
    Placement placement = Placement.of(NODES, rf);
    for (SimNetwork.SimNode n : net.nodes()) {
      n.engine.setPlacement(placement);
    }
    net.clock.runFor(200);
    return net;
  }

  /** A key and the first node (in NODES order) that does not own it. */
  private record Foreign(String key, SimNetwork.SimNode via, List<String> owners) {}

  private static Foreign foreignKey(SimNetwork net, String prefix) {
    Placement p = net.nodes().get(0).engine.placement();
    String key = prefix;
    List<String> owners = p.ownersOf(key);
    for (SimNetwork.SimNode n : net.nodes()) {
      if (!owners.contains(n.id)) {
        return new Foreign(key, n, owners);
      }
    }
    throw new AssertionError("rf 3 of 5 leaves two non-owners");
  }

  private static <T> T await(SimNetwork net, CompletableFuture<T> f) {
    assertThat(net.clock.runUntil(f::isDone, 10_000)).as("completed in virtual time").isTrue();
    return f.join();
  }

  @Test
  void aWriteThroughANonOwner_isStampedByAnOwner_andHeldByAQuorumOfOwnersWhenAcknowledged() {
    try (SimNetwork net = cluster(1)) {
      Foreign f = foreignKey(net, "user:1");
      Version v = await(net, f.via().store.putAsync(f.key(), bytes("v1"),
          WriteOptions.concern(WriteConcern.QUORUM)));
      assertThat(f.owners()).as("stamped by an owner").contains(v.nodeId());
      long holding = f.owners().stream()
          .filter(o -> net.node(o).replica.mutation(f.key()) != null)
          .count();
      assertThat(holding).as("owners holding it at the ack").isGreaterThanOrEqualTo(2);
      assertThat(await(net, f.via().store.getAsync(f.key())))
          .get().extracting(Versioned::valueAsString).isEqualTo("v1");
    }
  }

  @Test
  void conditionalWritesThroughANonOwner_areCheckedOnTheOwner() {
    try (SimNetwork net = cluster(2)) {
      Foreign f = foreignKey(net, "lock:a");
      WriteOptions ifAbsent = WriteOptions.defaults().ifAbsent();
      Version first = await(net, f.via().store.putAsync(f.key(), bytes("me"), ifAbsent));
      CompletableFuture<Version> second = f.via().store.putAsync(f.key(), bytes("you"), ifAbsent);
      net.clock.runUntil(second::isDone, 10_000);
      assertThat(second).isCompletedExceptionally();
      assertThat(causeOf(second)).isInstanceOf(io.kvstore.core.ConditionFailedException.class)
          .hasMessageContaining("nothing was written");
      CompletableFuture<Boolean> deleted = f.via().store.deleteAsync(f.key(),
          WriteOptions.defaults().ifVersion(first));
      assertThat(await(net, deleted)).as("the live value was deleted").isTrue();
      net.clock.runFor(200);
      for (String o : f.owners()) {
        assertThat(net.node(o).store.get(f.key())).as(o).isEmpty();
      }
    }
  }

  @Test
  void readsOfAForeignKey_failClearly_whenNoOwnerIsReachable_andWritesDoNotRunLocally() {
    try (SimNetwork net = cluster(3)) {
      Foreign f = foreignKey(net, "orders:9");
      for (String o : f.owners()) {
        net.cut(f.via().id, o);
      }
      CompletableFuture<Optional<Versioned>> read = f.via().store.getAsync(f.key());
      net.clock.runUntil(read::isDone, 10_000);
      assertThat(causeOf(read)).isInstanceOf(KvStoreException.class)
          .hasMessageContaining("no owner");
      CompletableFuture<Version> write = f.via().store.putAsync(f.key(), bytes("x"),
          WriteOptions.defaults());
      net.clock.runUntil(write::isDone, 10_000);
      assertThat(causeOf(write)).isInstanceOf(WriteConcernException.class)
          .hasMessageContaining("nothing was written");
      assertThat(f.via().replica.mutation(f.key())).as("not written locally").isNull();
    }
  }

  @Test
  void aQuorumReadThroughANonOwner_returnsTheNewestVersion_andRepairsTheStaleOwner() {
    try (SimNetwork net = cluster(4)) {
      Foreign f = foreignKey(net, "profile:7");
      await(net, f.via().store.putAsync(f.key(), bytes("old"),
          WriteOptions.concern(WriteConcern.ALL)));
      // A newer version reaches two owners only (as if the third missed the fan-out).
      String stale = f.owners().get(2);
      Mutation newer = Mutation.put(f.key(), bytes("new"),
          Version.of(net.node(f.owners().get(0)).millis() + 1_000, 0, f.owners().get(0)), 0);
      net.node(f.owners().get(0)).replica.apply(newer);
      net.node(f.owners().get(1)).replica.apply(newer);
      net.cut(f.via().id, f.owners().get(1)); // the quorum must include the stale owner
      Optional<Versioned> read = await(net, f.via().store.getAsync(f.key(),
          ReadOptions.concern(ReadConcern.QUORUM)));
      assertThat(read).get().extracting(Versioned::valueAsString).isEqualTo("new");
      assertThat(net.clock.runUntil(() -> net.node(stale).store.getString(f.key())
          .equals(Optional.of("new")), 5_000)).as("read repair of " + stale).isTrue();
    }
  }

  @Test
  void aForwardedWriteWhoseConnectionIsLostBeforeTheAnswer_failsSayingTheOutcomeIsUnknown() {
    try (SimNetwork net = cluster(5)) {
      Foreign f = foreignKey(net, "cart:3");
      String first = f.owners().get(0);
      CompletableFuture<Version> write = f.via().store.putAsync(f.key(), bytes("x"),
          WriteOptions.defaults());
      // The request is on its way; the connection breaks before the answer can come back.
      net.cut(f.via().id, first);
      net.clock.runUntil(write::isDone, 10_000);
      assertThat(causeOf(write)).isInstanceOf(WriteConcernException.class)
          .hasMessageContaining("owner " + first)
          .hasMessageContaining("may or may not have been applied");
    }
  }

  /**
   * The owner a forwarded write would go to first has begun a graceful leave (its close() waits
   * before announcing it): it runs no new forwarded write but answers FORWARD_PENDING, so the
   * coordinator writes through the next owner, and the leaver still takes the fan-out.
   */
  @Test
  void aLeavingOwner_refusesNewForwardedWrites_soTheyRunOnTheNextOwner() {
    try (SimNetwork net = cluster(7)) {
      Foreign f = foreignKey(net, "leave:1");
      String leaver = f.owners().get(0);
      net.node(leaver).engine.beginLeave();
      Version v = await(net, f.via().store.putAsync(f.key(), bytes("v"),
          WriteOptions.concern(WriteConcern.QUORUM)));
      assertThat(v.nodeId()).as("the owner that stamped the write (%s is leaving)", leaver)
          .isNotEqualTo(leaver).isIn(f.owners());
      net.clock.runFor(100);
      assertThat(net.node(leaver).store.getString(f.key())).as("the leaver got the fan-out")
          .contains("v");
    }
  }

  /**
   * A forwarded write the leaving owner accepted before its leave began is waited for: while it
   * runs (its fan-out takes 20 ms a hop here), the leave's blocker names it; once answered, not.
   */
  @Test
  void aLeavingOwner_waitsForTheForwardedWritesItAlreadyRuns() {
    try (SimNetwork net = cluster(8)) {
      Running r = forwardRunningOnFirstOwner(net, "leave:2");
      SimNetwork.SimNode leaver = r.owner();
      CompletableFuture<Version> write = r.write();
      leaver.engine.beginLeave();
      assertThat(leaver.engine.leaveBlocker()).as("what the leave waits for while it runs")
          .contains("1 forwarded writes still run here");
      Version v = await(net, write);
      assertThat(v.nodeId()).isEqualTo(leaver.id);
      String after = leaver.engine.leaveBlocker();
      assertThat(after == null ? "" : after).as("what the leave waits for once it was answered")
          .doesNotContain("forwarded");
    }
  }

  /**
   * A forwarded write is on its way to its first owner, which has begun its leave, when the
   * coordinator learns of the leave (the map changes, then the link closes as on a LEAVING): the
   * leaver's refusal is still on its way back. The link keeps its connection for that answer, so
   * the write runs on the next owner instead of failing with an unknown outcome (before, the link
   * closed at once and the write failed: GracefulLeaveTest saw it as a rare flake). Once no request
   * awaits an answer the connection closes.
   */
  @Test
  void aForwardedWriteRefusedByALeaver_whoseLeaveArrivesFirst_runsOnTheNextOwner() {
    try (SimNetwork net = cluster(10)) {
      net.faults = SimNetwork.Faults.of(0, 0, 20, 20, 0, 0); // 20 ms a hop
      Foreign f = foreignKey(net, "leave:5");
      String leaver = f.owners().get(0);
      net.node(leaver).engine.beginLeave();
      CompletableFuture<Version> write = f.via().store.putAsync(f.key(), bytes("v"),
          WriteOptions.concern(WriteConcern.QUORUM));
      net.clock.runFor(5); // on its way
      announceLeave(net, leaver);
      PeerLink link = f.via().links.get(leaver);
      Version v = await(net, write);
      assertThat(v.nodeId()).as("the owner that stamped the write").isNotEqualTo(leaver)
          .isIn(f.owners());
      assertThat(net.clock.runUntil(() -> !link.isConnected(), 1_000))
          .as("the connection to the leaver closes once nothing awaits an answer").isTrue();
    }
  }

  /**
   * As above, but the first owner ran the forwarded write (its leave began after it had accepted
   * it; the leave is announced once it answered): the answer, still on its way when the leave
   * arrives, completes the write.
   */
  @Test
  void aForwardedWriteRunByALeaver_whoseLeaveArrivesBeforeTheAnswer_isAcknowledged() {
    try (SimNetwork net = cluster(11)) {
      Running r = forwardRunningOnFirstOwner(net, "leave:6");
      SimNetwork.SimNode leaver = r.owner();
      CompletableFuture<Version> write = r.write();
      leaver.engine.beginLeave();
      announceLeave(net, leaver.id);
      assertThat(write).isNotDone();
      Version v = await(net, write);
      assertThat(v.nodeId()).isEqualTo(leaver.id);
    }
  }

  /**
   * Two nodes join and a key's partition moves to both of them: until they have pulled it, neither
   * answers a read of it with authority. A read through one of the key's old owners (a non-owner
   * now, still holding the key until the new owners have it) returns its own copy, the newest
   * there is, instead of nothing (PartitionedClusterTest read empty through an old owner once, in
   * the moment the maps of the nodes differed after a join).
   */
  @Test
  void aReadThroughAnOldOwner_whileEveryNewOwnerStillPulls_returnsItsOwnCopy() {
    try (SimNetwork net = cluster(12, 2)) {
      Placement before = Placement.of(NODES, 2);
      List<String> seven = new java.util.ArrayList<>(NODES);
      seven.addAll(List.of("n6", "n7"));
      Placement after = Placement.of(seven, 2);
      String key = null;
      for (int i = 0; key == null; i++) {
        String k = "moved:" + i;
        if (after.ownersOf(k).containsAll(List.of("n6", "n7"))) {
          key = k;
        }
      }
      SimNetwork.SimNode old = net.node(before.ownersOf(key).get(0));
      await(net, old.store.putAsync(key, bytes("v"), WriteOptions.concern(WriteConcern.ALL)));
      net.addNode("n6", 0);
      net.addNode("n7", 0);
      net.faults = SimNetwork.Faults.of(0, 0, 20, 20, 0, 0); // 20 ms a hop: the pull takes a while
      net.clock.runFor(100);
      for (SimNetwork.SimNode n : net.nodes()) {
        n.engine.setPlacement(after);
      }
      CompletableFuture<Optional<Versioned>> read = old.store.getAsync(key);
      assertThat(net.node("n6").replica.mutation(key)).as("n6 has not pulled it yet").isNull();
      assertThat(await(net, read)).as("read through old owner %s", old.id)
          .get().extracting(Versioned::valueAsString).isEqualTo("v");
    }
  }

  /** A QUORUM write forwarded to the key's first owner, which has applied it and still runs it. */
  private record Running(SimNetwork.SimNode owner, CompletableFuture<Version> write) {}

  /** With 20 ms a hop, a QUORUM write of a foreign key, until its first owner has applied it. */
  private static Running forwardRunningOnFirstOwner(SimNetwork net, String key) {
    net.faults = SimNetwork.Faults.of(0, 0, 20, 20, 0, 0);
    Foreign f = foreignKey(net, key);
    SimNetwork.SimNode owner = net.node(f.owners().get(0));
    CompletableFuture<Version> write = f.via().store.putAsync(f.key(), bytes("v"),
        WriteOptions.concern(WriteConcern.QUORUM));
    assertThat(net.clock.runUntil(() -> owner.replica.mutation(f.key()) != null, 1_000))
        .as("the first owner runs the forwarded write").isTrue();
    return new Running(owner, write);
  }

  /** What a LEAVING does on every other node: the map without the leaver, its link closed. */
  private static void announceLeave(SimNetwork net, String leaver) {
    Placement without = Placement.of(NODES.stream().filter(n -> !n.equals(leaver)).toList(), 3);
    for (SimNetwork.SimNode n : net.nodes()) {
      if (!n.id.equals(leaver)) {
        n.engine.setPlacement(without);
        n.links.get(leaver).closeAfterAnswers();
      }
    }
  }

  /**
   * An ALL write of n1 is in flight to its co-owners when one of them leaves gracefully: the map
   * changes first (the leaver's partitions move to another node), then the link to the leaver
   * closes, as on a LEAVING. The write waiting for the leaver's ack goes to the key's new owner and
   * succeeds (held by every owner of the new map) instead of failing for want of the leaver's ack.
   */
  @Test
  void aWriteInFlightToAnOwnerThatLeaves_goesToTheKeysNewOwner_andSucceeds() {
    try (SimNetwork net = cluster(9)) {
      Placement all = Placement.of(NODES, 3);
      String key = null;
      String leaver = null;
      Placement without = null;
      for (int i = 0; key == null; i++) {
        String k = "leave:3:" + i;
        List<String> owners = all.ownersOf(k);
        if (owners.get(0).equals("n1")) {
          String l = owners.get(1);
          Placement w = Placement.of(NODES.stream().filter(n -> !n.equals(l)).toList(), 3);
          if (w.ownersOf(k).contains("n1")) {
            key = k;
            leaver = l;
            without = w;
          }
        }
      }
      net.faults = SimNetwork.Faults.of(0, 0, 20, 20, 0, 0);
      SimNetwork.SimNode n1 = net.node("n1");
      CompletableFuture<Version> write = n1.store.putAsync(key, bytes("v"),
          WriteOptions.concern(WriteConcern.ALL).withTimeout(Duration.ofSeconds(2)));
      net.clock.runFor(5); // sent, not acknowledged
      assertThat(write).isNotDone();
      for (SimNetwork.SimNode n : net.nodes()) {
        if (!n.id.equals(leaver)) {
          n.engine.setPlacement(without);
        }
      }
      n1.links.get(leaver).close();
      await(net, write);
      for (String owner : without.ownersOf(key)) {
        assertThat(net.node(owner).replica.mutation(key)).as(owner + " holds the write")
            .isNotNull();
      }
    }
  }

  /**
   * Around a join or leave the owners' maps may differ from the coordinator's for a moment: here
   * every owner of the key in the coordinator's map has a map in which it owns nothing, so each
   * refuses the forwarded write as pending (nothing runs). The coordinator tries again 100 ms later
   * with the map it has then, and once the owners' maps agree (150 ms) the write succeeds instead
   * of failing with "nothing was written".
   */
  @Test
  void aForwardedWriteRefusedByEveryOwner_whileTheirMapsDiffer_isTriedAgain_andSucceeds() {
    try (SimNetwork net = cluster(10)) {
      Foreign f = foreignKey(net, "leave:4");
      Placement agreed = f.via().engine.placement();
      Placement elsewhere = Placement.of(List.of("z1", "z2", "z3", "z4"), 2);
      for (String o : f.owners()) {
        net.node(o).engine.setPlacement(elsewhere);
      }
      CompletableFuture<Version> write = f.via().store.putAsync(f.key(), bytes("v"),
          WriteOptions.concern(WriteConcern.QUORUM));
      net.clock.runFor(150);
      assertThat(write).as("the write while the owners' maps differ").isNotDone();
      for (String o : f.owners()) {
        net.node(o).engine.setPlacement(agreed);
      }
      Version v = await(net, write);
      assertThat(f.owners()).as("stamped by an owner").contains(v.nodeId());
    }
  }

  @Test
  void aClusterScan_pagesThroughEveryKeyOnce_inKeyOrder_evenWithOneNodeUnreachable() {
    try (SimNetwork net = cluster(6)) {
      java.util.TreeSet<String> written = new java.util.TreeSet<>();
      for (int i = 0; i < 60; i++) {
        SimNetwork.SimNode via = net.nodes().get(i % NODES.size());
        String key = "item:" + (1000 + i * 7);
        await(net, via.store.putAsync(key, bytes("v" + i), WriteOptions.concern(WriteConcern.ALL)));
        written.add(key);
      }
      await(net, net.node("n2").store.putAsync("other:1", bytes("x"), WriteOptions.defaults()));
      SimNetwork.SimNode scanner = net.node("n1");
      net.cut("n1", "n4");
      List<String> seen = new java.util.ArrayList<>();
      String after = null;
      while (true) {
        List<Mutation> page = await(net, scanner.engine.router.scan("item:", after, 7,
            Duration.ofSeconds(2)));
        if (page.isEmpty()) {
          break;
        }
        assertThat(page.size()).isLessThanOrEqualTo(7);
        page.forEach(m -> seen.add(m.key()));
        after = page.get(page.size() - 1).key();
      }
      assertThat(seen).as("every key once, in order").containsExactlyElementsOf(written);
    }
  }

  @Test
  void aClusterScan_fails_whenSomePartitionHasNoReachableOwner() {
    try (SimNetwork net = cluster(7)) {
      SimNetwork.SimNode scanner = net.node("n1");
      for (String other : List.of("n2", "n3", "n4")) {
        net.cut("n1", other);
      }
      CompletableFuture<List<Mutation>> scan = scanner.engine.router.scan("", null, 10,
          Duration.ofSeconds(2));
      net.clock.runUntil(scan::isDone, 10_000);
      assertThat(causeOf(scan)).isInstanceOf(KvStoreException.class)
          .hasMessageContaining("had no owner answer");
    }
  }

  private static Throwable causeOf(CompletableFuture<?> f) {
    try {
      f.join();
      throw new AssertionError("expected a failure");
    } catch (CompletionException e) {
      return e.getCause();
    }
  }

  private static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }
}
