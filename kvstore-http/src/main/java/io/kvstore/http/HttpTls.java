package io.kvstore.http;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.Objects;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

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
 */
public final class HttpTls {
  private static final int MAX_FILE_BYTES = 1024 * 1024;
  private static final Pattern PEM = Pattern.compile(
      "-----BEGIN ([A-Z0-9 ]+)-----([A-Za-z0-9+/=\\s]*?)-----END \\1-----");

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
    Objects.requireNonNull(certificateChain, "certificateChain");
    Objects.requireNonNull(privateKey, "privateKey");
    List<Certificate> chain = new ArrayList<>();
    try {
      CertificateFactory cf = CertificateFactory.getInstance("X.509");
      for (byte[] der : pemBlocks(certificateChain, "CERTIFICATE")) {
        chain.add(cf.generateCertificate(new ByteArrayInputStream(der)));
      }
    } catch (GeneralSecurityException e) {
      throw new IllegalArgumentException("TLS certificate file " + certificateChain
          + " holds an invalid certificate: " + e.getMessage(), e);
    }
    if (chain.isEmpty()) {
      throw new IllegalArgumentException("TLS certificate file " + certificateChain
          + " holds no -----BEGIN CERTIFICATE----- block");
    }
    List<byte[]> keys = pemBlocks(privateKey, "PRIVATE KEY");
    if (keys.size() != 1) {
      throw new IllegalArgumentException("TLS key file " + privateKey + " must hold exactly one "
          + "unencrypted PKCS#8 '-----BEGIN PRIVATE KEY-----' block, found " + keys.size()
          + " (convert with: openssl pkcs8 -topk8 -nocrypt -in old.key -out new.key)");
    }
    PrivateKey key = null;
    PKCS8EncodedKeySpec spec = new PKCS8EncodedKeySpec(keys.get(0));
    for (String algorithm : List.of("RSA", "EC", "Ed25519", "Ed448", "RSASSA-PSS")) {
      try {
        key = KeyFactory.getInstance(algorithm).generatePrivate(spec);
        break;
      } catch (GeneralSecurityException | RuntimeException e) {
        // try the next algorithm
      }
    }
    if (key == null) {
      throw new IllegalArgumentException("TLS key file " + privateKey
          + " is not an RSA, EC or EdDSA PKCS#8 private key");
    }
    char[] password = new char[0];
    try {
      KeyStore ks = KeyStore.getInstance("PKCS12");
      ks.load(null, null);
      ks.setKeyEntry("kvstore", key, password, chain.toArray(new Certificate[0]));
      return new HttpTls(ks, password, "PEM " + certificateChain + " + " + privateKey);
    } catch (GeneralSecurityException | IOException e) {
      throw new IllegalArgumentException("TLS key " + privateKey + " does not fit certificate "
          + certificateChain + ": " + e.getMessage(), e);
    }
  }

  /**
   * TLS from a keystore file.
   *
   * @param keyStoreFile a PKCS12 ({@code .p12}, {@code .pfx}) or JKS keystore with one private key
   * @param password the keystore's password (also used for the key entry); copied
   * @return the TLS settings
   * @throws IllegalArgumentException if the file is missing, the password wrong or no key inside
   */
  public static HttpTls keyStore(Path keyStoreFile, char[] password) {
    Objects.requireNonNull(keyStoreFile, "keyStoreFile");
    Objects.requireNonNull(password, "password");
    char[] pw = password.clone();
    KeyStore ks;
    try (InputStream in = Files.newInputStream(keyStoreFile)) {
      String type = keyStoreFile.getFileName().toString().toLowerCase(java.util.Locale.ROOT)
          .endsWith(".jks") ? "JKS" : "PKCS12";
      ks = KeyStore.getInstance(type);
      ks.load(in, pw);
    } catch (IOException e) {
      throw new IllegalArgumentException("cannot read TLS keystore " + keyStoreFile + ": "
          + (e.getCause() != null && e.getMessage() != null
              && e.getMessage().contains("password") ? "wrong password" : e.getMessage()), e);
    } catch (GeneralSecurityException e) {
      throw new IllegalArgumentException("invalid TLS keystore " + keyStoreFile + ": "
          + e.getMessage(), e);
    }
    try {
      boolean hasKey = false;
      for (String alias : java.util.Collections.list(ks.aliases())) {
        hasKey |= ks.isKeyEntry(alias);
      }
      if (!hasKey) {
        throw new IllegalArgumentException("TLS keystore " + keyStoreFile + " holds no private key");
      }
    } catch (GeneralSecurityException e) {
      throw new IllegalArgumentException("invalid TLS keystore " + keyStoreFile + ": "
          + e.getMessage(), e);
    }
    return new HttpTls(ks, pw, "keystore " + keyStoreFile);
  }

  /** The loaded keystore (for the Jetty connector). */
  KeyStore keyStore() {
    return keyStore;
  }

  /** Its password (for the Jetty connector). */
  String password() {
    return new String(password);
  }

  private static List<byte[]> pemBlocks(Path file, String type) {
    byte[] bytes;
    try (InputStream in = Files.newInputStream(file)) {
      bytes = in.readNBytes(MAX_FILE_BYTES + 1);
    } catch (IOException e) {
      throw new IllegalArgumentException("cannot read TLS file " + file + ": " + e, e);
    }
    if (bytes.length > MAX_FILE_BYTES) {
      throw new IllegalArgumentException("TLS file " + file + " is larger than 1 MiB");
    }
    String text = new String(bytes, StandardCharsets.US_ASCII);
    Arrays.fill(bytes, (byte) 0);
    List<byte[]> out = new ArrayList<>();
    Matcher m = PEM.matcher(text);
    while (m.find()) {
      if (m.group(1).equals(type)) {
        try {
          out.add(Base64.getMimeDecoder().decode(m.group(2)));
        } catch (IllegalArgumentException e) {
          throw new IllegalArgumentException("TLS file " + file + " has a " + type
              + " block that is not base64");
        }
      } else if (m.group(1).contains("PRIVATE KEY") && type.equals("PRIVATE KEY")) {
        throw new IllegalArgumentException("TLS key file " + file + " holds a '" + m.group(1)
            + "' block; kvstore reads unencrypted PKCS#8 'PRIVATE KEY' (convert with: openssl "
            + "pkcs8 -topk8 -nocrypt -in old.key -out new.key)");
      }
    }
    return out;
  }

  /** Where the key material came from; never the password. */
  @Override
  public String toString() {
    return "HttpTls{" + source + "}";
  }
}
