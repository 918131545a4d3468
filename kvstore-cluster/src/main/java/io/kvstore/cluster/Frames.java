package io.kvstore.cluster;

import io.kvstore.core.spi.KeyVersion;
import io.kvstore.core.KvStoreConfig;
import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.WriteRequest;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.NodeIds;
import io.kvstore.core.Version;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufUtil;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;

/**
 * The data-plane wire format: a hand-written binary codec.
 *
 * <p>Every frame is a 4-byte big-endian length (of what follows, at most {@link #MAX_FRAME_BYTES}),
 * one type byte and a body. Integers are big-endian; counts and lengths are unsigned LEB128 varints;
 * strings are a varint byte length plus strict UTF-8. A decoder checks every length against both the
 * bytes actually left in the frame and a fixed ceiling before it allocates anything, rejects unknown
 * types, invalid UTF-8 and trailing bytes, and reports any of that as a {@link MalformedFrameException}.
 * Hand-written because it is the fastest and simplest encoding to bound: no reflection, no schema
 * compiler, about 20 bytes of overhead per mutation besides key, node id and value. docs/CLUSTER.md
 * shows the layout of every frame.
 */
final class Frames {
  private Frames() {}

  /** "KVS1", first field of the handshake: anything else is not a kvstore peer. */
  static final int MAGIC = 0x4B565331;
  /**
   * The data-plane protocol version this build speaks (and the lowest it accepts). 2: expired puts
   * carry their value hash and AE_KEYS entries a content fingerprint ({@code Digest.FORMAT} 3);
   * version-1 nodes are refused at the handshake and ignored in membership.
   */
  static final int PROTOCOL_VERSION = 2;
  static final int MIN_PROTOCOL_VERSION = 2;

  /**
   * 1664 KiB: a value at the store's hard limit (1536 KiB) plus 128 KiB for the largest key, node id
   * and headers; well under ScaleCube's and common proxies' 2 MiB.
   */
  static final int MAX_FRAME_BYTES = KvStoreConfig.MAX_VALUE_BYTES_LIMIT + 128 * 1024;
  /** The largest configurable batch target; keeps batches of small mutations well below a frame. */
  static final int MAX_BATCH_BYTES_LIMIT = 1024 * 1024;
  static final int LENGTH_FIELD_BYTES = 4;
  /**
   * 4 KiB: the largest frame either side accepts before the handshake is complete. HELLO, HELLO_OK,
   * HELLO_REJECT and AUTH are all well under it (the largest legal HELLO, with a 64-byte cluster
   * name, node id and 256-byte auth field, is under 500 bytes); only then may frames reach
   * {@link #MAX_FRAME_BYTES}.
   */
  static final int MAX_HANDSHAKE_FRAME_BYTES = 4 * 1024;

  static final int NONCE_BYTES = 16;
  static final int MAX_AUTH_BYTES = 256;
  static final int MAX_KEY_BYTES = 64 * 1024;
  static final int MAX_NODE_ID_BYTES = NodeIds.MAX_LENGTH;
  static final int MAX_CLUSTER_NAME_BYTES = 64;
  static final int MAX_TEXT_BYTES = 1024;
  static final int MAX_BUCKETS = 1 << 20;

  // Frame types. 0x0_: handshake, 0x1_: replication, 0x2_: anti-entropy.
  static final byte HELLO = 0x01;
  static final byte HELLO_OK = 0x02;
  static final byte HELLO_REJECT = 0x03;
  static final byte AUTH = 0x04;
  static final byte MUTATIONS = 0x10;
  static final byte ACK = 0x11;
  static final byte AE_DIGEST = 0x20;
  static final byte AE_DIFF = 0x21;
  static final byte AE_KEYS = 0x22;
  static final byte AE_PULL = 0x23;
  static final byte AE_PULL_RESPONSE = 0x24;
  /**
   * Partitioned mode: sent before a round's AE_DIGEST by a pending owner; the responder answers the
   * listed partitions whatever its own view of their owners (a pull of data being moved).
   */
  static final byte AE_PULL_REQUEST = 0x25;
  /**
   * Partitioned mode: the responder's entries of the differing buckets of partitions the initiator
   * asked to have <em>streamed</em> (AE_PULL_REQUEST's second bitmap): mutations, sent before its
   * AE_DIFF (which counts them), instead of listing those keys for a compare and a pull.
   */
  static final byte AE_STREAM = 0x26;
  /** AE_DIFF trailer flag: the responder answered the round's AE_PULL_REQUEST. */
  static final int DIFF_PULL_SEEN = 1;
  static final byte AE_ABORT = 0x2F;
  /** Partitioned mode: a client write forwarded to an owner of its key, and the owner's answer. */
  static final byte FORWARD = 0x30;
  static final byte FORWARD_RESULT = 0x31;
  /** Partitioned mode: a read of one key from an owner, and its answer. */
  static final byte READ = 0x32;
  static final byte READ_RESULT = 0x33;
  /** Partitioned mode: one node's part of a cluster-wide scan, and its answer. */
  static final byte SCAN = 0x34;
  static final byte SCAN_RESULT = 0x35;
  /** Partitioned mode: which partitions the sender is still pulling (pending), under which map. */
  static final byte STATUS = 0x36;
  /** Partitioned mode: a cluster-wide listener's subscription to a peer, its end, and an event. */
  static final byte SUBSCRIBE = 0x37;
  static final byte UNSUBSCRIBE = 0x38;
  static final byte EVENT = 0x39;
  /** At most this many subscriptions one connection may hold on its responder. */
  static final int MAX_SUBSCRIPTIONS_PER_CONNECTION = 64;
  /** A SCAN_RESULT stops adding entries past this many bytes (and says it was truncated). */
  static final int MAX_SCAN_RESULT_BYTES = MAX_FRAME_BYTES - 64 * 1024;

