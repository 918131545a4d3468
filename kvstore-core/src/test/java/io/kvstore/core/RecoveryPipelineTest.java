package io.kvstore.core;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The recovery pipeline hands the target exactly the calls the reader made, in their order, across
 * batch boundaries; a failure of the target reaches the reader; a reset waits for what was handed
 * over before it.
 */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class RecoveryPipelineTest {

  /** Records every call as a line, on whatever thread makes it. */
  private static final class Recording implements LogStorage.Sink {
    final List<String> calls = new ArrayList<>();
    final List<Thread> threads = new ArrayList<>();
    RuntimeException failAt;
    int failAfter = -1;

    @Override
    public void accept(String key, Entry entry) {
      record("put " + key + " " + entry.timestamp + " " + entry.nodeId);
    }

    @Override
    public void evict(String key, long timestamp, String nodeId) {
      record("evict " + key + " " + timestamp + " " + nodeId);
    }

    @Override
    public void reset() {
      record("reset");
    }

    private void record(String call) {
      if (calls.size() == failAfter) {
        throw failAt;
      }
      calls.add(call);
      threads.add(Thread.currentThread());
    }
  }

  @Test
  void targetSeesTheReadersCallsInTheirOrder_acrossBatchesAndResets() {
    long seed = Long.getLong("kvstore.seed", 20261207L);
    SplittableRandom random = new SplittableRandom(seed);
    Recording target = new Recording();
    Recording expected = new Recording();
    int n = RecoveryPipeline.BATCH * 3 + 17; // full batches and a partial one
    try (RecoveryPipeline p = new RecoveryPipeline(target, "n1")) {
      for (int i = 0; i < n; i++) {
        String key = "k" + random.nextInt(100);
        long ts = random.nextLong(1, Long.MAX_VALUE);
        if (random.nextInt(10) == 0) {
          p.evict(key, ts, "node-" + i);
          expected.evict(key, ts, "node-" + i);
        } else {
          Entry e = Entry.create(new byte[] {1}, ts, "node-" + i, 0, 0);
          p.accept(key, e);
          expected.accept(key, e);
        }
        if (i == RecoveryPipeline.BATCH + 5) { // mid-batch: what came before is applied first
          p.reset();
          expected.reset();
        }
      }
      p.drain();
    }
    assertThat(target.calls).as("seed %d (replay: -Dkvstore.seed=%d)", seed, seed).isEqualTo(expected.calls);
    assertThat(target.threads.subList(0, RecoveryPipeline.BATCH))
        .as("applied on the pipeline's thread").doesNotContain(Thread.currentThread());
  }

  @Test
  void aFailureOfTheTarget_isThrownToTheReader() {
    Recording target = new Recording();
    target.failAfter = 10;
    target.failAt = new IllegalStateException("map full");
    try (RecoveryPipeline p = new RecoveryPipeline(target, "n1")) {
      assertThatThrownBy(() -> {
        for (int i = 0; i < RecoveryPipeline.BATCH * 20; i++) {
          p.accept("k" + i, Entry.create(new byte[] {1}, i + 1, "n", 0, 0));
        }
        p.drain();
      }).isSameAs(target.failAt);
    }
    assertThat(target.calls).hasSize(10);
  }

  @Test
  void drainWithNothingHandedOver_returnsAtOnce() {
    Recording target = new Recording();
    try (RecoveryPipeline p = new RecoveryPipeline(target, "n1")) {
      p.drain();
      p.drain();
    }
    assertThat(target.calls).isEmpty();
  }
}
