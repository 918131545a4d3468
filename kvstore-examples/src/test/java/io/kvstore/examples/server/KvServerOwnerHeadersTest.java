package io.kvstore.examples.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.kvstore.cluster.ClusterNode;
import io.kvstore.cluster.KvCluster;
import io.kvstore.examples.ServerCommand;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The standalone server hands {@code ClusterNode.ownersOf} to its HTTP API: the owner headers
 * (docs/HTTP.md, "Owner headers") name the owners of the node's own map, in partitioned mode and
 * under full replication.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class KvServerOwnerHeadersTest {
  private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2))
      .build();

  private HttpResponse<String> send(KvServer.Node via, String method, String path, String body)
      throws Exception {
    return http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + via.httpPort() + path))
        .timeout(Duration.ofSeconds(10))
        .method(method, body == null ? HttpRequest.BodyPublishers.noBody()
            : HttpRequest.BodyPublishers.ofString(body)).build(),
        HttpResponse.BodyHandlers.ofString());
  }

  private static KvServer.Node start(String id, String... more) {
    List<String> flags = new java.util.ArrayList<>(List.of("--node-id", id, "--http-port", "0",
        "--cluster-port", "0", "--in-memory", "--no-console"));
    flags.addAll(List.of(more));
    return KvServer.Node.start(ServerCommand.parse(flags.toArray(new String[0])));
  }

  @Test
  void partitionedNodes_nameTheKeysSingleOwner_andSayWhetherTheyServedItThemselves()
      throws Exception {
    try (KvServer.Node n1 = start("n1", "--replication-factor", "1")) {
      ClusterNode c1 = KvCluster.node(n1.store()).orElseThrow();
      try (KvServer.Node n2 = start("n2", "--replication-factor", "1", "--join",
          c1.membershipAddress())) {
        ClusterNode c2 = KvCluster.node(n2.store()).orElseThrow();
        await().atMost(Duration.ofSeconds(30)).until(() -> c1.partitionCounts().size() == 2
            && c1.partitionMapVersion() == c2.partitionMapVersion());
        String onN1 = null;
        String onN2 = null;
        for (int i = 0; i < 100 && (onN1 == null || onN2 == null); i++) {
          String key = "k" + i;
          if (c1.ownersOf(key).equals(List.of("n1"))) {
            onN1 = onN1 == null ? key : onN1;
          } else if (c1.ownersOf(key).equals(List.of("n2"))) {
            onN2 = onN2 == null ? key : onN2;
          }
        }
        assertThat(onN1).as("a key n1 owns").isNotNull();
        assertThat(onN2).as("a key n2 owns").isNotNull();
        assertThat(c2.ownersOf(onN2)).isEqualTo(c1.ownersOf(onN2));

        HttpResponse<String> local = send(n1, "PUT", "/v1/kv/" + onN1 + "?consistency=quorum",
            "a");
        HttpResponse<String> forwarded = send(n1, "PUT", "/v1/kv/" + onN2, "b");
        HttpResponse<String> legacyRead = send(n2, "GET", "/get?key=" + onN1, null);
        HttpResponse<String> missing = send(n2, "GET", "/v1/kv/" + onN2 + "-none", null);

        assertThat(local.statusCode()).isEqualTo(200);
        assertThat(local.headers().firstValue("X-Kvstore-Owners")).hasValue("n1");
        assertThat(local.headers().firstValue("X-Kvstore-Local")).hasValue("true");
        assertThat(forwarded.statusCode()).isEqualTo(200);
        assertThat(forwarded.headers().firstValue("X-Kvstore-Owners")).hasValue("n2");
        assertThat(forwarded.headers().firstValue("X-Kvstore-Local")).hasValue("false");
        assertThat(n2.store().getString(onN2)).hasValue("b");
        assertThat(legacyRead.statusCode()).isEqualTo(200);
        assertThat(legacyRead.body()).contains("\"value\":\"a\"");
        assertThat(legacyRead.headers().firstValue("X-Kvstore-Owners")).hasValue("n1");
        assertThat(legacyRead.headers().firstValue("X-Kvstore-Local")).hasValue("false");
        assertThat(missing.statusCode()).isEqualTo(404);
        assertThat(missing.headers().firstValue("X-Kvstore-Owners"))
            .hasValue(String.join(",", c2.ownersOf(onN2 + "-none")));
      }
    }
  }

  @Test
  void aFullyReplicatedNode_listsEveryNodeOfItsMap_itselfIncluded() throws Exception {
    try (KvServer.Node n1 = start("solo")) {
      HttpResponse<String> put = send(n1, "PUT", "/v1/kv/k", "v");

      assertThat(put.statusCode()).isEqualTo(200);
      assertThat(put.headers().firstValue("X-Kvstore-Owners")).hasValue("solo");
      assertThat(put.headers().firstValue("X-Kvstore-Local")).hasValue("true");
      assertThat(KvCluster.node(n1.store()).orElseThrow().ownersOf("k")).containsExactly("solo");
    }
  }
}
