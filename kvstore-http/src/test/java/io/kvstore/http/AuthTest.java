package io.kvstore.http;

import static io.kvstore.http.HttpFixture.assertError;
import static org.assertj.core.api.Assertions.assertThat;

import io.kvstore.core.KvStore;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Optional bearer-token authentication. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class AuthTest {
  private HttpFixture http;

  private void start(boolean openHealth) {
    http = HttpFixture.start(KvStore.builder().nodeId("node-1").build(),
        b -> b.authTokens(Set.of("s3cret", "second-token")).openHealth(openHealth));
  }

  @AfterEach
  void stop() {
    http.close();
  }

  @Test
  void withoutToken_is401WithBearerChallenge_andStoresNothing() {
    start(true);
    HttpFixture.Snapshot before = http.snapshot();

    HttpFixture.Response<String> r = http.send("PUT", "/v1/kv/k", "v");

    assertError(r, 401, "unauthorized");
    assertThat(r.header("www-authenticate")).isEqualTo("Bearer realm=\"kvstore\"");
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @Test
  void wrongOrMalformedToken_is401InvalidToken() {
    start(true);
    HttpFixture.Snapshot before = http.snapshot();
    for (String header : new String[] {"Bearer wrong", "Bearer s3cre", "Bearer s3cret2",
        "Basic czNjcmV0", "s3cret", "Bearer "}) {
      HttpFixture.Response<String> r = http.send("PUT", "/v1/kv/k", "v", "Authorization", header);
      assertError(r, 401, "unauthorized");
      assertThat(r.header("www-authenticate")).as(header).contains("error=\"invalid_token\"");
    }
    assertThat(http.snapshot()).isEqualTo(before);
  }

  @Test
  void anyConfiguredToken_isAccepted() {
    start(true);
    assertThat(http.send("PUT", "/v1/kv/k", "v", "Authorization", "Bearer s3cret").status())
        .isEqualTo(200);
    assertThat(http.send("GET", "/v1/kv/k", null, "Authorization", "bearer second-token").status())
        .isEqualTo(200);
  }

  @Test
  void unknownRoutesAndMetrics_needATokenToo() {
    start(true);
    assertError(http.send("GET", "/nowhere"), 401, "unauthorized");
    assertError(http.send("GET", "/metrics"), 401, "unauthorized");
    assertError(http.send("GET", "/v1/watch"), 401, "unauthorized");
    assertThat(http.send("GET", "/nowhere", null, "Authorization", "Bearer s3cret").status())
        .isEqualTo(404);
  }

  @Test
  void health_isOpenWhenConfiguredSo() {
    start(true);
    assertThat(http.send("GET", "/health").status()).isEqualTo(200);
    assertError(http.send("GET", "/ready"), 401, "unauthorized");
  }

  @Test
  void health_needsATokenWhenNotOpen() {
    start(false);
    assertError(http.send("GET", "/health"), 401, "unauthorized");
    assertThat(http.send("GET", "/health", null, "Authorization", "Bearer s3cret").status())
        .isEqualTo(200);
  }
}
