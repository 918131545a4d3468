package io.kvstore.core;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.ReplicaStore;
import io.kvstore.core.spi.Replicator;
import io.kvstore.core.spi.Router;
import io.kvstore.core.spi.WriteRequest;
import io.kvstore.core.spi.WriteResult;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.time.InstantSource;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * How a store uses its replicator's {@link Router} in partitioned mode: a key this node does not own
 * is never written or read locally but forwarded to / read from an owner; bad input is refused before
 * anything leaves the node; an owner runs a forwarded write as its own local write. The router here
 * is a stub: keys starting with {@code mine} are owned.
 */
@Timeout(value = 20, unit = TimeUnit.SECONDS)
class RoutingTest {
  private static final InstantSource CLOCK = InstantSource.fixed(Instant.parse("2026-01-01T00:00:00Z"));

  private final StubRouter router = new StubRouter();
  private final List<String> replicated = new ArrayList<>();
  private ReplicaStore replica;
  private DefaultKvStore store;

  @BeforeEach
  void open() {
    store = (DefaultKvStore) Stores.builder("n1", CLOCK).replicator(config -> new Routed()).build();
  }

  @AfterEach
  void close() {
    store.close();
  }

  @Test
  void putOfAKeyThisNodeDoesNotOwn_isForwardedWithItsOptions_andNotAppliedLocally() {
    Version owners = Version.of(CLOCK.millis(), 0, "n2");
    router.nextResult = CompletableFuture.completedFuture(new WriteResult(owners, false));
    Version v = store.put("theirs", bytes("v"), WriteOptions.concern(WriteConcern.QUORUM)
        .withTimeout(Duration.ofSeconds(3)).withTtl(Duration.ofMinutes(1)));
    assertThat(v).isEqualTo(owners);
    assertThat(router.forwarded).singleElement().satisfies(r -> {
      assertThat(r.key()).isEqualTo("theirs");
      assertThat(r.value()).isEqualTo(bytes("v"));
      assertThat(r.concern()).isEqualTo(WriteConcern.QUORUM);
      assertThat(r.timeoutMillis()).isEqualTo(3_000);
      assertThat(r.ttlMillis()).isEqualTo(60_000);
    });
    assertThat(replica.mutation("theirs")).as("nothing stored here").isNull();
    assertThat(replicated).isEmpty();
    assertThat(store.size()).isZero();
  }

  @Test
  void conditionalWritesAndDeletes_ofForeignKeys_carryTheirConditionToTheOwner() {
    router.nextResult = CompletableFuture.completedFuture(
        new WriteResult(Version.of(CLOCK.millis(), 0, "n2"), true));
    assertThat(store.putIfAbsent("theirs-a", bytes("x"))).isTrue();
    Version expected = Version.of(5, 0, "n3");
    assertThat(store.putIfVersion("theirs-b", bytes("y"), expected)).isTrue();
    assertThat(store.delete("theirs-c")).as("the owner said a live value was deleted").isTrue();
    assertThat(router.forwarded).hasSize(3);
    assertThat(router.forwarded.get(0).ifAbsent()).isTrue();
    assertThat(router.forwarded.get(1).expectedVersion()).isEqualTo(expected);
    assertThat(router.forwarded.get(2).isDelete()).isTrue();

    router.nextResult = CompletableFuture.failedFuture(
        new ConditionFailedException("theirs-a", "no value", expected));
    assertThat(store.putIfAbsent("theirs-a", bytes("x"))).as("the owner's condition failed")
        .isFalse();
  }

