package io.kvstore.examples.bench;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * A tiny PartitionBench run (4 nodes, rf 2, 2,000 keys, short phases) against real server JVMs (the
 * jar failsafe passes), both modes, so the tool cannot rot: every row of the side-by-side table has a
 * number for each mode where it should, the figures that do not depend on the machine are what the
 * design says (copies per key, fewer bytes and mutations per write when partitioned, about half the
 * entries per node), and no server JVM outlives the run. About 40 s.
 */
@Timeout(180)
class PartitionBenchIT {
  private static final int NODES = 4;
  private static final int RF = 2;
  private static final int KEYS = 2000;

  /** Rows with a number in both modes. */
  private static final List<String> BOTH = List.of(PartitionBench.PUT_ONE, PartitionBench.PUT_ONE_P50,
      PartitionBench.PUT_ONE_P99, PartitionBench.PUT_ONE_ERRORS, PartitionBench.COPIES_AFTER,
      PartitionBench.PUT_QUORUM, PartitionBench.PUT_QUORUM_P50, PartitionBench.PUT_QUORUM_P99,
      PartitionBench.PUT_QUORUM_ERRORS, PartitionBench.FRAMES, PartitionBench.BYTES, PartitionBench.MUTATIONS,
      PartitionBench.COPIES, PartitionBench.ENTRIES_MEAN, PartitionBench.ENTRIES_EMBEDDED,
      PartitionBench.HEAP_MEAN, PartitionBench.HEAP_GROWTH, PartitionBench.GETS, PartitionBench.GET_MISSES,
      PartitionBench.LOCAL_SHARE, PartitionBench.LOCAL_P50, PartitionBench.LOCAL_P99,
      PartitionBench.REMOTE_SHARE);

  /** Rows with a number in partitioned mode only. */
  private static final List<String> PARTITIONED_ONLY = List.of(PartitionBench.REMOTE_P50,
      PartitionBench.REMOTE_P99, PartitionBench.JOIN_MAP, PartitionBench.JOIN_READY, PartitionBench.JOIN_SETTLED,
      PartitionBench.JOIN_SETTLED_FROM_MAP,
      PartitionBench.JOIN_ENTRIES, PartitionBench.JOIN_SHARE, PartitionBench.JOIN_RATE,
      PartitionBench.JOIN_WRITES, PartitionBench.JOIN_ERRORS, PartitionBench.JOIN_ERROR_RATE);

  @Test
  void tinyRun_reportsEveryFigureForBothModes_withPartitionedCheaperPerWrite_andStopsItsServers(
      @TempDir Path dir) throws Exception {
    Path outFile = dir.resolve("pbench.md");
    CommandLine cl = PartitionBench.commandLine();
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    cl.setOut(new PrintWriter(out));
    cl.setErr(new PrintWriter(err));
    int code = cl.execute("--nodes", String.valueOf(NODES), "--replication-factor", String.valueOf(RF),
        "--keys", String.valueOf(KEYS), "--threads", "2", "--get-duration", "500ms", "--settle", "1s",
        "--server-heap", "256m", "--timeout", "60s", "--dir", dir.resolve("logs").toString(),
        "--out", outFile.toString());
    String report = out + "\n" + err;
    assertThat(code).as(report).isZero();
    String table = Files.readString(outFile, StandardCharsets.UTF_8);
    assertThat(report).contains(table);
    assertThat(table).contains("### partitioned, rf 2", "### full replication (rf 4)", "### Side by side");

    for (String row : BOTH) {
      assertThat(number(table, row, 1)).as(row + "\n" + table).isNotNaN().isGreaterThanOrEqualTo(0);
      assertThat(number(table, row, 2)).as(row + "\n" + table).isNotNaN().isGreaterThanOrEqualTo(0);
    }
    for (String row : PARTITIONED_ONLY) {
      assertThat(number(table, row, 1)).as(row + "\n" + table).isNotNaN().isGreaterThanOrEqualTo(0);
      assertThat(cell(table, row, 2)).as(row).isEqualTo("—");
    }

    assertThat(number(table, PartitionBench.PUT_ONE_ERRORS, 1)).as(table).isZero();
    assertThat(number(table, PartitionBench.PUT_QUORUM_ERRORS, 1)).as(table).isZero();
    assertThat(number(table, PartitionBench.PUT_QUORUM_ERRORS, 2)).as(table).isZero();
    assertThat(number(table, PartitionBench.GET_MISSES, 1)).as(table).isZero();
    assertThat(number(table, PartitionBench.GET_MISSES, 2)).as(table).isZero();
    assertThat(number(table, PartitionBench.COPIES, 1)).as(table).isEqualTo(RF);
    assertThat(number(table, PartitionBench.COPIES, 2)).as(table).isEqualTo(NODES);
    assertThat(number(table, PartitionBench.BYTES, 1)).as(table)
        .isLessThan(number(table, PartitionBench.BYTES, 2));
    assertThat(number(table, PartitionBench.MUTATIONS, 1)).as(table).isBetween(RF - 1.0, RF - 1 + 0.5);
    assertThat(number(table, PartitionBench.MUTATIONS, 2)).as(table).isBetween(NODES - 1.0, NODES - 1 + 0.5);
    assertThat(number(table, PartitionBench.ENTRIES_MEAN, 1) / number(table, PartitionBench.ENTRIES_MEAN, 2))
        .as(table).isBetween(0.35, 0.65);
    assertThat(number(table, PartitionBench.LOCAL_SHARE, 1)).as(table).isBetween(25.0, 75.0);
    assertThat(number(table, PartitionBench.LOCAL_SHARE, 2)).as(table).isEqualTo(100.0);
    assertThat(number(table, PartitionBench.JOIN_ENTRIES, 1)).as(table).isPositive();
    assertThat(number(table, PartitionBench.JOIN_WRITES, 1)).as(table).isPositive();
    // the target is 0; below 1 % so that a QUORUM timeout on a loaded machine does not fail the build
    assertThat(number(table, PartitionBench.JOIN_ERROR_RATE, 1)).as(table).isLessThan(1.0);

    assertThat(ProcessHandle.current().descendants()
        .filter(ProcessHandle::isAlive)
        .map(p -> p.info().commandLine().orElse(""))
        .filter(c -> c.contains("kvstore-server") || c.contains("KvServer")))
        .as("server JVMs left running").isEmpty();
  }

  /** The cell of a side-by-side row: column 1 partitioned, 2 full. */
  private static String cell(String table, String row, int column) {
    String side = table.substring(table.indexOf("### Side by side"));
    for (String line : side.split("\n")) {
      if (line.startsWith("| " + row + " | ")) {
        String[] cells = line.split(" \\| ");
        return cells[column].trim();
      }
    }
    throw new AssertionError("no row '" + row + "' in\n" + table);
  }

  private static double number(String table, String row, int column) {
    String c = cell(table, row, column);
    try {
      return Double.parseDouble(c);
    } catch (NumberFormatException e) {
      return Double.NaN;
    }
  }
}
