package io.kvstore.cluster;

import io.kvstore.core.Version;
import io.kvstore.core.WriteConcern;

/**
 * One client operation of a Jepsen run: what was asked, on which node, when it started and ended, and
 * how it ended. Written by the client thread that runs it, then read by the checker once every client
 * has stopped (the fields are volatile for the nemesis, which reads pending operations at a crash).
 *
 * <p>Outcomes: {@link Outcome#OK} the write concern was met; {@link Outcome#UNKNOWN} the write was
 * applied on its node but the concern was not met (timeout, {@code WriteConcernException}, or the
 * node crashed while waiting): it may or may not spread; {@link Outcome#FAILED} it was never applied
 * (the node was already down). {@link #version} is the version the write was stamped with, captured by
 * a change listener on the writing thread, so even an unknown write is identified exactly.
 *
 * <p>{@link #durableAck}: the run's nodes acknowledge only what they synced to disk (SYNC durability),
 * so no crash, not even of every node at once, excuses losing this write once it is acknowledged.
 */
final class HistoryOp {
  enum Kind { PUT, DELETE }

  enum Outcome { PENDING, OK, UNKNOWN, FAILED }

  final long id;
  final String client;
  final String node;
  final Kind kind;
  final String key;
  final String value;
  final WriteConcern concern;
  final long startNanos;
  volatile long endNanos;
  volatile Outcome outcome = Outcome.PENDING;
  volatile Version version;
  volatile String error;
  /** QUORUM acks only: replicas the concern needed (from the writer's view) and nodes found holding it. */
  volatile int required;
  volatile int holders;
  /** Number of crashes the nemesis had made when the operation ended. */
  volatile int crashesAtEnd;
  /** Set when a node crashed while it was the only node holding this write: which crash, of whom. */
  volatile String lostToCrash;
  volatile int lostAtCrash;
  /** Whether an acknowledgement means synced to disk on every acknowledging replica (SYNC). */
  volatile boolean durableAck;

  HistoryOp(long id, String client, String node, Kind kind, String key, String value,
      WriteConcern concern, long startNanos) {
    this.id = id;
    this.client = client;
    this.node = node;
    this.kind = kind;
    this.key = key;
    this.value = value;
    this.concern = concern;
    this.startNanos = startNanos;
  }

  /**
   * Whether the checker must find this write (or something newer) in the final state: when it was
   * acknowledged, unless a crash took it before it spread and the acknowledgement was not durable.
   */
  boolean required() {
    return outcome == Outcome.OK && (lostToCrash == null || durableAck);
  }

  /** Whether this write may be what the final state holds. */
  boolean candidate() {
    return (outcome == Outcome.OK || outcome == Outcome.UNKNOWN) && version != null;
  }

  /** One history line; times in ms since {@code originNanos}. */
  String describe(long originNanos) {
    return String.format("#%d %8.3f..%-8s %-6s %-6s %-6s %s%s on %s -> %s%s%s%s", id,
        (startNanos - originNanos) / 1e6 / 1000,
        endNanos == 0 ? "?" : String.format("%.3f", (endNanos - originNanos) / 1e6 / 1000),
        client, kind, concern, key, value == null ? "" : "=" + value, node,
        outcome + (durableAck ? "(SYNC)" : ""),
        version == null ? "" : " v=" + version,
        concern == WriteConcern.QUORUM && outcome == Outcome.OK
            ? " holders=" + holders + "/" + required : "",
        (lostToCrash != null ? " LOST-TO-CRASH(" + lostToCrash + ")" : "")
            + (error != null ? " [" + error + "]" : ""));
  }
}
