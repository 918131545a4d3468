package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowable;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

@Timeout(value = 10, unit = TimeUnit.SECONDS)
class ClusterKeyringTest {
  static byte[] secret(int seed) {
    byte[] b = new byte[32];
    for (int i = 0; i < b.length; i++) {
      b[i] = (byte) (seed * 31 + i);
    }
    return b;
  }

  static String b64(byte[] b) {
    return Base64.getEncoder().encodeToString(b);
  }

  @Test
  void parse_firstKeyIsPrimary_allAreAccepted_commentsAndBlankLinesIgnored() {
    ClusterKeyring ring = ClusterKeyring.parse("# rotation in progress\n\nnew " + b64(secret(2))
        + "\r\n  old   " + b64(secret(1)) + "  \n");
    assertThat(ring.primaryKeyId()).isEqualTo("new");
    assertThat(ring.keyIds()).containsExactly("new", "old");
    assertThat(ring.accepts("old")).isTrue();
    assertThat(ring.accepts("other")).isFalse();
  }

  @Test
  void parse_bareSecret_getsAStableFingerprintId() {
    ClusterKeyring a = ClusterKeyring.parse(b64(secret(1)));
    ClusterKeyring b = ClusterKeyring.of(secret(1));
    assertThat(a.primaryKeyId()).matches("k[0-9a-f]{8}").isEqualTo(b.primaryKeyId());
    assertThat(ClusterKeyring.of(secret(2)).primaryKeyId()).isNotEqualTo(a.primaryKeyId());
  }

  @Test
  void shortKeys_badBase64_duplicateIds_emptyFiles_areRefused_withoutEchoingSecrets() {
    String shortKey = b64(new byte[31]);
    assertThatThrownBy(() -> ClusterKeyring.parse("k1 " + shortKey))
        .hasMessageContaining("line 1").hasMessageContaining("32").hasMessageNotContaining(shortKey);
    assertThatThrownBy(() -> ClusterKeyring.parse("k1 not*base64*at*all!"))
        .hasMessageContaining("not base64").hasMessageNotContaining("not*base64");
    assertThatThrownBy(() -> ClusterKeyring.parse("k1 " + b64(secret(1)) + "\nk1 " + b64(secret(2))))
        .hasMessageContaining("line 2").hasMessageContaining("twice");
    assertThatThrownBy(() -> ClusterKeyring.parse("# nothing\n\n")).hasMessageContaining("no key");
    assertThatThrownBy(() -> ClusterKeyring.parse("a b c")).hasMessageContaining("line 1");
    assertThatThrownBy(() -> ClusterKeyring.parse("bad/id " + b64(secret(1))))
        .hasMessageContaining("key id");
    assertThatThrownBy(() -> ClusterKeyring.of(new byte[16])).hasMessageContaining("32");
  }

  @Test
  void rotationSteps_addThenPromoteThenRemove() {
    ClusterKeyring v1 = ClusterKeyring.of("k1", secret(1));
    ClusterKeyring v2 = v1.withKey("k2", secret(2));
    assertThat(v2.primaryKeyId()).isEqualTo("k1");
    assertThat(v2.keyIds()).containsExactly("k1", "k2");
    ClusterKeyring v3 = v2.withPrimary("k2");
    assertThat(v3.keyIds()).containsExactly("k2", "k1");
    assertThatThrownBy(() -> v3.withoutKey("k2")).hasMessageContaining("primary");
    ClusterKeyring v4 = v3.withoutKey("k1");
    assertThat(v4.keyIds()).containsExactly("k2");
    assertThat(v1.keyIds()).containsExactly("k1"); // immutable
    assertThatThrownBy(() -> v2.withKey("k2", secret(3))).hasMessageContaining("already");
    assertThatThrownBy(() -> v2.withPrimary("nope")).hasMessageContaining("not in the keyring");
  }

  @Test
  void stillHolds_comparesTheSecret_notJustTheId() {
    ClusterKeyring a = ClusterKeyring.of("k1", secret(1));
    ClusterKeyring sameAgain = ClusterKeyring.parse("k1 " + b64(secret(1)));
    ClusterKeyring otherSecret = ClusterKeyring.of("k1", secret(2));
    assertThat(sameAgain.stillHolds(a.primary())).isTrue();
    assertThat(otherSecret.stillHolds(a.primary())).isFalse();
  }

  @Test
  void toString_namesKeyIdsOnly() {
    byte[] s = secret(1);
    ClusterKeyring ring = ClusterKeyring.of("k1", s);
    assertThat(ring.toString()).isEqualTo("ClusterKeyring{primary=k1, keys=[k1]}")
        .doesNotContain(b64(s));
  }

  @Test
  void fromFile_readsTheFile_andRefusesHugeOnes(@TempDir Path dir) throws IOException {
    Path file = dir.resolve("secret");
    Files.writeString(file, "k9 " + b64(secret(9)) + "\n");
    assertThat(ClusterKeyring.fromFile(file).primaryKeyId()).isEqualTo("k9");
    Path huge = dir.resolve("huge");
    Files.write(huge, "#".repeat(ClusterKeyring.MAX_FILE_BYTES + 1).getBytes(StandardCharsets.UTF_8));
    assertThatThrownBy(() -> ClusterKeyring.fromFile(huge)).hasMessageContaining("larger");
    assertThatThrownBy(() -> ClusterKeyring.fromFile(dir.resolve("missing")))
        .isInstanceOf(IOException.class);
  }

  /** Every message of a throwable and its causes, so nothing hides in a wrapped exception. */
  static String allMessages(Throwable t) {
    StringBuilder all = new StringBuilder();
    for (Throwable c = t; c != null; c = c.getCause()) {
      all.append(c).append('\n');
    }
    return all.toString();
  }

  /**
   * Regression: a key line '&lt;secret&gt; &lt;secret2&gt;' printed the first secret as the
   * invalid key id ("was '5z3ev...'"). No parse error may contain any part of a secret.
   */
  @Test
  void parseErrors_neverContainTheSecrets_ofAMalformedLine(@TempDir Path dir) throws IOException {
    String s1 = b64(secret(11));
    String s2 = b64(secret(12));
    String shortSecret = b64(new byte[16]);
    String notBase64 = s1.substring(0, 20) + "!*" + s1.substring(22);
    String[] files = {
        s1 + " " + s2,
        s1 + " " + s2 + " " + s1,
        "k1 " + notBase64,
        notBase64,
        shortSecret,
        "k1 " + shortSecret,
        s2 + "\t" + shortSecret,
        "k1 " + s1 + "\n" + s1 + " " + s2,
        "k1 " + s1 + "\nk1 " + s2,
    };
    for (String text : files) {
      Path file = Files.writeString(dir.resolve("keys"), text);
      for (Throwable error : new Throwable[] {
          catchThrowable(() -> ClusterKeyring.parse(text)),
          catchThrowable(() -> ClusterKeyring.fromFile(file))}) {
        assertThat(error).as("error for %s", text).isInstanceOf(IllegalArgumentException.class);
        String messages = allMessages(error);
        for (String secret : new String[] {s1, s2, shortSecret, notBase64}) {
          assertThat(messages).as("error for a malformed key file").doesNotContain(
              secret.substring(0, 8), secret.substring(secret.length() - 12, secret.length() - 4));
        }
      }
    }
  }
}
