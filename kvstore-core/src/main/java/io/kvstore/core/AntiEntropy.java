package io.kvstore.core;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The comparison step of anti-entropy, shared by every replicator so they all decide alike.
 *
 * <p>The exchange: node A sends its {@link Digest}; B computes {@link Digest#diff(Digest)} and answers
 * with its {@link ReplicaStore#keyVersions(java.util.BitSet)} for the differing buckets; A calls
 * {@link #compare(List, List)} with its own list for the same buckets, pushes the {@code push} keys'
 * mutations to B and asks B for the {@code pull} keys' mutations. Both sides apply what they receive
 * with the ordinary last-writer-wins merge, so a lost, repeated or crossed message is harmless.
 */
public final class AntiEntropy {
  private AntiEntropy() {}

  /**
   * What one side must send and fetch.
   *
   * @param push keys where this side holds a newer version or the other side has none
   * @param pull keys where the other side holds a newer version or this side has none
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
   * Compares this side's and the other side's versions for the same buckets.
   *
   * @param mine this side's keys and versions
   * @param theirs the other side's keys and versions
   * @return what to push and what to pull
   */
  public static Plan compare(List<KeyVersion> mine, List<KeyVersion> theirs) {
    Map<String, Version> other = new HashMap<>(Math.max(16, theirs.size() * 2));
    for (KeyVersion kv : theirs) {
      other.merge(kv.key(), kv.version(), (a, b) -> a.compareTo(b) >= 0 ? a : b);
    }
    List<String> push = new ArrayList<>();
    List<String> pull = new ArrayList<>();
    for (KeyVersion kv : mine) {
      Version theirsV = other.remove(kv.key());
      if (theirsV == null) {
        push.add(kv.key());
      } else {
        int c = kv.version().compareTo(theirsV);
        if (c > 0) {
          push.add(kv.key());
        } else if (c < 0) {
          pull.add(kv.key());
        }
      }
    }
    pull.addAll(other.keySet());
    return new Plan(push, pull);
  }
}
