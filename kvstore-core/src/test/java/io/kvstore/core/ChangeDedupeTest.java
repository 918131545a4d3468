package io.kvstore.core;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class ChangeDedupeTest {
  @Test
  void aChangeReportedTwice_orOlderThanOneDelivered_isDroppedAndANewerOneDelivered() {
    ChangeDedupe d = new ChangeDedupe(10);
    assertThat(d.firstTime("k", Version.of(5, "n1"))).isTrue();
    assertThat(d.firstTime("k", Version.of(5, "n1"))).as("same change from another owner").isFalse();
    assertThat(d.firstTime("k", Version.of(4, "n2"))).as("older, arriving late").isFalse();
    assertThat(d.firstTime("k", Version.of(6, "n2"))).isTrue();
    assertThat(d.firstTime("other", Version.of(1, "n1"))).isTrue();
  }

  @Test
  void pastItsBound_theLeastRecentlyChangedKeyIsForgotten() {
    ChangeDedupe d = new ChangeDedupe(2);
    assertThat(d.firstTime("a", Version.of(1, "n"))).isTrue();
    assertThat(d.firstTime("b", Version.of(1, "n"))).isTrue();
    assertThat(d.firstTime("c", Version.of(1, "n"))).isTrue();
    assertThat(d.firstTime("b", Version.of(1, "n"))).as("still remembered").isFalse();
    assertThat(d.firstTime("a", Version.of(1, "n"))).as("forgotten, so delivered again").isTrue();
  }
}
