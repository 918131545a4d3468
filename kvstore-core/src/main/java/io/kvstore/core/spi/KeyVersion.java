package io.kvstore.core.spi;

import io.kvstore.core.Version;

import java.util.Objects;

/**
 * A key, the version a store holds for it (live, tombstone or expired), and a fingerprint of that
 * entry's content: what anti-entropy compares.
 *
 * <p>The version alone names one write in the normal course. It does not when a node restarted empty
 * under the same node id reuses a timestamp it issued before (its clock had been pushed ahead by a
 * peer): then two different entries of one key can carry one version. The fingerprint tells them
 * apart, so anti-entropy transfers both ways and the merge's tie-break (see
 * {@link ReplicaStore#apply(Mutation)}) picks the same winner everywhere. It is
 * {@link Mutation#fingerprint()} of the entry, the same for a put and its expired form.
 *
 * @param key the key
 * @param version the version held
 * @param fingerprint the content fingerprint of the entry held (see {@link Digest})
 */
public record KeyVersion(String key, Version version, long fingerprint) {
  /**
   * Checks the key and version.
   *
   * @param key the key
   * @param version the version held
   * @param fingerprint the content fingerprint of the entry held
   */
  public KeyVersion {
    Objects.requireNonNull(key, "key");
    Objects.requireNonNull(version, "version");
  }

  /**
   * The key, version and fingerprint of the entry a mutation makes.
   *
   * @param mutation the mutation
   * @return its key version
   */
  public static KeyVersion of(Mutation mutation) {
    return new KeyVersion(mutation.key(), mutation.version(), mutation.fingerprint());
  }
}
