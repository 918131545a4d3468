package io.kvstore.examples.server;

import static io.kvstore.examples.ServerCommand.child;
import static io.kvstore.examples.ServerCommand.execute;
import static org.assertj.core.api.Assertions.assertThat;

import io.kvstore.examples.ServerCommand.Run;
import ch.qos.logback.classic.Level;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** The server's logging: formats, level, node id on every thread, config files, bad flags. */
@Timeout(30)
class ServerLoggingTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  @TempDir
  Path dir;

  private final ByteArrayOutputStream out = new ByteArrayOutputStream();

  @AfterEach
  void restoreTheDefault() {
    ServerLogging.reset();
  }

  /** Logs from a thread that is not main (as Netty's and ScaleCube's are) and waits for it. */
  private static void logOnAnotherThread(Runnable r) throws InterruptedException {
    Thread t = new Thread(r, "not-main-1");
    t.start();
    t.join(10_000);
    assertThat(t.isAlive()).isFalse();
  }

  private List<String> lines() {
    return out.toString(StandardCharsets.UTF_8).lines().toList();
  }

  @Test
  void jsonFormat_writesOneObjectPerLine_withLevelLoggerThreadMessageNodeIdAndException()
      throws Exception {
    ServerLogging.configure(null, ServerLogging.Format.JSON, null, "node-j1", out);
    Logger log = LoggerFactory.getLogger("io.kvstore.cluster.Somewhere");
    logOnAnotherThread(() -> {
      log.info("hello {}", "world");
      log.error("it broke\non two lines", new IllegalStateException("boom \"quoted\""));
    });

    List<String> lines = lines();
    assertThat(lines).hasSize(2);
    List<JsonNode> events = new ArrayList<>();
    for (String line : lines) {
      events.add(JSON.readTree(line));
    }
    JsonNode info = events.get(0);
    assertThat(info.path("level").asText()).isEqualTo("INFO");
    assertThat(info.path("loggerName").asText()).isEqualTo("io.kvstore.cluster.Somewhere");
    assertThat(info.path("threadName").asText()).isEqualTo("not-main-1");
    assertThat(info.path("formattedMessage").asText()).isEqualTo("hello world");
    assertThat(info.path("context").path("properties").path("nodeId").asText())
        .isEqualTo("node-j1");
    assertThat(info.path("timestamp").asLong()).isPositive();
    JsonNode error = events.get(1);
    assertThat(error.path("level").asText()).isEqualTo("ERROR");
    assertThat(error.path("formattedMessage").asText()).isEqualTo("it broke\non two lines");
    assertThat(error.path("throwable").path("className").asText())
        .isEqualTo("java.lang.IllegalStateException");
    assertThat(error.path("throwable").path("message").asText()).isEqualTo("boom \"quoted\"");
  }

  @Test
  void textFormat_carriesTheNodeId_onANonMainThread() throws Exception {
    ServerLogging.configure(null, ServerLogging.Format.TEXT, null, "node-t1", out);
    Logger log = LoggerFactory.getLogger("io.kvstore.cluster.ClusterReplicator");
    logOnAnotherThread(() -> log.info("from another thread"));

    assertThat(lines()).singleElement().asString()
        .matches("\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{3} INFO  \\[node-t1] "
            + "i\\.k\\.c\\.ClusterReplicator - from another thread");
  }

  @Test
  void logLevelWarn_filtersOutInfo_andDebugShowsDebug() throws Exception {
    ServerLogging.configure(ServerLogging.parseLevel("WARN"), ServerLogging.Format.TEXT, null,
        "n1", out);
    Logger log = LoggerFactory.getLogger("io.kvstore.test");
    log.info("an info line");
    log.warn("a warn line");
    assertThat(lines()).singleElement().asString().contains("WARN").contains("a warn line");

    out.reset();
    ServerLogging.configure(ServerLogging.parseLevel("debug"), ServerLogging.Format.TEXT, null,
        "n1", out);
    log.debug("a debug line");
    assertThat(lines()).singleElement().asString().contains("a debug line");
  }

  @Test
  void logConfigFile_replacesTheBuiltInConfiguration_andSeesTheNodeId() throws Exception {
    Path logFile = dir.resolve("server.log");
    Path config = dir.resolve("logback.xml");
    Files.writeString(config, """
        <configuration>
          <appender name="FILE" class="ch.qos.logback.core.FileAppender">
            <file>%s</file>
            <encoder><pattern>CUSTOM [%%property{nodeId}] %%level %%msg%%n</pattern></encoder>
          </appender>
          <root level="WARN"><appender-ref ref="FILE"/></root>
        </configuration>
        """.formatted(logFile));
    ServerLogging.configure(null, ServerLogging.Format.TEXT, config, "node-f1", out);
    Logger log = LoggerFactory.getLogger("io.kvstore.test");
    logOnAnotherThread(() -> {
      log.info("filtered by the file's level");
      log.warn("kept");
    });

    assertThat(Files.readAllLines(logFile)).containsExactly("CUSTOM [node-f1] WARN kept");
    assertThat(lines()).isEmpty();
  }

  @Test
  void badLogFlags_exitWith2_withAClearMessage() throws Exception {
    Run level = execute("--log-level", "loud");
    assertThat(level.code()).isEqualTo(2);
    assertThat(level.err()).contains("--log-level wants one of trace, debug, info, warn, error, "
        + "off, got 'loud'");

    Run format = execute("--log-format", "xml");
    assertThat(format.code()).isEqualTo(2);
    assertThat(format.err()).contains("--log-format").contains("xml").contains("JSON");

    Path missing = dir.resolve("missing.xml");
    Run noFile = execute("--log-config", missing.toString());
    assertThat(noFile.code()).isEqualTo(2);
    assertThat(noFile.err()).contains("--log-config: cannot read " + missing);

    Path broken = dir.resolve("broken.xml");
    Files.writeString(broken, "<configuration><appender name=");
    Run badFile = execute("--log-config", broken.toString());
    assertThat(badFile.code()).isEqualTo(2);
    assertThat(badFile.err()).contains("--log-config: " + broken
        + " is not a valid Logback configuration");
  }

  @Test
  void theServersFirstLogLine_isAlreadyInTheChosenFormat() throws Exception {
    // --auth-token logs a warning while the flags are checked; --max-value-size then fails them,
    // so the server stops before it binds anything.
    Run r = child(List.of(), "--log-format", "json", "--node-id", "node-c1", "--auth-token",
        "abcdefgh", "--max-value-size", "bogus");
    assertThat(r.code()).as(r.err()).isEqualTo(2);
    List<String> json = r.err().lines().filter(l -> l.startsWith("{")).toList();
    assertThat(json).as(r.err()).hasSize(1);
    JsonNode warn = JSON.readTree(json.get(0));
    assertThat(warn.path("level").asText()).isEqualTo("WARN");
    assertThat(warn.path("formattedMessage").asText()).contains("--auth-token on the command line");
    assertThat(warn.path("context").path("properties").path("nodeId").asText())
        .isEqualTo("node-c1");
    assertThat(r.err().lines().filter(l -> !l.startsWith("{")))
        .allMatch(l -> l.startsWith("kvstore-server: ") || l.startsWith("Try "), "no other lines");
  }

  @Test
  void logbackConfigurationFileProperty_isHonoured_withTheNodeId() throws Exception {
    Path logFile = dir.resolve("prop.log");
    Path config = dir.resolve("prop.xml");
    Files.writeString(config, """
        <configuration>
          <appender name="FILE" class="ch.qos.logback.core.FileAppender">
            <file>%s</file>
            <encoder><pattern>PROP [%%property{nodeId}] %%level %%msg%%n</pattern></encoder>
          </appender>
          <root level="INFO"><appender-ref ref="FILE"/></root>
        </configuration>
        """.formatted(logFile));
    Run r = child(List.of("-D" + ServerLogging.LOGBACK_CONFIG_PROPERTY + "=" + config),
        "--node-id", "node-p1", "--auth-token", "abcdefgh", "--max-value-size", "bogus");
    assertThat(r.code()).as(r.err()).isEqualTo(2);
    assertThat(Files.readString(logFile)).startsWith("PROP [node-p1] WARN --auth-token on the");
  }

  @Test
  void parseLevel_acceptsTheLevelNamesInAnyCase() {
    assertThat(ServerLogging.parseLevel("Debug")).isEqualTo(Level.DEBUG);
    assertThat(ServerLogging.parseLevel(" off ")).isEqualTo(Level.OFF);
  }
}