  /** {@link ForwardResult#status()}: the write succeeded. */
  static final int FORWARD_OK = 0;
  /** The write's condition did not hold; {@code version} is the current one (or null). */
  static final int FORWARD_CONDITION_FAILED = 1;
  /** The owner applied it but the concern was not met; {@code required}/{@code acked} say how. */
  static final int FORWARD_CONCERN_FAILED = 2;
  /** The owner refused the request as invalid (its own limits); nothing was written. */
  static final int FORWARD_INVALID = 3;
  /** The owner could not run it (closing, read-only after a storage failure, ...). */
  static final int FORWARD_UNAVAILABLE = 4;
  /**
   * The owner is still pulling the key's partition (a pending owner) and does not decide a
   * conditional write on incomplete data; nothing was written, another owner may run it.
   */
  static final int FORWARD_PENDING = 5;
  private static final int READ_HAS_MUTATION = 1;
  private static final int READ_PENDING = 2;
  private static final int FWD_DELETE = 1;
  private static final int FWD_IF_ABSENT = 2;
  private static final int FWD_EXPECTED = 4;

  /** Authentication schemes a handshake may name (see docs/CLUSTER.md and docs/SECURITY.md). */
  static final int AUTH_NONE = 0;
  /** Cluster keyring: HMAC-SHA256 challenge-response, then an HMAC tag on every frame. */
  static final int AUTH_HMAC_SHA256 = 1;
  /** The longest MAC an AUTH frame may carry. */
  static final int MAX_MAC_BYTES = 64;

  /** Bits of a MUTATIONS frame's flags byte. */
  static final int FLAG_ANTI_ENTROPY = 1;
  /**
   * Fan-out: the sender had more queued for the peer than this batch held (it is behind). The peer
   * defers its periodic anti-entropy rounds with the sender meanwhile (they would find mostly
   * writes still on their way). A hint only: a receiver that does not know it ignores it, as
   * every kvstore node of protocol 2 does.
   */
  static final int FLAG_BACKLOG = 2;

  // Mutation kinds.
  private static final int KIND_PUT = 0;
  private static final int KIND_DELETE = 1;
  private static final int KIND_EXPIRED = 2;

  /** Why a handshake was refused. */
  enum RejectReason {
    CLUSTER_MISMATCH(1), VERSION_MISMATCH(2), BAD_NODE_ID(3), SELF_CONNECTION(4), AUTH_FAILED(5),
    SHUTTING_DOWN(6);

    final int code;

    RejectReason(int code) {
      this.code = code;
    }

    static RejectReason of(int code) {
      for (RejectReason r : values()) {
        if (r.code == code) {
          return r;
        }
      }
      throw new MalformedFrameException("unknown handshake reject reason " + code);
    }
  }

  /** A decoded frame. */
  sealed interface Frame permits Hello, HelloOk, HelloReject, Auth, MutationBatch, Ack, AeDigest, AeDiff,
      AeKeys, AePull, AePullResponse, AeStream, AeAbort, Forward, ForwardResult, Read, ReadResult, Scan,
      ScanResult, AePullRequest, Status, Subscribe, Unsubscribe, Event {}

  record Hello(int magic, int minVersion, int maxVersion, String clusterName, String nodeId,
      byte[] nonce, int authScheme, byte[] auth) implements Frame {}

  record HelloOk(int version, String nodeId, byte[] nonce, int authScheme, byte[] auth)
      implements Frame {}

  record HelloReject(RejectReason reason, String message) implements Frame {}

  /** The connecting node's proof that it holds the key named in its HELLO. */
  record Auth(byte[] mac) implements Frame {}

  record MutationBatch(long batchId, int flags, List<Mutation> mutations) implements Frame {
    boolean isAntiEntropy() {
      return (flags & FLAG_ANTI_ENTROPY) != 0;
    }
  }

  /** Which mutations of a batch the receiver holds (at their version or newer). */
  record Ack(long batchId, int count, BitSet held) implements Frame {}

  record AeDigest(long roundId, int format, int bucketCount, int from, long[] hashes, boolean last)
      implements Frame {}

  /**
   * The responder's differing buckets; {@code pullSeen} says it answered the round as the pull its
   * AE_PULL_REQUEST asked for, and {@code streamed} how many entries it sent by AE_STREAM before
   * this frame (the initiator checks it received them all).
   */
  record AeDiff(long roundId, int bucketCount, boolean more, BitSet covered, BitSet leftOut,
      boolean pullSeen, int streamed) implements Frame {
    /** A diff that left nothing out ({@code more} false) or does not say what. */
    AeDiff(long roundId, int bucketCount, boolean more, BitSet covered) {
      this(roundId, bucketCount, more, covered, new BitSet());
    }

    AeDiff(long roundId, int bucketCount, boolean more, BitSet covered, BitSet leftOut) {
      this(roundId, bucketCount, more, covered, leftOut, false, 0);
    }
  }

  record AeKeys(long roundId, boolean last, List<KeyVersion> keys) implements Frame {}

  record AePull(long roundId, List<String> keys) implements Frame {}

  /** Mutations for the first {@code processed} requested keys (keys not held are skipped). */
  record AePullResponse(long roundId, int processed, List<Mutation> mutations) implements Frame {}

  /** Mutations of a streamed pull (see {@link #AE_STREAM}); no answer is due. */
  record AeStream(long roundId, List<Mutation> mutations) implements Frame {}

  record AeAbort(long roundId, String message) implements Frame {}

  record Forward(long requestId, WriteRequest request) implements Frame {}

  /**
   * An owner's answer to a {@link Forward}: {@code version} is the write's (OK) or the key's current
   * one (CONDITION_FAILED, null for none); {@code required}/{@code acked} for CONCERN_FAILED.
   */
  record ForwardResult(long requestId, int status, Version version, boolean wasLive, int required,
      int acked, String message) implements Frame {}

  record Read(long requestId, String key) implements Frame {}

