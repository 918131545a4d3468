package io.kvstore.cluster;

import io.kvstore.core.Version;
import io.kvstore.core.WriteConcern;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;

/**
 * Checks a history of writes against the state every node holds once the faults stopped and the
 * cluster healed. The rule is one for every key: the state must be the last-writer-wins maximum of a
 * subset of the writes that may exist, and that subset must contain every write that must exist.
 *
 * <ul>
 *   <li>A write <em>may exist</em> (a candidate) when it was acknowledged or its outcome is unknown:
 *       it was applied on its node and may have spread.</li>
 *   <li>A write <em>must exist</em> (required) when it was acknowledged, unless its node was killed
 *       while no other node held it (the documented loss of a write acknowledged at ONE, or of a
 *       QUORUM write whose other replicas had been killed before) and the acknowledgement was not
 *       durable. A write acknowledged under SYNC ({@link HistoryOp#durableAck}) is never excused.</li>
 * </ul>
 *
 * <p>Violations: {@code LOST} (a required write is not there and nothing newer replaced it: an
 * acknowledged unique-key write missing, or a shared key older than an acknowledged write),
 * {@code RESURRECTED} (a key whose acknowledged delete is newer holds an older value again),
 * {@code UNEXPLAINED} (a version no candidate wrote, or a known version with another value),
 * {@code DIVERGENT} (nodes disagree on a key), {@code QUORUM_UNDER_REPLICATED} (an acknowledged
 * QUORUM write held by fewer nodes than its concern needed right after the acknowledgement),
 * {@code QUORUM_LOST} (a QUORUM write held by two or more nodes lost to the first crash after it), and
 * {@code SYNC_QUORUM_LOST}: a write acknowledged at QUORUM under SYNC that no node holds at the end,
 * neither it nor a newer write of its key. That is the figure the crash nemeses (kill -9 of every
 * node, power loss of every node) are checked against; it must be 0 whatever crashed. It overlaps
 * {@code LOST}/{@code RESURRECTED} on purpose: those judge each node, this one the cluster.
 */
final class HistoryChecker {
  /** What a node holds for a key: a value, or a tombstone ({@code value == null}). */
  record Cell(Version version, String value) {
    @Override
    public String toString() {
      return (value == null ? "tombstone" : value) + " v=" + version;
    }
  }

  enum Kind {
    LOST, RESURRECTED, UNEXPLAINED, DIVERGENT, QUORUM_UNDER_REPLICATED, QUORUM_LOST, SYNC_QUORUM_LOST
  }

  record Violation(Kind kind, String key, String message) {}

  /** The figures of one check. */
  record Figures(int operations, int ok, int unknown, int failed, int okOne, int okQuorum,
      int requiredWrites, int quorumChecked, int oneLostToCrash, int quorumLostToCrash, int keys,
      int divergentKeys, int syncQuorumAcked, int syncQuorumLost, Map<Kind, Integer> violations) {
    int lost() {
      return violations.getOrDefault(Kind.LOST, 0) + violations.getOrDefault(Kind.RESURRECTED, 0)
          + violations.getOrDefault(Kind.QUORUM_LOST, 0);
    }

    @Override
    public String toString() {
      return String.format("operations %d: ok %d (ONE %d, QUORUM %d), unknown %d, failed %d; "
          + "required writes %d; QUORUM acks checked on replicas %d; lost to a crash before "
          + "spreading (allowed): ONE %d, QUORUM %d; keys %d, divergent %d; "
          + "SYNC-acknowledged QUORUM writes lost %d of %d; violations %s",
          operations, ok, okOne, okQuorum, unknown, failed, requiredWrites, quorumChecked,
          oneLostToCrash, quorumLostToCrash, keys, divergentKeys, syncQuorumLost, syncQuorumAcked,
          violations);
    }
  }

  /** The verdict: figures, violations, and the history lines and states that show them. */
  record Verdict(Figures figures, List<Violation> violations, String evidence) {
    boolean ok() {
      return violations.isEmpty();
    }
  }

