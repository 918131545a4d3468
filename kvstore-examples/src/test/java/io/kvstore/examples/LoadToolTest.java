package io.kvstore.examples;

import static org.assertj.core.api.Assertions.assertThat;

import io.kvstore.core.KvStore;
import io.kvstore.examples.load.LoadTool;
import io.kvstore.http.KvHttpServer;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** The load tool drives a store embedded and over HTTP and reports throughput and percentiles. */
@Timeout(60)
class LoadToolTest {

  private static String run(String... args) {
    CommandLine cl = LoadTool.commandLine();
    StringWriter out = new StringWriter();
    cl.setOut(new PrintWriter(out));
    int code = cl.execute(args);
    assertThat(code).as(out.toString()).isZero();
    return out.toString();
  }

  @Test
  void embeddedRun_reportsEveryOperationOfTheMix() {
    String out = run("--target", "embedded", "--mix", "get=60,put=30,delete=10", "--keys", "1000",
        "--duration", "500ms", "--warmup", "100ms", "--concurrency", "2");
    assertThat(out).contains("target=embedded").containsPattern("throughput=\\d+ ops/s errors=0")
        .containsPattern("(?m)^get +\\d+").containsPattern("(?m)^put +\\d+")
        .containsPattern("(?m)^delete +\\d+").contains("p99");
  }

  @Test
  void httpRun_againstAServer_usesBothApisWithBothClients() {
    try (KvStore store = KvStore.builder().nodeId("load-test").build();
        KvHttpServer http = KvHttpServer.builder(store).port(0).build().start()) {
      String base = "http://127.0.0.1:" + http.port();
      for (String client : new String[] {"socket", "jdk"}) {
        for (String api : new String[] {"legacy", "v1"}) {
          String out = run("--target", base, "--api", api, "--http-client", client, "--mix",
              "get=40,put=40,delete=20", "--keys", "100", "--duration", "500ms", "--warmup",
              "100ms", "--concurrency", "2", "--rate", "400");
          assertThat(out).contains("api=" + api + " client=" + client)
              .containsPattern("errors=0").containsPattern("(?m)^put +\\d+")
              .containsPattern("(?m)^get +\\d+").containsPattern("(?m)^delete +\\d+");
        }
      }
    }
  }

  /** Regression: picocli read --no-preload as true, so "no preload" runs wrote every key first. */
  @Test
  void noPreload_writesNothingBeforeTheRun() {
    try (KvStore store = KvStore.builder().nodeId("load-test").build();
        KvHttpServer http = KvHttpServer.builder(store).port(0).build().start()) {
      String base = "http://127.0.0.1:" + http.port();
      run("--target", base, "--no-preload", "--mix", "get=100", "--keys", "500", "--duration",
          "200ms", "--warmup", "0ms", "--concurrency", "1", "--rate", "100");
      assertThat(store.size()).as("--no-preload").isZero();
      run("--target", base, "--preload", "--mix", "get=100", "--keys", "500", "--duration",
          "200ms", "--warmup", "0ms", "--concurrency", "1", "--rate", "100");
      assertThat(store.size()).as("--preload").isEqualTo(500);
    }
  }

  @Test
  void socketClient_sendsTheTokenAndCountsRefusalsAsErrors() {
    try (KvStore store = KvStore.builder().nodeId("load-test").build();
        KvHttpServer http = KvHttpServer.builder(store).port(0)
            .authTokens(java.util.Set.of("s3cret")).build().start()) {
      String base = "http://127.0.0.1:" + http.port();
      String[] args = {"--target", base, "--no-preload", "--mix", "put=100", "--keys", "50",
          "--duration", "300ms", "--warmup", "0ms", "--concurrency", "2", "--rate", "200"};
      String[] good = java.util.stream.Stream.concat(java.util.Arrays.stream(args),
          java.util.stream.Stream.of("--auth-token", "s3cret")).toArray(String[]::new);
      assertThat(run(good)).containsPattern("errors=0");
      assertThat(store.size()).isPositive();
      CommandLine cl = LoadTool.commandLine();
      StringWriter out = new StringWriter();
      cl.setOut(new PrintWriter(out));
      assertThat(cl.execute(args)).as("without the token every put is a 401").isEqualTo(1);
      assertThat(out.toString()).containsPattern("total ops=0 .*errors=[1-9]");
    }
  }

  @Test
  void embeddedRun_withADataDir_leavesEveryWriteOnDisk(@TempDir Path dir) {
    String out = run("--target", "embedded", "--data-dir", dir.toString(), "--durability", "sync",
        "--mix", "put=100", "--keys", "300", "--duration", "300ms", "--warmup", "50ms",
        "--concurrency", "4");
    assertThat(out).contains("storage=sync").containsPattern("errors=0");
    try (KvStore reopened = KvStore.builder().nodeId("load").dataDir(dir).build()) {
      assertThat(reopened.size()).isEqualTo(300);
    }
  }

  @Test
  void aDataDir_withAnHttpTarget_isAUsageError() {
    CommandLine cl = LoadTool.commandLine();
    StringWriter err = new StringWriter();
    cl.setErr(new PrintWriter(err));
    assertThat(cl.execute("--target", "http://127.0.0.1:1", "--data-dir", "/tmp/x")).isEqualTo(2);
    assertThat(err.toString()).contains("--data-dir is for --target embedded");
  }

  @Test
  void badMix_isAUsageError() {
    CommandLine cl = LoadTool.commandLine();
    cl.setErr(new PrintWriter(new StringWriter()));
    assertThat(cl.execute("--mix", "fly=10")).isEqualTo(2);
  }
}
