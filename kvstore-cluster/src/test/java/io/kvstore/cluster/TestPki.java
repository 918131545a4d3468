package io.kvstore.cluster;

import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.time.Instant;
import java.util.Base64;
import java.util.Date;
import java.util.concurrent.atomic.AtomicLong;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.cert.X509v3CertificateBuilder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509ExtensionUtils;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.OperatorCreationException;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;

/**
 * A throwaway CA for cluster TLS tests, and certificates it signs, written as files into a directory
 * (normally a {@code @TempDir}): nothing expiring is committed. EC P-256 keys, certificates valid from
 * an hour ago to 90 days from now (past the nodes' 14-day expiry warning). Uses BouncyCastle's certificate builder with the JDK's own crypto
 * providers (no provider is registered). Making a CA and a few node certificates takes well under a
 * second after the first class loading, so make one per test class.
 *
 * <p>Files: {@code <ca>-ca.pem}, {@code <ca>-truststore.p12}; per node {@code <node>.pem} (the
 * certificate), {@code <node>.key} (unencrypted PKCS#8) and {@code <node>.p12} (key and chain). Stores
 * use {@link #PASSWORD}.
 */
public final class TestPki {
  /** The password of every keystore and truststore written. */
  public static final String PASSWORD = "test-store-password";
  private static final AtomicLong SERIALS = new AtomicLong(System.currentTimeMillis());

  private final Path dir;
  private final String name;
  private final KeyPair caKeys;
  private final X509Certificate ca;

  private TestPki(Path dir, String name) {
    this.dir = dir;
    this.name = name;
    this.caKeys = newKeyPair();
    X500Name subject = new X500Name("O=kvstore tests,CN=" + name + " CA");
    Instant now = Instant.now();
    this.ca = sign(new JcaX509v3CertificateBuilder(subject, serial(), Date.from(now.minus(
        Duration.ofHours(1))), Date.from(now.plus(Duration.ofDays(90))), subject,
        caKeys.getPublic()), true, null, caKeys);
    try {
      writePem(caCertificate(), "CERTIFICATE", ca.getEncoded());
      KeyStore trust = KeyStore.getInstance("PKCS12");
      trust.load(null, null);
      trust.setCertificateEntry("ca", ca);
      store(trust, trustStore());
    } catch (GeneralSecurityException | IOException e) {
      throw new IllegalStateException(e);
    }
  }

  /**
   * A new CA named {@code name} and a certificate signed by it for each node.
   *
   * @param dir where the files go
   * @param name the CA's name, also the prefix of its files
   * @param nodes node names (used as certificate CN and file names)
   * @return the CA
   */
  public static TestPki create(Path dir, String name, String... nodes) {
    TestPki pki = new TestPki(dir, name);
    for (String node : nodes) {
      pki.issue(node);
    }
    return pki;
  }

  /**
   * Issues a certificate for a node, valid from an hour ago to 90 days from now, without
   * extendedKeyUsage (so it serves both TLS roles).
   *
   * @param node the node name
   * @return this
   */
  public TestPki issue(String node) {
    Instant now = Instant.now();
    return issue(node, now.minus(Duration.ofHours(1)), now.plus(Duration.ofDays(90)));
  }

  /**
   * Issues a certificate valid in the given window (for expired or not-yet-valid certificates).
   *
   * @param node the node name
   * @param notBefore start of validity
   * @param notAfter end of validity
   * @param usages extendedKeyUsage purposes; none for no such extension
   * @return this
   */
  public TestPki issue(String node, Instant notBefore, Instant notAfter, KeyPurposeId... usages) {
    KeyPair keys = newKeyPair();
    X509Certificate cert = sign(new JcaX509v3CertificateBuilder(ca, serial(), Date.from(notBefore),
        Date.from(notAfter), new X500Name("O=kvstore tests,CN=" + node), keys.getPublic()),
        false, usages.length == 0 ? null : new ExtendedKeyUsage(usages), caKeys);
    try {
      writePem(certificate(node), "CERTIFICATE", cert.getEncoded());
      writePem(privateKey(node), "PRIVATE KEY", keys.getPrivate().getEncoded());
      KeyStore ks = KeyStore.getInstance("PKCS12");
      ks.load(null, null);
      ks.setKeyEntry("node", keys.getPrivate(), PASSWORD.toCharArray(),
          new Certificate[] {cert, ca});
      store(ks, keyStore(node));
    } catch (GeneralSecurityException | IOException e) {
      throw new IllegalStateException(e);
    }
    return this;
  }

