package io.kvstore.cluster;

import io.scalecube.cluster.transport.api.Transport;
import java.util.Collection;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A switchboard between test nodes in one JVM: cuts the membership plane (through a ScaleCube
 * {@link Transport} decorator), the data plane (through the replicator's data-plane filter), or both.
 * Cuts are symmetric and keyed by node id; membership addresses are mapped to node ids as nodes start.
 */
final class TestNetwork {
  private final Set<String> cutMembership = ConcurrentHashMap.newKeySet();
  private final Set<String> cutData = ConcurrentHashMap.newKeySet();
  private final Map<String, String> nodeByAddress = new ConcurrentHashMap<>();

  /** Fault hooks for the node with this id. */
  FaultHooks hooksFor(String nodeId) {
    return new FaultHooks(transport -> new FilteringTransport(transport,
        to -> membershipAllows(nodeId, to), from -> membershipAllows(nodeId, from)),
        (from, to) -> !cutData.contains(pair(from, to)));
  }

  void register(String nodeId, String membershipAddress) {
    nodeByAddress.put(membershipAddress, nodeId);
  }

  /** Cuts both planes between every node of {@code a} and every node of {@code b}. */
  void partition(Collection<String> a, Collection<String> b) {
    for (String x : a) {
      for (String y : b) {
        cutMembership.add(pair(x, y));
        cutData.add(pair(x, y));
      }
    }
  }

  /** Cuts only the data plane between two nodes; membership still sees both alive. */
  void cutDataPlane(String a, String b) {
    cutData.add(pair(a, b));
  }

  /** Restores every link. */
  void heal() {
    cutMembership.clear();
    cutData.clear();
  }

  boolean membershipAllows(String from, String toAddress) {
    String to = nodeByAddress.get(toAddress);
    return to == null || !cutMembership.contains(pair(from, to));
  }

  private static String pair(String a, String b) {
    return a.compareTo(b) < 0 ? a + "|" + b : b + "|" + a;
  }
}
