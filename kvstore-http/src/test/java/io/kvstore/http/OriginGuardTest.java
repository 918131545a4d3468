package io.kvstore.http;

import static io.kvstore.http.HttpFixture.assertError;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import io.kvstore.core.KvStore;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Browsers cannot use an open node on behalf of a web page: a foreign {@code Host} (DNS rebinding)
 * and a cross-site {@code Origin} or {@code Sec-Fetch-Site} get 403, on every route, while curl,
 * same-origin pages and the node's own names keep working. Regression: before, any page a user
 * visited could {@code POST /set/k/v} to a node on their laptop (a CORS "simple" request) and a
 * rebound name was served.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class OriginGuardTest {
  /** Every route that changes the store, as method, path and body. */
  private static final List<String[]> WRITES = List.of(
      new String[] {"PUT", "/put", "{\"key\": \"k\", \"value\": \"evil\"}"},
      new String[] {"POST", "/set/k/evil", null},
      new String[] {"DELETE", "/delete?key=k", null},
      new String[] {"DELETE", "/delete/k", null},
      new String[] {"PUT", "/v1/kv/k", "evil"},
      new String[] {"DELETE", "/v1/kv/k", null});

  private HttpFixture http;

  private void start(UnaryOperator<KvHttpServer.Builder> custom) {
    http = HttpFixture.start(KvStore.builder().nodeId("node-1").build(), custom);
    http.store.put("k", "original");
  }

  @AfterEach
  void stop() {
    if (http != null) {
      http.close();
    }
  }

  /** A request over a raw socket, so that {@code Host} can be anything. */
  private HttpFixture.Response<String> raw(String method, String path, String host, String body,
      String... headers) {
    StringBuilder r = new StringBuilder(method + " " + path + " HTTP/1.1\r\n");
    if (host != null) {
      r.append("Host: ").append(host).append("\r\n");
    }
    for (int i = 0; i < headers.length; i += 2) {
      r.append(headers[i]).append(": ").append(headers[i + 1]).append("\r\n");
    }
    byte[] bytes = body == null ? new byte[0] : body.getBytes(StandardCharsets.UTF_8);
    if (body != null) {
      r.append("Content-Type: ").append(body.startsWith("{") ? "application/json"
          : "application/octet-stream").append("\r\n");
    }
    r.append("Content-Length: ").append(bytes.length).append("\r\nConnection: close\r\n\r\n");
    return http.raw(r + (body == null ? "" : body));
  }

  private String port() {
    return Integer.toString(http.server.port());
  }

  @Test
  void foreignHost_isRefused_onEveryRoute_andTheMessageNamesTheFlag() {
    start(b -> b);
    HttpFixture.Snapshot before = http.snapshot();
    List<String[]> routes = new ArrayList<>(WRITES);
    routes.add(new String[] {"GET", "/v1/kv/k", null});
    routes.add(new String[] {"GET", "/v1/watch", null});
    routes.add(new String[] {"GET", "/health", null});
    routes.add(new String[] {"GET", "/nowhere", null});
    for (String host : List.of("evil.example:" + port(), "EVIL.example", "127.0.0.1.evil.example",
        "localhost.evil.example:" + port(), "x")) {
      for (String[] route : routes) {
        HttpFixture.Response<String> r = raw(route[0], route[1], host, route[2]);
        JsonNode body = assertError(r, 403, "host_not_allowed");
        assertThat(body.path("message").asText()).as(host).contains("--allowed-host")
            .contains("allowedHosts");
        assertThat(r.header("x-request-id")).isNotBlank();
      }
    }
    assertThat(raw("GET", "/v1/kv/k", "evil.example", null).body())
        .contains("--allowed-host evil.example");
    assertThat(http.snapshot()).isEqualTo(before);
    assertThat(http.store.getString("k")).contains("original");
  }

  @Test
  void loopbackNamesAndIpAddresses_areServed() {
    start(b -> b);
    for (String host : List.of("127.0.0.1:" + port(), "localhost:" + port(), "LOCALHOST",
        "localhost.", "[::1]:" + port(), "10.1.2.3", "192.168.0.7:" + port())) {
      assertThat(raw("GET", "/v1/kv/k", host, null).status()).as(host).isEqualTo(200);
    }
    assertThat(raw("POST", "/set/k/v2", "localhost:" + port(), null).status()).isEqualTo(200);
    assertThat(http.store.getString("k")).contains("v2");
  }

  @Test
  void crossSiteOrigin_isRefused_onEveryWriteRoute_andChangesNothing() {
    start(b -> b);
    HttpFixture.Snapshot before = http.snapshot();
    for (String origin : List.of("https://evil.example", "http://evil.example:" + port(), "null",
        "http://127.0.0.1:" + (http.server.port() - 1), "http://localhost:" + port(), "https://127.0.0.1:" + port(),
        "http://127.0.0.1")) {
      for (String[] route : WRITES) {
        // java.net.http sends Host: 127.0.0.1:<port>, the node's own origin.
        HttpFixture.Response<String> r = http.send(route[0], route[1], route[2], "Origin", origin,
            "Content-Type", route[2] != null && route[2].startsWith("{") ? "application/json"
                : "text/plain");
        JsonNode body = assertError(r, 403, "cross_site_request");
        assertThat(body.path("message").asText()).as(origin).contains("auth token");
      }
    }
    assertThat(http.snapshot()).isEqualTo(before);
    assertThat(http.store.getString("k")).contains("original");
  }

  @Test
  void secFetchSiteCrossSiteOrSameSite_isRefused_butATopLevelNavigationIsNot() {
    start(b -> b);
    HttpFixture.Snapshot before = http.snapshot();
    for (String site : List.of("cross-site", "same-site", "Cross-Site", "something-new")) {
      for (String[] route : WRITES) {
        assertError(http.send(route[0], route[1], route[2], "Sec-Fetch-Site", site,
            "Content-Type", "application/json"), 403, "cross_site_request");
      }
      // Reads from another site are refused too: an <img> or EventSource probing keys or taking
      // watch slots.
      assertError(http.send("GET", "/v1/kv/k", null, "Sec-Fetch-Site", site, "Sec-Fetch-Mode",
          "no-cors", "Sec-Fetch-Dest", "image"), 403, "cross_site_request");
      assertError(http.send("GET", "/v1/watch", null, "Sec-Fetch-Site", site, "Sec-Fetch-Mode",
          "cors"), 403, "cross_site_request");
      // A navigation that is not a GET (a form post) is refused.
      assertError(http.send("POST", "/set/k/evil", null, "Sec-Fetch-Site", site, "Sec-Fetch-Mode",
          "navigate", "Sec-Fetch-Dest", "document"), 403, "cross_site_request");
    }
    assertThat(http.snapshot()).isEqualTo(before);
    // A link from another site that the user follows: shown to the user, unreadable by the site.
    assertThat(http.send("GET", "/v1/kv/k", null, "Sec-Fetch-Site", "cross-site",
        "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document").status()).isEqualTo(200);
    assertError(http.send("GET", "/v1/kv/k", null, "Sec-Fetch-Site", "cross-site",
        "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "iframe"), 403, "cross_site_request");
  }

  @Test
  void sameOriginPagesAndNonBrowserClients_areServed() {
    start(b -> b);
    String self = "http://127.0.0.1:" + port();
    // A page served by the node itself (the coming /ui console): fetch() sends both headers.
    assertThat(http.send("PUT", "/v1/kv/a", "1", "Origin", self, "Sec-Fetch-Site", "same-origin",
        "Sec-Fetch-Mode", "cors").status()).isEqualTo(200);
    assertThat(http.send("POST", "/set/b/2", null, "Origin", self.toUpperCase(java.util.Locale.ROOT),
        "Sec-Fetch-Site", "same-origin").status()).isEqualTo(200);
    assertThat(http.send("DELETE", "/v1/kv/a", null, "Origin", self).status()).isEqualTo(200);
    assertThat(http.send("GET", "/v1/kv/b", null, "Sec-Fetch-Site", "same-origin").status())
        .isEqualTo(200);
    // A URL the user typed.
    assertThat(http.send("GET", "/v1/kv/b", null, "Sec-Fetch-Site", "none", "Sec-Fetch-Mode",
        "navigate").status()).isEqualTo(200);
    // curl: no Origin, no Sec-Fetch-*.
    assertThat(http.send("POST", "/set/c/3").status()).isEqualTo(200);
    assertThat(http.send("PUT", "/put", "{\"key\": \"d\", \"value\": \"4\"}", "Content-Type",
        "application/json").status()).isEqualTo(200);
    // Same origin under another of the node's names.
    assertThat(raw("PUT", "/v1/kv/e", "localhost:" + port(), "5", "Origin",
        "http://localhost:" + port()).status()).isEqualTo(200);
    assertThat(http.store.getString("b")).contains("2");
    assertThat(http.store.getString("c")).contains("3");
    assertThat(http.store.getString("e")).contains("5");
  }

  @Test
  void configuredHost_isServed_asHostAndAsOrigin_othersStillRefused() {
    start(b -> b.allowedHosts(Set.of("KV.Example.", "node-7")));
    String host = "kv.example:" + port();
    assertThat(raw("GET", "/v1/kv/k", host, null).status()).isEqualTo(200);
    assertThat(raw("GET", "/v1/kv/k", "node-7", null).status()).isEqualTo(200);
    assertThat(raw("POST", "/set/k/v3", host, null, "Origin", "http://" + host, "Sec-Fetch-Site",
        "same-origin").status()).isEqualTo(200);
    assertThat(http.store.getString("k")).contains("v3");
    assertError(raw("GET", "/v1/kv/k", "other.example", null), 403, "host_not_allowed");
    assertError(raw("POST", "/set/k/v4", host, null, "Origin", "http://other.example"), 403,
        "cross_site_request");
    assertThat(http.server.config().allowedHosts()).containsExactlyInAnyOrder("kv.example",
        "node-7");
  }

  @Test
  void anyHost_turnsTheHostCheckOff_butNotTheCrossSiteCheck() {
    start(b -> b.allowedHosts(Set.of("*")));
    assertThat(raw("GET", "/v1/kv/k", "whatever.example", null).status()).isEqualTo(200);
    assertError(raw("POST", "/set/k/evil", "whatever.example", null, "Origin",
        "https://evil.example"), 403, "cross_site_request");
  }

  @Test
  void withTokens_crossSiteIsNotChecked_andHostOnlyWhenAllowedHostsIsSet() {
    start(b -> b.authTokens(Set.of("t0ken")));
    // Browsers do not attach bearer tokens by themselves; a request that has one is not a page's.
    assertThat(raw("POST", "/set/k/v5", "any.example", null, "Authorization", "Bearer t0ken",
        "Origin", "https://other.example", "Sec-Fetch-Site", "cross-site").status())
        .isEqualTo(200);
    assertError(raw("POST", "/set/k/v6", "any.example", null, "Origin",
        "https://other.example"), 401, "unauthorized");
    http.close();
    start(b -> b.authTokens(Set.of("t0ken")).allowedHosts(Set.of("kv.example")));
    assertError(raw("GET", "/v1/kv/k", "any.example", null, "Authorization", "Bearer t0ken"), 403,
        "host_not_allowed");
    assertThat(raw("GET", "/v1/kv/k", "kv.example", null, "Authorization", "Bearer t0ken")
        .status()).isEqualTo(200);
    assertThat(raw("GET", "/v1/kv/k", "127.0.0.1", null, "Authorization", "Bearer t0ken")
        .status()).isEqualTo(200);
  }

  @Test
  void defaults_includeTheBoundHostName_andThisMachinesNameOnAWildcardBind() throws Exception {
    KvStore store = KvStore.builder().nodeId("node-1").build();
    try {
      OriginGuard named = OriginGuard.of(KvHttpServer.builder(store).host("kv1.internal")
          .config());
      assertThat(named.refusal("GET", "KV1.internal:8080", null, null, null, null)).isNull();
      assertThat(named.refusal("GET", "kv2.internal:8080", null, null, null, null)).isNotNull();
      OriginGuard wildcard = OriginGuard.of(KvHttpServer.builder(store).host("0.0.0.0").config());
      String own = InetAddress.getLocalHost().getHostName();
      assertThat(wildcard.refusal("GET", own + ":8080", null, null, null, null)).isNull();
      ApiError refused = wildcard.refusal("GET", "evil.example", null, null, null, null);
      assertThat(refused).isNotNull();
      // A rebinding page can read this answer: it must not learn the machine's name.
      assertThat(refused.getMessage()).doesNotContain(own);
      OriginGuard v6 = OriginGuard.of(KvHttpServer.builder(store).host("::").config());
      assertThat(v6.refusal("GET", own, null, null, null, null)).isNull();
      // Malformed Host values are refused, not parsed leniently.
      for (String bad : List.of("a b", "evil.example:99999", "evil.example:", "[::1", "user@host",
          "evil.example:80:80", "")) {
        assertThat(wildcard.refusal("GET", bad, null, null, null, null)).as(bad).isNotNull();
      }
    } finally {
      store.close();
    }
  }

  @Test
  void allowedHosts_mustBeHostNames() {
    KvStore store = KvStore.builder().nodeId("node-1").build();
    try {
      for (String bad : List.of("http://kv.example", "kv.example:8080", "kv.example/ui", "a b", "",
          " ", "*.example")) {
        assertThatThrownBy(() -> KvHttpServer.builder(store).allowedHosts(Set.of(bad)).config())
            .as(bad).isInstanceOf(IllegalArgumentException.class).hasMessageContaining(
                "allowedHosts");
      }
      assertThat(KvHttpServer.builder(store).allowedHosts(Set.of("[::1]", "10.0.0.1", "*"))
          .config().allowedHosts()).containsExactlyInAnyOrder("[::1]", "10.0.0.1", "*");
    } finally {
      store.close();
    }
  }
}
