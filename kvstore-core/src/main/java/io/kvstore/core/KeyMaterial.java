package io.kvstore.core;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.SecureRandom;
import java.security.Signature;
import java.security.UnrecoverableKeyException;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.MGF1ParameterSpec;
import java.security.spec.PKCS8EncodedKeySpec;
import java.security.spec.PSSParameterSpec;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A TLS identity: one private key and its certificate chain, read from PEM files or from a keystore,
 * and checked when read. The one loader behind both the cluster's TLS settings and the HTTP API's, so
 * both accept the same files and fail the same way.
 *
 * <p>Every file is read at most 1 MiB, a missing file is named as missing, and the private key must
 * match the chain's first certificate (checked by signing random bytes with the key and verifying them
 * with the certificate). PEM keys are unencrypted PKCS#8 ({@code -----BEGIN PRIVATE KEY-----}; RSA, EC
 * or EdDSA); an older {@code BEGIN RSA/EC PRIVATE KEY} file is refused with the {@code openssl}
 * command that converts it. A keystore is PKCS12, or JKS when its name ends in {@code .jks}, with
 * exactly one private-key entry whose password is the store's. Every failure is an
 * {@link IllegalArgumentException} whose message begins with the caller's purpose (for example
 * {@code "cluster TLS"}) and names the file. Passwords are used only while loading and never appear
 * in messages or {@link #toString()}.
 */
public final class KeyMaterial {
  /** The largest certificate, key, store or password file read: 1 MiB. */
  public static final int MAX_FILE_BYTES = 1024 * 1024;
  private static final Pattern PEM = Pattern.compile(
      "-----BEGIN ([A-Z0-9 ]+)-----([A-Za-z0-9+/=\\s]*?)-----END \\1-----");
  private static final SecureRandom RANDOM = new SecureRandom();

  private final PrivateKey key;
  private final List<X509Certificate> chain;
  private final String source;

  private KeyMaterial(PrivateKey key, List<X509Certificate> chain, String source) {
    this.key = key;
    this.chain = List.copyOf(chain);
    this.source = source;
  }

  /**
   * Reads a key and its chain from PEM files.
   *
   * @param purpose what the material is for, the first words of every error message
   * @param certificateChain PEM {@code CERTIFICATE} blocks, the key's own certificate first
   * @param privateKey one unencrypted PKCS#8 PEM private key
   * @return the checked key material
   * @throws IllegalArgumentException if a file is missing, unreadable or malformed, or the key does
   *     not match the first certificate
   */
  public static KeyMaterial pem(String purpose, Path certificateChain, Path privateKey) {
    Objects.requireNonNull(purpose, "purpose");
    Objects.requireNonNull(certificateChain, "certificateChain");
    Objects.requireNonNull(privateKey, "privateKey");
    List<X509Certificate> chain = certificates(purpose, certificateChain, "certificate file");
    List<byte[]> keys = pemBlocks(purpose, privateKey, "key file", "PRIVATE KEY");
    if (keys.size() != 1) {
      throw new IllegalArgumentException(purpose + " key file " + privateKey + " must hold exactly "
          + "one unencrypted PKCS#8 '-----BEGIN PRIVATE KEY-----' block, found " + keys.size()
          + " (convert with: openssl pkcs8 -topk8 -nocrypt -in old.key -out new.key)");
    }
    PrivateKey key = parseKey(keys.get(0));
    Arrays.fill(keys.get(0), (byte) 0);
    if (key == null) {
      throw new IllegalArgumentException(purpose + " key file " + privateKey
          + " is not an RSA, EC or EdDSA PKCS#8 private key");
    }
    checkMatch(purpose, key, chain.get(0), "key file " + privateKey,
        "certificate file " + certificateChain);
    return new KeyMaterial(key, chain, "PEM " + certificateChain + " + " + privateKey);
  }

  /**
   * Reads a key and its chain from a keystore.
   *
   * @param purpose what the material is for, the first words of every error message
   * @param keyStore a PKCS12 ({@code .p12}, {@code .pfx}) or JKS ({@code .jks}) keystore with exactly
   *     one private-key entry, protected by the store's password
   * @param password the store's password (not kept)
   * @return the checked key material
   * @throws IllegalArgumentException if the store is missing or unreadable, the password wrong, the
   *     store does not hold exactly one key with a certificate, or the key does not match it
   */
  public static KeyMaterial keyStore(String purpose, Path keyStore, char[] password) {
    Objects.requireNonNull(purpose, "purpose");
    Objects.requireNonNull(keyStore, "keyStore");
    Objects.requireNonNull(password, "password");
    KeyStore ks = load(purpose, keyStore, password, "keystore");
    PrivateKey key = null;
    List<X509Certificate> chain = new ArrayList<>();
    int keys = 0;
    try {
      for (String alias : Collections.list(ks.aliases())) {
        if (!ks.isKeyEntry(alias)) {
          continue;
        }
        keys++;
        key = (PrivateKey) ks.getKey(alias, password);
        Certificate[] certs = ks.getCertificateChain(alias);
        chain.clear();
        for (Certificate c : certs == null ? new Certificate[0] : certs) {
          chain.add((X509Certificate) c);
        }
      }
    } catch (UnrecoverableKeyException e) {
      throw new IllegalArgumentException(purpose + " keystore " + keyStore + ": the key entry "
          + "needs a password different from the store's; kvstore uses the store password for both");
    } catch (GeneralSecurityException | ClassCastException e) {
      throw new IllegalArgumentException("invalid " + purpose + " keystore " + keyStore + ": "
          + e.getMessage(), e);
    }
    if (keys != 1) {
      throw new IllegalArgumentException(purpose + " keystore " + keyStore + " must hold exactly "
          + "one private-key entry, found " + keys);
    }
    if (chain.isEmpty()) {
      throw new IllegalArgumentException(purpose + " keystore " + keyStore
          + " holds a private key without a certificate");
    }
    checkMatch(purpose, key, chain.get(0), "keystore " + keyStore, "keystore " + keyStore);
    return new KeyMaterial(key, chain, "keystore " + keyStore);
  }

  /**
   * Reads trusted certificates (for example a CA bundle) from a PEM file.
   *
   * @param purpose what they are for, the first words of every error message
   * @param file PEM {@code CERTIFICATE} blocks, at least one
   * @param what how messages name the file (for example {@code "CA file"})
   * @return the certificates, in file order
   * @throws IllegalArgumentException if the file is missing, unreadable or holds no valid certificate
   */
  public static List<X509Certificate> certificates(String purpose, Path file, String what) {
    List<X509Certificate> out = new ArrayList<>();
    try {
      CertificateFactory cf = CertificateFactory.getInstance("X.509");
      for (byte[] der : pemBlocks(purpose, file, what, "CERTIFICATE")) {
        out.add((X509Certificate) cf.generateCertificate(new ByteArrayInputStream(der)));
      }
    } catch (GeneralSecurityException | ClassCastException e) {
      throw new IllegalArgumentException(purpose + " " + what + " " + file
          + " holds an invalid certificate: " + e.getMessage(), e);
    }
    if (out.isEmpty()) {
      throw new IllegalArgumentException(purpose + " " + what + " " + file
          + " holds no -----BEGIN CERTIFICATE----- block");
    }
    return List.copyOf(out);
  }

  /**
   * Reads the trusted-certificate entries of a truststore.
   *
   * @param purpose what they are for, the first words of every error message
   * @param trustStore a PKCS12 or JKS store
   * @param password its password (not kept)
   * @return its trusted certificates, at least one
   * @throws IllegalArgumentException if the store is missing, unreadable, the password wrong or it
   *     holds no trusted certificate
   */
  public static List<X509Certificate> trustedCertificates(String purpose, Path trustStore,
      char[] password) {
    KeyStore ts = load(purpose, trustStore, password, "truststore");
    List<X509Certificate> cas = new ArrayList<>();
    try {
      for (String alias : Collections.list(ts.aliases())) {
        if (ts.isCertificateEntry(alias) && ts.getCertificate(alias) instanceof X509Certificate c) {
          cas.add(c);
        }
      }
    } catch (GeneralSecurityException e) {
      throw new IllegalArgumentException("invalid " + purpose + " truststore " + trustStore + ": "
          + e.getMessage(), e);
    }
    if (cas.isEmpty()) {
      throw new IllegalArgumentException(purpose + " truststore " + trustStore
          + " holds no trusted certificate entry (import the cluster CA with keytool -importcert)");
    }
    return List.copyOf(cas);
  }

  /**
   * Reads a password from the first line of a file (so it is neither on a command line nor in the
   * environment); a trailing {@code \r} is dropped.
   *
   * @param purpose what it is for, the first words of every error message
   * @param file the file
   * @return the password; the caller should clear it after use
   * @throws IllegalArgumentException if the file is missing, unreadable or larger than 1 MiB
   */
  public static char[] readPassword(String purpose, Path file) {
    byte[] bytes = read(purpose, file, "password file");
    try {
      String text = new String(bytes, StandardCharsets.UTF_8);
      int end = text.indexOf('\n');
      String line = end < 0 ? text : text.substring(0, end);
      if (line.endsWith("\r")) {
        line = line.substring(0, line.length() - 1);
      }
      return line.toCharArray();
    } finally {
      Arrays.fill(bytes, (byte) 0);
    }
  }

  /**
   * The private key.
   *
   * @return the key
   */
  public PrivateKey privateKey() {
    return key;
  }

  /**
   * The certificate chain, the key's own certificate first.
   *
   * @return the chain, never empty
   */
  public List<X509Certificate> chain() {
    return chain;
  }

  /**
   * The material as a new in-memory PKCS12 keystore with one entry, for APIs that want a keystore.
   *
   * @param alias the entry's alias
   * @param password the store's and the entry's password
   * @return the keystore
   */
  public KeyStore toKeyStore(String alias, char[] password) {
    try {
      KeyStore ks = KeyStore.getInstance("PKCS12");
      ks.load(null, null);
      ks.setKeyEntry(alias, key, password, chain.toArray(new Certificate[0]));
      return ks;
    } catch (GeneralSecurityException | IOException e) {
      throw new IllegalStateException("cannot build an in-memory keystore: " + e.getMessage(), e);
    }
  }

  /** Where the material came from and whom it names; never key material or passwords. */
  @Override
  public String toString() {
    return "KeyMaterial{'" + chain.get(0).getSubjectX500Principal().getName() + "' from " + source
        + "}";
  }

  /**
   * Where the material came from, for the callers' own descriptions.
   *
   * @return the files it was read from, for example {@code "PEM cert.pem + key.pem"}
   */
  public String source() {
    return source;
  }

  // ---- loading and checking --------------------------------------------------------------------

  private static void checkMatch(String purpose, PrivateKey key, X509Certificate cert,
      String keyFile, String certFile) {
    String algorithm = key.getAlgorithm().toUpperCase(Locale.ROOT);
    String sigAlg = switch (algorithm) {
      case "RSA" -> "SHA256withRSA";
      case "EC" -> "SHA256withECDSA";
      case "RSASSA-PSS" -> "RSASSA-PSS";
      default -> key.getAlgorithm(); // Ed25519, Ed448, EdDSA
    };
    byte[] data = new byte[32];
    RANDOM.nextBytes(data);
    boolean ok;
    try {
      Signature signer = signature(sigAlg, algorithm);
      signer.initSign(key);
      signer.update(data);
      byte[] sig = signer.sign();
      Signature verifier = signature(sigAlg, algorithm);
      verifier.initVerify(cert.getPublicKey());
      verifier.update(data);
      ok = verifier.verify(sig);
    } catch (GeneralSecurityException | RuntimeException e) {
      ok = false;
    }
    if (!ok) {
      throw new IllegalArgumentException(purpose + " " + keyFile + ": the private key does not "
          + "match the certificate '" + cert.getSubjectX500Principal().getName() + "' in "
          + certFile);
    }
  }

  private static Signature signature(String sigAlg, String keyAlgorithm)
      throws GeneralSecurityException {
    Signature s = Signature.getInstance(sigAlg);
    if (keyAlgorithm.equals("RSASSA-PSS")) {
      s.setParameter(new PSSParameterSpec("SHA-256", "MGF1", MGF1ParameterSpec.SHA256, 32, 1));
    }
    return s;
  }

  private static PrivateKey parseKey(byte[] der) {
    PKCS8EncodedKeySpec spec = new PKCS8EncodedKeySpec(der);
    for (String algorithm : List.of("RSA", "EC", "Ed25519", "Ed448", "RSASSA-PSS")) {
      try {
        return KeyFactory.getInstance(algorithm).generatePrivate(spec);
      } catch (GeneralSecurityException | RuntimeException e) {
        // try the next algorithm
      }
    }
    return null;
  }

  private static byte[] read(String purpose, Path file, String what) {
    byte[] bytes;
    try (InputStream in = Files.newInputStream(file)) {
      bytes = in.readNBytes(MAX_FILE_BYTES + 1);
    } catch (NoSuchFileException e) {
      throw new IllegalArgumentException(purpose + " " + what + " " + file + " does not exist");
    } catch (IOException e) {
      throw new IllegalArgumentException("cannot read " + purpose + " " + what + " " + file + ": "
          + e);
    }
    if (bytes.length > MAX_FILE_BYTES) {
      throw new IllegalArgumentException(purpose + " " + what + " " + file
          + " is larger than 1 MiB");
    }
    return bytes;
  }

  private static List<byte[]> pemBlocks(String purpose, Path file, String what, String type) {
    byte[] bytes = read(purpose, file, what);
    String text = new String(bytes, StandardCharsets.US_ASCII);
    Arrays.fill(bytes, (byte) 0);
    List<byte[]> out = new ArrayList<>();
    Matcher m = PEM.matcher(text);
    while (m.find()) {
      if (m.group(1).equals(type)) {
        try {
          out.add(Base64.getMimeDecoder().decode(m.group(2)));
        } catch (IllegalArgumentException e) {
          throw new IllegalArgumentException(purpose + " " + what + " " + file + " has a " + type
              + " block that is not base64");
        }
      } else if (m.group(1).contains("PRIVATE KEY") && type.equals("PRIVATE KEY")) {
        throw new IllegalArgumentException(purpose + " key file " + file + " holds a '"
            + m.group(1) + "' block; kvstore reads unencrypted PKCS#8 'PRIVATE KEY' (convert with: "
            + "openssl pkcs8 -topk8 -nocrypt -in old.key -out new.key)");
      }
    }
    return out;
  }

  private static KeyStore load(String purpose, Path file, char[] password, String what) {
    byte[] bytes = read(purpose, file, what);
    String type = file.getFileName().toString().toLowerCase(Locale.ROOT).endsWith(".jks")
        ? "JKS" : "PKCS12";
    try {
      KeyStore ks = KeyStore.getInstance(type);
      ks.load(new ByteArrayInputStream(bytes), password);
      return ks;
    } catch (IOException e) {
      boolean wrongPassword = e.getCause() instanceof UnrecoverableKeyException
          || (e.getMessage() != null && e.getMessage().contains("password"));
      throw new IllegalArgumentException("cannot read " + purpose + " " + what + " " + file + ": "
          + (wrongPassword ? "wrong password" : "not a " + type + " store (" + e.getMessage() + ")"),
          e);
    } catch (GeneralSecurityException e) {
      throw new IllegalArgumentException("invalid " + purpose + " " + what + " " + file + ": "
          + e.getMessage(), e);
    } finally {
      Arrays.fill(bytes, (byte) 0);
    }
  }
}