  /** An owner's answer to a {@link Read}: its mutation of the key, null when it holds none. */
  record ReadResult(long requestId, Mutation mutation, boolean pending) implements Frame {
    ReadResult(long requestId, Mutation mutation) {
      this(requestId, mutation, false);
    }
  }

  /**
   * The partitions (of {@link Placement#PARTITIONS}) a pull round asks for whatever the owners, and
   * those of them to stream (the initiator holds nothing of them yet: send the entries, not a key
   * list to compare).
   */
  record AePullRequest(long roundId, BitSet partitions, BitSet stream) implements Frame {
    AePullRequest(long roundId, BitSet partitions) {
      this(roundId, partitions, new BitSet());
    }
  }

  /**
   * The partitions the sender has not finished pulling, under its map {@code mapVersion}, and of
   * those the ones it still pulls from the receiver ({@code fromYou}, a subset; all of them when the
   * sender did not say).
   */
  record Status(long mapVersion, BitSet pending, BitSet fromYou) implements Frame {
    Status(long mapVersion, BitSet pending) {
      this(mapVersion, pending, (BitSet) pending.clone());
    }
  }

  /** Send EVENTs of changes of keys starting with {@code prefix} (see the cluster listener). */
  record Subscribe(long subscriptionId, String prefix) implements Frame {}

  record Unsubscribe(long subscriptionId) implements Frame {}

  /** A change the sender applied, for a subscription of the receiver. */
  record Event(long subscriptionId, Mutation mutation) implements Frame {}

  record Scan(long requestId, String prefix, String startAfter, int limit) implements Frame {}

  /**
   * A node's live entries for a {@link Scan}, in key order; {@code truncated}: it stopped at
   * {@link #MAX_SCAN_RESULT_BYTES} before the limit, so keys after its last one were not considered.
   */
  record ScanResult(long requestId, boolean truncated, List<Mutation> mutations) implements Frame {}

  // ---- sizes -----------------------------------------------------------------------------------

  static int varintSize(int v) {
    int n = 1;
    while ((v & ~0x7F) != 0) {
      v >>>= 7;
      n++;
    }
    return n;
  }

  static int utf8Length(String s) {
    int n = s.length();
    int bytes = n;
    for (int i = 0; i < n; i++) {
      char c = s.charAt(i);
      if (c >= 0x80) {
        return ByteBufUtil.utf8Bytes(s);
      }
    }
    return bytes;
  }

  static int stringSize(String s) {
    int len = utf8Length(s);
    return varintSize(len) + len;
  }

  /** Bytes a mutation takes inside a frame. */
  static int mutationSize(Mutation m) {
    int size = stringSize(m.key()) + 8 + stringSize(m.version().nodeId()) + 1;
    byte[] v = m.valueUnsafe();
    if (v != null) {
      size += 8 + varintSize(v.length) + v.length;
    } else if (m.expiresAtMillis() != 0) {
      size += 8 + 4;
    }
    return size;
  }

  static int keyVersionSize(KeyVersion kv) {
    return stringSize(kv.key()) + 8 + stringSize(kv.version().nodeId()) + 8;
  }

  // ---- encoding --------------------------------------------------------------------------------

  static void writeVarint(ByteBuf out, int v) {
    while ((v & ~0x7F) != 0) {
      out.writeByte((v & 0x7F) | 0x80);
      v >>>= 7;
    }
    out.writeByte(v);
  }

  static void writeString(ByteBuf out, String s) {
    writeVarint(out, utf8Length(s));
    ByteBufUtil.writeUtf8(out, s);
  }

  private static void writeBytes(ByteBuf out, byte[] b) {
    writeVarint(out, b.length);
    out.writeBytes(b);
  }

  static void writeMutation(ByteBuf out, Mutation m) {
    writeString(out, m.key());
    out.writeLong(m.version().timestamp());
    writeString(out, m.version().nodeId());
    byte[] v = m.valueUnsafe();
    if (v != null) {
      out.writeByte(KIND_PUT);
      out.writeLong(m.expiresAtMillis());
      writeBytes(out, v);
    } else if (m.expiresAtMillis() != 0) {
      out.writeByte(KIND_EXPIRED);
      out.writeLong(m.expiresAtMillis());
      out.writeInt(m.valueHash());
    } else {
      out.writeByte(KIND_DELETE);
    }
  }

  static ByteBuf hello(ByteBufAllocator alloc, String clusterName, String nodeId, byte[] nonce) {
    return hello(alloc, clusterName, nodeId, nonce, AUTH_NONE, new byte[0]);
  }

  static ByteBuf hello(ByteBufAllocator alloc, String clusterName, String nodeId, byte[] nonce,
      int authScheme, byte[] auth) {
    ByteBuf out = alloc.buffer(64 + clusterName.length() + nodeId.length() + auth.length);
    out.writeByte(HELLO);
    out.writeInt(MAGIC);
    out.writeShort(MIN_PROTOCOL_VERSION);
    out.writeShort(PROTOCOL_VERSION);
    writeString(out, clusterName);
    writeString(out, nodeId);
    out.writeBytes(nonce);
    out.writeByte(authScheme);
    writeBytes(out, auth);
    return out;
  }

  static ByteBuf helloOk(ByteBufAllocator alloc, int version, String nodeId, byte[] nonce) {
    return helloOk(alloc, version, nodeId, nonce, AUTH_NONE, new byte[0]);
  }

  static ByteBuf helloOk(ByteBufAllocator alloc, int version, String nodeId, byte[] nonce,
      int authScheme, byte[] auth) {
    ByteBuf out = alloc.buffer(48 + nodeId.length() + auth.length);
    out.writeByte(HELLO_OK);
    out.writeShort(version);
    writeString(out, nodeId);
    out.writeBytes(nonce);
    out.writeByte(authScheme);
    writeBytes(out, auth);
    return out;
  }

