package io.kvstore.examples.bench;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.kvstore.core.KvStore;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.time.Duration;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import picocli.CommandLine;

/** ClusterBench's command line and helpers, without starting a cluster (that is ClusterBenchIT). */
@Timeout(30)
class ClusterBenchTest {

  private static int exitCode(StringWriter err, String... args) {
    CommandLine cl = ClusterBench.commandLine();
    cl.setErr(new PrintWriter(err));
    cl.setOut(new PrintWriter(new StringWriter()));
    return cl.execute(args);
  }

  @Test
  void help_listsEveryOption_andExitsZero() {
    CommandLine cl = ClusterBench.commandLine();
    StringWriter out = new StringWriter();
    cl.setOut(new PrintWriter(out));
    assertThat(cl.execute("--help")).isZero();
    assertThat(out.toString()).contains("--phases", "--duration", "--threads", "--keys", "--value-size",
        "--lag-rate", "--lag-duration", "--catchup-keys", "--server-jar", "--server-heap", "--timeout");
  }

  @Test
  void defaults_matchTheDocumentedBenchmark() {
    ClusterBench bench = new ClusterBench();
    new CommandLine(bench).setCaseInsensitiveEnumValuesAllowed(true).parseArgs();
    assertThat(bench.phases).containsExactlyInAnyOrder(ClusterBench.Phase.values());
    assertThat(bench.threads).isEqualTo(8);
    assertThat(bench.valueSize).isEqualTo(100);
    assertThat(bench.lagRate).isEqualTo(5000);
    assertThat(bench.catchupKeys).isEqualTo(1_000_000);
    assertThat(ClusterBench.parseDuration(bench.duration)).isEqualTo(Duration.ofSeconds(10));
  }

  @Test
  void phases_areCaseInsensitive() {
    ClusterBench bench = new ClusterBench();
    new CommandLine(bench).setCaseInsensitiveEnumValuesAllowed(true).parseArgs("--phases", "LAG,one");
    assertThat(bench.phases).containsExactlyInAnyOrder(ClusterBench.Phase.LAG, ClusterBench.Phase.ONE);
  }

  @Test
  void unknownPhase_isAUsageError() {
    StringWriter err = new StringWriter();
    assertThat(exitCode(err, "--phases", "fly")).isEqualTo(2);
    assertThat(err.toString()).contains("fly");
  }

  @Test
  void badDuration_isAUsageError_beforeAnyServerStarts() {
    StringWriter err = new StringWriter();
    assertThat(exitCode(err, "--duration", "10 parsecs")).isEqualTo(2);
    assertThat(err.toString()).contains("not a duration");
  }

  @Test
  void nonPositiveThreads_isAUsageError() {
    StringWriter err = new StringWriter();
    assertThat(exitCode(err, "--threads", "0")).isEqualTo(2);
    assertThat(err.toString()).contains("--threads");
  }

  @Test
  void parseDuration_acceptsUnitsAndIso_refusesTheRest() {
    assertThat(ClusterBench.parseDuration("500ms")).isEqualTo(Duration.ofMillis(500));
    assertThat(ClusterBench.parseDuration("10s")).isEqualTo(Duration.ofSeconds(10));
    assertThat(ClusterBench.parseDuration("2m")).isEqualTo(Duration.ofMinutes(2));
    assertThat(ClusterBench.parseDuration("PT3S")).isEqualTo(Duration.ofSeconds(3));
    for (String bad : new String[] {"", "10", "1.5s", "-1s", "10x", "PT-1S"}) {
      assertThatThrownBy(() -> ClusterBench.parseDuration(bad)).as(bad)
          .isInstanceOf(IllegalArgumentException.class);
    }
  }

  @Test
  void freePorts_areDistinct() throws Exception {
    int[] ports = ClusterBench.freePorts(3);
    assertThat(Arrays.stream(ports).distinct().count()).isEqualTo(3);
    assertThat(Arrays.stream(ports).min().orElseThrow()).isPositive();
  }

  @Test
  void hashLocal_countsEveryLiveKey_acrossPages_andChangesWithAVersion() {
    try (KvStore store = KvStore.builder().nodeId("hash").build()) {
      for (int i = 0; i < 25_000; i++) {
        store.put("k" + i, "v");
      }
      store.delete("k7");
      long[] first = ClusterBench.hashLocal(store);
      assertThat(first[0]).isEqualTo(24_999);
      assertThat(ClusterBench.hashLocal(store)).containsExactly(first);
      store.put("k8", "again");
      long[] second = ClusterBench.hashLocal(store);
      assertThat(second[0]).isEqualTo(24_999);
      assertThat(second[1]).isNotEqualTo(first[1]);
    }
  }

  /** Regression: the partition map's node list keeps a crashed node, so only members count. */
  @Test
  void memberIds_readSelfAndMembers_notThePartitionMapsNodes() {
    String json = "{\"self\":{\"id\":\"node-b\"},\"members\":[{\"id\":\"node-a\"}],"
        + "\"partitionMap\":{\"nodes\":{\"node-a\":1024,\"node-b\":1024,\"node-c\":1024}}}";
    assertThat(ClusterBench.memberIds(json)).containsExactlyInAnyOrder("node-a", "node-b");
    assertThat(ClusterBench.memberIds("")).isEmpty();
  }
}
