package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.kvstore.core.KvStore;
import io.kvstore.core.Version;
import io.kvstore.core.WriteOptions;
import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A long catch-up shows progress in the log ("catch-up from p1: N entries received (~M
 * estimated)") and ends with a summary line. slf4j-simple writes to whatever System.err is at the
 * time, so the test tees it.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class CatchUpProgressLogTest {
  private static final int KEYS = 20_000;

  @Test
  void when_aLateNodeCatchesUpTwentyThousandKeys_then_theLogShowsProgressAndASummary() {
    PrintStream original = System.err;
    ByteArrayOutputStream captured = new ByteArrayOutputStream();
    PrintStream tee = new PrintStream(new OutputStream() {
      @Override
      public synchronized void write(int b) {
        original.write(b);
        captured.write(b);
      }

      @Override
      public synchronized void write(byte[] b, int off, int len) {
        original.write(b, off, len);
        captured.write(b, off, len);
      }
    }, true, StandardCharsets.UTF_8);
    long interval = AntiEntropyRound.progressIntervalNanos;
    // Every chunk may log: a loopback catch-up of 20k keys takes well under the real 5 s.
    AntiEntropyRound.progressIntervalNanos = TimeUnit.MILLISECONDS.toNanos(1);
    System.setErr(tee);
    try (TestCluster cluster = TestCluster.start("progress", "p", 1)) {
      KvStore p1 = cluster.node("p1").store();
      List<CompletableFuture<Version>> writes = new ArrayList<>();
      for (int i = 0; i < KEYS; i++) {
        writes.add(p1.putAsync("key" + i, new byte[] {(byte) i}, WriteOptions.defaults()));
      }
      writes.forEach(CompletableFuture::join);

      TestCluster.Node p2 = cluster.startNode("p2", cluster.node("p1").membershipAddress());
      await().atMost(Duration.ofSeconds(60)).until(() -> p2.store().size() == KEYS);
      await().atMost(Duration.ofSeconds(10)).until(() -> {
        String log = captured.toString(StandardCharsets.UTF_8);
        return log.contains("anti-entropy round with") && log.contains(" done in ");
      });
      String log = captured.toString(StandardCharsets.UTF_8);
      assertThat(log).containsPattern(
          "node p[12]: catch-up (from|of) p[12]: \\d+ entries (received|sent) \\(~\\d+ estimated");
      assertThat(log).containsPattern(
          "node p[12]: anti-entropy round with p[12] done in \\d+ ms: \\d+ entries received, "
              + "\\d+ sent");
    } finally {
      System.setErr(original);
      AntiEntropyRound.progressIntervalNanos = interval;
    }
  }
}