  static ByteBuf auth(ByteBufAllocator alloc, byte[] mac) {
    ByteBuf out = alloc.buffer(2 + mac.length);
    out.writeByte(AUTH);
    writeBytes(out, mac);
    return out;
  }

  static ByteBuf helloReject(ByteBufAllocator alloc, RejectReason reason, String message) {
    String text = truncate(message);
    ByteBuf out = alloc.buffer(8 + text.length() * 3);
    out.writeByte(HELLO_REJECT);
    out.writeByte(reason.code);
    writeString(out, text);
    return out;
  }

  /** A MUTATIONS frame; {@code bodyBytes} is the sum of {@link #mutationSize} of the mutations. */
  static ByteBuf mutations(ByteBufAllocator alloc, long batchId, int flags, List<Mutation> batch,
      int bodyBytes) {
    ByteBuf out = alloc.buffer(1 + 8 + 1 + 5 + bodyBytes);
    out.writeByte(MUTATIONS);
    out.writeLong(batchId);
    out.writeByte(flags);
    writeMutations(out, batch);
    return out;
  }

  static ByteBuf ack(ByteBufAllocator alloc, long batchId, int count, BitSet held) {
    byte[] bits = bitmap(held, count);
    ByteBuf out = alloc.buffer(1 + 8 + 5 + bits.length);
    out.writeByte(ACK);
    out.writeLong(batchId);
    writeVarint(out, count);
    out.writeBytes(bits);
    return out;
  }

  static ByteBuf aeDigest(ByteBufAllocator alloc, long roundId, int format, long[] buckets, int from,
      int n, boolean last) {
    ByteBuf out = alloc.buffer(1 + 8 + 4 + 4 + 4 + 5 + n * 8 + 1);
    out.writeByte(AE_DIGEST);
    out.writeLong(roundId);
    out.writeInt(format);
    out.writeInt(buckets.length);
    out.writeInt(from);
    writeVarint(out, n);
    for (int i = from; i < from + n; i++) {
      out.writeLong(buckets[i]);
    }
    out.writeBoolean(last);
    return out;
  }

  static ByteBuf aeDiff(ByteBufAllocator alloc, long roundId, int bucketCount, boolean more,
      BitSet covered) {
    return aeDiff(alloc, roundId, bucketCount, more, covered, new BitSet());
  }

  /**
   * An AE_DIFF; with {@code more}, a second bitmap follows: the differing buckets left out of this
   * round ({@code leftOut}), so the initiator knows which partitions are complete.
   */
  static ByteBuf aeDiff(ByteBufAllocator alloc, long roundId, int bucketCount, boolean more,
      BitSet covered, BitSet leftOut) {
    return aeDiff(alloc, roundId, bucketCount, more, covered, leftOut, false, 0);
  }

  /**
   * An AE_DIFF; when the round is a pull ({@code pullSeen}) or streamed entries, a trailer follows:
   * a flags byte ({@link #DIFF_PULL_SEEN}) and the streamed entry count.
   */
  static ByteBuf aeDiff(ByteBufAllocator alloc, long roundId, int bucketCount, boolean more,
      BitSet covered, BitSet leftOut, boolean pullSeen, int streamed) {
    byte[] bits = bitmap(covered, bucketCount);
    byte[] left = more ? bitmap(leftOut, bucketCount) : new byte[0];
    ByteBuf out = alloc.buffer(1 + 8 + 4 + 1 + 5 + bits.length + left.length + 1 + 5);
    out.writeByte(AE_DIFF);
    out.writeLong(roundId);
    out.writeInt(bucketCount);
    out.writeBoolean(more);
    writeVarint(out, bits.length);
    out.writeBytes(bits);
    out.writeBytes(left);
    if (pullSeen || streamed > 0) {
      out.writeByte(pullSeen ? DIFF_PULL_SEEN : 0);
      writeVarint(out, streamed);
    }
    return out;
  }

  static ByteBuf aeKeys(ByteBufAllocator alloc, long roundId, boolean last, List<KeyVersion> keys,
      int bodyBytes) {
    ByteBuf out = alloc.buffer(1 + 8 + 1 + 5 + bodyBytes);
    out.writeByte(AE_KEYS);
    out.writeLong(roundId);
    out.writeBoolean(last);
    writeVarint(out, keys.size());
    for (KeyVersion kv : keys) {
      writeString(out, kv.key());
      out.writeLong(kv.version().timestamp());
      writeString(out, kv.version().nodeId());
      out.writeLong(kv.fingerprint());
    }
    return out;
  }

  static ByteBuf aePull(ByteBufAllocator alloc, long roundId, List<String> keys, int bodyBytes) {
    ByteBuf out = alloc.buffer(1 + 8 + 5 + bodyBytes);
    out.writeByte(AE_PULL);
    out.writeLong(roundId);
    writeVarint(out, keys.size());
    for (String k : keys) {
      writeString(out, k);
    }
    return out;
  }

  static ByteBuf aePullResponse(ByteBufAllocator alloc, long roundId, int processed,
      List<Mutation> mutations, int bodyBytes) {
    ByteBuf out = alloc.buffer(1 + 8 + 5 + 5 + bodyBytes);
    out.writeByte(AE_PULL_RESPONSE);
    out.writeLong(roundId);
    writeVarint(out, processed);
    writeMutations(out, mutations);
    return out;
  }

  static ByteBuf aeAbort(ByteBufAllocator alloc, long roundId, String message) {
    String text = truncate(message);
    ByteBuf out = alloc.buffer(16 + text.length() * 3);
    out.writeByte(AE_ABORT);
    out.writeLong(roundId);
    writeString(out, text);
    return out;
  }

