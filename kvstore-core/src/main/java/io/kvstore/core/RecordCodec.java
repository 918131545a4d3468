package io.kvstore.core;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import java.util.zip.CRC32C;

/**
 * The one record format of the data directory: log segments, snapshots and the clock file are all
 * sequences of these records.
 *
 * <pre>
 * int    length      bytes of the payload, 1 to MAX_PAYLOAD
 * int    crc         CRC32C of the length field's 4 bytes and then the payload
 * byte   type        PUT, DELETE, EXPIRED, EVICTED, HEADER, END, CLOCK
 * ...    payload     per type, below (big-endian)
 *
 * PUT      long timestamp, long expiresAt, short nodeIdLength, nodeId (ASCII), int keyLength, key (UTF-8),
 *          int valueLength, value
 * DELETE   long timestamp, short nodeIdLength, nodeId, int keyLength, key
 * EXPIRED  long timestamp, long expiresAt, int valueHash, short nodeIdLength, nodeId, int keyLength, key
 * EVICTED  long timestamp, short nodeIdLength, nodeId, int keyLength, key: the key was dropped locally
 *          while it held that version (timestamp and node id); log segments only, never a snapshot
 * HEADER   long magic, int formatVersion, byte fileKind (1 segment, 2 snapshot), long sequence
 * END      long entries (the last record of a snapshot: a snapshot without it is incomplete)
 * CLOCK    long reservedTimestamp, long lastAliveMillis
 * </pre>
 *
 * <p>EVICTED is not an entry: replay removes the key if what it holds then is not newer than the
 * version (see {@link LogStorage}). It came after format 1's first release without a format bump, so
 * older directories open unchanged; a build that predates it reads one as damage (unknown type).
 *
 * <p>The CRC covers the length too, so a damaged length is caught like a damaged payload, and a record
 * must be read whole before anything in it is believed. A length of zero never occurs: it is what a
 * zero-filled (preallocated or torn) tail reads as. Decoding checks every field against the bytes the
 * length promises, so a CRC collision still cannot make it read out of bounds.
 */
final class RecordCodec {
  static final byte PUT = 1;
  static final byte DELETE = 2;
  static final byte EXPIRED = 3;
  static final byte EVICTED = 4;
  static final byte HEADER = 8;
  static final byte END = 9;
  static final byte CLOCK = 10;

  static final long MAGIC = 0x6b7673746f726531L; // "kvstore1"
  static final int FORMAT_VERSION = 1;
  static final byte KIND_SEGMENT = 1;
  static final byte KIND_SNAPSHOT = 2;
  static final int FRAME_BYTES = 8;
  /** A key of 64 KiB and a value of 1.5 MiB fit with room; anything larger is damage. */
  static final int MAX_PAYLOAD = 4 * 1024 * 1024;

  private RecordCodec() {}

  // ---- encoding --------------------------------------------------------------------------------

  /** The record of an entry, framed, ready to write (position 0, limit its end). */
  static ByteBuffer encode(String key, Entry e) {
    return encode(key, e, null);
  }

  /** The node id last encoded and its bytes (one pair, so reads and writes of it are atomic). */
  private record NodeIdBytes(String id, byte[] bytes) {}

  private static volatile NodeIdBytes lastNodeId = new NodeIdBytes("", new byte[0]);

  /**
   * A node id's bytes; almost every record of a node carries its own id, so the last one is kept
   * (compared by reference: the entries of one writer share its string).
   */
  private static byte[] nodeIdBytes(String nodeId) {
    NodeIdBytes last = lastNodeId;
    if (last.id() == nodeId) {
      return last.bytes();
    }
    byte[] b = nodeId.getBytes(StandardCharsets.US_ASCII);
    lastNodeId = new NodeIdBytes(nodeId, b);
    return b;
  }

  /**
   * The record of an entry, framed, ready to write (position 0, limit its end), in {@code scratch}
   * if it fits there (the caller copies it out before its next use), else in a new buffer.
   */
  static ByteBuffer encode(String key, Entry e, ByteBuffer scratch) {
    byte[] k = key.getBytes(StandardCharsets.UTF_8);
    byte[] n = nodeIdBytes(e.nodeId);
    int size;
    byte type;
    if (e.value != null) {
      type = PUT;
      size = 1 + 8 + 8 + 2 + n.length + 4 + k.length + 4 + e.value.length;
    } else if (e.expiresAt() == 0) {
      type = DELETE;
      size = 1 + 8 + 2 + n.length + 4 + k.length;
    } else {
      type = EXPIRED;
      size = 1 + 8 + 8 + 4 + 2 + n.length + 4 + k.length;
    }
    ByteBuffer b;
    if (scratch != null && scratch.capacity() >= FRAME_BYTES + size) {
      b = scratch.clear();
    } else {
      b = ByteBuffer.allocate(FRAME_BYTES + size);
    }
    b.position(FRAME_BYTES);
    b.put(type).putLong(e.timestamp);
    if (type != DELETE) {
      b.putLong(e.expiresAt());
    }
    if (type == EXPIRED) {
      b.putInt(e.valueHash());
    }
    b.putShort((short) n.length).put(n).putInt(k.length).put(k);
    if (type == PUT) {
      b.putInt(e.value.length).put(e.value);
    }
    return frame(b);
  }

