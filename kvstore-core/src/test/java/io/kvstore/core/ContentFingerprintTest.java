package io.kvstore.core;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class ContentFingerprintTest {
  @Test
  void equalContent_givesEqualFingerprints_andAnyWriteChangesIt() {
    try (KvStore a = KvStore.builder().nodeId("fa").build();
        KvStore b = KvStore.builder().nodeId("fb").build();
        KvStore empty = KvStore.builder().nodeId("fe").build()) {
      assertThat(a.contentFingerprint()).as("two empty stores").isEqualTo(b.contentFingerprint());
      a.put("k", "v");
      long one = a.contentFingerprint();
      assertThat(one).isNotEqualTo(b.contentFingerprint());
      ReplicaViews.of(b).apply(ReplicaViews.of(a).mutation("k"));
      assertThat(b.contentFingerprint()).as("the same entry at the same version").isEqualTo(one);
      a.put("k", "v");
      assertThat(a.contentFingerprint()).as("same value, newer version").isNotEqualTo(one);
      long beforeDelete = a.contentFingerprint();
      a.delete("k");
      assertThat(a.contentFingerprint()).as("a tombstone counts").isNotEqualTo(beforeDelete)
          .isNotEqualTo(empty.contentFingerprint());
    }
  }
}