  static ByteBuf forward(ByteBufAllocator alloc, long requestId, WriteRequest r) {
    byte[] v = r.value();
    Version expected = r.expectedVersion();
    ByteBuf out = alloc.buffer(64 + stringSize(r.key()) + (v == null ? 0 : v.length + 5)
        + (expected == null ? 0 : stringSize(expected.nodeId())));
    out.writeByte(FORWARD);
    out.writeLong(requestId);
    out.writeByte((v == null ? FWD_DELETE : 0) | (r.ifAbsent() ? FWD_IF_ABSENT : 0)
        | (expected != null ? FWD_EXPECTED : 0));
    writeString(out, r.key());
    if (v != null) {
      writeBytes(out, v);
      out.writeLong(r.ttlMillis());
    }
    if (expected != null) {
      out.writeLong(expected.timestamp());
      writeString(out, expected.nodeId());
    }
    out.writeByte(r.concern().ordinal());
    out.writeLong(r.timeoutMillis());
    return out;
  }

  static ByteBuf forwardResult(ByteBufAllocator alloc, long requestId, int status, Version version,
      boolean wasLive, int required, int acked, String message) {
    String text = truncate(message);
    ByteBuf out = alloc.buffer(48 + (version == null ? 0 : stringSize(version.nodeId()))
        + text.length() * 3);
    out.writeByte(FORWARD_RESULT);
    out.writeLong(requestId);
    out.writeByte(status);
    out.writeBoolean(version != null);
    if (version != null) {
      out.writeLong(version.timestamp());
      writeString(out, version.nodeId());
    }
    out.writeBoolean(wasLive);
    writeVarint(out, required);
    writeVarint(out, acked);
    writeString(out, text);
    return out;
  }

  static ByteBuf read(ByteBufAllocator alloc, long requestId, String key) {
    ByteBuf out = alloc.buffer(16 + stringSize(key));
    out.writeByte(READ);
    out.writeLong(requestId);
    writeString(out, key);
    return out;
  }

  static ByteBuf readResult(ByteBufAllocator alloc, long requestId, Mutation m) {
    return readResult(alloc, requestId, m, false);
  }

  /** A READ answer; {@code pending}: the answering owner is still pulling the key's partition. */
  static ByteBuf readResult(ByteBufAllocator alloc, long requestId, Mutation m, boolean pending) {
    ByteBuf out = alloc.buffer(16 + (m == null ? 0 : mutationSize(m)));
    out.writeByte(READ_RESULT);
    out.writeLong(requestId);
    out.writeByte((m != null ? READ_HAS_MUTATION : 0) | (pending ? READ_PENDING : 0));
    if (m != null) {
      writeMutation(out, m);
    }
    return out;
  }

  /**
   * An AE_PULL_REQUEST; with a non-empty {@code stream}, a second partition bitmap follows: the
   * pulled partitions the responder should stream ({@link #AE_STREAM}).
   */
  static ByteBuf aePullRequest(ByteBufAllocator alloc, long roundId, BitSet partitions,
      BitSet stream) {
    ByteBuf out = partitionsFrame(alloc, AE_PULL_REQUEST, roundId, partitions);
    if (!stream.isEmpty()) {
      out.writeBytes(bitmap(stream, Placement.PARTITIONS));
    }
    return out;
  }

  /** A count and that many mutations. */
  private static void writeMutations(ByteBuf out, List<Mutation> mutations) {
    writeVarint(out, mutations.size());
    for (Mutation m : mutations) {
      writeMutation(out, m);
    }
  }

  static ByteBuf aeStream(ByteBufAllocator alloc, long roundId, List<Mutation> mutations,
      int bodyBytes) {
    ByteBuf out = alloc.buffer(1 + 8 + 5 + bodyBytes);
    out.writeByte(AE_STREAM);
    out.writeLong(roundId);
    writeMutations(out, mutations);
    return out;
  }

  /** A frame of a type byte, a long and a bitmap of the {@link Placement#PARTITIONS}. */
  private static ByteBuf partitionsFrame(ByteBufAllocator alloc, byte type, long value,
      BitSet partitions) {
    byte[] bits = bitmap(partitions, Placement.PARTITIONS);
    ByteBuf out = alloc.buffer(1 + 8 + bits.length);
    out.writeByte(type);
    out.writeLong(value);
    out.writeBytes(bits);
    return out;
  }

  static ByteBuf subscribe(ByteBufAllocator alloc, long subscriptionId, String prefix) {
    ByteBuf out = alloc.buffer(16 + stringSize(prefix));
    out.writeByte(SUBSCRIBE);
    out.writeLong(subscriptionId);
    writeString(out, prefix);
    return out;
  }

  static ByteBuf unsubscribe(ByteBufAllocator alloc, long subscriptionId) {
    ByteBuf out = alloc.buffer(9);
    out.writeByte(UNSUBSCRIBE);
    out.writeLong(subscriptionId);
    return out;
  }

  static ByteBuf event(ByteBufAllocator alloc, long subscriptionId, Mutation m) {
    ByteBuf out = alloc.buffer(16 + mutationSize(m));
    out.writeByte(EVENT);
    out.writeLong(subscriptionId);
    writeMutation(out, m);
    return out;
  }

  static ByteBuf status(ByteBufAllocator alloc, long mapVersion, BitSet pending) {
    return partitionsFrame(alloc, STATUS, mapVersion, pending);
  }

  /**
   * A STATUS; when {@code fromYou} (the pending partitions still to pull from the receiver, a
   * subset of {@code pending}) differs from {@code pending}, a byte follows: 0 when it is empty,
   * else 1 and its bitmap.
   */
  static ByteBuf status(ByteBufAllocator alloc, long mapVersion, BitSet pending, BitSet fromYou) {
    ByteBuf out = partitionsFrame(alloc, STATUS, mapVersion, pending);
    if (!fromYou.equals(pending)) {
      out.writeByte(fromYou.isEmpty() ? 0 : 1);
      if (!fromYou.isEmpty()) {
        out.writeBytes(bitmap(fromYou, Placement.PARTITIONS));
      }
    }
    return out;
  }

