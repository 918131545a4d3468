package io.kvstore.core.testing;

import io.kvstore.core.KeyVersion;
import io.kvstore.core.Mutation;
import java.util.BitSet;
import java.util.List;

/** One copy of a message in flight in an {@link InMemoryNetwork}. Immutable. */
final class Envelope {
  final long seq;
  final String from;
  final String to;
  final MessageKind kind;
  final Payload payload;
  final long sentAt;
  final long deliverAt;

  Envelope(long seq, String from, String to, MessageKind kind, Payload payload, long sentAt,
      long deliverAt) {
    this.seq = seq;
    this.from = from;
    this.to = to;
    this.kind = kind;
    this.payload = payload;
    this.sentAt = sentAt;
    this.deliverAt = deliverAt;
  }

  @Override
  public String toString() {
    return "#" + seq + " " + from + "->" + to + " " + kind + " " + payload + " (sent at step " + sentAt
        + ")";
  }

  /** A message body; every implementation is immutable and says which keys it concerns. */
  interface Payload {
    boolean mentions(String key);
  }

  /** Fan-out of one write; {@code writeId} 0 means the writer waits for no ack. */
  record MutationMsg(Mutation mutation, long writeId) implements Payload {
    @Override
    public boolean mentions(String key) {
      return mutation.key().equals(key);
    }

    @Override
    public String toString() {
      return mutation + (writeId == 0 ? "" : " write#" + writeId);
    }
  }

  record AckMsg(long writeId) implements Payload {
    @Override
    public boolean mentions(String key) {
      return false;
    }

    @Override
    public String toString() {
      return "write#" + writeId;
    }
  }

  /** The initiator's digest; the array is never modified after construction. */
  record DigestMsg(long session, long[] buckets) implements Payload {
    @Override
    public boolean mentions(String key) {
      return false;
    }

    @Override
    public String toString() {
      return "session#" + session + " " + buckets.length + " buckets";
    }
  }

  /** One chunk of the responder's keys and versions, covering the named buckets completely. */
  record KeyVersionsMsg(long session, BitSet buckets, List<KeyVersion> keyVersions) implements Payload {
    KeyVersionsMsg {
      buckets = (BitSet) buckets.clone();
      keyVersions = List.copyOf(keyVersions);
    }

    @Override
    public BitSet buckets() {
      return (BitSet) buckets.clone();
    }

    @Override
    public boolean mentions(String key) {
      for (KeyVersion kv : keyVersions) {
        if (kv.key().equals(key)) {
          return true;
        }
      }
      return false;
    }

    @Override
    public String toString() {
      return "session#" + session + " buckets " + buckets + " " + keyVersions;
    }
  }

  record PullMsg(long session, List<String> keys) implements Payload {
    PullMsg {
      keys = List.copyOf(keys);
    }

    @Override
    public boolean mentions(String key) {
      return keys.contains(key);
    }

    @Override
    public String toString() {
      return "session#" + session + " " + keys;
    }
  }

  record AeMutationsMsg(long session, List<Mutation> mutations) implements Payload {
    AeMutationsMsg {
      mutations = List.copyOf(mutations);
    }

    @Override
    public boolean mentions(String key) {
      for (Mutation m : mutations) {
        if (m.key().equals(key)) {
          return true;
        }
      }
      return false;
    }

    @Override
    public String toString() {
      return "session#" + session + " " + mutations;
    }
  }
}
