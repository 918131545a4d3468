package io.kvstore.core;

import io.kvstore.core.spi.Digest;
import java.time.Duration;

/**
 * The validated, immutable settings of a store. Build one through {@link KvStore#builder()}; each field
 * has a {@code DEFAULT_*} constant that explains its trade-off.
 *
 * @param nodeId this node's id, stamped into every version it makes
 * @param maxKeyBytes the longest key, in UTF-8 bytes
 * @param maxValueBytes the largest value, in bytes
 * @param tombstoneGrace how long deleted and expired keys are remembered before they are purged
 * @param purgeInterval how often the maintenance sweep runs
 * @param maxClockDrift how far ahead of this node's clock another node's version may be
 * @param defaultWriteConcern the write concern of writes that do not name one
 * @param writeTimeout how long a write waits for its write concern by default
 * @param digestBuckets buckets in the anti-entropy digest; the same on every node of a cluster
 * @param maxScanLimit the most entries one scan may return
 */
public record KvStoreConfig(
    String nodeId,
    int maxKeyBytes,
    int maxValueBytes,
    Duration tombstoneGrace,
    Duration purgeInterval,
    Duration maxClockDrift,
    WriteConcern defaultWriteConcern,
    Duration writeTimeout,
    int digestBuckets,
    int maxScanLimit) {

  /** 1 KiB: keys are identifiers, and every replica and message carries them. */
  public static final int DEFAULT_MAX_KEY_BYTES = 1024;
  /** 1 MiB: larger values belong in a blob store; this keeps frames and memory predictable. */
  public static final int DEFAULT_MAX_VALUE_BYTES = 1024 * 1024;
  /** The hard ceiling on {@code maxValueBytes}: values travel in frames of at most 2 MiB. */
  public static final int MAX_VALUE_BYTES_LIMIT = 1536 * 1024;
  /**
   * 1 hour. A tombstone must outlive any partition it has to heal: a node cut off for longer than this
   * may bring a deleted key back when it returns. Longer costs memory for every deleted key.
   */
  public static final Duration DEFAULT_TOMBSTONE_GRACE = Duration.ofHours(1);
  /** 5 s: how late expired entries leave {@code size()}; each sweep walks the whole store. */
  public static final Duration DEFAULT_PURGE_INTERVAL = Duration.ofSeconds(5);
  /**
   * 60 s. A node whose clock runs further ahead than this would win every key for that long; its
   * writes are refused and counted instead. Too small refuses healthy nodes with ordinary NTP skew.
   */
  public static final Duration DEFAULT_MAX_CLOCK_DRIFT = Duration.ofSeconds(60);
  /** ONE: writes return after the local apply; replication continues in the background. */
  public static final WriteConcern DEFAULT_WRITE_CONCERN = WriteConcern.ONE;
  /** 5 s: long enough for a loaded cluster, short enough that callers notice a lost quorum. */
  public static final Duration DEFAULT_WRITE_TIMEOUT = Duration.ofSeconds(5);
  /** 1024 buckets: an 8 KiB digest; a differing bucket costs about entries / 1024 versions to list. */
  public static final int DEFAULT_DIGEST_BUCKETS = 1024;
  /** 10,000 entries per scan; page with {@code startAfter} for more. */
  public static final int DEFAULT_MAX_SCAN_LIMIT = 10_000;

  /**
   * Validates every field; the message names the field and the value.
   *
   * @param nodeId this node's id
   * @param maxKeyBytes the longest key, in UTF-8 bytes
   * @param maxValueBytes the largest value, in bytes
   * @param tombstoneGrace how long deleted and expired keys are remembered
   * @param purgeInterval how often the maintenance sweep runs
   * @param maxClockDrift how far ahead another node's clock may be
   * @param defaultWriteConcern the default write concern
   * @param writeTimeout the default write timeout
   * @param digestBuckets digest buckets, a power of two
   * @param maxScanLimit the most entries one scan may return
   */
  public KvStoreConfig {
    NodeIds.validate(nodeId);
    requireRange("maxKeyBytes", maxKeyBytes, 1, 64 * 1024);
    requireRange("maxValueBytes", maxValueBytes, 0, MAX_VALUE_BYTES_LIMIT);
    requirePositive("tombstoneGrace", tombstoneGrace);
    requirePositive("purgeInterval", purgeInterval);
    requirePositive("maxClockDrift", maxClockDrift);
    if (defaultWriteConcern == null) {
      throw new IllegalArgumentException("defaultWriteConcern must be ONE, QUORUM or ALL, was null");
    }
    requirePositive("writeTimeout", writeTimeout);
    Digest.checkBucketCount(digestBuckets, "digestBuckets");
    requireRange("maxScanLimit", maxScanLimit, 1, 1_000_000);
  }

  static void requireRange(String name, int value, int min, int max) {
    if (value < min || value > max) {
      throw new IllegalArgumentException(name + " must be between " + min + " and " + max
          + ", was " + value);
    }
  }

  static void requirePositive(String name, Duration value) {
    if (value == null || value.isNegative() || value.isZero()) {
      throw new IllegalArgumentException(name + " must be a positive duration, was " + value);
    }
    requireMillis(name, value);
  }

  /** Durations are used as long milliseconds; one too long for that would overflow later. */
  static void requireMillis(String name, Duration value) {
    try {
      value.toMillis();
    } catch (ArithmeticException e) {
      throw new IllegalArgumentException(name + " must be at most " + Long.MAX_VALUE
          + " milliseconds, was " + value);
    }
  }
}
