package io.kvstore.examples;

import static org.assertj.core.api.Assertions.assertThat;

import io.kvstore.core.KvStore;
import io.kvstore.examples.load.LoadTool;
import io.kvstore.http.KvHttpServer;
import java.io.PrintWriter;
import java.io.StringWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
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
  void httpRun_againstAServer_usesBothApis() {
    try (KvStore store = KvStore.builder().nodeId("load-test").build();
        KvHttpServer http = KvHttpServer.builder(store).port(0).build().start()) {
      String base = "http://127.0.0.1:" + http.port();
      for (String api : new String[] {"legacy", "v1"}) {
        String out = run("--target", base, "--api", api, "--mix", "get=50,put=50", "--keys", "100",
            "--duration", "500ms", "--warmup", "100ms", "--concurrency", "2", "--rate", "400");
        assertThat(out).contains("api=" + api).containsPattern("errors=0")
            .containsPattern("(?m)^put +\\d+");
      }
      assertThat(store.size()).isEqualTo(100);
    }
  }

  @Test
  void badMix_isAUsageError() {
    CommandLine cl = LoadTool.commandLine();
    cl.setErr(new PrintWriter(new StringWriter()));
    assertThat(cl.execute("--mix", "fly=10")).isEqualTo(2);
  }
}
