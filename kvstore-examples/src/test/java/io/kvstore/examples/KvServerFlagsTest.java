package io.kvstore.examples;

import static io.kvstore.examples.ServerCommand.child;
import static io.kvstore.examples.ServerCommand.execute;
import static io.kvstore.examples.ServerCommand.parse;
import static org.assertj.core.api.Assertions.assertThat;

import io.kvstore.examples.ServerCommand.Run;
import io.kvstore.examples.server.KvServer;
import io.kvstore.examples.server.ServerOptions;
import io.kvstore.cluster.KvClusterConfig;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The server's flags: defaults, parsing, and exit code 2 with a clear message for bad ones. */
@Timeout(30)
class KvServerFlagsTest {

  @Test
  void noFlags_giveASingleNodeOnLoopback8080WithStableIdAndDataPortAfterClusterPort() {
    ServerOptions o = parse();
    assertThat(o.host()).isEqualTo("127.0.0.1");
    assertThat(o.httpPort()).isEqualTo(8080);
    assertThat(o.clusterPort()).isEqualTo(7946);
    assertThat(o.dataPort()).isEqualTo(7947);
    assertThat(o.join()).isEmpty();
    assertThat(o.clusterName()).isEqualTo("kvstore");
    assertThat(o.authTokens()).isEmpty();
    assertThat(o.maxValueBytes()).isEqualTo(1024 * 1024);
    assertThat(o.nodeId()).isEqualTo("127.0.0.1-7946").isEqualTo(parse().nodeId());
  }

  @Test
  void everyFlag_isParsed() {
    ServerOptions o = parse("--node-id", "n9", "--host", "127.0.0.2", "--http-port", "9000",
        "--cluster-port", "9100", "--data-port", "9200", "--join", "127.0.0.1:7946,127.0.0.1:7956",
        "--cluster-name", "orders", "--auth-token", "s3cret", "--auth-token", "other",
        "--max-value-size", "64KiB", "--in-memory");
    assertThat(o).isEqualTo(new ServerOptions("n9", "127.0.0.2", 9000, 9100, 9200,
        List.of("127.0.0.1:7946", "127.0.0.1:7956"), "orders", Set.of("s3cret", "other"),
        64 * 1024));
    assertThat(o.toString()).doesNotContain("s3cret");
  }

  @Test
  void replicationFactor_defaultsToFullReplication_andRemovalDelayToFiveMinutes() {
    ServerOptions o = parse();
    assertThat(o.replicationFactor()).isEqualTo(KvClusterConfig.FULL_REPLICATION);
    assertThat(o.removalDelay()).isEqualTo(Duration.ofMinutes(5))
        .isEqualTo(KvClusterConfig.DEFAULT_REMOVAL_DELAY);
  }

  @Test
  void replicationFactorAndRemovalDelay_areParsed_inEveryDurationForm() {
    ServerOptions o = parse("--replication-factor", "3", "--removal-delay", "90s");
    assertThat(o.replicationFactor()).isEqualTo(3);
    assertThat(o.removalDelay()).isEqualTo(Duration.ofSeconds(90));
    assertThat(parse("--removal-delay", "500ms").removalDelay()).isEqualTo(Duration.ofMillis(500));
    assertThat(parse("--removal-delay", "10m").removalDelay()).isEqualTo(Duration.ofMinutes(10));
    assertThat(parse("--removal-delay", "1h").removalDelay()).isEqualTo(Duration.ofHours(1));
    assertThat(parse("--removal-delay", "PT2M30S").removalDelay())
        .isEqualTo(Duration.ofSeconds(150));
    assertThat(o.toString()).contains("replicationFactor=3").contains("removalDelay=PT1M30S");
    assertThat(parse().toString()).contains("replicationFactor=full");
  }

