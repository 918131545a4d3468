package io.kvstore.http;

import static io.kvstore.http.HttpFixture.assertError;
import static org.assertj.core.api.Assertions.assertThat;

import io.kvstore.core.KvStore;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@code /ui}: the console's files, their security headers, caching, the config switch and how the
 * files relate to bearer tokens. What the page does in a browser is tested in kvstore-examples
 * ({@code ConsoleBrowserTest}).
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ConsoleRoutesTest {
  private HttpFixture http;

  private void start(UnaryOperator<KvHttpServer.Builder> custom) {
    http = HttpFixture.start(KvStore.builder().nodeId("node-1").build(), custom);
  }

  @AfterEach
  void stop() {
    if (http != null) {
      http.close();
    }
  }

  private static void assertSecurityHeaders(HttpFixture.Response<?> r) {
    assertThat(r.header("content-security-policy")).as("CSP of %s", r).isEqualTo(Console.CSP);
    assertThat(r.header("x-content-type-options")).isEqualTo("nosniff");
    assertThat(r.header("x-frame-options")).isEqualTo("DENY");
    assertThat(r.header("referrer-policy")).isEqualTo("no-referrer");
    assertThat(r.header("cache-control")).isEqualTo("no-cache");
  }

  @Test
  void library_defaultsToNoConsole() {
    start(b -> b);
    assertThat(http.server.config().console()).isFalse();
    assertError(http.send("GET", "/ui/"), 404, "no_route");
    assertError(http.send("GET", "/ui"), 404, "no_route");
  }

  @Test
  void ui_redirectsToTheDirectory_whosePageHasTheSecurityHeaders() {
    start(b -> b.console(true));
    HttpFixture.Response<String> redirect = http.send("GET", "/ui");
    assertThat(redirect.status()).isEqualTo(308);
    assertThat(redirect.header("location")).isEqualTo("/ui/");

    HttpFixture.Response<String> page = http.send("GET", "/ui/");
    assertThat(page.status()).isEqualTo(200);
    assertThat(page.header("content-type")).isEqualTo("text/html;charset=utf-8");
    assertSecurityHeaders(page);
    assertThat(page.header("etag")).matches("\"[0-9a-f]{24}\"");
    assertThat(page.body()).contains("<script type=\"module\" src=\"app.js\"></script>");
  }

  @Test
  void everyFile_isServedWithItsContentType_andNosniff() {
    start(b -> b.console(true));
    for (Map.Entry<String, String> f : Console.FILES.entrySet()) {
      HttpFixture.Response<byte[]> r = http.sendBytes("GET", "/ui/" + f.getKey(), null);
      assertThat(r.status()).as(f.getKey()).isEqualTo(200);
      assertThat(r.header("content-type")).as(f.getKey())
          .isEqualToIgnoringWhitespace(f.getValue().replace("; ", ";"));
      assertThat(r.body()).as(f.getKey()).isNotEmpty();
      assertSecurityHeaders(r);
    }
    HttpFixture.Response<String> head = http.send("HEAD", "/ui/app.js");
    assertThat(head.status()).isEqualTo(200);
    assertThat(head.body()).isEmpty();
  }

  @Test
  void matchingIfNoneMatch_is304_soAnUnchangedConsoleIsNotDownloadedAgain() {
    start(b -> b.console(true));
    String etag = http.send("GET", "/ui/console.css").header("etag");

    HttpFixture.Response<String> again = http.send("GET", "/ui/console.css", null,
        "If-None-Match", "W/" + etag);
    assertThat(again.status()).isEqualTo(304);
    assertThat(again.header("etag")).isEqualTo(etag);
    assertThat(again.body()).isEmpty();
    assertThat(http.send("GET", "/ui/console.css", null, "If-None-Match", "\"other\"").status())
        .isEqualTo(200);
    assertThat(http.send("GET", "/ui/app.js", null, "If-None-Match", etag).status())
        .as("each file has its own tag").isEqualTo(200);
  }

  @Test
  void unknownOrTraversingPaths_are404_withTheSecurityHeaders() {
    start(b -> b.console(true));
    for (String path : new String[] {"/ui/nope.js", "/ui/index.html/", "/ui/%2e%2e%2Fmetrics",
        "/ui/..%2Fv1%2Fcluster", "/ui/APP.JS", "/ui/sub/app.js", "/ui/app.js%00"}) {
      HttpFixture.Response<String> r = http.send("GET", path);
      assertThat(r.status()).as(path).isIn(400, 404);
      assertThat(r.header("content-type")).as(path).startsWith("application/json");
      assertThat(r.body()).as(path).doesNotContain("kvstore_store", "members");
    }
    assertSecurityHeaders(http.send("GET", "/ui/nope.js"));
    assertError(http.send("GET", "/ui/app.js?x=1"), 400, "invalid_parameter");
    assertError(http.send("PUT", "/ui/app.js", "x"), 405, "method_not_allowed");
  }

  @Test
  void withTokens_theFilesLoadWithoutOne_butTheApiStillWantsIt() {
    start(b -> b.console(true).authTokens(Set.of("s3cret")));
    assertThat(http.send("GET", "/ui/").status()).isEqualTo(200);
    assertThat(http.send("GET", "/ui/api.js").status()).isEqualTo(200);
    assertThat(http.send("GET", "/ui").status()).isEqualTo(308);
    assertError(http.send("GET", "/v1/cluster"), 401, "unauthorized");
    assertError(http.send("GET", "/metrics"), 401, "unauthorized");
    assertError(http.send("GET", "/uix"), 401, "unauthorized");
    assertThat(http.send("GET", "/v1/cluster", null, "Authorization", "Bearer s3cret").status())
        .isEqualTo(200);
  }

  @Test
  void apiResponses_doNotCarryTheConsolePolicy() {
    start(b -> b.console(true));
    assertThat(http.send("GET", "/v1/cluster").header("content-security-policy")).isNull();
  }

  /** The CSP forbids inline code; these checks keep the files from needing it. */
  @Test
  void files_haveNoInlineCode_andNameNoOtherOrigin() throws IOException {
    String html = resource("index.html");
    Matcher scripts = Pattern.compile("<script([^>]*)>(.*?)</script>", Pattern.DOTALL).matcher(html);
    int count = 0;
    while (scripts.find()) {
      count++;
      assertThat(scripts.group(1)).as("every script is a file").contains("src=\"");
      assertThat(scripts.group(2)).as("no inline script").isBlank();
    }
    assertThat(count).isPositive();
    assertThat(html).doesNotContain("<style", " style=", "javascript:");
    assertThat(Pattern.compile("\\son[a-z]+=").matcher(html).find()).as("no inline handlers").isFalse();
    for (String f : Console.FILES.keySet()) {
      String text = resource(f);
      if (f.endsWith(".js")) {
        assertThat(text).as(f).doesNotContain("innerHTML", "outerHTML", "insertAdjacentHTML",
            "eval(", "new Function", "document.write", "setAttribute('style'", ".style.",
            "localStorage", "EventSource(");
      }
      String withoutSvgNamespace = text.replace("http://www.w3.org/2000/svg", "");
      assertThat(withoutSvgNamespace).as(f).doesNotContain("http://", "https://", "//cdn");
    }
  }

  private static String resource(String name) throws IOException {
    try (InputStream in = Console.class.getResourceAsStream("/io/kvstore/http/console/" + name)) {
      assertThat(in).as(name).isNotNull();
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
  }
}
