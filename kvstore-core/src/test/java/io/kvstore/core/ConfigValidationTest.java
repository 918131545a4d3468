package io.kvstore.core;

import io.kvstore.core.spi.Replicator;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The builder's settings are validated when the config is made: an invalid one fails with an
 * {@link IllegalArgumentException} whose message names the setting and the rejected value, and no
 * store or replicator is created.
 */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class ConfigValidationTest {

  /** A setting, a bad value for it, and what the message must contain. */
  static Stream<Arguments> invalidSettings() {
    return Stream.of(
        bad("maxKeyBytes 0", b -> b.maxKeyBytes(0), "maxKeyBytes", "0"),
        bad("maxKeyBytes 65537", b -> b.maxKeyBytes(65_537), "maxKeyBytes", "65537"),
        bad("maxValueBytes -1", b -> b.maxValueBytes(-1), "maxValueBytes", "-1"),
        bad("maxValueBytes over the frame limit",
            b -> b.maxValueBytes(KvStoreConfig.MAX_VALUE_BYTES_LIMIT + 1), "maxValueBytes",
            String.valueOf(KvStoreConfig.MAX_VALUE_BYTES_LIMIT + 1)),
        bad("tombstoneGrace zero", b -> b.tombstoneGrace(Duration.ZERO), "tombstoneGrace", "PT0S"),
        bad("tombstoneGrace negative", b -> b.tombstoneGrace(Duration.ofSeconds(-5)),
            "tombstoneGrace", "PT-5S"),
        bad("tombstoneGrace null", b -> b.tombstoneGrace(null), "tombstoneGrace", "null"),
        bad("purgeInterval zero", b -> b.purgeInterval(Duration.ZERO), "purgeInterval", "PT0S"),
        bad("purgeInterval null", b -> b.purgeInterval(null), "purgeInterval", "null"),
        bad("maxClockDrift negative", b -> b.maxClockDrift(Duration.ofMillis(-1)), "maxClockDrift",
            "PT-0.001S"),
        bad("maxClockDrift null", b -> b.maxClockDrift(null), "maxClockDrift", "null"),
        bad("writeTimeout zero", b -> b.writeTimeout(Duration.ZERO), "writeTimeout", "PT0S"),
        bad("writeTimeout null", b -> b.writeTimeout(null), "writeTimeout", "null"),
        bad("defaultWriteConcern null", b -> b.defaultWriteConcern(null), "defaultWriteConcern",
            "null"),
        bad("digestBuckets 0", b -> b.digestBuckets(0), "digestBuckets", "0"),
        bad("digestBuckets 1000", b -> b.digestBuckets(1000), "digestBuckets", "1000"),
        bad("digestBuckets 2^21", b -> b.digestBuckets(1 << 21), "digestBuckets", "2097152"),
        bad("digestBuckets negative", b -> b.digestBuckets(-8), "digestBuckets", "-8"),
        bad("maxScanLimit 0", b -> b.maxScanLimit(0), "maxScanLimit", "0"),
        bad("maxScanLimit 1000001", b -> b.maxScanLimit(1_000_001), "maxScanLimit", "1000001"),
        bad("nodeId empty", b -> b.nodeId(""), "node id", "empty"),
        bad("nodeId with a space", b -> b.nodeId("node 1"), "node id", "node 1"),
        bad("nodeId with a slash", b -> b.nodeId("a/b"), "node id", "a/b"),
        bad("nodeId too long", b -> b.nodeId("n".repeat(65)), "node id", "65"));
  }

  private static Arguments bad(String name, UnaryOperator<KvStoreBuilder> setting, String field,
      String value) {
    return Arguments.of(name, setting, field, value);
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("invalidSettings")
  void invalidSetting_failsNamingTheSettingAndTheValue_andCreatesNothing(String name,
      UnaryOperator<KvStoreBuilder> setting, String field, String value) {
    assertThatThrownBy(() -> setting.apply(KvStore.builder()).config()).as(name)
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining(field).hasMessageContaining(value);
    AtomicInteger factoryCalls = new AtomicInteger();
    KvStoreBuilder builder = setting.apply(KvStore.builder().replicator(config -> {
      factoryCalls.incrementAndGet();
      return new StandaloneReplicator(ClusterView.standalone(
          new Member(config.nodeId(), null, null, Member.Status.ALIVE)));
    }));
    assertThatThrownBy(builder::build).as(name).isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining(field);
    assertThat(factoryCalls).as(name).hasValue(0);
  }

  @Test
  void boundaryValues_areAccepted() {
    KvStoreConfig low = KvStore.builder().nodeId("a").maxKeyBytes(1).maxValueBytes(0)
        .digestBuckets(1).maxScanLimit(1).tombstoneGrace(Duration.ofNanos(1))
        .purgeInterval(Duration.ofMillis(1)).maxClockDrift(Duration.ofMillis(1))
        .writeTimeout(Duration.ofMillis(1)).config();
    assertThat(low.maxKeyBytes()).isEqualTo(1);
    assertThat(low.maxValueBytes()).isZero();
    KvStoreConfig high = KvStore.builder().nodeId("n".repeat(64)).maxKeyBytes(65_536)
        .maxValueBytes(KvStoreConfig.MAX_VALUE_BYTES_LIMIT).digestBuckets(1 << 20)
        .maxScanLimit(1_000_000).config();
    assertThat(high.digestBuckets()).isEqualTo(1 << 20);
    assertThat(high.nodeId()).hasSize(64);
  }

  @Test
  void defaults_areTheDocumentedConstants() {
    KvStoreConfig c = KvStore.builder().config();
    assertThat(c.nodeId()).matches("node-[0-9a-f]{8}");
    assertThat(c.maxKeyBytes()).isEqualTo(KvStoreConfig.DEFAULT_MAX_KEY_BYTES).isEqualTo(1024);
    assertThat(c.maxValueBytes()).isEqualTo(KvStoreConfig.DEFAULT_MAX_VALUE_BYTES)
        .isEqualTo(1024 * 1024);
    assertThat(c.tombstoneGrace()).isEqualTo(Duration.ofHours(1));
    assertThat(c.purgeInterval()).isEqualTo(Duration.ofSeconds(5));
    assertThat(c.maxClockDrift()).isEqualTo(Duration.ofSeconds(60));
    assertThat(c.defaultWriteConcern()).isEqualTo(WriteConcern.ONE);
    assertThat(c.writeTimeout()).isEqualTo(Duration.ofSeconds(5));
    assertThat(c.digestBuckets()).isEqualTo(1024);
    assertThat(c.maxScanLimit()).isEqualTo(10_000);
  }

  @Test
  void generatedNodeId_isStableAcrossConfigAndBuild() {
    KvStoreBuilder b = Stores.builder("placeholder", new ManualClock()).nodeId(null);
    String id = b.config().nodeId();
    try (KvStore store = b.build()) {
      assertThat(store.config().nodeId()).isEqualTo(id);
      assertThat(store.cluster().self().nodeId()).isEqualTo(id);
      assertThat(store.put("k", "v").nodeId()).isEqualTo(id);
    }
  }

  @Test
  void builtStore_reportsItsConfig_andAStandaloneClusterView() {
    try (KvStore store = Stores.builder("solo", new ManualClock()).maxKeyBytes(77).build()) {
      assertThat(store.config().maxKeyBytes()).isEqualTo(77);
      assertThat(store.config().nodeId()).isEqualTo("solo");
      ClusterView view = store.cluster();
      assertThat(view.isReady()).isTrue();
      assertThat(view.self().nodeId()).isEqualTo("solo");
      assertThat(view.members()).containsExactly(view.self());
    }
  }

  @Test
  void builderSetters_rejectNullCollaboratorsAtOnce() {
    KvStoreBuilder b = KvStore.builder();
    assertThatThrownBy(() -> b.clock(null)).isInstanceOf(NullPointerException.class)
        .hasMessageContaining("clock");
    assertThatThrownBy(() -> b.scheduler(null)).isInstanceOf(NullPointerException.class)
        .hasMessageContaining("scheduler");
    assertThatThrownBy(() -> b.replicator((Replicator) null))
        .isInstanceOf(NullPointerException.class).hasMessageContaining("replicator");
  }
}
