package io.kvstore.core.spi;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The comparison step of anti-entropy, shared by every replicator so they all decide alike.
 *
 * <p>The exchange: node A sends its {@link Digest}; B computes {@link Digest#diff(Digest)} and answers
 * with its {@link ReplicaStore#keyVersions(java.util.BitSet)} (keys, versions and content
 * fingerprints) for the differing buckets; A calls
 * {@link #compare(List, List)} with its own list for the same buckets, pushes the {@code push} keys'
 * mutations to B and asks B for the {@code pull} keys' mutations. Both sides apply what they receive
 * with the ordinary last-writer-wins merge, so a lost, repeated or crossed message is harmless.
 */
public final class AntiEntropy {
  private AntiEntropy() {}

  /**
   * What one side must send and fetch.
   *
   * @param push keys where this side holds a newer version, the other side has none, or both hold
   *     different entries of the same version
   * @param pull keys where the other side holds a newer version, this side has none, or both hold
   *     different entries of the same version
   */
  public record Plan(List<String> push, List<String> pull) {
    /**
     * Whether nothing needs to move.
     *
     * @return true when both lists are empty
     */
    public boolean isEmpty() {
      return push.isEmpty() && pull.isEmpty();
    }
  }

  /**
   * Compares this side's and the other side's entries for the same buckets. Where both hold one
   * version with different {@link KeyVersion#fingerprint() fingerprints} (different writes under one
   * version, see {@link KeyVersion}), the key is both pushed and pulled: the version alone cannot say
   * which entry wins, and each side's merge applies the tie-break of
   * {@link ReplicaStore#apply(Mutation)} to what it receives, so both end with the same winner.
   *
   * @param mine this side's keys, versions and fingerprints
   * @param theirs the other side's keys, versions and fingerprints
   * @return what to push and what to pull
   */
  public static Plan compare(List<KeyVersion> mine, List<KeyVersion> theirs) {
    Map<String, KeyVersion> other = new HashMap<>(Math.max(16, theirs.size() * 2));
    for (KeyVersion kv : theirs) {
      // A well-behaved peer lists a key once; if not, keep the highest version (any one of a tie).
      other.merge(kv.key(), kv, (a, b) -> a.version().compareTo(b.version()) >= 0 ? a : b);
    }
    List<String> push = new ArrayList<>();
    List<String> pull = new ArrayList<>();
    for (KeyVersion kv : mine) {
      KeyVersion theirsKv = other.remove(kv.key());
      if (theirsKv == null) {
        push.add(kv.key());
      } else {
        int c = kv.version().compareTo(theirsKv.version());
        if (c > 0) {
          push.add(kv.key());
        } else if (c < 0) {
          pull.add(kv.key());
        } else if (kv.fingerprint() != theirsKv.fingerprint()) {
          push.add(kv.key());
          pull.add(kv.key());
        }
      }
    }
    pull.addAll(other.keySet());
    return new Plan(push, pull);
  }
}