  static ByteBuf scan(ByteBufAllocator alloc, long requestId, String prefix, String startAfter,
      int limit) {
    ByteBuf out = alloc.buffer(24 + stringSize(prefix)
        + (startAfter == null ? 0 : stringSize(startAfter)));
    out.writeByte(SCAN);
    out.writeLong(requestId);
    writeString(out, prefix);
    out.writeBoolean(startAfter != null);
    if (startAfter != null) {
      writeString(out, startAfter);
    }
    writeVarint(out, limit);
    return out;
  }

  static ByteBuf scanResult(ByteBufAllocator alloc, long requestId, boolean truncated,
      List<Mutation> ms, int bodyBytes) {
    ByteBuf out = alloc.buffer(16 + bodyBytes);
    out.writeByte(SCAN_RESULT);
    out.writeLong(requestId);
    out.writeBoolean(truncated);
    writeMutations(out, ms);
    return out;
  }

  private static byte[] bitmap(BitSet bits, int count) {
    byte[] out = new byte[(count + 7) >>> 3];
    for (int i = bits.nextSetBit(0); i >= 0 && i < count; i = bits.nextSetBit(i + 1)) {
      out[i >>> 3] |= (byte) (1 << (i & 7));
    }
    return out;
  }

  private static String truncate(String s) {
    String text = s == null ? "" : s;
    return text.length() > 300 ? text.substring(0, 300) : text;
  }

  // ---- decoding --------------------------------------------------------------------------------

  /**
   * Decodes one frame (without its length field). Reads the whole buffer.
   *
   * @throws MalformedFrameException for anything that is not exactly one well-formed frame
   */
  static Frame decode(ByteBuf in) {
    try {
      Frame f = decode0(in);
      if (in.isReadable()) {
        throw new MalformedFrameException(in.readableBytes() + " unexpected bytes after frame "
            + f.getClass().getSimpleName());
      }
      return f;
    } catch (IndexOutOfBoundsException e) {
      throw new MalformedFrameException("frame ends early: " + e.getMessage());
    } catch (IllegalArgumentException e) {
      throw new MalformedFrameException("invalid field: " + e.getMessage());
    }
  }

