package io.kvstore.cluster;

import io.netty.handler.ssl.ClientAuth;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslProvider;
import io.kvstore.core.KeyMaterial;
import java.io.IOException;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.CertificateException;
import java.security.cert.CertificateExpiredException;
import java.security.cert.CertificateNotYetValidException;
import java.security.cert.X509Certificate;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import javax.net.ssl.SSLException;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509TrustManager;

/**
 * Mutual TLS with a cluster CA for both inter-node planes (data plane and membership). Immutable; make
 * one with {@link #pem} or {@link #keyStore} and give it to {@link KvClusterBuilder#tls(ClusterTls)}.
 *
 * <p><b>What defines the cluster</b> is the CA bundle: a node accepts a connection, in either
 * direction, only from a peer whose certificate chains to one of these CAs, and it trusts nothing
 * else (not the JDK's {@code cacerts}). Every node needs its own certificate and private key signed by
 * such a CA, usable for both TLS server and client authentication (no extendedKeyUsage, or both
 * {@code serverAuth} and {@code clientAuth}). Use a CA that issues certificates for this cluster
 * only: anyone holding a certificate it signed is a full member. The certificate does not bind a node
 * id (host names are not checked either, since nodes are addressed by whatever they advertise), so a
 * member can claim any node id; see docs/SECURITY.md.
 *
 * <p><b>Protocol:</b> TLS 1.3 only, with the JDK's own provider and its default cipher suites
 * (AES-GCM, ChaCha20-Poly1305); every node of a cluster runs the same software, so there is no older
 * peer to accommodate. The accepting side requires a client certificate. No revocation checking
 * (CRL/OCSP): to cut a node off, rotate the CA or the keyring.
 *
 * <p><b>Checked when made:</b> every file is read (at most 1 MiB each) and parsed, the private key must
 * match the certificate, and the certificate must chain to the CA bundle, be valid now and allow both
 * TLS roles. Any problem fails with an {@link IllegalArgumentException} whose message names the file.
 * Passwords are copied and used only while loading; neither they nor key material appear in
 * {@link #toString()} or any log line. The files are not watched: new certificates take effect when
 * the node restarts with them.
 */
public final class ClusterTls {
  private static final String PURPOSE = "cluster TLS";
  /** The only protocol offered and accepted. */
  static final String PROTOCOL = "TLSv1.3";

  private final List<X509Certificate> chain;
  private final List<X509Certificate> trusted;
  private final String source;
  private final SslContext server;
  private final SslContext client;

  private ClusterTls(PrivateKey key, List<X509Certificate> chain, List<X509Certificate> trusted,
      String source, String certificateFile, String trustFile) {
    this.chain = List.copyOf(chain);
    this.trusted = List.copyOf(trusted);
    this.source = source;
    checkTrusted(certificateFile, trustFile);
    try {
      X509Certificate[] own = chain.toArray(new X509Certificate[0]);
      X509Certificate[] cas = trusted.toArray(new X509Certificate[0]);
      this.server = SslContextBuilder.forServer(key, own)
          .trustManager(cas)
          .clientAuth(ClientAuth.REQUIRE)
          .sslProvider(SslProvider.JDK)
          .protocols(PROTOCOL)
          .build();
      this.client = SslContextBuilder.forClient()
          .keyManager(key, own)
          .trustManager(cas)
          .sslProvider(SslProvider.JDK)
          .protocols(PROTOCOL)
          .endpointIdentificationAlgorithm(null)
          .build();
    } catch (SSLException | RuntimeException e) {
      throw new IllegalArgumentException("cluster TLS: cannot set up TLS with " + source + ": "
          + e.getMessage(), e);
    }
  }