  /**
   * The record of an eviction: {@code key} was dropped while it held {@code evicted}'s version.
   * Framed, ready to write.
   */
  static ByteBuffer eviction(String key, Entry evicted) {
    byte[] k = key.getBytes(StandardCharsets.UTF_8);
    byte[] n = evicted.nodeId.getBytes(StandardCharsets.US_ASCII);
    ByteBuffer b = ByteBuffer.allocate(FRAME_BYTES + 1 + 8 + 2 + n.length + 4 + k.length);
    b.position(FRAME_BYTES);
    b.put(EVICTED).putLong(evicted.timestamp).putShort((short) n.length).put(n).putInt(k.length)
        .put(k);
    return frame(b);
  }

  static ByteBuffer header(byte kind, long sequence) {
    ByteBuffer b = ByteBuffer.allocate(FRAME_BYTES + 1 + 8 + 4 + 1 + 8);
    b.position(FRAME_BYTES);
    b.put(HEADER).putLong(MAGIC).putInt(FORMAT_VERSION).put(kind).putLong(sequence);
    return frame(b);
  }

  static ByteBuffer end(long entries) {
    ByteBuffer b = ByteBuffer.allocate(FRAME_BYTES + 1 + 8);
    b.position(FRAME_BYTES);
    b.put(END).putLong(entries);
    return frame(b);
  }

  static ByteBuffer clock(long reservedTimestamp, long lastAliveMillis) {
    ByteBuffer b = ByteBuffer.allocate(FRAME_BYTES + 1 + 8 + 8);
    b.position(FRAME_BYTES);
    b.put(CLOCK).putLong(reservedTimestamp).putLong(lastAliveMillis);
    return frame(b);
  }

  /** Fills in length and CRC of a buffer whose payload starts at {@link #FRAME_BYTES}. */
  private static ByteBuffer frame(ByteBuffer b) {
    int length = b.position() - FRAME_BYTES;
    b.putInt(0, length);
    b.putInt(4, crc(b.array(), length));
    b.flip();
    return b;
  }

  private static int crc(byte[] frameAndPayload, int length) {
    // The array of a scratch buffer is longer than the record: only [0, FRAME_BYTES + length) counts.
    CRC32C c = new CRC32C();
    c.update(frameAndPayload, 0, 4);
    c.update(frameAndPayload, FRAME_BYTES, length);
    return (int) c.getValue();
  }

  // ---- decoding --------------------------------------------------------------------------------

  /** One decoded record; which fields are set depends on {@link #type}. */
  static final class Record {
    byte type;
    String key;
    /** The entry of a PUT, DELETE or EXPIRED record; null for every other type. */
    Entry entry;
    /** EVICTED: the version the key held when it was dropped. */
    long evictedTimestamp;
    String evictedNodeId;
    byte kind;
    long sequence;
    long entries;
    long reservedTimestamp;
    long lastAliveMillis;
    /** Bytes the record took, frame included. */
    int size;
  }

  /** Why {@link #decode} found no record. */
  enum Damage {
    /** Fewer bytes left than the record needs: the tail of a write that did not finish. */
    SHORT,
    /** A length of zero: a zero-filled tail. */
    ZERO,
    /** A length out of range, a CRC mismatch, or fields that do not fit: the bytes are damaged. */
    BAD
  }

  /** Thrown by {@link #decode}; carries the kind of damage and a description. */
  static final class DamageException extends Exception {
    private static final long serialVersionUID = 1L;
    final Damage damage;

    DamageException(Damage damage, String message) {
      super(message, null, false, false);
      this.damage = damage;
    }
  }