  /**
   * The CA certificate (PEM): the cluster's CA bundle.
   *
   * @return the file
   */
  public Path caCertificate() {
    return dir.resolve(name + "-ca.pem");
  }

  /**
   * A PKCS12 truststore holding the CA certificate.
   *
   * @return the file
   */
  public Path trustStore() {
    return dir.resolve(name + "-truststore.p12");
  }

  /**
   * A node's certificate (PEM).
   *
   * @param node the node name
   * @return the file
   */
  public Path certificate(String node) {
    return dir.resolve(node + ".pem");
  }

  /**
   * A node's unencrypted PKCS#8 private key (PEM).
   *
   * @param node the node name
   * @return the file
   */
  public Path privateKey(String node) {
    return dir.resolve(node + ".key");
  }

  /**
   * A node's PKCS12 keystore: its key, certificate and the CA certificate.
   *
   * @param node the node name
   * @return the file
   */
  public Path keyStore(String node) {
    return dir.resolve(node + ".p12");
  }

  /**
   * The cluster TLS settings of a node, from its PEM files and this CA.
   *
   * @param node the node name
   * @return the settings
   */
  public ClusterTls tls(String node) {
    return ClusterTls.pem(certificate(node), privateKey(node), caCertificate());
  }

  private static KeyPair newKeyPair() {
    try {
      KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
      g.initialize(new ECGenParameterSpec("secp256r1"));
      return g.generateKeyPair();
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException(e);
    }
  }

  private static BigInteger serial() {
    return BigInteger.valueOf(SERIALS.incrementAndGet());
  }

  private static X509Certificate sign(X509v3CertificateBuilder builder, boolean isCa,
      ExtendedKeyUsage usages, KeyPair issuer) {
    try {
      JcaX509ExtensionUtils utils = new JcaX509ExtensionUtils();
      builder.addExtension(Extension.basicConstraints, true, new BasicConstraints(isCa));
      builder.addExtension(Extension.keyUsage, true, new KeyUsage(isCa
          ? KeyUsage.keyCertSign | KeyUsage.cRLSign : KeyUsage.digitalSignature));
      builder.addExtension(Extension.authorityKeyIdentifier, false,
          utils.createAuthorityKeyIdentifier(issuer.getPublic()));
      if (usages != null) {
        builder.addExtension(Extension.extendedKeyUsage, false, usages);
      }
      return new JcaX509CertificateConverter().getCertificate(builder.build(
          new JcaContentSignerBuilder("SHA256withECDSA").build(issuer.getPrivate())));
    } catch (GeneralSecurityException | IOException | OperatorCreationException e) {
      throw new IllegalStateException(e);
    }
  }

  private static void writePem(Path file, String type, byte[] der) throws IOException {
    String body = Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII))
        .encodeToString(der);
    Files.writeString(file, "-----BEGIN " + type + "-----\n" + body + "\n-----END " + type
        + "-----\n", StandardCharsets.US_ASCII);
  }

  private static void store(KeyStore ks, Path file) {
    try (OutputStream out = Files.newOutputStream(file)) {
      ks.store(out, PASSWORD.toCharArray());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException(e);
    }
  }

  @Override
  public String toString() {
    return "TestPki{" + name + " CA in " + dir + "}";
  }
}