  /**
   * TLS from PEM files.
   *
   * @param certificateChain this node's certificate first, then any intermediates, as PEM
   *     {@code CERTIFICATE} blocks
   * @param privateKey the certificate's unencrypted PKCS#8 private key ({@code -----BEGIN PRIVATE
   *     KEY-----}; RSA, EC or EdDSA). Convert an older {@code BEGIN RSA/EC PRIVATE KEY} file with
   *     {@code openssl pkcs8 -topk8 -nocrypt}
   * @param trustedCertificates the cluster's CA certificates (one or more PEM blocks): the only
   *     certificates peers are checked against
   * @return the TLS settings
   * @throws IllegalArgumentException if a file is missing, unreadable or malformed, the key does not
   *     match the certificate, or the certificate is not valid under the CA bundle
   */
  public static ClusterTls pem(Path certificateChain, Path privateKey, Path trustedCertificates) {
    Objects.requireNonNull(trustedCertificates, "trustedCertificates");
    KeyMaterial own = KeyMaterial.pem(PURPOSE, certificateChain, privateKey);
    List<X509Certificate> cas = KeyMaterial.certificates(PURPOSE, trustedCertificates, "CA file");
    return new ClusterTls(own.privateKey(), own.chain(), cas, own.source() + ", CAs "
        + trustedCertificates, "certificate file " + certificateChain, "CA file "
        + trustedCertificates);
  }

  /**
   * TLS from a keystore (this node's key and certificate chain) and a truststore (the cluster's CA
   * certificates).
   *
   * @param keyStore a PKCS12 ({@code .p12}, {@code .pfx}) or JKS ({@code .jks}) keystore holding
   *     exactly one private-key entry, whose password is the store's
   * @param keyStorePassword the keystore's password (copied, used only while loading)
   * @param trustStore a PKCS12 or JKS store whose trusted-certificate entries are the cluster's CAs
   * @param trustStorePassword the truststore's password (copied, used only while loading)
   * @return the TLS settings
   * @throws IllegalArgumentException if a store is missing or unreadable, a password wrong, the
   *     keystore does not hold exactly one key, the truststore holds no certificate, or the node's
   *     certificate is not valid under the trusted CAs
   */
  public static ClusterTls keyStore(Path keyStore, char[] keyStorePassword, Path trustStore,
      char[] trustStorePassword) {
    Objects.requireNonNull(keyStorePassword, "keyStorePassword");
    Objects.requireNonNull(trustStore, "trustStore");
    Objects.requireNonNull(trustStorePassword, "trustStorePassword");
    char[] pw = keyStorePassword.clone();
    char[] tpw = trustStorePassword.clone();
    try {
      KeyMaterial own = KeyMaterial.keyStore(PURPOSE, keyStore, pw);
      List<X509Certificate> cas = KeyMaterial.trustedCertificates(PURPOSE, trustStore, tpw);
      return new ClusterTls(own.privateKey(), own.chain(), cas, own.source() + ", truststore "
          + trustStore, "keystore " + keyStore, "truststore " + trustStore);
    } finally {
      Arrays.fill(pw, '\0');
      Arrays.fill(tpw, '\0');
    }
  }

  /**
   * Like {@link #keyStore(Path, char[], Path, char[])}, with each password read from the first line
   * of a file (so it appears neither on a command line nor in the environment).
   *
   * @param keyStore the keystore
   * @param keyStorePasswordFile a file whose first line is the keystore's password
   * @param trustStore the truststore
   * @param trustStorePasswordFile a file whose first line is the truststore's password
   * @return the TLS settings
   * @throws IllegalArgumentException if a password file cannot be read, or as for
   *     {@link #keyStore(Path, char[], Path, char[])}
   */
  public static ClusterTls keyStoreWithPasswordFiles(Path keyStore, Path keyStorePasswordFile,
      Path trustStore, Path trustStorePasswordFile) {
    char[] pw = KeyMaterial.readPassword(PURPOSE,
        Objects.requireNonNull(keyStorePasswordFile, "keyStorePasswordFile"));
    char[] tpw = KeyMaterial.readPassword(PURPOSE,
        Objects.requireNonNull(trustStorePasswordFile, "trustStorePasswordFile"));
    try {
      return keyStore(keyStore, pw, trustStore, tpw);
    } finally {
      Arrays.fill(pw, '\0');
      Arrays.fill(tpw, '\0');
    }
  }

