package io.kvstore.http;

import static io.kvstore.http.HttpFixture.assertError;
import static io.kvstore.http.HttpFixture.json;
import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import io.kvstore.core.KvStore;
import io.kvstore.core.Version;
import java.io.ByteArrayInputStream;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/** {@code /v1/kv}: raw values, ETags, conditions, TTL, write concerns and listing. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class V1KvApiTest {
  private final TestClock clock = new TestClock();
  private HttpFixture http;

  @BeforeEach
  void start() {
    http = HttpFixture.start(KvStore.builder().nodeId("node-1").clock(clock).maxValueBytes(1000)
        .maxScanLimit(50).build(), b -> b.maxBodyBytes(2000));
  }

  @AfterEach
  void stop() {
    http.close();
  }

  private HttpFixture.Response<String> put(String path, String value, String... headers) {
    return http.send("PUT", path, value, headers);
  }

  private static String etag(Version v) {
    return "\"" + v + "\"";
  }

  @Test
  void putThenGet_roundTripsRawBytesWithEtag() {
    byte[] value = {0, 1, 2, (byte) 0xff, 'x', '\n'};
    HttpFixture.Response<byte[]> put = http.sendBytes("PUT", "/v1/kv/bin", value);
    HttpFixture.Response<byte[]> get = http.sendBytes("GET", "/v1/kv/bin", null);

    assertThat(put.status()).isEqualTo(200);
    Version v = http.store.getVersioned("bin").orElseThrow().version();
    assertThat(put.header("etag")).isEqualTo(etag(v));
    assertThat(put.header("content-type")).startsWith("application/json");
    assertThat(get.status()).isEqualTo(200);
    assertThat(get.body()).containsExactly(value);
    assertThat(get.header("etag")).isEqualTo(etag(v));
    assertThat(get.header("content-type")).isEqualTo("application/octet-stream");
  }

  @Test
  void put_emptyBody_storesEmptyValue() {
    assertThat(put("/v1/kv/e", "").status()).isEqualTo(200);
    assertThat(http.store.get("e")).hasValueSatisfying(b -> assertThat(b).isEmpty());
  }

  @Test
  void get_absent_is404Json() {
    assertError(http.send("GET", "/v1/kv/nope"), 404, "not_found");
  }

  @Test
  void head_answersLikeGetWithoutBody() {
    put("/v1/kv/h", "hello");
    HttpFixture.Response<String> present = http.send("HEAD", "/v1/kv/h");
    HttpFixture.Response<String> absent = http.send("HEAD", "/v1/kv/none");

    assertThat(present.status()).isEqualTo(200);
    assertThat(present.header("etag")).isNotNull();
    assertThat(present.body()).isEmpty();
    assertThat(absent.status()).isEqualTo(404);
  }

  @Test
  void get_ifNoneMatchCurrentEtag_is304() {
    String tag = put("/v1/kv/c", "v").header("etag");

    HttpFixture.Response<String> same = http.send("GET", "/v1/kv/c", null, "If-None-Match", tag);
    HttpFixture.Response<String> other = http.send("GET", "/v1/kv/c", null, "If-None-Match",
        "\"1.0@other\"");

    assertThat(same.status()).isEqualTo(304);
    assertThat(same.header("etag")).isEqualTo(tag);
    assertThat(other.status()).isEqualTo(200);
    assertError(http.send("GET", "/v1/kv/c", null, "If-None-Match", "unquoted"), 400,
        "invalid_precondition");
  }

  @Test
  void put_ifMatch_whenTheKeyChangesBetweenCheckAndWrite_is412AndKeepsTheOtherWrite() {
    http.close();
    // A store in which someone else writes the key right after the If-Match check.
    KvStore racing = new ForwardingKvStore(KvStore.builder().nodeId("node-1").clock(clock).build()) {
      @Override
      public java.util.concurrent.CompletableFuture<Version> putAsync(String key, byte[] value,
          io.kvstore.core.WriteOptions options) {
        if (options.expectedVersion() != null) {
          delegate.put(key, "theirs");
        }
        return super.putAsync(key, value, options);
      }
    };
    http = HttpFixture.start(racing);
    String current = put("/v1/kv/race", "mine").header("etag");

    JsonNode body = assertError(put("/v1/kv/race", "late", "If-Match", current), 412,
        "precondition_failed");

    assertThat(racing.getString("race")).contains("theirs");
    assertThat(body.get("current").asText())
        .isEqualTo(racing.getVersioned("race").orElseThrow().version().toString());
  }

  @Test
  void put_ifMatchCurrentVersion_writes() {
    String tag = put("/v1/kv/k", "one").header("etag");
    clock.advance(Duration.ofMillis(1));

    HttpFixture.Response<String> r = put("/v1/kv/k", "two", "If-Match", tag);

    assertThat(r.status()).isEqualTo(200);
    assertThat(r.header("etag")).isNotEqualTo(tag);
    assertThat(http.store.getString("k")).contains("two");
  }

  @Test
  void put_ifMatchInAListOfTags_writes() {
    String tag = put("/v1/kv/k", "one").header("etag");
    HttpFixture.Response<String> r = put("/v1/kv/k", "two", "If-Match", "\"1.0@x\", " + tag);
    assertThat(r.status()).isEqualTo(200);
    assertThat(http.store.getString("k")).contains("two");
  }

  @ParameterizedTest
  @ValueSource(strings = {"\"1.0@node-1\"", "\"not-a-version\"", "W/\"CURRENT\""})
  void put_ifMatchStaleOrWeak_is412AndChangesNothing(String ifMatch) {
    String tag = put("/v1/kv/k", "one").header("etag");
    String header = ifMatch.replace("\"CURRENT\"", tag);
    HttpFixture.Snapshot before = http.snapshot();

    JsonNode body = assertError(put("/v1/kv/k", "two", "If-Match", header), 412,
        "precondition_failed");

    assertThat(body.get("current").asText()).isEqualTo(tag.replace("\"", ""));
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @Test
  void put_ifMatchOnAbsentKey_is412() {
    HttpFixture.Snapshot before = http.snapshot();
    assertError(put("/v1/kv/k", "v", "If-Match", "*"), 412, "precondition_failed");
    assertError(put("/v1/kv/k", "v", "If-Match", "\"1.0@node-1\""), 412, "precondition_failed");
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @Test
  void put_ifMatchStarOnPresentKey_writes() {
    put("/v1/kv/k", "one");
    assertThat(put("/v1/kv/k", "two", "If-Match", "*").status()).isEqualTo(200);
    assertThat(http.store.getString("k")).contains("two");
  }

  @ParameterizedTest
  @ValueSource(strings = {"1.0@node-1", "\"unterminated", "\"a\"junk", ",", "W/x"})
  void put_malformedIfMatch_is400(String header) {
    put("/v1/kv/k", "one");
    HttpFixture.Snapshot before = http.snapshot();
    JsonNode body = assertError(put("/v1/kv/k", "two", "If-Match", header), 400,
        "invalid_precondition");
    assertThat(body.get("message").asText()).contains("double quotes");
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @Test
  void put_ifNoneMatchStar_createsOnlyOnce() {
    HttpFixture.Response<String> first = put("/v1/kv/once", "a", "If-None-Match", "*");
    HttpFixture.Snapshot before = http.snapshot();
    HttpFixture.Response<String> second = put("/v1/kv/once", "b", "If-None-Match", "*");

    assertThat(first.status()).isEqualTo(200);
    assertError(second, 412, "precondition_failed");
    assertThat(http.snapshot()).isEqualTo(before);
    assertThat(http.store.getString("once")).contains("a");
  }

  @Test
  void put_unsupportedPreconditionCombinations_are400() {
    HttpFixture.Snapshot before = http.snapshot();
    assertError(put("/v1/kv/k", "v", "If-Match", "*", "If-None-Match", "*"), 400,
        "invalid_precondition");
    assertError(put("/v1/kv/k", "v", "If-None-Match", "\"1.0@node-1\""), 400,
        "invalid_precondition");
    assertError(http.send("DELETE", "/v1/kv/k", null, "If-None-Match", "*"), 400,
        "invalid_precondition");
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @Test
  void delete_removesKey_andReportsWhetherItHeldOne() {
    put("/v1/kv/d", "v");

    HttpFixture.Response<String> first = http.send("DELETE", "/v1/kv/d");
    HttpFixture.Response<String> second = http.send("DELETE", "/v1/kv/d");

    assertThat(first.status()).isEqualTo(200);
    assertThat(json(first).get("deleted").asBoolean()).isTrue();
    assertThat(json(second).get("deleted").asBoolean()).isFalse();
    assertThat(http.store.get("d")).isEmpty();
  }

  @Test
  void delete_ifMatch_deletesOnlyTheMatchingVersion() {
    String tag = put("/v1/kv/d", "v").header("etag");
    HttpFixture.Snapshot before = http.snapshot();

    assertError(http.send("DELETE", "/v1/kv/d", null, "If-Match", "\"1.0@node-1\""), 412,
        "precondition_failed");
    assertThat(http.snapshot()).isEqualTo(before);
    HttpFixture.Response<String> ok = http.send("DELETE", "/v1/kv/d", null, "If-Match", tag);

    assertThat(ok.status()).isEqualTo(200);
    assertThat(http.store.get("d")).isEmpty();
  }

  @ParameterizedTest
  @CsvSource({"500ms,500", "30s,30000", "5m,300000", "1h,3600000", "2d,172800000",
      "PT30S,30000", "pt1m,60000", "P1D,86400000", "1ms,1"})
  void put_ttlFormats_setExpiry(String ttl, long millis) {
    HttpFixture.Response<String> r = put("/v1/kv/t?ttl=" + ttl, "v");

    assertThat(r.status()).as(r.toString()).isEqualTo(200);
    Version v = Version.parse(json(r).get("version").asText());
    Instant expected = Instant.ofEpochMilli(v.physicalMillis() + millis);
    assertThat(json(r).get("expiresAt").asText()).isEqualTo(expected.toString());
    assertThat(http.store.getVersioned("t").orElseThrow().expiresAt()).contains(expected);
    assertThat(http.send("GET", "/v1/kv/t").header(KvApi.EXPIRES_HEADER))
        .isEqualTo(expected.toString());
  }

  @Test
  void put_withTtl_expiresWhenTheClockPassesIt() {
    put("/v1/kv/t?ttl=30s", "v");
    clock.advance(Duration.ofSeconds(29));
    assertThat(http.send("GET", "/v1/kv/t").status()).isEqualTo(200);

    clock.advance(Duration.ofSeconds(2));

    assertError(http.send("GET", "/v1/kv/t"), 404, "not_found");
  }

  @ParameterizedTest
  @ValueSource(strings = {"0s", "0ms", "-1s", "abc", "10x", "", "PT-1S", "P", "366d", "1.5s",
      "9999999999h", "30", "PT0S", "%20"})
  void put_badTtl_is400AndStoresNothing(String ttl) {
    HttpFixture.Snapshot before = http.snapshot();
    assertError(put("/v1/kv/t?ttl=" + ttl, "v"), 400, "invalid_ttl");
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @ParameterizedTest
  @ValueSource(strings = {"one", "ONE", "quorum", "all"})
  void put_consistencyOnAStandaloneNode_isMet(String consistency) {
    assertThat(put("/v1/kv/c?consistency=" + consistency, "v").status()).isEqualTo(200);
  }

  @Test
  void put_badConsistency_is400AndStoresNothing() {
    HttpFixture.Snapshot before = http.snapshot();
    assertError(put("/v1/kv/c?consistency=most", "v"), 400, "invalid_parameter");
    assertError(http.send("DELETE", "/v1/kv/c?consistency=two"), 400, "invalid_parameter");
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @Test
  void unknownQueryParameter_is400AndStoresNothing() {
    HttpFixture.Snapshot before = http.snapshot();
    assertError(put("/v1/kv/c?tll=30s", "v"), 400, "invalid_parameter");
    assertError(http.send("DELETE", "/v1/kv/c?ttl=30s"), 400, "invalid_parameter");
    assertError(put("/v1/kv/c?ttl=1s&ttl=2s", "v"), 400, "invalid_parameter");
    assertThat(http.snapshot()).isEqualTo(before);
  }

  // ---- sizes -------------------------------------------------------------------------------------

  @Test
  void put_valueOverStoreLimit_is413WithCoreMessage() {
    HttpFixture.Snapshot before = http.snapshot();
    JsonNode body = assertError(put("/v1/kv/big", "x".repeat(1001)), 413, "value_too_large");
    assertThat(body.get("message").asText()).contains("1001").contains("1000");
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @Test
  void put_bodyOverLimitWithContentLength_is413() {
    HttpFixture.Snapshot before = http.snapshot();
    assertError(put("/v1/kv/big", "x".repeat(2001)), 413, "body_too_large");
    assertError(http.send("PUT", "/put", "{\"key\":\"k\",\"value\":\"" + "x".repeat(2000) + "\"}",
        "Content-Type", "application/json"), 413, "body_too_large");
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @Test
  void put_chunkedBodyOverLimit_is413() throws Exception {
    HttpFixture.Snapshot before = http.snapshot();
    for (String path : List.of("/v1/kv/big", "/put")) {
      HttpRequest req = HttpRequest.newBuilder(URI.create(http.base + path))
          .PUT(HttpRequest.BodyPublishers.ofInputStream(
              () -> new ByteArrayInputStream(new byte[100_000])))
          .build();
      HttpResponse<String> r = http.client.send(req, HttpResponse.BodyHandlers.ofString());
      assertThat(r.statusCode()).as(path).isEqualTo(413);
      assertThat(r.body()).contains("\"body_too_large\"");
    }
    HttpFixture.Response<String> raw = http.raw("PUT /v1/kv/big HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + ("7d0\r\n" + "y".repeat(2000) + "\r\n").repeat(2) + "0\r\n\r\n");
    assertError(raw, 413, "body_too_large");
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @Test
  void put_chunkedBodyUnderLimit_isStored() {
    HttpFixture.Response<String> r = http.raw("PUT /v1/kv/chunked HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n"
        + "0\r\n\r\n");
    assertThat(r.status()).isEqualTo(200);
    assertThat(http.store.getString("chunked")).contains("hello world");
  }

  // ---- keys in the path ------------------------------------------------------------------------

  @ParameterizedTest
  @CsvSource(delimiter = '|', value = {
      "/v1/kv/a%2Fb|a/b",
      "/v1/kv/a/b|a/b",
      "/v1/kv/%2E%2E|..",
      "/v1/kv/..|..",
      "/v1/kv/a/../b|a/../b",
      "/v1/kv/with%20space|with space",
      "/v1/kv/a+b|a+b",
      "/v1/kv/%E2%82%AC%F0%9F%98%80|€😀",
      "/v1/kv/%25|%",
      "/v1/kv/a//b|a//b",
      "/v1/kv/trailing/|trailing/",
      "/v1/kv/key=x|key=x"})
  void keysInPath_areDecodedOnceAndStoredExactly(String path, String key) {
    HttpFixture.Response<String> put = http.raw("PUT " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + "Content-Length: 5\r\nConnection: close\r\n\r\nvalue");
    assertThat(put.status()).as(put.toString()).isEqualTo(200);
    assertThat(json(put).get("key").asText()).isEqualTo(key);
    assertThat(http.store.getString(key)).contains("value");

    HttpFixture.Response<String> get = http.raw("GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + "Connection: close\r\n\r\n");
    assertThat(get.status()).isEqualTo(200);
    assertThat(get.body()).isEqualTo("value");
  }

  @Test
  void keysWithSlashesAndUnicode_workThroughJavaHttpClient() {
    assertThat(put("/v1/kv/dir%2Ffile", "1").status()).isEqualTo(200);
    assertThat(put("/v1/kv/%E2%82%AC", "2").status()).isEqualTo(200);
    assertThat(http.store.getString("dir/file")).contains("1");
    assertThat(http.store.getString("€")).contains("2");
    assertThat(http.send("GET", "/v1/kv/dir/file").body()).isEqualTo("1");
  }

  @ParameterizedTest
  @ValueSource(strings = {"PUT /v1/kv/%FF", "GET /v1/kv/%FF", "DELETE /v1/kv/%FF",
      "PUT /v1/kv/%C3%28", "PUT /v1/kv/%ED%A0%80", "PUT /v1/kv/%zz", "GET /v1/kv/%zz",
      "PUT /v1/kv/abc%", "PUT /v1/kv/%2", "GET /get/%FF", "GET /get?key=%FF", "GET /get?key=%zz",
      "GET /get?key=a%2", "DELETE /delete?key=%C3", "GET /v1/kv?prefix=%FF", "POST /set/%FF/v",
      "POST /set/k/%FF", "PUT /v1/kv/a%00b", "PUT /v1/kv/k?ttl=%FF", "PUT /put?%zz"})
  void invalidUtf8OrBadPercentEncoding_is400Json(String request) {
    HttpFixture.Snapshot before = http.snapshot();
    HttpFixture.Response<String> r = http.raw(request + " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + "Content-Length: 1\r\nConnection: close\r\n\r\nv");
    assertError(r, 400, "bad_request");
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @Test
  void rawInvalidUtf8BytesInPath_is400Json() {
    HttpFixture.Snapshot before = http.snapshot();
    byte[] request = concat("PUT /v1/kv/a".getBytes(StandardCharsets.ISO_8859_1),
        new byte[] {(byte) 0xff, (byte) 0xfe},
        (" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\nConnection: close\r\n\r\nv")
            .getBytes(StandardCharsets.ISO_8859_1));
    HttpFixture.Response<String> r = http.raw(request);
    assertError(r, 400, "bad_request");
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @Test
  void rawSpaceInPath_is400Json() {
    HttpFixture.Response<String> r = http.raw("GET /v1/kv/a b HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + "Connection: close\r\n\r\n");
    assertThat(r.status()).isEqualTo(400);
    assertThat(r.header("content-type")).startsWith("application/json");
  }

  private static byte[] concat(byte[]... parts) {
    java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
    for (byte[] p : parts) {
      out.writeBytes(p);
    }
    return out.toByteArray();
  }

  @ParameterizedTest
  @ValueSource(strings = {"/v1/kv/", "/v1/kv/a%01b", "/v1/kv/a%0Ab", "/v1/kv/%C2%85",
      "/v1/kv/%7F"})
  void invalidKeys_are400InvalidKeyAndStoreNothing(String path) {
    HttpFixture.Snapshot before = http.snapshot();
    assertError(put(path, "v"), 400, "invalid_key");
    assertError(http.send("GET", path), 400, "invalid_key");
    assertError(http.send("DELETE", path), 400, "invalid_key");
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @Test
  void tooLongKey_is400NamingLimitAndSize() {
    HttpFixture.Snapshot before = http.snapshot();
    JsonNode body = assertError(put("/v1/kv/" + "%E2%82%AC".repeat(342), "v"), 400, "invalid_key");
    assertThat(body.get("message").asText()).contains("1026").contains("1024");
    assertThat(http.snapshot()).isEqualTo(before);
  }

  // ---- listing ---------------------------------------------------------------------------------

  @Test
  void list_returnsKeysUnderPrefixInOrder() {
    for (String k : List.of("app/b", "app/a", "app/c", "other")) {
      put("/v1/kv/" + k, "v-" + k);
    }
    JsonNode body = json(http.send("GET", "/v1/kv?prefix=app/"));

    assertThat(keys(body)).containsExactly("app/a", "app/b", "app/c");
    assertThat(body.get("items").get(0).has("value")).isFalse();
    assertThat(body.get("items").get(0).get("version").asText())
        .isEqualTo(http.store.getVersioned("app/a").orElseThrow().version().toString());
    assertThat(body.get("nextStartAfter").isNull()).isTrue();
  }

  @Test
  void list_pagesWithStartAfterThroughEveryKey() {
    List<String> all = new ArrayList<>();
    for (int i = 0; i < 23; i++) {
      String k = String.format("p/%02d", i);
      all.add(k);
      put("/v1/kv/" + k, "v");
    }
    List<String> seen = new ArrayList<>();
    String next = null;
    int pages = 0;
    do {
      JsonNode body = json(http.send("GET", "/v1/kv?prefix=p/&limit=5"
          + (next == null ? "" : "&startAfter=" + next)));
      seen.addAll(keys(body));
      next = body.get("nextStartAfter").isNull() ? null : body.get("nextStartAfter").asText();
      pages++;
    } while (next != null && pages < 10);

    assertThat(seen).isEqualTo(all);
    assertThat(pages).isEqualTo(5);
  }

  @Test
  void list_withValues_givesTextOrBase64() {
    put("/v1/kv/t", "text");
    http.sendBytes("PUT", "/v1/kv/u", new byte[] {(byte) 0xff, 0});

    JsonNode items = json(http.send("GET", "/v1/kv?values=true")).get("items");

    assertThat(items.get(0).get("value").asText()).isEqualTo("text");
    assertThat(items.get(1).has("value")).isFalse();
    assertThat(items.get(1).get("valueBase64").asText()).isEqualTo("/wA=");
  }

  @Test
  void list_atTheMaximumLimit_stillPages() {
    for (int i = 0; i < 51; i++) {
      put("/v1/kv/" + String.format("m%02d", i), "v");
    }
    JsonNode first = json(http.send("GET", "/v1/kv?limit=50"));
    JsonNode second = json(http.send("GET", "/v1/kv?limit=50&startAfter="
        + first.get("nextStartAfter").asText()));

    assertThat(keys(first)).hasSize(50);
    assertThat(keys(second)).containsExactly("m50");
  }

  @ParameterizedTest
  @ValueSource(strings = {"limit=0", "limit=51", "limit=-1", "limit=ten", "limit=", "values=yes",
      "prefx=a"})
  void list_badParameters_are400(String query) {
    assertError(http.send("GET", "/v1/kv?" + query), 400, "invalid_parameter");
  }

  private static List<String> keys(JsonNode body) {
    List<String> keys = new ArrayList<>();
    body.get("items").forEach(i -> keys.add(i.get("key").asText()));
    return keys;
  }
}