  @Test
  void antiEntropyRate_defaultsTo64MiB_andIsParsedWithUnits() {
    assertThat(parse().antiEntropyBytesPerSecond()).isEqualTo(64L * 1024 * 1024)
        .isEqualTo(KvClusterConfig.DEFAULT_ANTI_ENTROPY_BYTES_PER_SECOND);
    assertThat(parse("--anti-entropy-rate", "8MiB").antiEntropyBytesPerSecond())
        .isEqualTo(8L * 1024 * 1024);
    assertThat(parse("--anti-entropy-rate", "512KiB/s").antiEntropyBytesPerSecond())
        .isEqualTo(512L * 1024);
    assertThat(parse("--anti-entropy-rate", "2GiB").antiEntropyBytesPerSecond())
        .isEqualTo(2L * 1024 * 1024 * 1024);
    assertThat(parse("--anti-entropy-rate", "65536").antiEntropyBytesPerSecond())
        .isEqualTo(65536);
    ServerOptions unlimited = parse("--anti-entropy-rate", "0");
    assertThat(unlimited.antiEntropyBytesPerSecond()).isZero();
    assertThat(unlimited.toString()).contains("antiEntropyBytesPerSecond=unlimited");
  }

  @Test
  void antiEntropyRate_reachesTheClusterConfig() {
    try (KvServer.Node node = KvServer.Node.start(parse("--node-id", "rate1", "--http-port", "0",
        "--cluster-port", "0", "--in-memory", "--no-console", "--anti-entropy-rate", "3MiB"))) {
      assertThat(io.kvstore.cluster.KvCluster.node(node.store()).orElseThrow().config()
          .antiEntropyBytesPerSecond()).isEqualTo(3L * 1024 * 1024);
    }
  }

  @Test
  void badAntiEntropyRate_exitsWithCode2_namingTheFlagAndTheMinimum() {
    for (String bad : List.of("fast", "64 MiB per second", "-1", "1TiB", "")) {
      Run r = execute("--anti-entropy-rate", bad);
      assertThat(r.code()).as(bad).isEqualTo(2);
      assertThat(r.err()).as(bad).contains("--anti-entropy-rate");
    }
    Run small = execute("--anti-entropy-rate", "1000");
    assertThat(small.code()).isEqualTo(2);
    assertThat(small.err()).contains("--anti-entropy-rate must be 0 (no limit) or at least 64KiB")
        .contains("'1000'");
    assertThat(execute("--anti-entropy-rate", "99999999999999999999").err())
        .contains("--anti-entropy-rate").contains("too large");
  }

  @Test
  void badReplicationFactorOrRemovalDelay_exitsWithCode2_namingTheFlag() {
    Run zero = execute("--replication-factor", "0");
    assertThat(zero.code()).isEqualTo(2);
    assertThat(zero.err()).contains("--replication-factor must be at least 1, got 0")
        .contains("leave it out for full replication");
    assertThat(execute("--replication-factor", "-2").code()).isEqualTo(2);
    assertThat(execute("--replication-factor", "three").err()).contains("--replication-factor");
    for (String bad : List.of("soon", "5 minutes", "0s", "-PT1M", "")) {
      Run r = execute("--removal-delay", bad);
      assertThat(r.code()).as(bad).isEqualTo(2);
      assertThat(r.err()).as(bad).contains("--removal-delay");
    }
  }

  @Test
  void console_isOnByDefault_andNoConsoleTurnsItOff() {
    assertThat(parse().console()).isTrue();
    assertThat(parse("--no-console").console()).isFalse();
    assertThat(parse("--console").console()).isTrue();
  }

  @Test
  void dataDirDefault_isPerNodeIdUnderKvstoreData_withIntervalDurability() {
    ServerOptions o = parse("--node-id", "n7");
    assertThat(o.dataDir()).isEqualTo(java.nio.file.Path.of("kvstore-data", "n7"));
    assertThat(o.durability()).isEqualTo(io.kvstore.core.Durability.INTERVAL);
  }

  @Test
  void dataDirAndDurabilityFlags_areParsed_andInMemoryKeepsNothing() {
    ServerOptions o = parse("--data-dir", "/var/lib/kv", "--durability", "sync");
    assertThat(o.dataDir()).isEqualTo(java.nio.file.Path.of("/var/lib/kv"));
    assertThat(o.durability()).isEqualTo(io.kvstore.core.Durability.SYNC);
    ServerOptions m = parse("--in-memory");
    assertThat(m.dataDir()).isNull();
    assertThat(m.durability()).isNull();
  }