  private static Frame decode0(ByteBuf in) {
    byte type = in.readByte();
    switch (type) {
      case HELLO: {
        int magic = in.readInt();
        int min = in.readUnsignedShort();
        int max = in.readUnsignedShort();
        String cluster = readString(in, MAX_CLUSTER_NAME_BYTES, "cluster name");
        String node = readString(in, MAX_NODE_ID_BYTES, "node id");
        byte[] nonce = readFixed(in, NONCE_BYTES);
        int scheme = in.readUnsignedByte();
        byte[] auth = readBytes(in, MAX_AUTH_BYTES, "auth data");
        return new Hello(magic, min, max, cluster, node, nonce, scheme, auth);
      }
      case HELLO_OK: {
        int version = in.readUnsignedShort();
        String node = readString(in, MAX_NODE_ID_BYTES, "node id");
        byte[] nonce = readFixed(in, NONCE_BYTES);
        int scheme = in.readUnsignedByte();
        byte[] auth = readBytes(in, MAX_AUTH_BYTES, "auth data");
        return new HelloOk(version, node, nonce, scheme, auth);
      }
      case HELLO_REJECT: {
        RejectReason reason = RejectReason.of(in.readUnsignedByte());
        return new HelloReject(reason, readString(in, MAX_TEXT_BYTES, "message"));
      }
      case AUTH:
        return new Auth(readBytes(in, MAX_MAC_BYTES, "mac"));
      case MUTATIONS: {
        long batchId = in.readLong();
        int flags = in.readUnsignedByte();
        return new MutationBatch(batchId, flags, readMutations(in));
      }
      case ACK: {
        long batchId = in.readLong();
        int count = readVarint(in);
        int bytes = (int) ((count + 7L) >>> 3);
        if (bytes > in.readableBytes()) {
          throw new MalformedFrameException("ack bitmap of " + count + " bits does not fit");
        }
        BitSet held = readBitmap(in, bytes, count);
        return new Ack(batchId, count, held);
      }
      case AE_DIGEST: {
        long roundId = in.readLong();
        int format = in.readInt();
        int bucketCount = in.readInt();
        checkBucketCount(bucketCount);
        int from = in.readInt();
        int n = readCount(in, 8, "digest bucket count");
        if (from < 0 || from > bucketCount - n) {
          throw new MalformedFrameException("digest chunk " + from + "+" + n + " outside "
              + bucketCount + " buckets");
        }
        long[] hashes = new long[n];
        for (int i = 0; i < n; i++) {
          hashes[i] = in.readLong();
        }
        boolean last = readBoolean(in);
        return new AeDigest(roundId, format, bucketCount, from, hashes, last);
      }
      case AE_DIFF: {
        long roundId = in.readLong();
        int bucketCount = in.readInt();
        checkBucketCount(bucketCount);
        boolean more = readBoolean(in);
        int bytes = readVarint(in);
        if (bytes != (bucketCount + 7) >>> 3 || bytes > in.readableBytes()) {
          throw new MalformedFrameException("diff bitmap of " + bytes + " bytes for " + bucketCount
              + " buckets");
        }
        BitSet covered = readBitmap(in, bytes, bucketCount);
        BitSet leftOut = new BitSet();
        if (more) {
          if (in.readableBytes() < bytes) {
            throw new MalformedFrameException("diff without its left-out bitmap");
          }
          leftOut = readBitmap(in, bytes, bucketCount);
        }
        boolean pullSeen = false;
        int streamed = 0;
        if (in.isReadable()) {
          int flags = in.readUnsignedByte();
          if ((flags & ~DIFF_PULL_SEEN) != 0) {
            throw new MalformedFrameException("unknown diff flags " + flags);
          }
          pullSeen = (flags & DIFF_PULL_SEEN) != 0;
          streamed = readVarint(in);
        }
        return new AeDiff(roundId, bucketCount, more, covered, leftOut, pullSeen, streamed);
      }
      case AE_KEYS: {
        long roundId = in.readLong();
        boolean last = readBoolean(in);
        int n = readCount(in, 19, "key count");
        List<KeyVersion> keys = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
          String key = readString(in, MAX_KEY_BYTES, "key");
          long ts = in.readLong();
          String node = readString(in, MAX_NODE_ID_BYTES, "node id");
          keys.add(new KeyVersion(key, Version.of(ts, node), in.readLong()));
        }
        return new AeKeys(roundId, last, keys);
      }
      case AE_PULL: {
        long roundId = in.readLong();
        int n = readCount(in, 1, "key count");
        List<String> keys = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
          keys.add(readString(in, MAX_KEY_BYTES, "key"));
        }
        return new AePull(roundId, keys);
      }
      case AE_PULL_RESPONSE: {
        long roundId = in.readLong();
        int processed = readVarint(in);
        return new AePullResponse(roundId, processed, readMutations(in));
      }
      case AE_STREAM: {
        long roundId = in.readLong();
        return new AeStream(roundId, readMutations(in));
      }
      case AE_ABORT: {
        long roundId = in.readLong();
        return new AeAbort(roundId, readString(in, MAX_TEXT_BYTES, "message"));
      }
      case FORWARD: {
        long requestId = in.readLong();
        int flags = in.readUnsignedByte();
        if ((flags & ~(FWD_DELETE | FWD_IF_ABSENT | FWD_EXPECTED)) != 0) {
          throw new MalformedFrameException("unknown forward flags " + flags);
        }
        String key = readString(in, MAX_KEY_BYTES, "key");
        byte[] value = null;
        long ttl = 0;
        if ((flags & FWD_DELETE) == 0) {
          value = readBytes(in, KvStoreConfig.MAX_VALUE_BYTES_LIMIT, "value");
          ttl = in.readLong();
        }
        Version expected = null;
        if ((flags & FWD_EXPECTED) != 0) {
          long ts = in.readLong();
          expected = Version.of(ts, readString(in, MAX_NODE_ID_BYTES, "node id"));
        }
        int concern = in.readUnsignedByte();
        if (concern >= WriteConcern.values().length) {
          throw new MalformedFrameException("unknown write concern " + concern);
        }
        long timeout = in.readLong();
        return new Forward(requestId, new WriteRequest(key, value, ttl,
            (flags & FWD_IF_ABSENT) != 0, expected, WriteConcern.values()[concern], timeout));
      }
      case FORWARD_RESULT: {
        long requestId = in.readLong();
        int status = in.readUnsignedByte();
        if (status > FORWARD_PENDING) {
          throw new MalformedFrameException("unknown forward status " + status);
        }
        Version version = null;
        if (readBoolean(in)) {
          long ts = in.readLong();
          version = Version.of(ts, readString(in, MAX_NODE_ID_BYTES, "node id"));
        }
        boolean wasLive = readBoolean(in);
        int required = readVarint(in);
        int acked = readVarint(in);
        String message = readString(in, MAX_TEXT_BYTES, "message");
        if (status == FORWARD_OK && version == null) {
          throw new MalformedFrameException("a successful forward result without a version");
        }
        return new ForwardResult(requestId, status, version, wasLive, required, acked, message);
      }
      case READ: {
        long requestId = in.readLong();
        return new Read(requestId, readString(in, MAX_KEY_BYTES, "key"));
      }
      case SCAN: {
        long requestId = in.readLong();
        String prefix = readString(in, MAX_KEY_BYTES, "prefix");
        String startAfter = readBoolean(in) ? readString(in, MAX_KEY_BYTES, "startAfter") : null;
        int limit = readVarint(in);
        if (limit < 1) {
          throw new MalformedFrameException("scan limit " + limit);
        }
        return new Scan(requestId, prefix, startAfter, limit);
      }
      case SCAN_RESULT: {
        long requestId = in.readLong();
        boolean truncated = readBoolean(in);
        int n = readCount(in, 12, "mutation count");
        List<Mutation> ms = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
          ms.add(readMutation(in));
        }
        return new ScanResult(requestId, truncated, ms);
      }
      case READ_RESULT: {
        long requestId = in.readLong();
        int flags = in.readUnsignedByte();
        if ((flags & ~(READ_HAS_MUTATION | READ_PENDING)) != 0) {
          throw new MalformedFrameException("unknown read result flags " + flags);
        }
        Mutation m = (flags & READ_HAS_MUTATION) != 0 ? readMutation(in) : null;
        return new ReadResult(requestId, m, (flags & READ_PENDING) != 0);
      }
      case AE_PULL_REQUEST: {
        long roundId = in.readLong();
        BitSet partitions = readPartitions(in);
        BitSet stream = in.isReadable() ? readPartitions(in) : new BitSet();
        if (!partitions.isEmpty() || !stream.isEmpty()) {
          BitSet outside = (BitSet) stream.clone();
          outside.andNot(partitions);
          if (!outside.isEmpty()) {
            throw new MalformedFrameException("pull request streams partition "
                + outside.nextSetBit(0) + " it does not pull");
          }
        }
        return new AePullRequest(roundId, partitions, stream);
      }
      case STATUS: {
        long mapVersion = in.readLong();
        BitSet pending = readPartitions(in);
        if (!in.isReadable()) {
          return new Status(mapVersion, pending);
        }
        int kind = in.readUnsignedByte();
        if (kind > 1) {
          throw new MalformedFrameException("status with pulls-from-you kind " + kind);
        }
        BitSet fromYou = kind == 0 ? new BitSet() : readPartitions(in);
        BitSet outside = (BitSet) fromYou.clone();
        outside.andNot(pending);
        if (!outside.isEmpty()) {
          throw new MalformedFrameException("status pulls partition " + outside.nextSetBit(0)
              + " from the receiver but not pending");
        }
        return new Status(mapVersion, pending, fromYou);
      }
      case SUBSCRIBE: {
        long id = in.readLong();
        return new Subscribe(id, readString(in, MAX_KEY_BYTES, "prefix"));
      }
      case UNSUBSCRIBE:
        return new Unsubscribe(in.readLong());
      case EVENT: {
        long id = in.readLong();
        return new Event(id, readMutation(in));
      }
      default:
        throw new MalformedFrameException(String.format("unknown frame type 0x%02x", type & 0xff));
    }
  }

  static Mutation readMutation(ByteBuf in) {
    String key = readString(in, MAX_KEY_BYTES, "key");
    long ts = in.readLong();
    String node = readString(in, MAX_NODE_ID_BYTES, "node id");
    Version version = Version.of(ts, node);
    int kind = in.readUnsignedByte();
    switch (kind) {
      case KIND_PUT: {
        long expiresAt = in.readLong();
        byte[] value = readBytes(in, KvStoreConfig.MAX_VALUE_BYTES_LIMIT, "value");
        return Mutation.put(key, value, version, expiresAt);
      }
      case KIND_DELETE:
        return Mutation.delete(key, version);
      case KIND_EXPIRED: {
        long expiresAt = in.readLong();
        return Mutation.expired(key, version, expiresAt, in.readInt());
      }
      default:
        throw new MalformedFrameException("unknown mutation kind " + kind);
    }
  }

  static int readVarint(ByteBuf in) {
    int value = 0;
    for (int shift = 0; shift < 35; shift += 7) {
      int b = in.readUnsignedByte();
      if (shift == 28 && (b & 0xF8) != 0) {
        throw new MalformedFrameException("varint larger than 2^31 - 1");
      }
      value |= (b & 0x7F) << shift;
      if ((b & 0x80) == 0) {
        return value;
      }
    }
    throw new MalformedFrameException("varint longer than 5 bytes");
  }

  /** A count of items each at least {@code minItemBytes} long: bounded by the bytes left. */
  private static int readCount(ByteBuf in, int minItemBytes, String what) {
    int n = readVarint(in);
    if ((long) n * minItemBytes > in.readableBytes()) {
      throw new MalformedFrameException(what + " " + n + " cannot fit in the "
          + in.readableBytes() + " bytes left");
    }
    return n;
  }

  private static boolean readBoolean(ByteBuf in) {
    int b = in.readUnsignedByte();
    if (b > 1) {
      throw new MalformedFrameException("boolean byte was " + b);
    }
    return b == 1;
  }

  private static byte[] readFixed(ByteBuf in, int n) {
    if (n > in.readableBytes()) {
      throw new MalformedFrameException("frame ends early");
    }
    byte[] b = new byte[n];
    in.readBytes(b);
    return b;
  }

  private static byte[] readBytes(ByteBuf in, int max, String what) {
    int len = readVarint(in);
    if (len > max) {
      throw new MalformedFrameException(what + " of " + len + " bytes is over the limit of " + max);
    }
    if (len > in.readableBytes()) {
      throw new MalformedFrameException(what + " of " + len + " bytes runs past the frame");
    }
    byte[] b = new byte[len];
    in.readBytes(b);
    return b;
  }

  private static final ThreadLocal<CharsetDecoder> UTF8 = ThreadLocal.withInitial(() ->
      StandardCharsets.UTF_8.newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT));

  static String readString(ByteBuf in, int max, String what) {
    int len = readVarint(in);
    if (len > max) {
      throw new MalformedFrameException(what + " of " + len + " bytes is over the limit of " + max);
    }
    if (len > in.readableBytes()) {
      throw new MalformedFrameException(what + " of " + len + " bytes runs past the frame");
    }
    int start = in.readerIndex();
    boolean ascii = true;
    for (int i = 0; i < len; i++) {
      if (in.getByte(start + i) < 0) {
        ascii = false;
        break;
      }
    }
    String s;
    if (ascii) {
      s = in.toString(start, len, StandardCharsets.US_ASCII);
    } else {
      ByteBuffer nio = in.nioBuffer(start, len);
      try {
        CharBuffer chars = UTF8.get().reset().decode(nio);
        s = chars.toString();
      } catch (CharacterCodingException e) {
        throw new MalformedFrameException(what + " is not valid UTF-8");
      }
    }
    in.skipBytes(len);
    return s;
  }

  private static BitSet readBitmap(ByteBuf in, int bytes, int bits) {
    BitSet set = new BitSet(bits);
    for (int i = 0; i < bytes; i++) {
      int b = in.readUnsignedByte();
      if (b == 0) {
        continue;
      }
      for (int j = 0; j < 8; j++) {
        if ((b & (1 << j)) != 0) {
          int bit = i * 8 + j;
          if (bit >= bits) {
            throw new MalformedFrameException("bitmap has bit " + bit + " set beyond " + bits);
          }
          set.set(bit);
        }
      }
    }
    return set;
  }

  /** A count and that many mutations. */
  private static List<Mutation> readMutations(ByteBuf in) {
    int n = readCount(in, 12, "mutation count");
    List<Mutation> ms = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      ms.add(readMutation(in));
    }
    return ms;
  }

  private static BitSet readPartitions(ByteBuf in) {
    int bytes = Placement.PARTITIONS >>> 3;
    if (in.readableBytes() < bytes) {
      throw new MalformedFrameException("partition bitmap of " + in.readableBytes()
          + " bytes; expected " + bytes);
    }
    return readBitmap(in, bytes, Placement.PARTITIONS);
  }

  private static void checkBucketCount(int count) {
    if (count < 1 || count > MAX_BUCKETS || Integer.bitCount(count) != 1) {
      throw new MalformedFrameException("bucket count " + count + " is not a power of two up to "
          + MAX_BUCKETS);
    }
  }
}
