package io.kvstore.http;

import static io.kvstore.http.HttpFixture.assertError;
import static org.assertj.core.api.Assertions.assertThat;

import io.kvstore.core.KvStore;
import io.kvstore.core.KvStoreException;
import io.kvstore.core.ReadConcern;
import io.kvstore.core.ReadOptions;
import io.kvstore.core.Version;
import io.kvstore.core.Versioned;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteConcernException;
import io.kvstore.core.WriteOptions;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@code X-Kvstore-Owners} and {@code X-Kvstore-Local} (docs/HTTP.md, "Owner headers"): on every
 * key-addressed answer of both APIs whose key is valid, errors included; never on a refused key or a
 * route without a key; nowhere without a source; the documented API's statuses and bodies are
 * exactly what they are without the headers.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class OwnerHeadersTest {
  /** Keys starting with "here" are owned by this node (node-1) among others; the rest are not. */
  static final Function<String, List<String>> FAKE = key -> key.startsWith("here")
      ? List.of("node-3", "node-1", "node-2") : List.of("node-2", "node-4", "node-3");

  private final List<HttpFixture> fixtures = new ArrayList<>();
  private final AtomicInteger calls = new AtomicInteger();

  private HttpFixture start(KvStore store, Function<String, List<String>> owners) {
    HttpFixture f = HttpFixture.start(store, b -> b.keyOwners(owners).maxBodyBytes(4000));
    fixtures.add(f);
    return f;
  }

  private HttpFixture start(Function<String, List<String>> owners) {
    return start(KvStore.builder().nodeId("node-1").maxValueBytes(1000).build(), owners);
  }

  private Function<String, List<String>> counting(Function<String, List<String>> f) {
    return key -> {
      calls.incrementAndGet();
      return f.apply(key);
    };
  }

  @AfterEach
  void stop() {
    fixtures.forEach(HttpFixture::close);
  }

  private static void assertOwners(HttpFixture.Response<?> r, String owners, boolean local) {
    assertThat(r.header(OwnerHeaders.OWNERS)).as("owners of %s", r).isEqualTo(owners);
    assertThat(r.header(OwnerHeaders.LOCAL)).as("local of %s", r).isEqualTo(String.valueOf(local));
  }

  private static void assertNoOwners(HttpFixture.Response<?> r) {
    assertThat(r.header(OwnerHeaders.OWNERS)).as("owners of %s", r).isNull();
    assertThat(r.header(OwnerHeaders.LOCAL)).as("local of %s", r).isNull();
  }

  @Test
  void v1Answers_nameTheOwnersInPreferenceOrder_andWhetherThisNodeIsOne() {
    HttpFixture http = start(FAKE);

    HttpFixture.Response<String> put = http.send("PUT", "/v1/kv/here-1", "a");
    HttpFixture.Response<String> foreignPut = http.send("PUT", "/v1/kv/there-1", "b");
    HttpFixture.Response<String> get = http.send("GET", "/v1/kv/here-1");
    HttpFixture.Response<String> head = http.send("HEAD", "/v1/kv/there-1");
    HttpFixture.Response<String> del = http.send("DELETE", "/v1/kv/there-1");

    assertThat(put.status()).isEqualTo(200);
    assertOwners(put, "node-3,node-1,node-2", true);
    assertThat(foreignPut.status()).isEqualTo(200);
    assertOwners(foreignPut, "node-2,node-4,node-3", false);
    assertThat(get.status()).isEqualTo(200);
    assertThat(get.body()).isEqualTo("a");
    assertOwners(get, "node-3,node-1,node-2", true);
    assertThat(head.status()).isEqualTo(200);
    assertOwners(head, "node-2,node-4,node-3", false);
    assertThat(del.status()).isEqualTo(200);
    assertOwners(del, "node-2,node-4,node-3", false);
  }

  @Test
  void v1Errors_aboutAValidKey_carryTheOwners() {
    HttpFixture http = start(FAKE);
    Version v = http.store.put("here-k", "v");

    HttpFixture.Response<String> missing = http.send("GET", "/v1/kv/here-none");
    HttpFixture.Response<String> notModified = http.send("GET", "/v1/kv/here-k", null,
        "If-None-Match", "\"" + v + "\"");
    HttpFixture.Response<String> conflict = http.send("PUT", "/v1/kv/here-k", "w",
        "If-Match", "\"1.0@nobody\"");
    HttpFixture.Response<String> badParam = http.send("PUT", "/v1/kv/there-k?consistency=most", "w");
    HttpFixture.Response<String> badReadParam = http.send("GET", "/v1/kv/there-k?consistency=all");
    HttpFixture.Response<String> badTtl = http.send("PUT", "/v1/kv/there-k?ttl=0s", "w");
    HttpFixture.Response<String> tooLarge = http.send("PUT", "/v1/kv/there-k", "x".repeat(1001));

    assertError(missing, 404, "not_found");
    assertOwners(missing, "node-3,node-1,node-2", true);
    assertThat(notModified.status()).isEqualTo(304);
    assertOwners(notModified, "node-3,node-1,node-2", true);
    assertError(conflict, 412, "precondition_failed");
    assertOwners(conflict, "node-3,node-1,node-2", true);
    assertError(badParam, 400, "invalid_parameter");
    assertOwners(badParam, "node-2,node-4,node-3", false);
    assertError(badReadParam, 400, "invalid_parameter");
    assertOwners(badReadParam, "node-2,node-4,node-3", false);
    assertError(badTtl, 400, "invalid_ttl");
    assertOwners(badTtl, "node-2,node-4,node-3", false);
    assertError(tooLarge, 413, "value_too_large");
    assertOwners(tooLarge, "node-2,node-4,node-3", false);
  }

  @Test
  void unmetWriteAndReadConcerns_carryTheOwners() {
    KvStore failing = new ForwardingKvStore(KvStore.builder().nodeId("node-1").build()) {
      @Override
      public CompletableFuture<Version> putAsync(String key, byte[] value, WriteOptions options) {
        return CompletableFuture.failedFuture(new WriteConcernException(WriteConcern.QUORUM, 2, 1,
            "only 1 of the 3 owners are reachable"));
      }

      @Override
      public Optional<Versioned> getVersioned(String key) {
        throw new KvStoreException("read at ONE of key '" + key + "': no owner is reachable");
      }

      @Override
      public CompletableFuture<Optional<Versioned>> getAsync(String key, ReadOptions options) {
        if (options.concern() == ReadConcern.QUORUM) {
          return CompletableFuture.failedFuture(new KvStoreException("read at QUORUM of key '"
              + key + "': only 1 of the 3 owners answered"));
        }
        return super.getAsync(key, options);
      }
    };
    HttpFixture http = start(failing, FAKE);

    HttpFixture.Response<String> v1 = http.send("PUT", "/v1/kv/there-k?consistency=quorum", "v");
    HttpFixture.Response<String> legacy = http.send("POST", "/set/here-k/v");
    HttpFixture.Response<String> read = http.send("GET", "/v1/kv/there-k?consistency=quorum");
    HttpFixture.Response<String> readOne = http.send("GET", "/v1/kv/here-k");
    HttpFixture.Response<String> legacyRead = http.send("GET", "/get/here-k");

    assertError(v1, 503, "write_concern_not_met");
    assertOwners(v1, "node-2,node-4,node-3", false);
    assertError(legacy, 503, "write_concern_not_met");
    assertOwners(legacy, "node-3,node-1,node-2", true);
    assertThat(assertError(read, 503, "read_concern_not_met").path("concern").asText())
        .isEqualTo("quorum");
    assertOwners(read, "node-2,node-4,node-3", false);
    assertThat(assertError(readOne, 503, "read_concern_not_met").path("concern").asText())
        .isEqualTo("one");
    assertOwners(readOne, "node-3,node-1,node-2", true);
    // The documented API's read answers the same 503 (it was a 500 "internal" before), in the
    // same JSON error format as its other errors.
    assertThat(assertError(legacyRead, 503, "read_concern_not_met").path("message").asText())
        .contains("no owner is reachable");
    assertOwners(legacyRead, "node-3,node-1,node-2", true);
  }

  @Test
  void v1Get_readsAtTheConcernAsked() {
    List<String> seen = new ArrayList<>();
    KvStore recording = new ForwardingKvStore(KvStore.builder().nodeId("node-1").build()) {
      @Override
      public Optional<Versioned> getVersioned(String key) {
        seen.add("ONE");
        return super.getVersioned(key);
      }

      @Override
      public CompletableFuture<Optional<Versioned>> getAsync(String key, ReadOptions options) {
        seen.add(options.concern().name());
        return super.getAsync(key, options);
      }
    };
    HttpFixture http = start(recording, null);
    recording.put("k", "v");

    assertThat(http.send("GET", "/v1/kv/k").body()).isEqualTo("v");
    assertThat(http.send("GET", "/v1/kv/k?consistency=ONE").body()).isEqualTo("v");
    assertThat(http.send("GET", "/v1/kv/k?consistency=quorum").body()).isEqualTo("v");

    assertThat(seen).containsExactly("ONE", "ONE", "QUORUM");
  }

  @Test
  void documentedApi_answersCarryTheOwners_errorsAboutAValidKeyToo() {
    HttpFixture http = start(FAKE);

    HttpFixture.Response<String> put = http.send("PUT", "/put", "{\"key\":\"here-a\",\"value\":\"1\"}",
        "Content-Type", "application/json");
    HttpFixture.Response<String> set = http.send("POST", "/set/there-b/2");
    HttpFixture.Response<String> getQuery = http.send("GET", "/get?key=here-a");
    HttpFixture.Response<String> getPath = http.send("GET", "/get/there-b");
    HttpFixture.Response<String> getLiteral = http.send("GET", "/get/key=here-a");
    HttpFixture.Response<String> getMissing = http.send("GET", "/get?key=there-none");
    HttpFixture.Response<String> delQuery = http.send("DELETE", "/delete?key=here-a");
    HttpFixture.Response<String> delPath = http.send("DELETE", "/delete/there-b");
    HttpFixture.Response<String> badField = http.send("PUT", "/put",
        "{\"key\":\"here-a\",\"value\":3}", "Content-Type", "application/json");
    HttpFixture.Response<String> tooLarge = http.send("POST", "/set/here-c/" + "x".repeat(1001));

    for (HttpFixture.Response<String> r : List.of(put, getQuery, getLiteral, delQuery)) {
      assertThat(r.status()).as("%s", r).isEqualTo(200);
      assertOwners(r, "node-3,node-1,node-2", true);
    }
    for (HttpFixture.Response<String> r : List.of(set, getPath, delPath)) {
      assertThat(r.status()).as("%s", r).isEqualTo(200);
      assertOwners(r, "node-2,node-4,node-3", false);
    }
    assertError(getMissing, 404, "not_found");
    assertOwners(getMissing, "node-2,node-4,node-3", false);
    assertError(badField, 400, "invalid_field");
    assertOwners(badField, "node-3,node-1,node-2", true);
    assertError(tooLarge, 413, "value_too_large");
    assertOwners(tooLarge, "node-3,node-1,node-2", true);
  }

  /** Every documented-API request of this list, sent to a server with and without the headers. */
  @Test
  void documentedApi_statusesAndBodies_areExactlyThoseWithoutTheHeaders() {
    TestClock clock = new TestClock();
    HttpFixture with = start(KvStore.builder().nodeId("node-1").clock(clock).maxValueBytes(1000)
        .build(), FAKE);
    HttpFixture without = start(KvStore.builder().nodeId("node-1").clock(clock).maxValueBytes(1000)
        .build(), null);
    String[][] requests = {
        {"PUT", "/put", "{\"key\":\"here-a\",\"value\":\"1\"}"},
        {"PUT", "/put", "{\"key\":\"there-a\",\"value\":\"2\"}"},
        {"PUT", "/put", "{\"key\":\"\",\"value\":\"2\"}"},
        {"PUT", "/put", "{\"key\":\"k\"}"},
        {"PUT", "/put", "[1]"},
        {"POST", "/set/here-b/v%20b", null},
        {"POST", "/set/there-b", null},
        {"GET", "/get?key=here-a", null},
        {"GET", "/get/there-a", null},
        {"GET", "/get/key=here-b", null},
        {"GET", "/get?key=nope", null},
        {"GET", "/get", null},
        {"GET", "/get?key=a&key=b", null},
        {"GET", "/get/%FF", null},
        {"DELETE", "/delete?key=here-a", null},
        {"DELETE", "/delete/there-never", null},
        {"DELETE", "/delete", null},
        {"HEAD", "/get?key=there-a", null},
    };
    for (String[] req : requests) {
      String[] headers = req[2] == null ? new String[0]
          : new String[] {"Content-Type", "application/json"};
      HttpFixture.Response<String> a = with.send(req[0], req[1], req[2], headers);
      HttpFixture.Response<String> b = without.send(req[0], req[1], req[2], headers);
      assertThat(a.status()).as("status of %s %s", req[0], req[1]).isEqualTo(b.status());
      assertThat(a.body()).as("body of %s %s", req[0], req[1]).isEqualTo(b.body());
      assertNoOwners(b);
      assertThat(a.header("content-type")).isEqualTo(b.header("content-type"));
      assertThat(a.header("etag")).isEqualTo(b.header("etag"));
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"/v1/kv/", "/v1/kv/bad%01key", "/get?key=", "/get/bad%7Fkey",
      "/delete/", "/get/%FF", "/v1/kv/%C3%28"})
  void aRefusedOrUnreadableKey_getsNoOwnerHeaders(String path) {
    HttpFixture http = start(KvStore.builder().nodeId("node-1").maxKeyBytes(16).build(), FAKE);
    String method = path.startsWith("/delete") ? "DELETE" : "GET";

    HttpFixture.Response<String> r = http.send(method, path);

    assertThat(r.status()).isEqualTo(400);
    assertNoOwners(r);
  }

  @Test
  void aKeyOverTheLimit_getsNoOwnerHeaders_onWritesEither() {
    HttpFixture http = start(KvStore.builder().nodeId("node-1").maxKeyBytes(16).build(), FAKE);

    HttpFixture.Response<String> v1 = http.send("PUT", "/v1/kv/" + "here".repeat(5), "v");
    HttpFixture.Response<String> legacy = http.send("POST", "/set/" + "here".repeat(5) + "/v");

    assertError(v1, 400, "invalid_key");
    assertNoOwners(v1);
    assertError(legacy, 400, "invalid_key");
    assertNoOwners(legacy);
  }

  @Test
  void routesWithoutAKey_getNoOwnerHeaders_andTheSourceIsNotAsked() {
    HttpFixture http = start(counting(FAKE));
    http.store.put("here-a", "1");

    List<HttpFixture.Response<String>> rs = List.of(http.send("GET", "/v1/kv?prefix=here"),
        http.send("GET", "/v1/cluster"), http.send("GET", "/health"),
        http.send("GET", "/no/such/route"));

    for (HttpFixture.Response<String> r : rs) {
      assertNoOwners(r);
    }
    assertThat(calls).hasValue(0);
  }

  @Test
  void withoutASource_noAnswerCarriesTheHeaders() {
    HttpFixture http = start(null);

    assertNoOwners(http.send("PUT", "/v1/kv/here-a", "1"));
    assertNoOwners(http.send("GET", "/v1/kv/here-a"));
    assertNoOwners(http.send("GET", "/get?key=here-a"));
    assertNoOwners(http.send("GET", "/v1/kv/here-none"));
  }

  @ParameterizedTest
  @ValueSource(strings = {"throws", "null", "empty"})
  void aSourceWithoutAnAnswer_leavesTheHeadersOut_andTheRequestIsServed(String kind) {
    HttpFixture http = start(key -> switch (kind) {
      case "throws" -> throw new IllegalStateException("closed");
      case "null" -> null;
      default -> List.of();
    });

    HttpFixture.Response<String> put = http.send("PUT", "/v1/kv/here-a", "1");
    HttpFixture.Response<String> get = http.send("GET", "/get?key=here-a");

    assertThat(put.status()).isEqualTo(200);
    assertNoOwners(put);
    assertThat(get.status()).isEqualTo(200);
    assertNoOwners(get);
  }

  @Test
  void theSourceIsAskedOncePerRequest() {
    HttpFixture http = start(counting(FAKE));

    http.send("PUT", "/v1/kv/here-a", "1");
    http.send("GET", "/get?key=here-a");

    assertThat(calls).hasValue(2);
  }
}
