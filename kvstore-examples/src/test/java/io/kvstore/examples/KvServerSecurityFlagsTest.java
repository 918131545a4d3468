package io.kvstore.examples;

import static io.kvstore.examples.ServerCommand.execute;
import static io.kvstore.examples.ServerCommand.parse;
import static io.kvstore.examples.ServerCommand.tlsDir;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.kvstore.examples.ServerCommand.Run;
import io.kvstore.cluster.KvCluster;
import io.kvstore.cluster.TestPki;
import io.kvstore.core.Member;
import io.kvstore.examples.server.KvServer;
import io.kvstore.examples.server.ServerOptions;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.time.Duration;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The server's security flags: cluster key file (validated, never echoed, re-read while running),
 * HTTP token file, HTTPS from PEM files or a keystore, and cluster TLS from PEM files or stores; bad
 * combinations and files exit with code 2 and name the flag and the file.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class KvServerSecurityFlagsTest {
  private static final Path TLS = tlsDir();

  /** A secret file only its owner may read: the server refuses ones every user may read. */
  private static Path secretFile(Path path, String content) throws java.io.IOException {
    Files.writeString(path, content);
    Files.setPosixFilePermissions(path,
        java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"));
    return path;
  }

  private static String key(int seed) {
    byte[] b = new byte[32];
    for (int i = 0; i < b.length; i++) {
      b[i] = (byte) (seed + i * 7);
    }
    return Base64.getEncoder().encodeToString(b);
  }

  @Test
  void securityFlags_areParsed_andFilesChecked(@TempDir Path dir) throws Exception {
    Path secret = secretFile(dir.resolve("cluster.key"), "k1 " + key(1) + "\n");
    Path tokens = secretFile(dir.resolve("tokens"), "# ops\ntok-a\n\ntok-b\n");
    ServerOptions o = parse("--cluster-secret-file", secret.toString(), "--auth-token-file",
        tokens.toString(), "--tls-cert", TLS.resolve("server-cert.pem").toString(), "--tls-key",
        TLS.resolve("server-key.pem").toString());
    assertThat(o.clusterSecretFile()).isEqualTo(secret);
    assertThat(o.authTokens()).containsExactlyInAnyOrder("tok-a", "tok-b");
    assertThat(o.tlsCert()).isEqualTo(TLS.resolve("server-cert.pem"));
    assertThat(o.toString()).doesNotContain("tok-a").doesNotContain(key(1));
    assertThat(KvServer.httpTls(o)).isNotNull();
    ServerOptions ks = parse("--tls-keystore", TLS.resolve("server.p12").toString(),
        "--tls-keystore-password-file", TLS.resolve("server.p12.password").toString());
    assertThat(KvServer.httpTls(ks).toString()).contains("server.p12");
  }

  @Test
  void badSecurityFlags_exitWith2_nameTheFlag_andNeverEchoTheSecret(@TempDir Path dir)
      throws Exception {
    String shortKey = Base64.getEncoder().encodeToString(new byte[16]);
    Path weak = Files.writeString(dir.resolve("weak.key"), "k1 " + shortKey + "\n");
    Run r = execute("--cluster-secret-file", weak.toString());
    assertThat(r.code()).isEqualTo(2);
    assertThat(r.err()).contains("--cluster-secret-file").contains("32").doesNotContain(shortKey);
    Run missing = execute("--cluster-secret-file", dir.resolve("nope").toString());
    assertThat(missing.code()).isEqualTo(2);
    assertThat(missing.err()).contains("--cluster-secret-file");
    Run halfPem = execute("--tls-cert", TLS.resolve("server-cert.pem").toString());
    assertThat(halfPem.code()).isEqualTo(2);
    assertThat(halfPem.err()).contains("--tls-key");
    Run both = execute("--tls-cert", TLS.resolve("server-cert.pem").toString(), "--tls-key",
        TLS.resolve("server-key.pem").toString(), "--tls-keystore",
        TLS.resolve("server.p12").toString(), "--tls-keystore-password-file",
        TLS.resolve("server.p12.password").toString());
    assertThat(both.code()).isEqualTo(2);
    assertThat(both.err()).contains("not both");
    Path wrongPassword = Files.writeString(dir.resolve("pw"), "nope-pw\n");
    Run badPw = execute("--tls-keystore", TLS.resolve("server.p12").toString(),
        "--tls-keystore-password-file", wrongPassword.toString());
    assertThat(badPw.code()).isEqualTo(2);
    assertThat(badPw.err()).contains("--tls-keystore").contains("wrong password")
        .doesNotContain("nope-pw");
    Path emptyTokens = Files.writeString(dir.resolve("empty"), "\n");
    assertThat(execute("--auth-token-file", emptyTokens.toString()).code()).isEqualTo(2);
  }

  @Test
  void clusterTlsFlags_areParsed_andTheFilesChecked(@TempDir Path dir) throws Exception {
    TestPki pki = TestPki.create(dir, "flags", "n1");
    ServerOptions pem = parse("--cluster-tls-cert", pki.certificate("n1").toString(),
        "--cluster-tls-key", pki.privateKey("n1").toString(), "--cluster-tls-ca",
        pki.caCertificate().toString());
    assertThat(pem.clusterTls().load().certificateSubject()).isEqualTo("CN=n1,O=kvstore tests");
    Path pw = Files.writeString(dir.resolve("store.pw"), TestPki.PASSWORD + "\n");
    ServerOptions stores = parse("--cluster-tls-keystore", pki.keyStore("n1").toString(),
        "--cluster-tls-keystore-password-file", pw.toString(), "--cluster-tls-truststore",
        pki.trustStore().toString(), "--cluster-tls-truststore-password-file", pw.toString());
    assertThat(stores.clusterTls().load().toString()).contains("n1.p12")
        .doesNotContain(TestPki.PASSWORD);
    assertThat(stores.toString()).doesNotContain(TestPki.PASSWORD);
    assertThat(parse().clusterTls()).isNull();
  }

  @Test
  void badClusterTlsFlags_exitWith2_andNameTheFlagAndFile(@TempDir Path dir) throws Exception {
    TestPki pki = TestPki.create(dir, "flags", "n1", "n2");
    String cert = pki.certificate("n1").toString();
    String key = pki.privateKey("n1").toString();
    String ca = pki.caCertificate().toString();
    Path nowhere = dir.resolve("missing-ca.pem");
    Run missing = execute("--cluster-tls-cert", cert, "--cluster-tls-key", key,
        "--cluster-tls-ca", nowhere.toString());
    assertThat(missing.code()).isEqualTo(2);
    assertThat(missing.err()).contains("--cluster-tls-ca").contains(nowhere.toString())
        .contains("does not exist").doesNotContain("\tat ");
    Run mismatch = execute("--cluster-tls-cert", cert, "--cluster-tls-key",
        pki.privateKey("n2").toString(), "--cluster-tls-ca", ca);
    assertThat(mismatch.code()).isEqualTo(2);
    assertThat(mismatch.err()).contains(pki.privateKey("n2").toString())
        .contains("does not match the certificate");
    Run half = execute("--cluster-tls-cert", cert, "--cluster-tls-key", key);
    assertThat(half.code()).isEqualTo(2);
    assertThat(half.err()).contains("--cluster-tls-ca").contains("go together");
    Path pw = Files.writeString(dir.resolve("store.pw"), TestPki.PASSWORD + "\n");
    Run both = execute("--cluster-tls-cert", cert, "--cluster-tls-key", key, "--cluster-tls-ca", ca,
        "--cluster-tls-keystore", pki.keyStore("n1").toString());
    assertThat(both.code()).isEqualTo(2);
    assertThat(both.err()).contains("not both");
    Path wrong = Files.writeString(dir.resolve("wrong.pw"), "not-the-password-42\n");
    Run badPw = execute("--cluster-tls-keystore", pki.keyStore("n1").toString(),
        "--cluster-tls-keystore-password-file", wrong.toString(), "--cluster-tls-truststore",
        pki.trustStore().toString(), "--cluster-tls-truststore-password-file", pw.toString());
    assertThat(badPw.code()).isEqualTo(2);
    assertThat(badPw.err()).contains("--cluster-tls-keystore").contains("wrong password")
        .contains(pki.keyStore("n1").toString()).doesNotContain("not-the-password-42");
  }

  private static HttpClient trustingClient() throws Exception {
    KeyStore trust = KeyStore.getInstance("PKCS12");
    trust.load(null, null);
    try (InputStream in = Files.newInputStream(TLS.resolve("server-cert.pem"))) {
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

  @Test
  void twoSecuredNodes_formACluster_serveHttps_andPickUpARotatedKeyFile(@TempDir Path dir)
      throws Exception {
    Path secret1 = secretFile(dir.resolve("n1.key"), "old " + key(1) + "\n");
    Path secret2 = secretFile(dir.resolve("n2.key"), "old " + key(1) + "\n");
    Path tokens = secretFile(dir.resolve("tokens"), "t0k\n");
    String[] tls = {"--tls-cert", TLS.resolve("server-cert.pem").toString(), "--tls-key",
        TLS.resolve("server-key.pem").toString(), "--auth-token-file", tokens.toString()};
    Duration reload = Duration.ofMillis(200);
    try (KvServer.Node n1 = KvServer.Node.start(parse(concat(tls, "--node-id", "n1",
        "--http-port", "0", "--cluster-port", "0", "--cluster-secret-file", secret1.toString())),
        reload)) {
      String seed = KvCluster.node(n1.store()).orElseThrow().membershipAddress();
      try (KvServer.Node n2 = KvServer.Node.start(parse(concat(tls, "--node-id", "n2",
          "--http-port", "0", "--cluster-port", "0", "--join", seed, "--cluster-secret-file",
          secret2.toString())), reload)) {
        await().atMost(Duration.ofSeconds(30)).until(() -> n1.store().cluster().members().stream()
            .map(Member::nodeId).toList().containsAll(List.of("n1", "n2")));
        HttpClient client = trustingClient();
        HttpResponse<String> unauthorized = client.send(HttpRequest.newBuilder(URI.create(
            "https://127.0.0.1:" + n1.httpPort() + "/v1/kv/k")).PUT(
                HttpRequest.BodyPublishers.ofString("v")).build(),
            HttpResponse.BodyHandlers.ofString());
        assertThat(unauthorized.statusCode()).isEqualTo(401);
        HttpResponse<String> put = client.send(HttpRequest.newBuilder(URI.create(
            "https://127.0.0.1:" + n1.httpPort() + "/v1/kv/k")).header("Authorization",
                "Bearer t0k").PUT(HttpRequest.BodyPublishers.ofString("v")).build(),
            HttpResponse.BodyHandlers.ofString());
        assertThat(put.statusCode()).isEqualTo(200);
        await().atMost(Duration.ofSeconds(10)).until(() -> n2.store().getString("k").isPresent());

        // Rotation through the files: add, promote, retire, each on both nodes.
        for (String content : List.of("old " + key(1) + "\nnew " + key(2) + "\n",
            "new " + key(2) + "\nold " + key(1) + "\n", "new " + key(2) + "\n")) {
          Files.writeString(secret1, content);
          Files.writeString(secret2, content);
          String primary = content.substring(0, 3);
          await().atMost(Duration.ofSeconds(10)).until(() -> List.of(n1, n2).stream().allMatch(n ->
              KvCluster.node(n.store()).orElseThrow().keyring().primaryKeyId().equals(primary)
              && KvCluster.node(n.store()).orElseThrow().keyring().keyIds().size()
                  == content.strip().split("\n").length));
        }
        n2.store().put("after-rotation", "yes");
        await().atMost(Duration.ofSeconds(15)).until(
            () -> n1.store().getString("after-rotation").isPresent());
        // A broken file is refused and the node keeps its keys.
        Files.writeString(secret1, "garbage\n");
        await().during(Duration.ofMillis(800)).atMost(Duration.ofSeconds(2)).until(() ->
            KvCluster.node(n1.store()).orElseThrow().keyring().primaryKeyId().equals("new"));
      }
    }
  }

  private static String[] concat(String[] a, String... b) {
    String[] out = new String[a.length + b.length];
    System.arraycopy(a, 0, out, 0, a.length);
    System.arraycopy(b, 0, out, a.length, b.length);
    return out;
  }
}
