package io.kvstore.http;

import static io.kvstore.http.HttpFixture.assertError;
import static io.kvstore.http.HttpFixture.json;
import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import io.kvstore.core.KvStore;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The documented API, exactly as users know it: /put, /get, /delete, /set. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class DocumentedApiTest {
  private HttpFixture http;

  @BeforeEach
  void start() {
    http = HttpFixture.start(KvStore.builder().nodeId("node-1").build());
  }

  @AfterEach
  void stop() {
    http.close();
  }

  private HttpFixture.Response<String> put(String key, String value) {
    return http.send("PUT", "/put", "{\"key\": " + quote(key) + ", \"value\": " + quote(value) + "}",
        "Content-Type", "application/json");
  }

  private static String quote(String s) {
    try {
      return HttpFixture.JSON.writeValueAsString(s);
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
  }

  @Test
  void put_returnsStoredEntryWithVersion() {
    HttpFixture.Response<String> r = put("k", "v");

    assertThat(r.status()).isEqualTo(200);
    assertThat(r.header("content-type")).startsWith("application/json");
    JsonNode body = json(r);
    assertThat(body.get("key").asText()).isEqualTo("k");
    assertThat(body.get("value").asText()).isEqualTo("v");
    String version = body.get("version").asText();
    assertThat(version).isEqualTo(http.store.getVersioned("k").orElseThrow().version().toString());
    assertThat(r.header("etag")).isEqualTo("\"" + version + "\"");
    assertThat(http.store.getString("k")).contains("v");
  }

  @Test
  void put_withoutContentType_isTakenAsJson() {
    HttpFixture.Response<String> r = http.send("PUT", "/put", "{\"key\":\"k\",\"value\":\"v\"}");

    assertThat(r.status()).isEqualTo(200);
    assertThat(http.store.getString("k")).contains("v");
  }

  @ParameterizedTest
  @ValueSource(strings = {"/get/key=k", "/get?key=k", "/get/k"})
  void get_inEveryDocumentedForm_returnsEntry(String path) {
    String version = json(put("k", "v")).get("version").asText();

    HttpFixture.Response<String> r = http.send("GET", path);

    assertThat(r.status()).isEqualTo(200);
    assertThat(r.header("content-type")).startsWith("application/json");
    JsonNode body = json(r);
    assertThat(body.get("key").asText()).isEqualTo("k");
    assertThat(body.get("value").asText()).isEqualTo("v");
    assertThat(body.get("version").asText()).isEqualTo(version);
    assertThat(r.header("etag")).isEqualTo("\"" + version + "\"");
  }

  @Test
  void head_onGet_answersStatusWithoutBody() {
    put("k", "v");
    HttpFixture.Response<String> present = http.send("HEAD", "/get/k");
    HttpFixture.Response<String> absent = http.send("HEAD", "/get?key=nope");
    assertThat(present.status()).isEqualTo(200);
    assertThat(present.body()).isEmpty();
    assertThat(absent.status()).isEqualTo(404);
    assertThat(absent.body()).isEmpty();
  }

  @ParameterizedTest
  @ValueSource(strings = {"/get/key=absent", "/get?key=absent", "/get/absent"})
  void get_absentKey_is404Json(String path) {
    JsonNode body = assertError(http.send("GET", path), 404, "not_found");
    assertThat(body.get("message").asText()).contains("absent");
  }

  @ParameterizedTest
  @ValueSource(strings = {"/delete?key=k", "/delete/k", "/delete/key=k"})
  void delete_removesKeyAndSaysSo(String path) {
    put("k", "v");

    HttpFixture.Response<String> first = http.send("DELETE", path);
    HttpFixture.Response<String> second = http.send("DELETE", path);

    assertThat(first.status()).isEqualTo(200);
    assertThat(json(first).get("deleted").asBoolean()).isTrue();
    assertThat(json(first).get("key").asText()).isEqualTo("k");
    assertThat(second.status()).isEqualTo(200);
    assertThat(json(second).get("deleted").asBoolean()).isFalse();
    assertThat(http.store.get("k")).isEmpty();
    assertError(http.send("GET", "/get/k"), 404, "not_found");
  }

  @Test
  void set_storesUrlDecodedPair_andAnswersLikePut() {
    HttpFixture.Response<String> r = http.send("POST", "/set/a%2Fb%20c/h%C3%A9llo%20w%2Bx+y");

    assertThat(r.status()).isEqualTo(200);
    JsonNode body = json(r);
    assertThat(body.get("key").asText()).isEqualTo("a/b c");
    assertThat(body.get("value").asText()).isEqualTo("héllo w+x+y");
    assertThat(body.get("version").asText())
        .isEqualTo(http.store.getVersioned("a/b c").orElseThrow().version().toString());
    assertThat(http.store.getString("a/b c")).contains("héllo w+x+y");
  }

  @Test
  void set_valueMayContainRawSlashes() {
    assertThat(http.send("POST", "/set/k/a/b").status()).isEqualTo(200);
    assertThat(http.store.getString("k")).contains("a/b");
  }

  @Test
  void set_withTrailingSlash_storesEmptyValue() {
    assertThat(http.send("POST", "/set/k/").status()).isEqualTo(200);
    assertThat(http.store.getString("k")).contains("");
  }

  @Test
  void set_withoutValue_is400AndStoresNothing() {
    HttpFixture.Snapshot before = http.snapshot();
    assertError(http.send("POST", "/set/k"), 400, "bad_request");
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @Test
  void putThenGet_roundTripsUnicodeAndSpecialKeys() {
    String[] keys = {"a/b", "..", "with space", "€uro 😀", "a+b", "key=x", "%2F"};
    for (String key : keys) {
      assertThat(put(key, "value of " + key).status()).as(key).isEqualTo(200);
    }
    for (String key : keys) {
      String encoded = java.net.URLEncoder.encode(key, StandardCharsets.UTF_8);
      HttpFixture.Response<String> r = http.send("GET", "/get?key=" + encoded);
      assertThat(r.status()).as(key).isEqualTo(200);
      assertThat(json(r).get("value").asText()).isEqualTo("value of " + key);
    }
  }

  // ---- bad input: 400/413/415, and nothing stored ------------------------------------------------

  @ParameterizedTest
  @ValueSource(strings = {
      "{\"key\": \"k\", \"value\": ",             // truncated
      "{key: \"k\", \"value\": \"v\"}",           // not JSON
      "{\"key\": \"k\", \"value\": \"v\"} xyz",   // trailing content
      "{\"key\": \"k\", \"key\": \"j\", \"value\": \"v\"}", // duplicate field
      "",                                          // empty
      "[\"k\", \"v\"]",                            // not an object
      "\"k=v\""                                    // not an object
  })
  void put_malformedJson_is400InvalidJson(String body) {
    HttpFixture.Snapshot before = http.snapshot();
    assertError(http.send("PUT", "/put", body, "Content-Type", "application/json"), 400,
        "invalid_json");
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @ParameterizedTest
  @ValueSource(strings = {"{\"value\": \"v\"}", "{\"key\": \"k\"}", "{}"})
  void put_missingField_is400(String body) {
    HttpFixture.Snapshot before = http.snapshot();
    assertError(http.send("PUT", "/put", body, "Content-Type", "application/json"), 400,
        "missing_field");
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @ParameterizedTest
  @ValueSource(strings = {
      "{\"key\": 1, \"value\": \"v\"}",
      "{\"key\": \"k\", \"value\": 5}",
      "{\"key\": \"k\", \"value\": null}",
      "{\"key\": \"k\", \"value\": {\"a\": 1}}",
      "{\"key\": [\"k\"], \"value\": \"v\"}",
      "{\"key\": \"k\", \"value\": \"v\", \"ttl\": \"5s\"}",
      "{\"key\": \"k\", \"value\": \"\\ud800\"}"
  })
  void put_wrongTypesOrUnknownFields_is400InvalidField(String body) {
    HttpFixture.Snapshot before = http.snapshot();
    assertError(http.send("PUT", "/put", body, "Content-Type", "application/json"), 400,
        "invalid_field");
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @Test
  void put_invalidKeys_are400WithCoreMessages() {
    HttpFixture.Snapshot before = http.snapshot();

    JsonNode empty = assertError(put("", "v"), 400, "invalid_key");
    JsonNode control = assertError(put("a\u0001b", "v"), 400, "invalid_key");
    JsonNode tooLong = assertError(put("x".repeat(1025), "v"), 400, "invalid_key");

    assertThat(empty.get("message").asText()).isEqualTo("key must not be empty");
    assertThat(control.get("message").asText()).contains("control character");
    assertThat(tooLong.get("message").asText()).contains("1025").contains("1024");
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @ParameterizedTest
  @ValueSource(strings = {"text/plain", "application/x-www-form-urlencoded",
      "application/json; charset=iso-8859-1", "application/xml"})
  void put_nonJsonContentType_is415(String type) {
    HttpFixture.Snapshot before = http.snapshot();
    assertError(http.send("PUT", "/put", "{\"key\":\"k\",\"value\":\"v\"}", "Content-Type", type),
        415, "unsupported_media_type");
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @Test
  void put_jsonWithUtf8Charset_isAccepted() {
    assertThat(http.send("PUT", "/put", "{\"key\":\"k\",\"value\":\"v\"}", "Content-Type",
        "Application/JSON; charset=UTF-8").status()).isEqualTo(200);
  }

  @Test
  void put_invalidUtf8Body_is400() {
    HttpFixture.Snapshot before = http.snapshot();
    byte[] body = "{\"key\":\"k\",\"value\":\"\u00ff\"}".getBytes(StandardCharsets.ISO_8859_1);
    HttpFixture.Response<String> r = http.sendBytes("PUT", "/put", body, "Content-Type",
        "application/json").map(b -> new String(b, StandardCharsets.UTF_8));
    assertError(r, 400, "invalid_json");
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @Test
  void get_keyInBothPathAndQuery_is400() {
    put("k", "v");
    assertError(http.send("GET", "/get/k?key=k"), 400, "invalid_parameter");
  }

  @Test
  void get_withoutKey_is400() {
    assertError(http.send("GET", "/get"), 400, "invalid_key");
    assertError(http.send("GET", "/get/"), 400, "invalid_key");
    assertError(http.send("GET", "/get?key="), 400, "invalid_key");
  }

  @Test
  void get_repeatedOrUnknownParameter_is400() {
    assertError(http.send("GET", "/get?key=a&key=b"), 400, "invalid_parameter");
    assertError(http.send("GET", "/get?key=a&verbose=1"), 400, "invalid_parameter");
  }

  @Test
  void delete_invalidKey_is400AndStoresNothing() {
    HttpFixture.Snapshot before = http.snapshot();
    assertError(http.send("DELETE", "/delete?key=a%01b"), 400, "invalid_key");
    assertError(http.send("DELETE", "/delete"), 400, "invalid_key");
    assertThat(http.snapshot()).isEqualTo(before);
  }
}
