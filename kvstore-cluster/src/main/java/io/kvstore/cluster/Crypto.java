package io.kvstore.cluster;

import java.nio.charset.StandardCharsets;
import java.security.InvalidKeyException;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.SecureRandom;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/** HMAC-SHA256 and HKDF-SHA256 (RFC 5869) helpers, JDK only. Nothing here logs key material. */
final class Crypto {
  private Crypto() {}

  static final String HMAC = "HmacSHA256";
  static final int MAC_BYTES = 32;
  static final SecureRandom RANDOM = new SecureRandom();

  static byte[] random(int n) {
    byte[] b = new byte[n];
    RANDOM.nextBytes(b);
    return b;
  }

  static Mac mac(byte[] key) {
    try {
      Mac mac = Mac.getInstance(HMAC);
      mac.init(new SecretKeySpec(key, HMAC));
      return mac;
    } catch (NoSuchAlgorithmException | InvalidKeyException e) {
      throw new IllegalStateException("HmacSHA256 is unavailable in this JVM", e);
    }
  }

  /** HMAC-SHA256 over the concatenation of the parts. */
  static byte[] hmac(byte[] key, byte[]... parts) {
    Mac mac = mac(key);
    for (byte[] p : parts) {
      mac.update(p);
    }
    return mac.doFinal();
  }

  /** HKDF-SHA256: extract with the salt, then expand to {@code length} bytes for {@code info}. */
  static byte[] hkdf(byte[] ikm, byte[] salt, byte[] info, int length) {
    if (length > 255 * MAC_BYTES) {
      throw new IllegalArgumentException("HKDF output too long");
    }
    byte[] prk = hmac(salt.length == 0 ? new byte[MAC_BYTES] : salt, ikm);
    byte[] out = new byte[length];
    byte[] t = new byte[0];
    int done = 0;
    for (int i = 1; done < length; i++) {
      t = hmac(prk, t, info, new byte[] {(byte) i});
      int n = Math.min(t.length, length - done);
      System.arraycopy(t, 0, out, done, n);
      done += n;
    }
    return out;
  }

  static byte[] utf8(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  /** Constant-time comparison. */
  static boolean equal(byte[] a, byte[] b) {
    return MessageDigest.isEqual(a, b);
  }

  static String hex(byte[] b, int n) {
    StringBuilder sb = new StringBuilder(n * 2);
    for (int i = 0; i < n; i++) {
      sb.append(Character.forDigit((b[i] >> 4) & 0xF, 16)).append(Character.forDigit(b[i] & 0xF, 16));
    }
    return sb.toString();
  }
}
