package io.kvstore.http;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.kvstore.cluster.KvCluster;
import io.kvstore.core.KvStore;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The HTTP API in front of each node of a real 3-node cluster (ScaleCube + Netty on loopback). */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ClusterHttpTest {
  private static final List<KvStore> NODES = new ArrayList<>();
  private static final List<HttpFixture> HTTP = new ArrayList<>();

  @BeforeAll
  static void startCluster() {
    KvStore first = KvCluster.builder().nodeId("h1").clusterName("http-test")
        .membershipPort(0).dataPort(0).build();
    NODES.add(first);
    String seed = KvCluster.node(first).orElseThrow().membershipAddress();
    for (String id : List.of("h2", "h3")) {
      NODES.add(KvCluster.builder().nodeId(id).clusterName("http-test").membershipPort(0)
          .dataPort(0).seeds(seed).build());
    }
    for (KvStore n : NODES) {
      HTTP.add(HttpFixture.start(n));
    }
    await().atMost(Duration.ofSeconds(60)).until(() -> NODES.stream()
        .allMatch(n -> n.cluster().members().size() == 3 && n.cluster().isReady()));
  }

  @AfterAll
  static void stopCluster() {
    HTTP.forEach(HttpFixture::close);
    NODES.forEach(KvStore::close);
  }

  @Test
  void writeThroughNode1_isReadThroughNode3_onBothApis() {
    assertThat(HTTP.get(0).send("PUT", "/put", "{\"key\":\"city\",\"value\":\"Lyon\"}",
        "Content-Type", "application/json").status()).isEqualTo(200);
    await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> {
      var r = HTTP.get(2).send("GET", "/get?key=city");
      assertThat(r.status()).isEqualTo(200);
      assertThat(HttpFixture.json(r).get("value").asText()).isEqualTo("Lyon");
    });

    var put = HTTP.get(0).send("PUT", "/v1/kv/orders%2F7?consistency=all", "shipped",
        "Content-Type", "application/octet-stream");
    assertThat(put.status()).isEqualTo(200);
    // ALL: every replica holds it when the response arrives, no waiting needed.
    var get = HTTP.get(2).send("GET", "/v1/kv/orders%2F7");
    assertThat(get.status()).isEqualTo(200);
    assertThat(get.body()).isEqualTo("shipped");
    assertThat(get.headers().get("etag")).isEqualTo(put.headers().get("etag"));
  }

  @Test
  void deleteThroughNode3_removesTheKeyOnNode1() {
    assertThat(HTTP.get(0).send("POST", "/set/colour/blue").status()).isEqualTo(200);
    await().atMost(Duration.ofSeconds(10)).until(() ->
        HTTP.get(2).send("GET", "/get/colour").status() == 200);
    assertThat(HttpFixture.json(HTTP.get(2).send("DELETE", "/delete/colour")).get("deleted")
        .asBoolean()).isTrue();
    await().atMost(Duration.ofSeconds(10)).until(() ->
        HTTP.get(0).send("GET", "/get/colour").status() == 404);
  }

  @Test
  void clusterEndpoint_listsAllThreeMembers() {
    var r = HTTP.get(1).send("GET", "/v1/cluster");
    assertThat(r.status()).isEqualTo(200);
    assertThat(HttpFixture.json(r).get("members")).hasSize(3);
    assertThat(HTTP.get(1).send("GET", "/ready").status()).isEqualTo(200);
  }
}