  @Test
  void inMemoryWithDataDir_exitsWith2AndSaysWhy() {
    Run r = execute("--in-memory", "--data-dir", "/tmp/x");
    assertThat(r.code()).isEqualTo(2);
    assertThat(r.err()).contains("--in-memory").contains("--data-dir");
  }

  @Test
  void nodeIdDefault_dependsOnHostAndPortOnly() {
    assertThat(parse("--cluster-port", "7956").nodeId()).isEqualTo("127.0.0.1-7956");
    assertThat(KvServer.defaultNodeId("::1", 7946)).isEqualTo("__1-7946");
  }

  @Test
  void unknownFlag_exitsWith2AndSaysWhat() {
    Run r = execute("--colour", "blue");
    assertThat(r.code()).isEqualTo(2);
    assertThat(r.err()).contains("--colour").contains("--help");
  }

  @Test
  void badValues_exitWith2AndNameTheFlag() {
    assertThat(execute("--http-port", "eighty").err()).contains("--http-port");
    assertThat(execute("--http-port", "eighty").code()).isEqualTo(2);
    Run port = execute("--http-port", "70000");
    assertThat(port.code()).isEqualTo(2);
    assertThat(port.err()).contains("--http-port").contains("70000");
    Run join = execute("--join", "nohostport");
    assertThat(join.code()).isEqualTo(2);
    assertThat(join.err()).contains("--join").contains("host:port");
    Run size = execute("--max-value-size", "2GiB");
    assertThat(size.code()).isEqualTo(2);
    assertThat(size.err()).contains("--max-value-size");
    Run id = execute("--node-id", "bad id");
    assertThat(id.code()).isEqualTo(2);
    assertThat(id.err()).contains("--node-id");
  }

  @Test
  void help_listsEveryFlagAndItsEnvironmentVariableConvention() {
    Run r = execute("--help");
    assertThat(r.code()).isZero();
    for (String flag : List.of("--node-id", "--host", "--http-port", "--cluster-port", "--data-port",
        "--join", "--cluster-name", "--auth-token", "--auth-token-file", "--cluster-secret-file",
        "--tls-cert", "--tls-key", "--tls-keystore", "--tls-keystore-password-file",
        "--max-value-size", "--replication-factor", "--removal-delay", "--anti-entropy-rate",
        "--help", "--version")) {
      assertThat(r.out()).contains(flag);
    }
    assertThat(r.out()).contains("KVSTORE_");
  }

  @Test
  void version_printsTheServerName() {
    Run r = execute("--version");
    assertThat(r.code()).isZero();
    assertThat(r.out()).contains("kvstore-server");
  }

  @Test
  void environmentVariables_setTheFlagsDefaults() throws Exception {
    Run r = child(java.util.Map.of("KVSTORE_HTTP_PORT", "9123", "KVSTORE_CLUSTER_NAME", "orders",
        "KVSTORE_MAX_VALUE_SIZE", "64KiB"), "--help");
    assertThat(r.code()).isZero();
    assertThat(r.out()).contains("default: 9123").contains("default: orders")
        .contains("default: 64KiB");
  }

  @Test
  void clusterTlsEnvironmentVariables_areReadLikeTheFlags() throws Exception {
    String missing = java.nio.file.Path.of("target", "no-such-dir", "node.pem").toAbsolutePath()
        .toString();
    Run r = child(java.util.Map.of("KVSTORE_CLUSTER_TLS_CERT", missing, "KVSTORE_CLUSTER_TLS_KEY",
        missing, "KVSTORE_CLUSTER_TLS_CA", missing), "--http-port", "0", "--cluster-port", "0");
    assertThat(r.code()).isEqualTo(2);
    assertThat(r.out()).contains("--cluster-tls-cert").contains(missing);
  }

  @Test
  void badEnvironmentVariable_exitsWith2LikeABadFlag() throws Exception {
    Run r = child(java.util.Map.of("KVSTORE_HTTP_PORT", "eighty"), "--version");
    assertThat(r.code()).isEqualTo(2);
    assertThat(r.out()).contains("--http-port");
  }
}
