package io.kvstore.http;

import io.kvstore.core.KeyMaterial;
import java.nio.file.Path;
import java.security.KeyStore;
import java.util.Objects;

/**
 * TLS for the HTTP API: the server's certificate chain and private key, from PEM files or a keystore.
 * Immutable. The files are read and checked when the value is made, so a wrong path, password or
 * format fails at configuration time with a message naming the file, not at the first connection.
 *
 * <p>PEM: a certificate chain file (the server's certificate first, then intermediates) and an
 * unencrypted PKCS#8 private key ({@code -----BEGIN PRIVATE KEY-----}; RSA, EC or EdDSA). Convert
 * an older {@code BEGIN RSA/EC PRIVATE KEY} file with {@code openssl pkcs8 -topk8 -nocrypt}.
 * Keystore: PKCS12 (or JKS) holding one private-key entry. Jetty's defaults choose protocols and
 * cipher suites (TLS 1.2 and 1.3, no known-weak suites). {@link #toString()} never shows the password.
 *
 * <p>The files are read by {@link KeyMaterial}, the loader the cluster's TLS uses too: a missing file
 * is named as missing and the key must match the certificate.
 */
public final class HttpTls {
  private static final String PURPOSE = "TLS";

  private final KeyStore keyStore;
  private final char[] password;
  private final String source;

  private HttpTls(KeyStore keyStore, char[] password, String source) {
    this.keyStore = keyStore;
    this.password = password;
    this.source = source;
  }

  /**
   * TLS from PEM files.
   *
   * @param certificateChain PEM certificates, the server's own first
   * @param privateKey the unencrypted PKCS#8 PEM private key of the first certificate
   * @return the TLS settings
   * @throws IllegalArgumentException if a file is missing, unreadable or not in the expected format
   */
  public static HttpTls pem(Path certificateChain, Path privateKey) {
    KeyMaterial material = KeyMaterial.pem(PURPOSE, certificateChain, privateKey);
    char[] password = new char[0];
    return new HttpTls(material.toKeyStore("kvstore", password), password, material.source());
  }

  /**
   * TLS from a keystore file.
   *
   * @param keyStoreFile a PKCS12 ({@code .p12}, {@code .pfx}) or JKS ({@code .jks}) keystore with
   *     exactly one private-key entry, protected by the store's password
   * @param password the keystore's password (also used for the key entry); copied
   * @return the TLS settings
   * @throws IllegalArgumentException if the file is missing, the password wrong, the store does not
   *     hold exactly one key with a certificate, or the key does not match its certificate
   */
  public static HttpTls keyStore(Path keyStoreFile, char[] password) {
    Objects.requireNonNull(password, "password");
    char[] pw = password.clone();
    KeyMaterial material = KeyMaterial.keyStore(PURPOSE, keyStoreFile, pw);
    return new HttpTls(material.toKeyStore("kvstore", pw), pw, material.source());
  }

  /** The loaded keystore (for the Jetty connector). */
  KeyStore keyStore() {
    return keyStore;
  }

  /** Its password (for the Jetty connector). */
  String password() {
    return new String(password);
  }

  /** Where the key material came from; never the password. */
  @Override
  public String toString() {
    return "HttpTls{" + source + "}";
  }
}