  private static final int MAX_KEYS_SHOWN = 5;

  private HistoryChecker() {}

  /**
   * @param history every operation of the run (all finished)
   * @param states per node id, what it holds for every key it knows
   * @param originNanos start of the run, for history times
   */
  static Verdict check(Collection<HistoryOp> history, Map<String, Map<String, Cell>> states,
      long originNanos) {
    Map<String, List<HistoryOp>> byKey = new HashMap<>();
    int ok = 0;
    int unknown = 0;
    int failed = 0;
    int okOne = 0;
    int okQuorum = 0;
    int required = 0;
    int quorumChecked = 0;
    int oneLost = 0;
    int quorumLost = 0;
    List<Violation> violations = new ArrayList<>();
    for (HistoryOp op : history) {
      byKey.computeIfAbsent(op.key, k -> new ArrayList<>()).add(op);
      switch (op.outcome) {
        case OK -> {
          ok++;
          if (op.concern == WriteConcern.ONE) {
            okOne++;
          } else {
            okQuorum++;
          }
        }
        case UNKNOWN -> unknown++;
        case FAILED -> failed++;
        default -> throw new IllegalStateException("operation still pending: " + op.describe(originNanos));
      }
      if (op.required()) {
        required++;
      }
      if (op.lostToCrash != null && op.outcome == HistoryOp.Outcome.OK && !op.durableAck) {
        if (op.concern == WriteConcern.ONE) {
          oneLost++;
        } else {
          quorumLost++;
        }
      }
      if (op.concern == WriteConcern.QUORUM && op.outcome == HistoryOp.Outcome.OK
          && op.required > 0) { // 0: nobody counted its replicas (the nemesis's burst writes)
        quorumChecked++;
        if (op.holders < op.required) {
          violations.add(new Violation(Kind.QUORUM_UNDER_REPLICATED, op.key, "#" + op.id
              + " acknowledged at QUORUM (" + op.required + " replicas needed) but only "
              + op.holders + " node(s) held it right after the acknowledgement"));
        }
        if (op.lostToCrash != null && op.holders >= 2 && op.lostAtCrash == op.crashesAtEnd + 1) {
          violations.add(new Violation(Kind.QUORUM_LOST, op.key, "#" + op.id + " was held by "
              + op.holders + " nodes at its QUORUM acknowledgement, yet the first crash after it ("
              + op.lostToCrash + ") left no other node holding it"));
        }
      }
    }

    Set<String> keys = new TreeSet<>(byKey.keySet());
    for (Map<String, Cell> s : states.values()) {
      keys.addAll(s.keySet());
    }
    int divergent = 0;
    for (String key : keys) {
      Map<String, Cell> cells = new LinkedHashMap<>();
      for (Map.Entry<String, Map<String, Cell>> n : states.entrySet()) {
        cells.put(n.getKey(), n.getValue().get(key));
      }
      if (new LinkedHashSet<>(cells.values()).size() > 1) {
        divergent++;
        violations.add(new Violation(Kind.DIVERGENT, key, "nodes disagree: " + cells));
      }
      List<HistoryOp> ops = byKey.getOrDefault(key, List.of());
      for (Map.Entry<String, Cell> n : cells.entrySet()) {
        Violation v = checkKey(key, n.getKey(), n.getValue(), ops);
        if (v != null) {
          violations.add(v);
          break; // one per key is enough; the evidence shows every node
        }
      }
    }

    int syncAcked = 0;
    int syncLost = 0;
    for (HistoryOp op : history) {
      if (!op.durableAck || op.concern != WriteConcern.QUORUM || op.outcome != HistoryOp.Outcome.OK
          || op.version == null) {
        continue;
      }
      syncAcked++;
      if (!heldAnywhere(op, states)) {
        syncLost++;
        violations.add(new Violation(Kind.SYNC_QUORUM_LOST, op.key, "#" + op.id + " ("
            + op.kind + " v=" + op.version + ") was acknowledged at QUORUM under SYNC, yet no node "
            + "holds it or a newer write of " + op.key));
      }
    }

    Map<Kind, Integer> counts = new LinkedHashMap<>();
    for (Violation v : violations) {
      counts.merge(v.kind(), 1, Integer::sum);
    }
    Figures figures = new Figures(history.size(), ok, unknown, failed, okOne, okQuorum, required,
        quorumChecked, oneLost, quorumLost, keys.size(), divergent, syncAcked, syncLost, counts);
    return new Verdict(figures, violations, evidence(violations, byKey, states, originNanos));
  }