  /**
   * Decodes the record at {@code buf}'s position and advances past it. On damage the position is
   * unchanged.
   *
   * @param nodeIds interns node ids so recovered entries share one string per writer
   */
  static Record decode(ByteBuffer buf, Map<String, String> nodeIds) throws DamageException {
    int start = buf.position();
    if (buf.remaining() < 4) {
      throw allZero(buf, start) ? new DamageException(Damage.ZERO, "zero-filled tail")
          : new DamageException(Damage.SHORT, "only " + buf.remaining() + " bytes of a record frame");
    }
    int length = buf.getInt(start);
    if (length == 0) {
      throw new DamageException(Damage.ZERO, "zero length (a zero-filled tail)");
    }
    if (length < 0 || length > MAX_PAYLOAD) {
      throw new DamageException(Damage.BAD, "record length " + length + " out of range");
    }
    if (buf.remaining() < FRAME_BYTES + length) {
      throw new DamageException(Damage.SHORT, "record of " + length + " bytes, only "
          + Math.max(0, buf.remaining() - FRAME_BYTES) + " present");
    }
    CRC32C c = new CRC32C();
    if (buf.hasArray()) {
      int base = buf.arrayOffset();
      c.update(buf.array(), base + start, 4);
      c.update(buf.array(), base + start + FRAME_BYTES, length);
    } else {
      ByteBuffer view = buf.duplicate();
      view.limit(start + 4).position(start);
      c.update(view);
      view.limit(start + FRAME_BYTES + length).position(start + FRAME_BYTES);
      c.update(view);
    }
    if ((int) c.getValue() != buf.getInt(start + 4)) {
      throw new DamageException(Damage.BAD, "CRC mismatch");
    }
    ByteBuffer p = buf.duplicate();
    p.limit(start + FRAME_BYTES + length).position(start + FRAME_BYTES);
    Record r = new Record();
    try {
      readPayload(p, r, nodeIds);
    } catch (RuntimeException e) { // BufferUnderflow, bad lengths, bad node id: damage past the CRC
      throw new DamageException(Damage.BAD, "malformed record: " + e.getMessage());
    }
    if (p.hasRemaining()) {
      throw new DamageException(Damage.BAD, p.remaining() + " stray bytes after the record");
    }
    r.size = FRAME_BYTES + length;
    buf.position(start + r.size);
    return r;
  }

  private static void readPayload(ByteBuffer p, Record r, Map<String, String> nodeIds) {
    r.type = p.get();
    switch (r.type) {
      case PUT, DELETE, EXPIRED -> {
        long ts = p.getLong();
        long expiresAt = r.type == DELETE ? 0 : p.getLong();
        int valueHash = r.type == EXPIRED ? p.getInt() : 0;
        String nodeId = nodeId(p, p.getShort(), nodeIds);
        String key = utf8(p, p.getInt());
        byte[] value = null;
        if (r.type == PUT) {
          value = bytes(p, p.getInt());
        }
        if (ts < 0 || expiresAt < 0 || (r.type == EXPIRED && (expiresAt == 0 || valueHash == 0))) {
          throw new IllegalArgumentException("field out of range");
        }
        r.key = key;
        r.entry = Entry.create(value, ts, nodeId, expiresAt, valueHash);
      }
      case EVICTED -> {
        long ts = p.getLong();
        String nodeId = nodeId(p, p.getShort(), nodeIds);
        String key = utf8(p, p.getInt());
        if (ts < 0) {
          throw new IllegalArgumentException("field out of range");
        }
        r.key = key;
        r.evictedTimestamp = ts;
        r.evictedNodeId = nodeId;
      }
      case HEADER -> {
        if (p.getLong() != MAGIC) {
          throw new IllegalArgumentException("not a kvstore file (bad magic)");
        }
        int format = p.getInt();
        if (format != FORMAT_VERSION) {
          throw new IllegalArgumentException("format version " + format + ", this build reads "
              + FORMAT_VERSION);
        }
        r.kind = p.get();
        r.sequence = p.getLong();
      }
      case END -> r.entries = p.getLong();
      case CLOCK -> {
        r.reservedTimestamp = p.getLong();
        r.lastAliveMillis = p.getLong();
      }
      default -> throw new IllegalArgumentException("unknown record type " + r.type);
    }
  }

  private static byte[] bytes(ByteBuffer p, int n) {
    if (n < 0 || n > p.remaining()) {
      throw new IllegalArgumentException("length " + n + " past the record's end");
    }
    byte[] b = new byte[n];
    p.get(b);
    return b;
  }

  /**
   * The node id at the position, interned: the last one decoded is kept under the key "" (not a
   * valid node id), so a run of records from one writer allocates nothing for it.
   */
  private static String nodeId(ByteBuffer p, int n, Map<String, String> nodeIds) {
    String last = nodeIds.get("");
    if (last != null && last.length() == n && p.remaining() >= n) {
      int at = p.position();
      boolean same = true;
      for (int i = 0; i < n; i++) {
        if (p.get(at + i) != (byte) last.charAt(i)) {
          same = false;
          break;
        }
      }
      if (same) {
        p.position(at + n);
        return last;
      }
    }
    String id = nodeIds.computeIfAbsent(new String(bytes(p, n), StandardCharsets.US_ASCII),
        NodeIds::validate);
    nodeIds.put("", id);
    return id;
  }

  private static String utf8(ByteBuffer p, int n) {
    return new String(bytes(p, n), StandardCharsets.UTF_8);
  }

  private static boolean allZero(ByteBuffer buf, int from) {
    for (int i = from; i < buf.limit(); i++) {
      if (buf.get(i) != 0) {
        return false;
      }
    }
    return true;
  }

  /** A fresh node-id intern table. */
  static Map<String, String> nodeIdTable() {
    return new HashMap<>();
  }
}
