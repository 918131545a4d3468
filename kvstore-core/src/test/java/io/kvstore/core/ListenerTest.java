package io.kvstore.core;

import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.ApplyResult;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Change listeners: by prefix, local and remote changes each exactly once, after the change is
 * visible, on an executor if given, isolated from each other's exceptions, and stopped by closing the
 * registration.
 *
 * <p>A listener's own assertion errors would be swallowed by the store (it logs listener failures),
 * so listeners here only record, and the tests assert afterwards.
 */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class ListenerTest {
  private final ManualClock clock = new ManualClock();
  private final DefaultKvStore store = Stores.open("n1", clock);

  @AfterEach
  void close() {
    store.close();
  }

  /** An event and what {@code get} returned for its key inside the listener. */
  private record Seen(ChangeEvent event, Optional<String> valueInsideListener,
      Optional<Version> versionInsideListener) {}

  private List<Seen> recordWithReads(String prefix) {
    List<Seen> seen = new CopyOnWriteArrayList<>();
    store.addListener(prefix, e -> seen.add(new Seen(e, store.getString(e.key()),
        store.getVersioned(e.key()).map(Versioned::version))));
    return seen;
  }

  @Test
  void localPutAndDelete_areSeenOnce_afterTheyAreVisible() {
    List<Seen> seen = recordWithReads("");
    Version put = store.put("k", "v");
    store.delete("k");
    assertThat(seen).hasSize(2);
    Seen first = seen.get(0);
    assertThat(first.event().type()).isEqualTo(ChangeEvent.Type.PUT);
    assertThat(first.event().key()).isEqualTo("k");
    assertThat(first.event().version()).isEqualTo(put);
    assertThat(first.event().origin()).isEqualTo(ChangeEvent.Origin.LOCAL);
    assertThat(first.event().valueAsString()).contains("v");
    assertThat(first.valueInsideListener()).contains("v");
    assertThat(first.versionInsideListener()).contains(put);
    Seen second = seen.get(1);
    assertThat(second.event().type()).isEqualTo(ChangeEvent.Type.DELETE);
    assertThat(second.event().version()).isGreaterThan(put);
    assertThat(second.event().valueBytes()).isNull();
    assertThat(second.event().valueAsString()).isEmpty();
    assertThat(second.valueInsideListener()).isEmpty();
  }

  @Test
  void remoteChanges_areSeenOnceWithRemoteOrigin_andNotWhenIgnoredOrRefused() {
    List<Seen> seen = recordWithReads("");
    Version v1 = Version.of(ManualClock.T0, 0, "peer");
    Version v2 = Version.of(ManualClock.T0 + 1, 0, "peer");
    Mutation put = Mutation.put("k", "r".getBytes(), v1, 0);
    assertThat(store.apply(put)).isEqualTo(ApplyResult.APPLIED);
    assertThat(store.apply(put)).isEqualTo(ApplyResult.IGNORED);
    assertThat(store.apply(Mutation.delete("k", v2))).isEqualTo(ApplyResult.APPLIED);
    assertThat(store.apply(Mutation.put("k", "old".getBytes(), v1, 0)))
        .isEqualTo(ApplyResult.IGNORED);
    assertThat(store.apply(Mutation.put("k", "far".getBytes(),
        Version.of(ManualClock.T0 + 3_600_000, 0, "peer"), 0)))
        .isEqualTo(ApplyResult.REFUSED_CLOCK_DRIFT);
    assertThat(store.apply(Mutation.put("", "bad".getBytes(), v2, 0)))
        .isEqualTo(ApplyResult.REFUSED_INVALID);

    assertThat(seen).extracting(s -> s.event().type())
        .containsExactly(ChangeEvent.Type.PUT, ChangeEvent.Type.DELETE);
    assertThat(seen).allMatch(s -> s.event().origin() == ChangeEvent.Origin.REMOTE);
    assertThat(seen.get(0).event().version()).isEqualTo(v1);
    assertThat(seen.get(0).valueInsideListener()).contains("r");
    assertThat(seen.get(1).event().version()).isEqualTo(v2);
    assertThat(seen.get(1).valueInsideListener()).isEmpty();
  }

  @Test
  void expiry_isSeenOnceByTheSweep_withTheExpiredWritesVersion() {
    List<Seen> seen = recordWithReads("");
    Version v = store.put("k", "v".getBytes(), WriteOptions.defaults().withTtl(Duration.ofMillis(10)));
    Version remote = Version.of(ManualClock.T0, 0, "peer");
    store.apply(Mutation.put("r", "x".getBytes(), remote, ManualClock.T0 + 10));
    seen.clear();
    clock.advance(10);
    assertThat(seen).isEmpty(); // expiry reads absent at once but is reported by the sweep
    store.runMaintenance();
    store.runMaintenance();
    assertThat(seen).extracting(s -> s.event().type())
        .containsExactly(ChangeEvent.Type.EXPIRE, ChangeEvent.Type.EXPIRE);
    Seen local = seen.stream().filter(s -> s.event().key().equals("k")).findFirst().orElseThrow();
    assertThat(local.event().version()).isEqualTo(v);
    assertThat(local.event().origin()).isEqualTo(ChangeEvent.Origin.LOCAL);
    assertThat(local.valueInsideListener()).isEmpty();
    Seen fromPeer = seen.stream().filter(s -> s.event().key().equals("r")).findFirst()
        .orElseThrow();
    assertThat(fromPeer.event().version()).isEqualTo(remote);
    assertThat(fromPeer.event().origin()).isEqualTo(ChangeEvent.Origin.REMOTE);
  }

  @Test
  void listener_seesOnlyKeysWithItsPrefix() {
    List<ChangeEvent> users = new ArrayList<>();
    List<ChangeEvent> all = new ArrayList<>();
    store.addListener("user:", users::add);
    store.addListener("", all::add);
    store.put("user:1", "a");
    store.put("order:1", "b");
    store.put("user", "c");
    store.apply(Mutation.put("user:2", "d".getBytes(), Version.of(ManualClock.T0, 0, "p"), 0));
    store.delete("order:1");
    assertThat(users).extracting(ChangeEvent::key).containsExactly("user:1", "user:2");
    assertThat(all).extracting(ChangeEvent::key)
        .containsExactly("user:1", "order:1", "user", "user:2", "order:1");
  }

  @Test
  void failedConditionalWrite_firesNothing() {
    List<ChangeEvent> events = new ArrayList<>();
    store.put("k", "v");
    store.addListener("", events::add);
    assertThat(store.putIfAbsent("k", "x".getBytes())).isFalse();
    assertThat(store.deleteIfVersion("k", Version.of(1, 0, "n1"))).isFalse();
    assertThat(events).isEmpty();
  }

  @Test
  void executorListener_runsOnTheExecutor_notOnTheWritersThread() {
    Queue<Runnable> tasks = new ConcurrentLinkedQueue<>();
    List<Seen> seen = new ArrayList<>();
    store.addListener("", e -> seen.add(new Seen(e, store.getString(e.key()), Optional.empty())),
        tasks::add);
    Version v = store.put("k", "v");
    store.apply(Mutation.put("r", "x".getBytes(), Version.of(ManualClock.T0, 0, "peer"), 0));
    assertThat(seen).isEmpty();
    assertThat(tasks).hasSize(2);
    tasks.forEach(Runnable::run);
    assertThat(seen).extracting(s -> s.event().key()).containsExactly("k", "r");
    assertThat(seen.get(0).event().version()).isEqualTo(v);
    assertThat(seen.get(0).valueInsideListener()).contains("v");
  }

  @Test
  void executorThatRejects_doesNotBreakTheWrite() {
    store.addListener("", e -> { }, task -> {
      throw new java.util.concurrent.RejectedExecutionException("full");
    });
    store.put("k", "v");
    assertThat(store.getString("k")).contains("v");
  }

  @Test
  void throwingListener_doesNotBreakTheWriteOrOtherListeners_andKeepsReceiving() {
    List<String> calls = new ArrayList<>();
    store.addListener("", e -> {
      calls.add("thrower " + e.key());
      throw new IllegalStateException("listener bug");
    });
    store.addListener("", e -> calls.add("other " + e.key()));
    Version v = store.put("a", "1");
    assertThat(store.getVersioned("a").orElseThrow().version()).isEqualTo(v);
    assertThat(store.delete("a")).isTrue();
    assertThat(store.apply(Mutation.put("b", "2".getBytes(), Version.of(ManualClock.T0, 0, "p"), 0)))
        .isEqualTo(ApplyResult.APPLIED);
    assertThat(calls).containsExactly("thrower a", "other a", "thrower a", "other a",
        "thrower b", "other b");
  }

  @Test
  void closingTheRegistration_stopsDelivery_andClosingTwiceIsHarmless() {
    List<ChangeEvent> stopped = new ArrayList<>();
    List<ChangeEvent> kept = new ArrayList<>();
    Registration r = store.addListener("", stopped::add);
    store.addListener("", kept::add);
    store.put("a", "1");
    r.close();
    r.close();
    store.put("b", "2");
    store.apply(Mutation.put("c", "3".getBytes(), Version.of(ManualClock.T0, 0, "p"), 0));
    assertThat(stopped).extracting(ChangeEvent::key).containsExactly("a");
    assertThat(kept).extracting(ChangeEvent::key).containsExactly("a", "b", "c");
  }

  @Test
  void addListener_rejectsNulls() {
    assertThatThrownBy(() -> store.addListener(null, e -> { }))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("prefix");
    assertThatThrownBy(() -> store.addListener("", null))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("listener");
    assertThatThrownBy(() -> store.addListener("", e -> { }, null))
        .isInstanceOf(NullPointerException.class).hasMessageContaining("executor");
  }
}