  private static boolean heldAnywhere(HistoryOp op, Map<String, Map<String, Cell>> states) {
    for (Map<String, Cell> s : states.values()) {
      Cell c = s.get(op.key);
      if (c != null && c.version().compareTo(op.version) >= 0) {
        return true;
      }
    }
    return false;
  }

  private static Violation checkKey(String key, String node, Cell cell, List<HistoryOp> ops) {
    if (cell != null) {
      // Usually one write per version; a node restarted empty can reuse a version for another
      // write, and then the merge's tie-break may keep either: any of them explains the cell.
      HistoryOp writer = null;
      for (HistoryOp op : ops) {
        if (op.candidate() && op.version.equals(cell.version())) {
          String wrote = op.kind == HistoryOp.Kind.DELETE ? null : op.value;
          if (writer == null || Objects.equals(wrote, cell.value())) {
            writer = op;
          }
        }
      }
      if (writer == null) {
        return new Violation(Kind.UNEXPLAINED, key, node + " holds " + cell
            + ", which no acknowledged or unknown write made");
      }
      String expected = writer.kind == HistoryOp.Kind.DELETE ? null : writer.value;
      if (!Objects.equals(expected, cell.value())) {
        return new Violation(Kind.UNEXPLAINED, key, node + " holds " + cell + " but #" + writer.id
            + " wrote " + (expected == null ? "a tombstone" : expected) + " with that version");
      }
    }
    for (HistoryOp op : ops) {
      if (!op.required() || (cell != null && cell.version().compareTo(op.version) >= 0)) {
        continue;
      }
      if (op.kind == HistoryOp.Kind.DELETE && cell != null && cell.value() != null) {
        return new Violation(Kind.RESURRECTED, key, node + " holds " + cell + ", older than the "
            + "acknowledged delete #" + op.id + " (v=" + op.version + ")");
      }
      return new Violation(Kind.LOST, key, node + " holds " + (cell == null ? "nothing" : cell)
          + ", older than the acknowledged " + op.kind + " #" + op.id + " (v=" + op.version + ")");
    }
    return null;
  }

  /** The history of the offending keys only (the shortest history that shows each violation). */
  private static String evidence(List<Violation> violations, Map<String, List<HistoryOp>> byKey,
      Map<String, Map<String, Cell>> states, long originNanos) {
    if (violations.isEmpty()) {
      return "";
    }
    StringBuilder sb = new StringBuilder();
    Set<String> shown = new LinkedHashSet<>();
    for (Violation v : violations) {
      sb.append(v.kind()).append(' ').append(v.key()).append(": ").append(v.message()).append('\n');
    }
    for (Violation v : violations) {
      if (shown.size() == MAX_KEYS_SHOWN || !shown.add(v.key())) {
        continue;
      }
      sb.append("-- history of ").append(v.key()).append(" (times in s since the start)\n");
      for (HistoryOp op : byKey.getOrDefault(v.key(), List.of())) {
        sb.append("  ").append(op.describe(originNanos)).append('\n');
      }
      for (Map.Entry<String, Map<String, Cell>> n : states.entrySet()) {
        Cell c = n.getValue().get(v.key());
        sb.append("  final on ").append(n.getKey()).append(": ").append(c == null ? "nothing" : c)
            .append('\n');
      }
    }
    return sb.toString();
  }
}