  /**
   * The subject of this node's certificate.
   *
   * @return the subject's distinguished name, as in RFC 2253
   */
  public String certificateSubject() {
    return chain.get(0).getSubjectX500Principal().getName();
  }

  /**
   * When this node's certificate expires: after that it can no longer connect or be connected to.
   *
   * @return the certificate's end of validity
   */
  public Instant certificateExpiry() {
    return chain.get(0).getNotAfter().toInstant();
  }

  /** The TLS context for connections this node accepts (requires a client certificate). */
  SslContext serverContext() {
    return server;
  }

  /** The TLS context for connections this node opens. */
  SslContext clientContext() {
    return client;
  }

  /** Where the key material came from and whom it names; never key material or passwords. */
  @Override
  public String toString() {
    List<String> cas = new ArrayList<>();
    for (X509Certificate c : trusted) {
      cas.add(c.getSubjectX500Principal().getName());
    }
    return "ClusterTls{" + PROTOCOL + ", certificate '" + certificateSubject() + "', CAs " + cas
        + ", from " + source + "}";
  }

  // ---- loading and checking --------------------------------------------------------------------

  /** The certificate must chain to the CA bundle, be valid now, and allow both TLS roles. */
  private void checkTrusted(String certificateFile, String trustFile) {
    X509TrustManager tm;
    try {
      KeyStore anchors = KeyStore.getInstance("PKCS12");
      anchors.load(null, null);
      for (int i = 0; i < trusted.size(); i++) {
        anchors.setCertificateEntry("ca-" + i, trusted.get(i));
      }
      TrustManagerFactory tmf = TrustManagerFactory.getInstance("PKIX");
      tmf.init(anchors);
      tm = null;
      for (TrustManager t : tmf.getTrustManagers()) {
        if (t instanceof X509TrustManager x) {
          tm = x;
        }
      }
      if (tm == null) {
        throw new IllegalStateException("the JDK offers no X509TrustManager");
      }
    } catch (GeneralSecurityException | IOException e) {
      throw new IllegalArgumentException("cluster TLS: cannot load the CAs of " + trustFile + ": "
          + e.getMessage(), e);
    }
    String prefix = "cluster TLS " + certificateFile + ": certificate '" + certificateSubject()
        + "' ";
    for (X509Certificate c : chain) {
      String which = c == chain.get(0) ? "" : "(its chain's '"
          + c.getSubjectX500Principal().getName() + "') ";
      try {
        c.checkValidity();
      } catch (CertificateExpiredException e) {
        throw new IllegalArgumentException(prefix + which + "expired at "
            + c.getNotAfter().toInstant(), e);
      } catch (CertificateNotYetValidException e) {
        throw new IllegalArgumentException(prefix + which + "is not valid before "
            + c.getNotBefore().toInstant(), e);
      }
    }
    X509Certificate[] own = chain.toArray(new X509Certificate[0]);
    String role = "server";
    try {
      tm.checkServerTrusted(own, "UNKNOWN");
      role = "client";
      tm.checkClientTrusted(own, "UNKNOWN");
    } catch (CertificateException e) {
      String message = String.valueOf(e.getMessage());
      if (message.contains("path building failed")) {
        throw new IllegalArgumentException(prefix + "is not signed by any CA of " + trustFile
            + " (every node's certificate must be issued by the cluster CA)", e);
      }
      throw new IllegalArgumentException(prefix + "is not accepted as a TLS " + role
          + " certificate under the CAs of " + trustFile + ": " + message + " (a node acts as TLS "
          + "server and client: with extendedKeyUsage it needs both serverAuth and clientAuth)", e);
    }
  }
}