  @Test
  void invalidInputForAForeignKey_isRefusedHere_andNothingIsForwarded() {
    assertThatThrownBy(() -> store.put("bad\u0000key", bytes("v")))
        .isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> store.put("theirs", new byte[store.config().maxValueBytes() + 1]))
        .isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> store.getAsync("theirs\u0000", ReadOptions.defaults()))
        .isInstanceOf(IllegalArgumentException.class);
    assertThat(router.forwarded).isEmpty();
    assertThat(router.reads).isEmpty();
  }

  @Test
  void readsOfForeignKeys_askTheOwners_andSeeTombstonesAndExpiredValuesAsAbsent() {
    Version v = Version.of(CLOCK.millis(), 0, "n2");
    router.held.put("theirs", Mutation.put("theirs", bytes("remote"), v, 0));
    router.held.put("theirs-deleted", Mutation.delete("theirs-deleted", v));
    router.held.put("theirs-expired", Mutation.put("theirs-expired", bytes("old"), v,
        CLOCK.millis() - 1));
    assertThat(store.getString("theirs")).contains("remote");
    assertThat(store.getVersioned("theirs")).get().extracting(Versioned::version).isEqualTo(v);
    assertThat(store.get("theirs-deleted")).isEmpty();
    assertThat(store.get("theirs-expired")).isEmpty();
    assertThat(store.get("theirs-absent")).isEmpty();
    assertThat(router.reads).containsExactly("theirs:ONE", "theirs:ONE", "theirs-deleted:ONE",
        "theirs-expired:ONE", "theirs-absent:ONE");
  }

  @Test
  void ownedKeys_areLocalAtOne_butAQuorumReadAsksTheRouterEvenForThem() {
    store.put("mine", bytes("here"));
    assertThat(replicated).containsExactly("mine");
    assertThat(store.getString("mine")).contains("here");
    assertThat(store.getAsync("mine").join()).get().extracting(Versioned::valueAsString)
        .isEqualTo("here");
    assertThat(router.reads).isEmpty();
    assertThat(router.forwarded).isEmpty();

    router.held.put("mine", replica.mutation("mine"));
    assertThat(store.getVersioned("mine", ReadOptions.concern(ReadConcern.QUORUM)))
        .get().extracting(Versioned::valueAsString).isEqualTo("here");
    assertThat(router.reads).containsExactly("mine:QUORUM");
  }

  @Test
  void aRemoteReadThatFails_failsTheBlockingGetWithTheRoutersError() {
    router.readFailure = new KvStoreException("read at ONE: no owner of theirs answered");
    assertThatThrownBy(() -> store.get("theirs")).isInstanceOf(KvStoreException.class)
        .hasMessageContaining("no owner");
    assertThat(store.getAsync("theirs")).isCompletedExceptionally();
  }

  @Test
  void aForwardedWrite_runsOnTheOwnerAsItsOwnLocalWrite_conditionsTtlAndConcernIncluded() {
    WriteResult first = replica.write(new WriteRequest("mine-f", bytes("1"), 60_000, true, null,
        WriteConcern.ALL, 2_000)).join();
    assertThat(first.version().nodeId()).as("stamped by the owner").isEqualTo("n1");
    assertThat(store.getVersioned("mine-f")).get().satisfies(e -> {
      assertThat(e.valueAsString()).isEqualTo("1");
      assertThat(e.expiresAt()).contains(Instant.ofEpochMilli(
          Version.physicalOf(first.version().timestamp()) + 60_000));
    });
    assertThat(replicated).containsExactly("mine-f");
    CompletableFuture<WriteResult> again = replica.write(new WriteRequest("mine-f", bytes("2"), 0,
        true, null, WriteConcern.ONE, 2_000));
    assertThat(again).isCompletedExceptionally();
    assertThatThrownBy(again::join).hasCauseInstanceOf(ConditionFailedException.class);
    WriteResult deleted = replica.write(new WriteRequest("mine-f", null, 0, false,
        first.version(), WriteConcern.ONE, 2_000)).join();
    assertThat(deleted.wasLive()).isTrue();
    assertThat(store.get("mine-f")).isEmpty();
    assertThat(router.forwarded).as("an owner never forwards a forwarded write").isEmpty();
  }

  private static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  private final class Routed implements Replicator {
    @Override
    public void start(ReplicaStore store) {
      replica = store;
    }

    @Override
    public CompletableFuture<Void> replicate(Mutation mutation, WriteConcern concern,
        Duration timeout) {
      replicated.add(mutation.key());
      return CompletableFuture.completedFuture(null);
    }

    @Override
    public ClusterView clusterView() {
      return ClusterView.standalone(new Member("n1", null, null, Member.Status.ALIVE));
    }

    @Override
    public Router router() {
      return router;
    }

    @Override
    public void close() {}
  }

  private static final class StubRouter implements Router {
    final List<WriteRequest> forwarded = new ArrayList<>();
    final List<String> reads = new ArrayList<>();
    final Map<String, Mutation> held = new ConcurrentHashMap<>();
    CompletableFuture<WriteResult> nextResult = new CompletableFuture<>();
    RuntimeException readFailure;

    @Override
    public boolean isLocal(String key) {
      return key.startsWith("mine");
    }

    @Override
    public CompletableFuture<WriteResult> forward(WriteRequest request) {
      forwarded.add(request);
      return nextResult;
    }

    @Override
    public CompletableFuture<Mutation> read(String key, ReadConcern concern, Duration timeout) {
      reads.add(key + ":" + concern);
      if (readFailure != null) {
        return CompletableFuture.failedFuture(readFailure);
      }
      return CompletableFuture.completedFuture(held.get(key));
    }
  }
}
