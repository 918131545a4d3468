package io.kvstore.examples.bench;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * A tiny run of every ClusterBench phase against two real server JVMs (the jar failsafe passes), so
 * the tool cannot rot. Figures are not checked, only that each phase reports and nothing failed.
 */
@Timeout(120)
class ClusterBenchIT {

  @Test
  void tinyRun_reportsEveryPhase_andStopsItsServers(@TempDir Path dir) {
    CommandLine cl = ClusterBench.commandLine();
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    cl.setOut(new PrintWriter(out));
    cl.setErr(new PrintWriter(err));
    int code = cl.execute("--phases", "one,quorum,lag,catchup", "--duration", "500ms", "--warmup", "200ms",
        "--threads", "2", "--keys", "300", "--lag-rate", "200", "--lag-duration", "500ms",
        "--catchup-keys", "3000", "--server-heap", "256m", "--timeout", "60s", "--dir", dir.toString());
    String report = out + "\n" + err;
    assertThat(code).as(report).isZero();
    assertThat(report)
        .containsPattern("\\[one\\] puts=\\d+ .* errors=0")
        .containsPattern("\\[quorum\\] puts=\\d+ .* errors=0")
        .containsPattern("\\[one\\] replicas identical \\d+ ms after the last put \\(content"
            + " fingerprints equal at poll \\d+.*confirmed by full listings \\(\\d+ live keys")
        .containsPattern("\\[quorum\\] replicas identical")
        .containsPattern("\\[lag\\] put start on A -> change visible on C \\(SSE\\), n=\\d+: p50=")
        .doesNotContain("never seen on C")
        .containsPattern("\\[failure\\] SIGKILL of C -> REMOVED on A \\(listener\\): \\d+ ms")
        .containsPattern("\\[catchup\\] C restarted empty: /ready after \\d+ ms, \\d+ live entries after \\d+ ms")
        .contains("1000 of 1000 random keys have the same version")
        .contains("false removals on A in total: 0");
  }
}
