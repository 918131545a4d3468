package io.kvstore.http;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.kvstore.core.KvStore;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.net.URISyntaxException;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.time.Duration;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLHandshakeException;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * HTTPS with PEM files or a keystore, together with bearer tokens; clear configuration errors; plain
 * HTTP and garbage on the TLS port are refused without harm. Test certificate: src/test/resources/tls.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class HttpsTest {
  static final Path TLS_DIR = resourceDir();
  private KvStore store;
  private KvHttpServer server;

  private static Path resourceDir() {
    try {
      return Path.of(HttpsTest.class.getResource("/tls/server.p12").toURI()).getParent();
    } catch (URISyntaxException e) {
      throw new IllegalStateException(e);
    }
  }

  static HttpTls pem() {
    return HttpTls.pem(TLS_DIR.resolve("server-cert.pem"), TLS_DIR.resolve("server-key.pem"));
  }

  /** A client that trusts exactly the test certificate. */
  static HttpClient trustingClient() throws Exception {
    KeyStore trust = KeyStore.getInstance("PKCS12");
    trust.load(null, null);
    try (InputStream in = Files.newInputStream(TLS_DIR.resolve("server-cert.pem"))) {
      trust.setCertificateEntry("kvstore", CertificateFactory.getInstance("X.509")
          .generateCertificate(in));
    }
    TrustManagerFactory tmf = TrustManagerFactory.getInstance(
        TrustManagerFactory.getDefaultAlgorithm());
    tmf.init(trust);
    SSLContext ctx = SSLContext.getInstance("TLS");
    ctx.init(null, tmf.getTrustManagers(), null);
    return HttpClient.newBuilder().sslContext(ctx).connectTimeout(Duration.ofSeconds(5)).build();
  }

  private void start(HttpTls tls) {
    store = KvStore.builder().nodeId("tls-node").build();
    server = KvHttpServer.builder(store).port(0).tls(tls).authTokens(Set.of("t0ken")).build().start();
  }

  @AfterEach
  void stop() {
    if (server != null) {
      server.close();
    }
    if (store != null) {
      store.close();
    }
  }

  private HttpResponse<String> send(HttpClient client, String method, String path, String body,
      String token) throws Exception {
    HttpRequest.Builder b = HttpRequest.newBuilder(URI.create("https://127.0.0.1:" + server.port()
        + path)).timeout(Duration.ofSeconds(10)).method(method, body == null
        ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(body));
    if (token != null) {
      b.header("Authorization", "Bearer " + token);
    }
    return client.send(b.build(), HttpResponse.BodyHandlers.ofString());
  }

  @Test
  void pem_servesHttps_andStillRequiresTheToken() throws Exception {
    start(pem());
    HttpClient client = trustingClient();
    assertThat(send(client, "PUT", "/v1/kv/k", "v", null).statusCode()).isEqualTo(401);
    assertThat(store.getString("k")).isEmpty();
    assertThat(send(client, "PUT", "/v1/kv/k", "v", "t0ken").statusCode()).isEqualTo(200);
    HttpResponse<String> got = send(client, "GET", "/v1/kv/k", null, "t0ken");
    assertThat(got.statusCode()).isEqualTo(200);
    assertThat(got.body()).isEqualTo("v");
    assertThat(send(client, "GET", "/health", null, null).statusCode()).isEqualTo(200);
  }

  @Test
  void keyStore_servesHttps() throws Exception {
    String password = Files.readString(TLS_DIR.resolve("server.p12.password")).strip();
    start(HttpTls.keyStore(TLS_DIR.resolve("server.p12"), password.toCharArray()));
    assertThat(send(trustingClient(), "GET", "/health", null, null).statusCode()).isEqualTo(200);
  }

  @Test
  void clientThatDoesNotTrustTheCertificate_failsTheHandshake() {
    start(pem());
    assertThatThrownBy(() -> send(HttpClient.newHttpClient(), "GET", "/health", null, null))
        .isInstanceOf(SSLHandshakeException.class);
  }

  @Test
  void plainHttpAndGarbage_onTheTlsPort_areRefused_andTheServerStaysHealthy() throws Exception {
    start(pem());
    byte[] junk = new byte[400];
    new Random(5).nextBytes(junk);
    for (byte[] bytes : new byte[][] {
        "PUT /v1/kv/plain HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer t0ken\r\nContent-Length: 1\r\n\r\nv"
            .getBytes(StandardCharsets.US_ASCII), junk}) {
      try (Socket socket = new Socket("127.0.0.1", server.port())) {
        socket.setSoTimeout(10_000);
        OutputStream out = socket.getOutputStream();
        out.write(bytes);
        out.flush();
        assertThat(closedByServer(socket.getInputStream())).isTrue();
      }
    }
    assertThat(store.getString("plain")).isEmpty();
    assertThat(send(trustingClient(), "GET", "/health", null, null).statusCode()).isEqualTo(200);
  }

  private static boolean closedByServer(InputStream in) {
    try {
      byte[] buf = new byte[1024];
      while (in.read(buf) >= 0) {
        // a TLS alert or an HTTP 400 may come first
      }
      return true;
    } catch (SocketTimeoutException e) {
      return false;
    } catch (IOException e) {
      return true;
    }
  }

  @Test
  void badTlsFiles_failAtConfiguration_withTheFileNamed(@TempDir Path dir) throws IOException {
    Path missing = dir.resolve("missing.pem");
    assertThatThrownBy(() -> HttpTls.pem(missing, TLS_DIR.resolve("server-key.pem")))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("missing.pem");
    Path rsaStyle = dir.resolve("old.key");
    Files.writeString(rsaStyle, "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n");
    assertThatThrownBy(() -> HttpTls.pem(TLS_DIR.resolve("server-cert.pem"), rsaStyle))
        .hasMessageContaining("openssl pkcs8");
    assertThatThrownBy(() -> HttpTls.pem(TLS_DIR.resolve("server-key.pem"),
        TLS_DIR.resolve("server-key.pem"))).hasMessageContaining("no -----BEGIN CERTIFICATE");
    assertThatThrownBy(() -> HttpTls.keyStore(TLS_DIR.resolve("server.p12"), "xyzzy-9".toCharArray()))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("server.p12")
        .hasMessageContaining("wrong password").hasMessageNotContaining("xyzzy-9");
  }

  @Test
  void aMissingFile_isNamedAsMissing_andAKeyOfAnotherCertificate_isRefused(@TempDir Path dir)
      throws Exception {
    Path missing = dir.resolve("nowhere-key.pem");
    assertThatThrownBy(() -> HttpTls.pem(TLS_DIR.resolve("server-cert.pem"), missing))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("key file " + missing).hasMessageContaining("does not exist");
    java.security.KeyPairGenerator g = java.security.KeyPairGenerator.getInstance("RSA");
    g.initialize(2048);
    byte[] der = g.generateKeyPair().getPrivate().getEncoded();
    Path otherKey = dir.resolve("other-key.pem");
    Files.writeString(otherKey, "-----BEGIN PRIVATE KEY-----\n"
        + java.util.Base64.getMimeEncoder().encodeToString(der) + "\n-----END PRIVATE KEY-----\n");
    assertThatThrownBy(() -> HttpTls.pem(TLS_DIR.resolve("server-cert.pem"), otherKey))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("key file " + otherKey)
        .hasMessageContaining("does not match the certificate")
        .hasMessageContaining("server-cert.pem");
  }

  @Test
  void toString_neverShowsThePassword() {
    HttpTls tls = HttpTls.keyStore(TLS_DIR.resolve("server.p12"), "test-password".toCharArray());
    assertThat(tls.toString()).contains("server.p12").doesNotContain("test-password");
  }
}
