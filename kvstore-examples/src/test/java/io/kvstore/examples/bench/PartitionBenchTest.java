package io.kvstore.examples.bench;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import picocli.CommandLine;

/** PartitionBench's command line, report and parsers, without starting a cluster (that is PartitionBenchIT). */
@Timeout(30)
class PartitionBenchTest {

  private static int exitCode(StringWriter err, String... args) {
    CommandLine cl = PartitionBench.commandLine();
    cl.setErr(new PrintWriter(err));
    cl.setOut(new PrintWriter(new StringWriter()));
    return cl.execute(args);
  }

  @Test
  void defaults_matchIssue14sFigureList() {
    PartitionBench bench = new PartitionBench();
    new CommandLine(bench).setCaseInsensitiveEnumValuesAllowed(true).parseArgs();
    assertThat(bench.modes).containsExactly(PartitionBench.Mode.PARTITIONED, PartitionBench.Mode.FULL);
    assertThat(bench.nodes).isEqualTo(6);
    assertThat(bench.replicationFactor).isEqualTo(3);
    assertThat(bench.keys).isEqualTo(200_000);
    assertThat(bench.valueSize).isEqualTo(100);
    assertThat(bench.threads).isEqualTo(8);
    assertThat(bench.rebalance).isTrue();
  }

  @Test
  void modes_keepTheirOrder_andAreCaseInsensitive() {
    PartitionBench bench = new PartitionBench();
    new CommandLine(bench).setCaseInsensitiveEnumValuesAllowed(true).parseArgs("--modes", "FULL,partitioned");
    assertThat(bench.modes).containsExactly(PartitionBench.Mode.FULL, PartitionBench.Mode.PARTITIONED);
  }

  @Test
  void replicationFactorAtOrAboveTheNodeCount_isAUsageError_beforeAnyServerStarts() {
    StringWriter err = new StringWriter();
    assertThat(exitCode(err, "--nodes", "3", "--replication-factor", "3")).isEqualTo(2);
    assertThat(err.toString()).contains("--replication-factor");
  }

  @Test
  void aModeTwice_isAUsageError() {
    StringWriter err = new StringWriter();
    assertThat(exitCode(err, "--modes", "full,full")).isEqualTo(2);
    assertThat(err.toString()).contains("--modes");
  }

  @Test
  void badDuration_isAUsageError() {
    StringWriter err = new StringWriter();
    assertThat(exitCode(err, "--get-duration", "soon")).isEqualTo(2);
    assertThat(err.toString()).contains("not a duration");
  }

  @Test
  void metric_sumsEveryLabelSet_andSaysWhenThereIsNone() {
    String text = "# HELP x\nkvstore_replication_bytes_sent_total 1200.0\n"
        + "jvm_memory_used_bytes{area=\"heap\",id=\"G1 Eden\"} 10.0\n"
        + "jvm_memory_used_bytes{area=\"heap\",id=\"G1 Old\"} 5.5\n"
        + "kvstore_replication_bytes_sent_total_other 7.0\n";
    assertThat(BenchServers.metric(text, "kvstore_replication_bytes_sent_total")).isEqualTo(1200.0);
    assertThat(BenchServers.metric(text, "jvm_memory_used_bytes")).isEqualTo(15.5);
    assertThat(BenchServers.metric(text, "kvstore_store_live_entries")).isEqualTo(-1);
  }

  @Test
  void heapUsed_readsG1sHeapInfoLine() {
    String info = "20000:\nCommand executed successfully\n"
        + " garbage-first heap   total 40960K, used 10368K [0x00000000f0000000, 0x0000000100000000)\n"
        + "  region size 1024K, 0 young (0K), 0 survivors (0K)\n Metaspace       used 28174K, committed 28544K\n";
    assertThat(BenchServers.heapUsed(info)).isEqualTo(10368L * 1024);
    assertThat(BenchServers.heapUsed("Could not attach")).isEqualTo(-1);
  }

  @Test
  void clusterState_readsMembersMapAndPending_andNothingPendingNeedsEveryReportAtZero() throws Exception {
    String json = "{\"self\":{\"id\":\"node-1\",\"pendingPartitions\":0},\"ready\":true,"
        + "\"members\":[{\"id\":\"node-0\"},{\"id\":\"node-1\"}],"
        + "\"partitionMap\":{\"version\":\"5784974cd755e918\",\"replicationFactor\":2,"
        + "\"nodes\":{\"node-0\":512,\"node-1\":512},\"pendingPartitions\":{\"node-0\":0,\"node-1\":3}}}";
    BenchServers.ClusterState c = BenchServers.ClusterState.parse(json);
    assertThat(c.self()).isEqualTo("node-1");
    assertThat(c.ready()).isTrue();
    assertThat(c.members()).containsExactly("node-0", "node-1");
    assertThat(c.mapVersion()).isEqualTo("5784974cd755e918");
    assertThat(c.mapNodes()).containsEntry("node-0", 512).hasSize(2);
    assertThat(c.nothingPending()).isFalse();
    assertThat(BenchServers.ClusterState.parse(json.replace("\"node-1\":3", "\"node-1\":0")).nothingPending())
        .isTrue();
    BenchServers.ClusterState standalone = BenchServers.ClusterState.parse(
        "{\"self\":{\"id\":\"x\"},\"ready\":true,\"members\":[{\"id\":\"x\"}]}");
    assertThat(standalone.mapVersion()).isNull();
    assertThat(standalone.nothingPending()).as("no report is not 'nothing pending'").isFalse();
  }

  @Test
  void report_hasATablePerMode_andTheRatioWhereBothHaveANumber() {
    PartitionBench bench = new PartitionBench();
    new CommandLine(bench).setCaseInsensitiveEnumValuesAllowed(true)
        .parseArgs("--nodes", "4", "--replication-factor", "2");
    PartitionBench.Result p = new PartitionBench.Result(PartitionBench.Mode.PARTITIONED);
    p.put(PartitionBench.BYTES, 300, "%.1f");
    p.put(PartitionBench.REMOTE_P50, 0.25, "%.3f");
    p.put(PartitionBench.JOIN_SETTLED, 3000, "%.0f");
    PartitionBench.Result f = new PartitionBench.Result(PartitionBench.Mode.FULL);
    f.put(PartitionBench.BYTES, 600, "%.1f");
    f.putText(PartitionBench.REMOTE_P50, "—");
    String report = bench.report(List.of(p, f));
    assertThat(report).contains("### partitioned, rf 2", "### full replication (rf 4)", "### Side by side",
        "rf/N = 0.50", "mutations per write 1 vs. 3")
        .contains("| " + PartitionBench.BYTES + " | 300.0 | 600.0 | 0.500 |")
        .contains("| " + PartitionBench.REMOTE_P50 + " | 0.250 | — |  |")
        .contains("| " + PartitionBench.JOIN_SETTLED + " | 3000 | — |  |");
    assertThat(bench.report(List.of(f))).contains("### full replication").doesNotContain("Side by side");
  }
}
