package io.kvstore.examples;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.kvstore.cluster.KvCluster;
import io.kvstore.examples.server.KvServer;
import io.kvstore.examples.server.ServerOptions;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.net.URISyntaxException;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.openqa.selenium.By;
import org.openqa.selenium.JavascriptExecutor;
import org.openqa.selenium.OutputType;
import org.openqa.selenium.TakesScreenshot;
import org.openqa.selenium.WebDriver;
import org.openqa.selenium.WebElement;
import org.openqa.selenium.chrome.ChromeDriver;
import org.openqa.selenium.chrome.ChromeDriverService;
import org.openqa.selenium.chrome.ChromeOptions;
import org.openqa.selenium.chromium.ChromiumDriverLogLevel;
import org.openqa.selenium.logging.LogEntry;
import org.openqa.selenium.logging.LogType;

/**
 * The web console in a real browser: headless Chromium (Debian's {@code chromium} and
 * {@code chromium-driver}, which {@code .ci/run} installs) driven by Selenium, against three
 * standalone-server nodes in this JVM, each serving the console as the server does by default.
 *
 * <p>One browser session serves every test; each test loads the page afresh and uses its own keys,
 * so the tests do not depend on their order. Screenshots of each screen go to
 * {@code target/console-screenshots/}; {@code docs/console.png} is a copy of {@code cluster.png}.
 *
 * <p>Without Chromium the test fails (it must not pass unseen in CI); a machine that cannot have it
 * can skip it explicitly with {@code -Dkvstore.browser.skip=true}.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ConsoleBrowserTest {
  private static final String CHROMIUM = System.getProperty("kvstore.chromium", "/usr/bin/chromium");
  private static final String CHROMEDRIVER =
      System.getProperty("kvstore.chromedriver", "/usr/bin/chromedriver");
  private static final Path SHOTS = Path.of("target", "console-screenshots");
  private static final Duration WAIT = Duration.ofSeconds(15);
  // Selenium logs through java.util.logging; keep the logger so the level sticks.
  private static final Logger SELENIUM_LOG = Logger.getLogger("org.openqa.selenium");

  private static final Path TLS_CERT = resource("/tls/server-cert.pem");
  private static final Path TLS_KEY = resource("/tls/server-key.pem");

  private static final List<KvServer.Node> NODES = new ArrayList<>();
  private static final HttpClient HTTP = HttpClient.newBuilder()
      .connectTimeout(Duration.ofSeconds(5)).build();
  private static WebDriver browser;
  private static Path profile;

  @BeforeAll
  static void startClusterAndBrowser() throws IOException {
    if (Boolean.getBoolean("kvstore.browser.skip")) {
      Assumptions.abort("skipped by -Dkvstore.browser.skip=true");
    }
    assertThat(new File(CHROMIUM)).as("Chromium for the console test: apt-get install chromium "
        + "chromium-driver (as .ci/run does), or skip it with -Dkvstore.browser.skip=true")
        .canRead();
    assertThat(new File(CHROMEDRIVER).canExecute()).as("chromedriver at " + CHROMEDRIVER
        + ": apt-get install chromium-driver").isTrue();
    SELENIUM_LOG.setLevel(Level.SEVERE);
    Files.createDirectories(SHOTS);
    profile = Files.createTempDirectory("kvstore-console-chromium");
    ChromeOptions options = new ChromeOptions();
    options.setBinary(CHROMIUM);
    options.setCapability("goog:loggingPrefs", Map.of("browser", "ALL"));
    options.addArguments("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
        "--disable-gpu", "--window-size=1440,1120", "--force-device-scale-factor=1", "--lang=en-US",
        "--no-first-run", "--no-default-browser-check", "--disable-extensions",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-default-apps", "--disable-domain-reliability", "--no-pings",
        "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
        // Nothing but loopback: any other request goes to a closed local port.
        "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1",
        // Trust exactly the test certificate's key for the HTTPS test, nothing more.
        "--ignore-certificate-errors-spki-list=" + spkiHash(TLS_CERT),
        "--user-data-dir=" + profile);
    // An explicit driver: Selenium Manager is never asked to find or download one.
    ChromeDriverService service = new ChromeDriverService.Builder()
        .usingDriverExecutable(new File(CHROMEDRIVER)).usingAnyFreePort()
        .withLogLevel(ChromiumDriverLogLevel.WARNING)
        .withLogFile(SHOTS.resolve("chromedriver.log").toFile()).build();
    // The browser starts (seconds of process start-up) while the three nodes form the cluster.
    CompletableFuture<WebDriver> starting =
        CompletableFuture.supplyAsync(() -> new ChromeDriver(service, options));
    try {
      KvServer.Node first = startNode("node-1", List.of(), Set.of());
      String seed = KvCluster.node(first.store()).orElseThrow().membershipAddress();
      startNode("node-2", List.of(seed), Set.of());
      startNode("node-3", List.of(seed), Set.of());
      await().atMost(Duration.ofSeconds(30)).until(() -> NODES.stream().allMatch(n ->
          n.store().cluster().members().size() == 3 && n.store().cluster().isReady()));
    } finally {
      browser = starting.join();
    }
    browser.manage().timeouts().scriptTimeout(Duration.ofSeconds(10));
  }

  /**
   * The page ran without a script error or a Content-Security-Policy violation. (Refused requests,
   * such as the 401 and 412 answers the tests provoke, are logged too and are expected.)
   */
  @AfterEach
  void pageHadNoScriptErrorsOrPolicyViolations() {
    List<String> problems = browser.manage().logs().get(LogType.BROWSER).getAll().stream()
        .map(LogEntry::getMessage)
        .filter(m -> m.contains("Content Security Policy") || m.contains("Uncaught")
            || m.contains("Refused to"))
        .toList();
    assertThat(problems).as("browser console").isEmpty();
  }

  @AfterAll
  static void stop() {
    if (browser != null) {
      browser.quit();
    }
    if (profile != null) {
      try (var files = Files.walk(profile)) {
        files.sorted(Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
      } catch (IOException e) {
        System.out.println("could not remove the browser profile " + profile + ": " + e);
      }
    }
    for (KvServer.Node n : NODES) {
      n.close();
    }
    NODES.clear();
  }

  private static Path resource(String name) {
    try {
      return Path.of(ConsoleBrowserTest.class.getResource(name).toURI());
    } catch (URISyntaxException e) {
      throw new IllegalStateException(e);
    }
  }

  /** Base64 of the SHA-256 of the certificate's SubjectPublicKeyInfo, as Chromium wants it. */
  private static String spkiHash(Path pem) {
    try (InputStream in = Files.newInputStream(pem)) {
      Certificate cert = CertificateFactory.getInstance("X.509").generateCertificate(in);
      return Base64.getEncoder().encodeToString(
          MessageDigest.getInstance("SHA-256").digest(cert.getPublicKey().getEncoded()));
    } catch (IOException | GeneralSecurityException e) {
      throw new IllegalStateException("cannot read " + pem, e);
    }
  }

  private static KvServer.Node startNode(String id, List<String> join, Set<String> tokens) {
    KvServer.Node node = KvServer.Node.start(new ServerOptions(id, "127.0.0.1", 0, 0, 0, join,
        "console-test", tokens, 1024 * 1024));
    NODES.add(node);
    return node;
  }

  private static String url(KvServer.Node node) {
    return "http://127.0.0.1:" + node.httpPort();
  }

  private static KvServer.Node node(int i) {
    return NODES.get(i - 1);
  }

  // ---- the page -----------------------------------------------------------------------------------

  /** Loads the page afresh (a navigation to the same URL but its fragment would not reload it). */
  private static void open(KvServer.Node node, String view) {
    browser.get("about:blank");
    browser.get(url(node) + "/ui/#" + view);
    await().atMost(WAIT).ignoreExceptions().until(() ->
        browser.findElement(By.id("app")).isDisplayed()
            || browser.findElement(By.id("login")).isDisplayed());
  }

  private static WebElement byId(String id) {
    return browser.findElement(By.id(id));
  }

  private static void type(String id, String text) {
    WebElement e = byId(id);
    e.clear();
    e.sendKeys(text);
  }

  private static String memberStatus(String nodeId) {
    List<WebElement> rows = browser.findElements(
        By.cssSelector("#members-body tr[data-member='" + nodeId + "']"));
    return rows.isEmpty() ? null : rows.get(0).getAttribute("data-status");
  }

  private static void screenshot(String name) throws IOException {
    Files.write(SHOTS.resolve(name + ".png"),
        ((TakesScreenshot) browser).getScreenshotAs(OutputType.BYTES));
  }

  // ---- the API, as another client would use it ------------------------------------------------------

  private static HttpResponse<String> api(KvServer.Node node, String method, String path,
      String body) throws IOException, InterruptedException {
    HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(url(node) + path))
        .timeout(Duration.ofSeconds(10))
        .method(method, body == null ? HttpRequest.BodyPublishers.noBody()
            : HttpRequest.BodyPublishers.ofString(body));
    return HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
  }

  private static void put(KvServer.Node node, String key, String value) throws Exception {
    assertThat(api(node, "PUT", "/v1/kv/" + key, value).statusCode()).isEqualTo(200);
  }

  /**
   * For {@code time}: in each step, {@code reads} gets and {@code writes} puts on node 1 and
   * {@code remote} puts on node 2 (replicated to node 1), and every tenth step a read through node
   * 1's HTTP API (for the latency figure). Bounded in steps too.
   */
  private static void traffic(Duration time, int reads, int writes, int remote) throws Exception {
    long end = System.nanoTime() + time.toNanos();
    for (int i = 0; System.nanoTime() < end && i < 20_000; i++) {
      for (int r = 0; r < reads; r++) {
        node(1).store().get("load/" + ((i + r) % 50));
      }
      for (int w = 0; w < writes; w++) {
        node(1).store().put("load/" + (i % 50), "v" + i);
      }
      for (int w = 0; w < remote; w++) {
        node(2).store().put("load/r" + (i % 50), "v" + i);
      }
      if (i % 10 == 0) {
        api(node(1), "GET", "/v1/kv/load%2F" + (i % 50), null);
      }
      Thread.sleep(2); // pacing, not waiting for anything
    }
  }

  // ---- the tests ------------------------------------------------------------------------------------

  @Test
  void clusterView_showsThreeMembers_withThisNodesFiguresAndChart() throws Exception {
    for (int i = 0; i < 40; i++) {
      put(node(1 + i % 3), "orders/" + (1000 + i), "{\"status\":\"paid\",\"total\":" + i + "}");
    }
    open(node(1), "cluster");
    await().atMost(WAIT).ignoreExceptions().untilAsserted(() -> {
      for (String id : List.of("node-1", "node-2", "node-3")) {
        assertThat(memberStatus(id)).as(id).isEqualTo("alive");
      }
      assertThat(browser.findElements(By.cssSelector("#members-body tr"))).hasSize(3);
      assertThat(byId("card-members").getText()).isEqualTo("3");
      assertThat(Long.parseLong(byId("card-entries").getText().replace(",", "")))
          .isEqualTo(node(1).store().stats().liveEntries());
      assertThat(byId("repl-fanout").getText()).contains("Peers connected\n2");
    });
    assertThat(byId("node-id").getText()).isEqualTo("node-1");
    // Reads and writes in phases while the page samples its counters, so the chart has a shape.
    traffic(Duration.ofMillis(1200), 4, 1, 0);
    traffic(Duration.ofMillis(1200), 1, 0, 2);
    traffic(Duration.ofMillis(1200), 6, 2, 1);
    await().atMost(WAIT).ignoreExceptions().untilAsserted(() ->
        assertThat(byId("card-ops").getText()).isNotIn("–", "0"));
    String sampled = byId("refresh-status").getText();
    await().atMost(WAIT).until(() -> !byId("refresh-status").getText().equals(sampled));
    screenshot("cluster");
  }

  @Test
  void keyCreatedInThePage_isReadThroughNode3sApi() throws Exception {
    open(node(1), "keys");
    byId("key-new").click();
    type("create-key", "app/greeting");
    type("create-value", "hello from the console");
    type("create-ttl", "1h");
    byId("create-submit").click();

    await().atMost(WAIT).ignoreExceptions().untilAsserted(() -> {
      assertThat(byId("detail-key").getText()).isEqualTo("app/greeting");
      assertThat(byId("detail-value").getText()).isEqualTo("hello from the console");
      assertThat(byId("detail-meta").getText()).contains("22 bytes").contains("by node-1")
          .containsPattern("(?i)expires\\n\\d{4}-\\d\\d-\\d\\d");
    });
    await().atMost(WAIT).untilAsserted(() -> {
      HttpResponse<String> r = api(node(3), "GET", "/v1/kv/app%2Fgreeting", null);
      assertThat(r.statusCode()).isEqualTo(200);
      assertThat(r.body()).isEqualTo("hello from the console");
      assertThat(r.headers().firstValue("Kvstore-Expires-At")).isPresent();
    });
    // Creating it again is refused: the page creates with If-None-Match: *.
    byId("key-new").click();
    type("create-key", "app/greeting");
    type("create-value", "overwrite?");
    byId("create-submit").click();
    await().atMost(WAIT).untilAsserted(() ->
        assertThat(byId("create-error").getText()).contains("already has a value"));
    assertThat(api(node(1), "GET", "/v1/kv/app%2Fgreeting", null).body())
        .isEqualTo("hello from the console");

    node(2).store().put("app/binary", new byte[] {0x00, 0x01, (byte) 0xff, (byte) 0xfe, 'k', 'v'});
    byId("create-cancel").click();
    type("key-prefix", "app/");
    await().atMost(WAIT).ignoreExceptions().until(() -> {
      byId("key-search").submit();
      return !browser.findElements(By.cssSelector("#key-list [data-key='app/binary']")).isEmpty();
    });
    byId("key-list").findElement(By.cssSelector("[data-key='app/greeting']")).click();
    await().atMost(WAIT).ignoreExceptions().untilAsserted(() ->
        assertThat(byId("detail-key").getText()).isEqualTo("app/greeting"));
    screenshot("keys");
    byId("key-list").findElement(By.cssSelector("[data-key='app/binary']")).click();
    await().atMost(WAIT).ignoreExceptions().untilAsserted(() -> {
      assertThat(byId("detail-meta").getText()).contains("binary");
      assertThat(byId("detail-value").getText()).startsWith("00000000  00 01 ff fe 6b 76");
      assertThat(byId("detail-edit").isEnabled()).isFalse();
    });
    screenshot("keys-binary");
  }

  @Test
  void keyList_pagesThroughAPrefix_25Keys() throws Exception {
    for (int i = 0; i < 30; i++) {
      node(1).store().put(String.format("page/%02d", i), "v" + i);
    }
    node(1).store().put("pagex", "not under the prefix");
    open(node(1), "keys");
    type("key-prefix", "page/");
    byId("key-search").submit();
    await().atMost(WAIT).ignoreExceptions().untilAsserted(() -> {
      assertThat(keysListed()).hasSize(25).startsWith("page/00").endsWith("page/24");
      assertThat(byId("key-page").getText()).isEqualTo("keys 1–25 · more");
    });
    assertThat(byId("key-prev").isEnabled()).isFalse();
    byId("key-next").click();
    await().atMost(WAIT).ignoreExceptions().untilAsserted(() ->
        assertThat(keysListed()).containsExactly("page/25", "page/26", "page/27", "page/28", "page/29"));
    assertThat(byId("key-next").isEnabled()).isFalse();
    byId("key-prev").click();
    await().atMost(WAIT).ignoreExceptions().untilAsserted(() ->
        assertThat(keysListed()).hasSize(25).startsWith("page/00"));
  }

  private static List<String> keysListed() {
    return browser.findElements(By.cssSelector("#key-list button.key-item")).stream()
        .map(b -> b.getAttribute("data-key")).toList();
  }

  @Test
  void changeMadeThroughTheApi_appearsInTheLiveList() throws Exception {
    open(node(1), "live");
    type("live-prefix", "live/");
    byId("live-toggle").click();
    await().atMost(WAIT).untilAsserted(() ->
        assertThat(byId("live-status-text").getText()).startsWith("Watching"));

    put(node(2), "live/sensor-1", "21.5");
    put(node(1), "live/sensor-2", "19.0");
    put(node(1), "elsewhere/x", "not watched");
    assertThat(api(node(1), "DELETE", "/v1/kv/live%2Fsensor-2", null).statusCode()).isEqualTo(200);

    await().atMost(WAIT).ignoreExceptions().untilAsserted(() -> {
      List<WebElement> rows = browser.findElements(By.cssSelector("#live-body tr.live-row"));
      assertThat(rows).extracting(r -> r.getAttribute("data-key") + " " + r.getAttribute("data-type"))
          .contains("live/sensor-1 put", "live/sensor-2 put", "live/sensor-2 delete")
          .doesNotContain("elsewhere/x put");
      assertThat(byId("live-body").getText()).contains("replicated").contains("this node");
    });
    screenshot("live");
    byId("live-toggle").click();
    assertThat(byId("live-status-text").getText()).isEqualTo("Not watching");
  }

  @Test
  void editOfAKeyThatChangedMeanwhile_reportsTheConflict_andKeepsTheOtherWrite() throws Exception {
    put(node(1), "cfg/limit", "10");
    open(node(1), "keys");
    type("key-prefix", "cfg/");
    byId("key-search").submit();
    await().atMost(WAIT).ignoreExceptions().until(() -> {
      byId("key-list").findElement(By.cssSelector("[data-key='cfg/limit']")).click();
      return byId("detail-value").getText().equals("10");
    });
    byId("detail-edit").click();
    type("edit-value", "20");

    put(node(2), "cfg/limit", "15"); // someone else, through another node
    await().atMost(WAIT).until(() ->
        "15".equals(node(1).store().getString("cfg/limit").orElse(null)));
    byId("edit-save").click();

    await().atMost(WAIT).untilAsserted(() -> {
      WebElement conflict = byId("detail-conflict");
      assertThat(conflict.isDisplayed()).isTrue();
      assertThat(conflict.getText()).contains("Conflict: nothing was saved")
          .contains("changed since you opened it").contains("by node-2");
    });
    assertThat(byId("edit-value").getAttribute("value")).as("the user's text is kept").isEqualTo("20");
    assertThat(api(node(3), "GET", "/v1/kv/cfg%2Flimit", null).body())
        .as("the other write stands").isEqualTo("15");
    screenshot("conflict");

    byId("detail-conflict").findElement(By.tagName("button")).click();
    await().atMost(WAIT).untilAsserted(() ->
        assertThat(byId("detail-value").getText()).isEqualTo("15"));
    // Delete is conditional too: a change in between is reported, not deleted.
    put(node(1), "cfg/limit", "16");
    byId("detail-delete").click();
    byId("detail-delete").click();
    await().atMost(WAIT).untilAsserted(() ->
        assertThat(byId("detail-conflict").getText()).contains("nothing was deleted"));
    assertThat(api(node(1), "GET", "/v1/kv/cfg%2Flimit", null).body()).isEqualTo("16");
  }

  @Test
  void stoppedMember_turnsGone() throws Exception {
    String seed = KvCluster.node(node(1).store()).orElseThrow().membershipAddress();
    KvServer.Node extra = KvServer.Node.start(new ServerOptions("node-4", "127.0.0.1", 0, 0, 0,
        List.of(seed), "console-test", Set.of(), 1024 * 1024));
    try {
      open(node(1), "cluster");
      await().atMost(Duration.ofSeconds(20)).ignoreExceptions().untilAsserted(() ->
          assertThat(memberStatus("node-4")).isEqualTo("alive"));
    } finally {
      extra.close();
    }
    long stopped = System.nanoTime();
    // Failure detection removes a member within ~5 s of its last answer (docs/CLUSTER.md); the page
    // polls every 2 s.
    await().atMost(Duration.ofSeconds(15)).ignoreExceptions().untilAsserted(() ->
        assertThat(memberStatus("node-4")).isEqualTo("gone"));
    System.out.printf("node-4 shown as gone %d ms after it stopped%n",
        (System.nanoTime() - stopped) / 1_000_000);
    assertThat(memberStatus("node-1")).isEqualTo("alive");
    assertThat(byId("card-members-sub").getText()).contains("1 gone");
    screenshot("member-gone");
  }

  /** Tokens as deployed: over HTTPS (the test certificate, trusted by the browser by its key). */
  @Test
  void withTokens_thePageWithoutOne_showsTheSignInAndNothingElse() throws Exception {
    KvServer.Node secured = KvServer.Node.start(new ServerOptions("locked-1", "127.0.0.1", 0, 0, 0,
        List.of(), "console-locked", Set.of("s3cret-token"), 1024 * 1024, null, TLS_CERT, TLS_KEY,
        null, null, null, Set.of(), true, null, null));
    String base = "https://127.0.0.1:" + secured.httpPort();
    try {
      browser.get("about:blank");
      browser.get(base + "/ui/#cluster");
      await().atMost(WAIT).until(() -> byId("login").isDisplayed());
      assertThat(byId("app").isDisplayed()).isFalse();
      String visible = browser.findElement(By.tagName("body")).getText();
      assertThat(visible).contains("Sign in", "requires a bearer token")
          .doesNotContain("locked-1", "Members", "Keys", "Live changes");
      assertThat(browser.findElements(By.cssSelector("#members-body tr"))).isEmpty();
      screenshot("login");

      type("login-token", "wrong");
      byId("login-submit").click();
      await().atMost(WAIT).untilAsserted(() ->
          assertThat(byId("login-error").getText()).contains("not accepted"));
      assertThat(byId("app").isDisplayed()).isFalse();

      type("login-token", "s3cret-token");
      byId("login-submit").click();
      await().atMost(WAIT).ignoreExceptions().untilAsserted(() ->
          assertThat(memberStatus("locked-1")).isEqualTo("alive"));
      assertThat(browser.getCurrentUrl()).startsWith("https://").doesNotContain("s3cret");
      Object stored = ((JavascriptExecutor) browser).executeScript(
          "return [sessionStorage.getItem('kvstore.console.token'), localStorage.length];");
      assertThat(stored).isEqualTo(List.of("s3cret-token", 0L));

      // The watch stream works with the token too (fetch() sends it; EventSource could not).
      browser.get(base + "/ui/#live");
      await().atMost(WAIT).ignoreExceptions().until(() -> byId("live-prefix").isDisplayed());
      byId("live-toggle").click();
      await().atMost(WAIT).untilAsserted(() ->
          assertThat(byId("live-status-text").getText()).startsWith("Watching"));
      secured.store().put("locked/k", "v");
      await().atMost(WAIT).untilAsserted(() ->
          assertThat(byId("live-body").getText()).contains("locked/k"));

      byId("sign-out").click();
      await().atMost(WAIT).until(() -> byId("login").isDisplayed());
      assertThat(byId("app").isDisplayed()).isFalse();
    } finally {
      secured.close();
    }
  }
}
