package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowable;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.assertj.core.api.ThrowableAssert.ThrowingCallable;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link ClusterTls} reads and checks its files when made: good PEM files and stores load; every
 * misconfiguration fails at once with a message naming the file, and nothing secret is echoed.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ClusterTlsConfigTest {
  @TempDir
  static Path dir;
  private static TestPki pki;
  private static TestPki rogue;

  @BeforeAll
  static void makeCertificates() {
    pki = TestPki.create(dir, "good", "n1", "n2");
    Instant now = Instant.now();
    pki.issue("expired", now.minus(Duration.ofDays(2)), now.minus(Duration.ofDays(1)));
    pki.issue("server-only", now.minus(Duration.ofHours(1)), now.plus(Duration.ofDays(1)),
        KeyPurposeId.id_kp_serverAuth);
    pki.issue("both-roles", now.minus(Duration.ofHours(1)), now.plus(Duration.ofDays(1)),
        KeyPurposeId.id_kp_serverAuth, KeyPurposeId.id_kp_clientAuth);
    rogue = TestPki.create(dir, "rogue", "r1");
  }

  private static char[] password() {
    return TestPki.PASSWORD.toCharArray();
  }

  @Test
  void pemFiles_load_andToStringNamesTheCertificateButNoKeyMaterial() throws Exception {
    ClusterTls tls = pki.tls("n1");
    assertThat(tls.certificateSubject()).isEqualTo("CN=n1,O=kvstore tests");
    assertThat(tls.certificateExpiry()).isAfter(Instant.now());
    String key = Files.readString(pki.privateKey("n1"));
    String keyBody = key.lines().filter(l -> !l.startsWith("-----")).findFirst().orElseThrow();
    assertThat(tls.toString()).contains("CN=n1", "CN=good CA", "TLSv1.3")
        .doesNotContain(keyBody);
    assertThat(KvCluster.builder().tls(tls).config().tls()).isSameAs(tls);
    assertThat(ClusterTls.pem(pki.certificate("both-roles"), pki.privateKey("both-roles"),
        pki.caCertificate()).certificateSubject()).startsWith("CN=both-roles");
  }

  @Test
  void keyStoreAndTrustStore_load_withPasswordsOrPasswordFiles() throws Exception {
    ClusterTls tls = ClusterTls.keyStore(pki.keyStore("n2"), password(), pki.trustStore(),
        password());
    assertThat(tls.certificateSubject()).isEqualTo("CN=n2,O=kvstore tests");
    Path pw = Files.writeString(dir.resolve("store.pw"), TestPki.PASSWORD + "\n");
    ClusterTls fromFiles = ClusterTls.keyStoreWithPasswordFiles(pki.keyStore("n2"), pw,
        pki.trustStore(), pw);
    assertThat(fromFiles.toString()).contains("n2.p12").doesNotContain(TestPki.PASSWORD);
  }

  @Test
  void missingFiles_areNamed() {
    Path nowhere = dir.resolve("no-such.pem");
    assertThatThrownBy(() -> ClusterTls.pem(nowhere, pki.privateKey("n1"), pki.caCertificate()))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("certificate file " + nowhere).hasMessageContaining("does not exist");
    assertThatThrownBy(() -> ClusterTls.pem(pki.certificate("n1"), nowhere, pki.caCertificate()))
        .hasMessageContaining("key file " + nowhere);
    assertThatThrownBy(() -> ClusterTls.pem(pki.certificate("n1"), pki.privateKey("n1"), nowhere))
        .hasMessageContaining("CA file " + nowhere);
    assertThatThrownBy(() -> ClusterTls.keyStore(nowhere, password(), pki.trustStore(),
        password())).hasMessageContaining("keystore " + nowhere);
  }

  @Test
  void keyThatDoesNotMatchTheCertificate_isRefused_namingBothFiles() {
    assertThatThrownBy(() -> ClusterTls.pem(pki.certificate("n1"), pki.privateKey("n2"),
        pki.caCertificate()))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("key file " + pki.privateKey("n2"))
        .hasMessageContaining("does not match the certificate 'CN=n1,O=kvstore tests'")
        .hasMessageContaining(pki.certificate("n1").toString());
  }

  @Test
  void caFileWithoutCertificates_isRefused() throws Exception {
    Path keyOnly = pki.privateKey("n1");
    assertThatThrownBy(() -> ClusterTls.pem(pki.certificate("n1"), pki.privateKey("n1"), keyOnly))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("CA file " + keyOnly)
        .hasMessageContaining("no -----BEGIN CERTIFICATE----- block");
    Path empty = Files.writeString(dir.resolve("empty-ca.pem"), "\n");
    assertThatThrownBy(() -> ClusterTls.pem(pki.certificate("n1"), pki.privateKey("n1"), empty))
        .hasMessageContaining("CA file " + empty);
    // A keystore holds a key entry but no trusted-certificate entry: not a truststore.
    assertThatThrownBy(() -> ClusterTls.keyStore(pki.keyStore("n1"), password(),
        pki.keyStore("n2"), password()))
        .hasMessageContaining("truststore " + pki.keyStore("n2"))
        .hasMessageContaining("no trusted certificate entry");
  }

  @Test
  void certificateNotSignedByTheClusterCa_isRefusedAtBuildTime() {
    assertThatThrownBy(() -> ClusterTls.pem(rogue.certificate("r1"), rogue.privateKey("r1"),
        pki.caCertificate()))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("certificate file " + rogue.certificate("r1"))
        .hasMessageContaining("'CN=r1,O=kvstore tests' is not signed by any CA of CA file "
            + pki.caCertificate());
  }

  @Test
  void expiredCertificate_andServerOnlyCertificate_areRefused() {
    assertThatThrownBy(() -> pki.tls("expired"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining(pki.certificate("expired").toString())
        .hasMessageContaining("'CN=expired,O=kvstore tests' expired at");
    assertThatThrownBy(() -> pki.tls("server-only"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("not accepted as a TLS client certificate")
        .hasMessageContaining("clientAuth");
  }

  @Test
  void wrongStorePassword_saysSo_andNeverEchoesIt() {
    char[] wrong = "hunter2-wrong".toCharArray();
    assertThatThrownBy(() -> ClusterTls.keyStore(pki.keyStore("n1"), wrong, pki.trustStore(),
        password()))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("keystore " + pki.keyStore("n1"))
        .hasMessageContaining("wrong password")
        .hasMessageNotContaining("hunter2");
    assertThat(wrong).containsExactly("hunter2-wrong".toCharArray()); // the caller's array is kept
  }

  @Test
  void legacyOrEncryptedKeyFormats_getAConversionHint() throws Exception {
    Path legacy = Files.writeString(dir.resolve("legacy.key"), "-----BEGIN EC PRIVATE KEY-----\n"
        + Base64.getEncoder().encodeToString(new byte[40]) + "\n-----END EC PRIVATE KEY-----\n");
    assertThatThrownBy(() -> ClusterTls.pem(pki.certificate("n1"), legacy, pki.caCertificate()))
        .hasMessageContaining("key file " + legacy)
        .hasMessageContaining("openssl pkcs8 -topk8 -nocrypt");
  }

  @Test
  void aClusterIsOpen_onlyWithNeitherKeyringNorTls() {
    ClusterKeyring keyring = ClusterKeyring.of("k1", ClusterKeyringTest.secret(1));
    ClusterTls tls = pki.tls("n1");
    assertThat(ClusterReplicator.isOpen(KvCluster.builder().config())).isTrue();
    assertThat(ClusterReplicator.isOpen(KvCluster.builder().tls(tls).config())).isFalse();
    assertThat(ClusterReplicator.isOpen(KvCluster.builder().keyring(keyring).config())).isFalse();
    assertThat(ClusterReplicator.isOpen(KvCluster.builder().keyring(keyring).tls(tls).config()))
        .isFalse();
  }

  /** No error of loading stores with password files shows the password, whatever is mixed up. */
  @Test
  void passwordFileErrors_neverContainThePassword() throws Exception {
    String secret = "Pw-7xQ2mZr9vLk3s";
    Path pw = Files.writeString(dir.resolve("leak.pw"), secret + "\n" + secret + "\n");
    Path pwAsJks = Files.writeString(dir.resolve("leak.jks"), secret + "\n");
    Path pwAsP12 = Files.writeString(dir.resolve("leak.p12"), secret + "\n");
    Path good = Files.writeString(dir.resolve("good.pw"), TestPki.PASSWORD + "\n");
    List<ThrowingCallable> attempts = List.of(
        () -> ClusterTls.keyStoreWithPasswordFiles(pki.keyStore("n1"), pw, pki.trustStore(), good),
        () -> ClusterTls.keyStoreWithPasswordFiles(pki.keyStore("n1"), good, pki.trustStore(), pw),
        () -> ClusterTls.keyStoreWithPasswordFiles(pwAsJks, pw, pki.trustStore(), good),
        () -> ClusterTls.keyStoreWithPasswordFiles(pwAsP12, pw, pki.trustStore(), good),
        () -> ClusterTls.keyStoreWithPasswordFiles(pki.keyStore("n1"), good, pwAsP12, pw),
        () -> ClusterTls.keyStoreWithPasswordFiles(pki.keyStore("n1"), good, pki.trustStore(),
            dir.resolve("missing.pw")),
        () -> ClusterTls.pem(pw, pki.privateKey("n1"), pki.caCertificate()),
        () -> ClusterTls.pem(pki.certificate("n1"), pw, pki.caCertificate()),
        () -> ClusterTls.keyStore(pki.keyStore("n1"), secret.toCharArray(), pki.trustStore(),
            password()));
    for (ThrowingCallable attempt : attempts) {
      Throwable error = catchThrowable(attempt);
      assertThat(error).isInstanceOf(IllegalArgumentException.class);
      assertThat(ClusterKeyringTest.allMessages(error)).doesNotContain(secret.substring(0, 8),
          secret.substring(8));
    }
  }
}
