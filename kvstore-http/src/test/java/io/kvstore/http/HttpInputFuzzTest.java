package io.kvstore.http;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import com.fasterxml.jackson.databind.JsonNode;
import io.kvstore.core.KvStore;
import io.kvstore.core.WriteOptions;
import java.nio.charset.StandardCharsets;
import java.util.Optional;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;

/**
 * Jazzer fuzz targets for what the HTTP API decodes from a request before the store sees it: keys in
 * paths and query strings (strict percent-decoding), query parameters, and JSON bodies. Under
 * {@code ./mvnw verify} they replay their committed regression inputs
 * (src/test/resources/io/kvstore/http/HttpInputFuzzTestInputs/&lt;target&gt;/);
 * {@code JAZZER_FUZZ=1 ./mvnw -pl kvstore-http -am test -Dtest=HttpInputFuzzTest#<target>
 * -Dsurefire.failIfNoSpecifiedTests=false} fuzzes one. Invariants: malformed input is an
 * {@link ApiError} (a 4xx answer), never another exception; a key the store accepts is stored and
 * read back exactly; a refused key stores nothing.
 */
class HttpInputFuzzTest {
  private static final KvStore STORE = KvStore.builder().nodeId("fuzz").build();
  private static final StoreCalls CALLS = new StoreCalls(STORE);

  @AfterAll
  static void close() {
    STORE.close();
  }

  @FuzzTest(maxDuration = "30s")
  void keyInPathOrQuery(FuzzedDataProvider data) {
    boolean query = data.consumeBoolean();
    String raw = data.consumeRemainingAsString();
    String key;
    try {
      key = query
          ? QueryParams.parse(raw, Set.of("key", "prefix", "limit")).get("key").orElse(null)
          : UrlCodec.decodePath(raw, "key");
    } catch (ApiError refused) {
      assertThat(refused.status).isBetween(400, 499);
      return;
    }
    if (key == null) {
      return;
    }
    long sizeBefore = STORE.size();
    byte[] value = "v".getBytes(StandardCharsets.UTF_8);
    try {
      CALLS.put(key, value, WriteOptions.defaults(), System.nanoTime() + 5_000_000_000L);
    } catch (ApiError refused) {
      assertThat(refused.status).isBetween(400, 499);
      assertThat(STORE.size()).isEqualTo(sizeBefore);
      return;
    }
    Optional<String> back = STORE.getString(key);
    assertThat(back).hasValue("v");
    CALLS.delete(key, WriteOptions.defaults(), System.nanoTime() + 5_000_000_000L);
  }

  @FuzzTest(maxDuration = "30s")
  void jsonBody(byte[] body) {
    try {
      JsonNode node = Json.parse(body);
      assertThat(node).isNotNull();
    } catch (ApiError refused) {
      assertThat(refused.status).isEqualTo(400);
    }
  }
}
