package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(value = 90, unit = TimeUnit.SECONDS)
class SmokeTest {
  @Test
  void putOnOne_visibleOnAll() {
    try (TestCluster c = TestCluster.start("smoke", "s", 3)) {
      c.node("s1").store().put("k", "v");
      await().atMost(Duration.ofSeconds(5)).untilAsserted(() -> {
        for (TestCluster.Node n : c.nodes()) {
          assertThat(n.store().getString("k")).hasValue("v");
        }
      });
      System.out.println(c.node("s1").stats());
    }
  }
}
