package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.slf4j.LoggerFactory;
import org.slf4j.helpers.NOPLoggerFactory;

/**
 * Regression: ScaleCube depends on slf4j-api 1.7.36; if that version wins, SLF4J 2 providers are not
 * found and every log line (ours and ScaleCube's) silently disappears. The parent pom pins 2.0.x.
 */
@Timeout(value = 10, unit = TimeUnit.SECONDS)
class LoggingBindingTest {
  @Test
  void slf4jApi2_isOnTheClasspath_andFindsTheProvider() throws ClassNotFoundException {
    // Present only in slf4j-api 2.x.
    Class.forName("org.slf4j.spi.SLF4JServiceProvider");
    assertThat(LoggerFactory.getILoggerFactory()).isNotInstanceOf(NOPLoggerFactory.class);
    assertThat(LoggerFactory.getILoggerFactory().getClass().getName()).contains("Simple");
  }
}
