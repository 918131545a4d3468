package io.kvstore.core;

import io.kvstore.core.spi.Replicator;
import io.kvstore.core.spi.ReplicaStore;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.ApplyResult;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.awaitility.Awaitility;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Regressions of kvstore-core, each named after what broke. */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class CoreRegressionTest {

  /** Was: {@code defaultWriteConcern(null)} threw NullPointerException, not the documented IAE. */
  @Test
  void nullDefaultWriteConcern_failedWithNullPointerInsteadOfNamingTheSetting() {
    assertThatThrownBy(() -> KvStore.builder().defaultWriteConcern(null).build())
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("defaultWriteConcern").hasMessageContaining("null");
  }

  /** Was: an invalid {@code digestBuckets} failed with a message that did not name the setting. */
  @Test
  void invalidDigestBuckets_messageDidNotNameTheSetting() {
    assertThatThrownBy(() -> KvStore.builder().digestBuckets(1000).config())
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("digestBuckets").hasMessageContaining("1000");
  }

  /** Was: putAsync/deleteAsync on a closed store threw instead of failing their future. */
  @Test
  void asyncWriteOnClosedStore_threwInsteadOfFailingTheFuture() {
    KvStore store = Stores.open("n1", new ManualClock());
    store.close();
    CompletableFuture<Version> put = store.putAsync("k", new byte[] {1}, WriteOptions.defaults());
    CompletableFuture<Boolean> delete = store.deleteAsync("k", WriteOptions.defaults());
    for (CompletableFuture<?> f : List.of(put, delete)) {
      assertThatThrownBy(f::get).isInstanceOf(ExecutionException.class)
          .cause().isInstanceOf(StoreClosedException.class);
    }
  }

  /** Was: a maxClockDrift near Long.MAX_VALUE ms overflowed and refused every remote write. */
  @Test
  void hugeMaxClockDrift_overflowedAndRefusedEveryRemoteWrite() {
    ManualClock clock = new ManualClock();
    try (DefaultKvStore s = (DefaultKvStore) Stores.builder("n1", clock)
        .maxClockDrift(Duration.ofMillis(Long.MAX_VALUE)).build()) {
      Mutation m = Mutation.put("k", new byte[] {1}, Version.of(ManualClock.T0 + 1, 0, "peer"), 0);
      assertThat(s.apply(m)).isEqualTo(ApplyResult.APPLIED);
      assertThat(s.stats().refusedClockDrift()).isZero();
    }
  }

  /**
   * Was: a TTL near Long.MAX_VALUE ms overflowed the expiry: the value was stored already expired
   * (counted, in the digest) and put then threw IllegalArgumentException.
   */
  @Test
  void hugeTtl_overflowedTheExpiry_storingAnExpiredValueAndThrowing() {
    ManualClock clock = new ManualClock();
    try (DefaultKvStore s = Stores.open("n1", clock)) {
      List<ChangeEvent> events = new ArrayList<>();
      s.addListener("", events::add);
      Version v = s.put("k", new byte[] {1},
          WriteOptions.defaults().withTtl(Duration.ofMillis(Long.MAX_VALUE)));
      clock.advance(Duration.ofDays(365 * 100));
      assertThat(s.getVersioned("k")).hasValueSatisfying(e -> assertThat(e.version()).isEqualTo(v));
      assertThat(events).hasSize(1);
      assertThat(Stores.rawState(s.replicaView()).get("k").expiresAtMillis()).isPositive();
    }
  }

  /**
   * Was: durations too long to count in milliseconds passed validation, then build() or a write
   * failed with an ArithmeticException ("long overflow") that named no setting.
   */
  @Test
  void durationsTooLongForMillis_passedValidationThenOverflowed() {
    Duration huge = Duration.ofSeconds(Long.MAX_VALUE);
    assertThatThrownBy(() -> KvStore.builder().tombstoneGrace(huge).config())
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("tombstoneGrace");
    assertThatThrownBy(() -> KvStore.builder().maxClockDrift(huge).config())
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("maxClockDrift");
    assertThatThrownBy(() -> KvStore.builder().purgeInterval(huge).config())
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("purgeInterval");
    assertThatThrownBy(() -> KvStore.builder().writeTimeout(huge).config())
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("writeTimeout");
    assertThatThrownBy(() -> WriteOptions.defaults().withTimeout(huge))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("timeout");
    assertThatThrownBy(() -> WriteOptions.defaults().withTtl(huge))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("ttl");
  }

  /**
   * Was: a write timeout over Long.MAX_VALUE / 2 ms overflowed the blocking write's guard
   * (2 * timeout + 1 s) to a negative or tiny wait, so put failed at once (or after about a second)
   * with WriteConcernException while the replicator was still working.
   */
  @Test
  void hugeWriteTimeout_overflowedTheBlockingGuardAndFailedAtOnce() throws Exception {
    CompletableFuture<Void> replicated = new CompletableFuture<>();
    Replicator slow = new Replicator() {
      private final Replicator standalone = new StandaloneReplicator(
            ClusterView.standalone(new Member("n1", null, null, Member.Status.ALIVE)));

      @Override
      public void start(ReplicaStore store) {}

      @Override
      public CompletableFuture<Void> replicate(Mutation m, WriteConcern c, Duration timeout) {
        return replicated;
      }

      @Override
      public ClusterView clusterView() {
        return standalone.clusterView();
      }

      @Override
      public void close() {}
    };
    try (KvStore s = Stores.builder("n1", new ManualClock()).replicator(slow).build()) {
      AtomicReference<Object> outcome = new AtomicReference<>();
      Thread writer = new Thread(() -> {
        try {
          outcome.set(s.put("k", new byte[] {1},
              WriteOptions.defaults().withTimeout(Duration.ofMillis(Long.MAX_VALUE / 2 + 1))));
        } catch (RuntimeException e) {
          outcome.set(e);
        }
      }, "regression-writer");
      writer.start();
      // Either the write failed at once (the bug) or it is waiting for the replicator.
      Awaitility.await().atMost(Duration.ofSeconds(10)).until(() -> outcome.get() != null
          || writer.getState() == Thread.State.TIMED_WAITING
          || writer.getState() == Thread.State.WAITING);
      replicated.complete(null);
      writer.join(10_000);
      assertThat(outcome.get()).isInstanceOf(Version.class);
    }
  }

  /**
   * Was: a remote put that arrived after its TTL had passed fired a PUT event for a value no read
   * could ever see, and an expired put received from a peer was reported as DELETE.
   */
  @Test
  void remotePutArrivingAfterItsExpiry_firedAPutEventForAnInvisibleValue() {
    ManualClock clock = new ManualClock();
    try (DefaultKvStore s = Stores.open("n1", clock)) {
      List<ChangeEvent> events = new ArrayList<>();
      s.addListener("", events::add);
      Version v = Version.of(ManualClock.T0 - 10_000, 0, "peer");
      assertThat(s.apply(Mutation.put("late", new byte[] {1}, v, ManualClock.T0 - 1)))
          .isEqualTo(ApplyResult.APPLIED);
      assertThat(s.get("late")).isEmpty();
      assertThat(events).isEmpty();
      s.runMaintenance();
      assertThat(events).extracting(ChangeEvent::type).containsExactly(ChangeEvent.Type.EXPIRE);

      Version w = Version.of(ManualClock.T0 - 5_000, 0, "peer");
      assertThat(s.apply(Mutation.expired("gone", w, ManualClock.T0 - 2, 7)))
          .isEqualTo(ApplyResult.APPLIED);
      assertThat(events).extracting(ChangeEvent::type)
          .containsExactly(ChangeEvent.Type.EXPIRE, ChangeEvent.Type.EXPIRE);
    }
  }

  /** Was: {@code Version.parse} accepted a sign before the millis ("+1.2@n"). */
  @Test
  void versionParse_acceptedASignedTimestamp() {
    assertThatThrownBy(() -> Version.parse("+1.2@n")).isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> Version.parse("1.+2@n")).isInstanceOf(IllegalArgumentException.class);
    assertThat(Version.parse("1.2@n")).isEqualTo(Version.of(1, 2, "n"));
  }
}
