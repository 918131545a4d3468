package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import io.kvstore.core.Durability;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The long Jepsen run, excluded from {@code verify}: random rounds of 2–4 faults (any kind, a quarter
 * of them with lossy links on top) until {@code -Dchaos.duration} (ISO-8601, default PT5M) has
 * passed, seeded by {@code -Dchaos.seed} (default 42). The nodes keep their data at
 * {@code -Dchaos.durability} (default SYNC; {@code NONE}/{@code INTERVAL} are durabilities too,
 * {@code memory} runs memory-only nodes without the whole-cluster crash nemeses). Run it with
 *
 * <pre>{@code
 * ./mvnw -B -pl kvstore-cluster -am verify -Pchaos -Dchaos.duration=PT10M -Dchaos.seed=42
 * }</pre>
 *
 * The figures go to the log and to {@code kvstore-cluster/target/chaos-report.txt}; a failure prints
 * the seed, the fault schedule and the history of the offending keys.
 */
@Tag("chaos")
class JepsenLongRunTest {
  private static final Logger log = LoggerFactory.getLogger(JepsenLongRunTest.class);

  @Test
  void when_faultsRunForTheWholeDuration_then_noAcknowledgedWriteIsLost_andEveryReplicaConverges(
      @TempDir Path dataRoot) throws IOException {
    long seed = Long.parseLong(System.getProperty("chaos.seed", "42").trim());
    Duration duration = Duration.parse(System.getProperty("chaos.duration", "PT5M").trim());
    String mode = System.getProperty("chaos.durability", "SYNC").trim();
    Durability durability = mode.equalsIgnoreCase("memory") ? null
        : Durability.valueOf(mode.toUpperCase(Locale.ROOT));
    JepsenRun.Report report = new JepsenRun(JepsenRun.Config.longRun(seed, duration, durability),
        dataRoot).run();
    String text = "command: ./mvnw -B -pl kvstore-cluster -am verify -Pchaos -Dtest=JepsenLongRunTest"
        + " -Dsurefire.failIfNoSpecifiedTests=false -Dchaos.duration="
        + duration + " -Dchaos.seed=" + seed + " -Dchaos.durability=" + mode + "\n"
        + report.figures() + "\n\nfault schedule:\n  "
        + String.join("\n  ", report.faultLog()) + "\n" + report.verdict().evidence();
    Files.writeString(Path.of("target", "chaos-report.txt"), text, StandardCharsets.UTF_8);
    log.info("Jepsen long run:\n{}", text);
    assertThat(report.ok()).as(report.failureMessage()).isTrue();
    assertThat(report.verdict().figures().syncQuorumLost()).as(report.failureMessage()).isZero();
  }
}
