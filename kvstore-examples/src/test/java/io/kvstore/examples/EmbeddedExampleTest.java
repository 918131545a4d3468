package io.kvstore.examples;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The README's cluster snippet works: three nodes in one JVM, a write on one read on another. */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class EmbeddedExampleTest {
  @Test
  void threeNodeClusterInOneJvm_replicatesAWriteAndReportsItToAListener() throws Exception {
    assertThat(EmbeddedExample.run())
        .containsExactly("REMOTE PUT order:1", "n3 read paid");
  }
}
