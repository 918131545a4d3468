package io.kvstore.http;

import static io.kvstore.http.HttpFixture.assertError;
import static io.kvstore.http.HttpFixture.json;
import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import io.kvstore.core.Durability;
import io.kvstore.core.KvStore;
import io.kvstore.core.StorageException;
import io.kvstore.core.StorageStatus;
import io.kvstore.core.Version;
import io.kvstore.core.WriteOptions;
import io.micrometer.core.instrument.Gauge;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** Health, readiness, cluster view, metrics, and write concerns over a (fake) two-node cluster. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class OpsApiTest {
  private HttpFixture http;

  @AfterEach
  void stop() {
    if (http != null) {
      http.close();
    }
  }

  private FakeClusterReplicator startClustered() {
    FakeClusterReplicator replicator = new FakeClusterReplicator("node-1");
    http = HttpFixture.start(KvStore.builder().nodeId("node-1").replicator(replicator).build());
    return replicator;
  }

  @Test
  void health_is200WhileServing() {
    http = HttpFixture.start(KvStore.builder().nodeId("node-1").build());
    HttpFixture.Response<String> r = http.send("GET", "/health");
    assertThat(r.status()).isEqualTo(200);
    assertThat(r.header("content-type")).startsWith("application/json");
    assertThat(json(r).get("status").asText()).isEqualTo("serving");
  }

  @Test
  void health_namesTheDurabilityOfAStoreWithADataDir(@TempDir Path dir) {
    http = HttpFixture.start(KvStore.builder().nodeId("node-1").dataDir(dir).build());
    JsonNode body = json(http.send("GET", "/health"));
    assertThat(body.get("status").asText()).isEqualTo("serving");
    assertThat(body.get("storage").get("durability").asText()).isEqualTo("INTERVAL");
    assertThat(body.get("storage").get("writable").asBoolean()).isTrue();
  }

  @Test
  void failedStorage_healthSaysReadOnly_writesAre503_andNoFileNameLeaks() {
    StorageStatus failed = new StorageStatus(Path.of("/srv/kv"), Durability.SYNC, false,
        "syncing /srv/kv/log-1.seg failed", 0, 0, 0, 1, 1, 0, 0);
    StorageException refusal = new StorageException("node-1: syncing /srv/kv/log-1.seg failed");
    http = HttpFixture.start(new ForwardingKvStore(KvStore.builder().nodeId("node-1").build()) {
      @Override
      public StorageStatus storage() {
        return failed;
      }

      @Override
      public CompletableFuture<Version> putAsync(String key, byte[] value, WriteOptions options) {
        return CompletableFuture.failedFuture(refusal);
      }

      @Override
      public Version put(String key, byte[] value, WriteOptions options) {
        throw refusal;
      }
    });
    JsonNode health = json(http.send("GET", "/health"));
    assertThat(health.get("status").asText()).isEqualTo("read_only");
    assertThat(health.get("storage").get("writable").asBoolean()).isFalse();
    HttpFixture.Response<String> put = http.send("PUT", "/v1/kv/k", "v");
    assertError(put, 503, "storage_failed");
    assertThat(put.body()).doesNotContain("/srv/kv");
    assertThat(http.send("GET", "/metrics").body()).contains("kvstore_storage_writable 0.0")
        .contains("kvstore_storage_failed_syncs_total 1.0");
  }

  @Test
  void ready_followsTheClusterView() {
    FakeClusterReplicator replicator = startClustered();
    assertThat(http.send("GET", "/ready").status()).isEqualTo(200);

    replicator.ready(false);
    assertError(http.send("GET", "/ready"), 503, "not_ready");

    replicator.ready(true);
    assertThat(json(http.send("GET", "/ready")).get("ready").asBoolean()).isTrue();
  }

  @Test
  void cluster_standalone_listsOnlyItself() {
    http = HttpFixture.start(KvStore.builder().nodeId("solo").build());
    JsonNode body = json(http.send("GET", "/v1/cluster"));

    assertThat(body.get("self").get("id").asText()).isEqualTo("solo");
    assertThat(body.get("self").get("status").asText()).isEqualTo("alive");
    assertThat(body.get("ready").asBoolean()).isTrue();
    assertThat(body.get("members")).hasSize(1);
    assertThat(body.get("members").get(0).get("dataAddress").isNull()).isTrue();
  }

  @Test
  void cluster_selfShowsTheStoresContentFingerprint() {
    KvStore a = KvStore.builder().nodeId("fa").build();
    a.put("k", "v");
    http = HttpFixture.start(a);
    JsonNode body = json(http.send("GET", "/v1/cluster"));
    assertThat(body.get("self").get("contentFingerprint").asText())
        .isEqualTo(String.format("%016x", a.contentFingerprint()));
  }

  @Test
  void cluster_listsMembersWithAddressesAndStatus() {
    startClustered();
    JsonNode body = json(http.send("GET", "/v1/cluster"));

    assertThat(body.get("self").get("id").asText()).isEqualTo("node-1");
    JsonNode peer = body.get("members").get(1);
    assertThat(peer.get("id").asText()).isEqualTo("node-2");
    assertThat(peer.get("membershipAddress").asText()).isEqualTo("127.0.0.1:7002");
    assertThat(peer.get("dataAddress").asText()).isEqualTo("127.0.0.1:7102");
    assertThat(peer.get("status").asText()).isEqualTo("alive");
  }

  @Test
  void cluster_withoutAPartitionMap_hasNoPartitionFields() {
    startClustered();
    JsonNode body = json(http.send("GET", "/v1/cluster"));
    assertThat(body.has("partitionMap")).isFalse();
    assertThat(body.get("self").has("partitions")).isFalse();
    assertThat(body.get("members").get(1).has("partitions")).isFalse();
  }

  @Test
  void cluster_withAPartitionMap_showsVersionRfAndEachNodesPartitions_keepingTheOldFields() {
    FakeClusterReplicator replicator = new FakeClusterReplicator("node-1");
    java.util.Map<String, Integer> counts = new java.util.LinkedHashMap<>();
    counts.put("node-1", 683);
    counts.put("node-2", 682);
    counts.put("node-3", 683); // absent but still in the map (within the removal delay)
    http = HttpFixture.start(KvStore.builder().nodeId("node-1").replicator(replicator).build(),
        b -> b.partitionMap(() -> new PartitionMapInfo(0x8000_0000_0000_0001L, 2, counts)));
    JsonNode body = json(http.send("GET", "/v1/cluster"));

    assertThat(body.get("self").get("partitions").asInt()).isEqualTo(683);
    assertThat(body.get("self").get("membershipAddress")).isNotNull();
    JsonNode peer = body.get("members").get(1);
    assertThat(peer.get("id").asText()).isEqualTo("node-2");
    assertThat(peer.get("status").asText()).isEqualTo("alive");
    assertThat(peer.get("partitions").asInt()).isEqualTo(682);
    JsonNode map = body.get("partitionMap");
    assertThat(map.get("version").asText()).isEqualTo("8000000000000001");
    assertThat(map.get("replicationFactor").asInt()).isEqualTo(2);
    assertThat(map.get("nodes").get("node-3").asInt()).isEqualTo(683);
    assertThat(map.get("nodes").size()).isEqualTo(3);
  }

  @Test
  void clusterAndReady_showPendingPartitionsAndWhetherTheNodeMayBeStopped() {
    FakeClusterReplicator replicator = new FakeClusterReplicator("node-1");
    java.util.Map<String, Integer> pending = new java.util.LinkedHashMap<>();
    pending.put("node-1", 0);
    pending.put("node-2", 17);
    http = HttpFixture.start(KvStore.builder().nodeId("node-1").replicator(replicator).build(),
        b -> b.partitionMap(() -> new PartitionMapInfo(5, 2, java.util.Map.of("node-1", 512,
            "node-2", 512), pending, false, "co-owner node-2 still pulls 17 partitions")));
    JsonNode body = json(http.send("GET", "/v1/cluster"));

    assertThat(body.get("safeToShutdown").asBoolean()).isFalse();
    assertThat(body.get("shutdownBlocker").asText()).contains("node-2 still pulls");
    assertThat(body.get("self").get("pendingPartitions").asInt()).isZero();
    assertThat(body.get("members").get(1).get("pendingPartitions").asInt()).isEqualTo(17);
    assertThat(body.get("partitionMap").get("pendingPartitions").get("node-2").asInt())
        .isEqualTo(17);
    JsonNode ready = json(http.send("GET", "/ready"));
    assertThat(ready.get("ready").asBoolean()).isTrue();
    assertThat(ready.get("pendingPartitions").asInt()).isZero();
    assertThat(ready.get("safeToShutdown").asBoolean()).isFalse();
  }

  @Test
  void cluster_withoutSafetyInformation_showsSafeToShutdownAsNull() {
    FakeClusterReplicator replicator = new FakeClusterReplicator("node-1");
    http = HttpFixture.start(KvStore.builder().nodeId("node-1").replicator(replicator).build(),
        b -> b.partitionMap(() -> new PartitionMapInfo(7, 1, java.util.Map.of("node-1", 1024))));
    JsonNode body = json(http.send("GET", "/v1/cluster"));
    assertThat(body.get("safeToShutdown").isNull()).isTrue();
    assertThat(body.has("shutdownBlocker")).isFalse();
    assertThat(body.get("self").has("pendingPartitions")).isFalse();
  }

  @Test
  void cluster_memberOutsideThePartitionMap_showsZeroPartitions() {
    FakeClusterReplicator replicator = new FakeClusterReplicator("node-1");
    http = HttpFixture.start(KvStore.builder().nodeId("node-1").replicator(replicator).build(),
        b -> b.partitionMap(() -> new PartitionMapInfo(7, 1, java.util.Map.of("node-1", 1024))));
    JsonNode body = json(http.send("GET", "/v1/cluster"));
    assertThat(body.get("members").get(1).get("partitions").asInt()).isZero();
    assertThat(body.get("partitionMap").get("version").asText()).isEqualTo("0000000000000007");
  }

  @Test
  void partitionMapInfo_rejectsAReplicationFactorBelowOne() {
    org.assertj.core.api.Assertions.assertThatThrownBy(
        () -> new PartitionMapInfo(1, 0, java.util.Map.of()))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("replicationFactor");
  }

  @Test
  void unmetWriteConcern_is503WithCountsAndTheWriteStaysLocal() {
    startClustered();

    JsonNode body = assertError(http.send("PUT", "/v1/kv/k?consistency=quorum", "v"), 503,
        "write_concern_not_met");
    JsonNode all = assertError(http.send("DELETE", "/v1/kv/k?consistency=all"), 503,
        "write_concern_not_met");

    assertThat(body.get("concern").asText()).isEqualTo("quorum");
    assertThat(body.get("required").asInt()).isEqualTo(2);
    assertThat(body.get("acknowledged").asInt()).isEqualTo(1);
    assertThat(body.get("message").asText()).contains("may still spread");
    assertThat(all.get("concern").asText()).isEqualTo("all");
  }

  @Test
  void writeConcernOne_succeedsOnTheCluster() {
    startClustered();
    assertThat(http.send("PUT", "/v1/kv/k?consistency=one", "v").status()).isEqualTo(200);
    assertThat(http.send("PUT", "/v1/kv/k", "v").status()).isEqualTo(200);
    assertThat(http.store.getString("k")).contains("v");
  }

  @Test
  void metrics_arePrometheusTextWithRequestStoreAndExtraMeters() {
    http = HttpFixture.start(KvStore.builder().nodeId("node-1").build(),
        b -> b.meterBinder(registry -> Gauge.builder("kvstore.replication.peers", () -> 2)
            .register(registry)));
    http.send("PUT", "/v1/kv/k", "v");
    http.send("GET", "/v1/kv/k");
    http.send("GET", "/nowhere");

    HttpFixture.Response<String> r = http.send("GET", "/metrics");

    assertThat(r.status()).isEqualTo(200);
    assertThat(r.header("content-type")).startsWith("text/plain");
    String text = r.body();
    assertThat(value(line(text, "kvstore_http_requests_seconds_count{",
        "method=\"PUT\"", "route=\"/v1/kv/{key}\"", "status=\"200\""))).isEqualTo(1.0);
    assertThat(value(line(text, "kvstore_http_requests_seconds_count{",
        "method=\"GET\"", "route=\"unmatched\"", "status=\"404\""))).isEqualTo(1.0);
    assertThat(value(line(text, "kvstore_http_requests_seconds_bucket{", "method=\"PUT\"",
        "route=\"/v1/kv/{key}\"", "le=\"+Inf\""))).isEqualTo(1.0);
    assertThat(line(text, "kvstore_http_requests_seconds_bucket{", "le=\"0.1\"")).isNotNull();
    assertThat(value(line(text, "kvstore_store_puts_total"))).isEqualTo(1.0);
    assertThat(value(line(text, "kvstore_store_gets_total"))).isEqualTo(1.0);
    assertThat(value(line(text, "kvstore_store_live_entries"))).isEqualTo(1.0);
    assertThat(value(line(text, "kvstore_replication_peers"))).isEqualTo(2.0);
  }

  private static double value(String line) {
    return Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
  }

  /** The first sample line starting with {@code start} and containing every part. */
  private static String line(String text, String start, String... parts) {
    return Arrays.stream(text.split("\n"))
        .filter(l -> l.startsWith(start) && Arrays.stream(parts).allMatch(l::contains))
        .findFirst()
        .orElseThrow(() -> new AssertionError("no line " + start + " " + Arrays.toString(parts)
            + " in\n" + text));
  }
}
