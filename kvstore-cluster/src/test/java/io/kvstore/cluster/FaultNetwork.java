package io.kvstore.cluster;

import io.scalecube.cluster.transport.api.Transport;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The network between the nodes of a {@link JepsenCluster}: directional cuts of both planes (a
 * partition is two cuts per pair, a one-way fault one), and loss, duplication and delay of fan-out
 * frames on the data plane, decided per frame by a seeded {@link Random}.
 *
 * <p>The membership plane is cut through a ScaleCube {@link Transport} decorator (a cut link drops
 * what its owner sends to, and what it receives from, the other side); the data plane through
 * {@link FaultHooks.DataPlaneFilter}: a cut link closes the connection, and
 * {@link FaultHooks.DataPlaneFilter#deliveries} loses, duplicates or delays each fan-out MUTATIONS
 * frame and the ACK answering it. Anti-entropy frames are only ever cut, never lost singly: they are
 * what repairs the loss. Thread interleavings are not replayable; the seed fixes which faults happen.
 */
final class FaultNetwork {
  private static final long[] ONCE_NOW = {0};
  private static final long[] LOST = {};

  /** Loss, duplication and delay of fan-out frames on every data-plane link. */
  record LinkFaults(double loss, double duplicate, long maxDelayMillis) {
    static final LinkFaults NONE = new LinkFaults(0, 0, 0);

    @Override
    public String toString() {
      return String.format("loss %.0f%%, duplicate %.0f%%, delay <= %d ms", loss * 100,
          duplicate * 100, maxDelayMillis);
    }
  }

  private final Set<String> cut = ConcurrentHashMap.newKeySet();
  private final Map<String, String> nodeByAddress = new ConcurrentHashMap<>();
  private final Random random;
  private volatile LinkFaults linkFaults = LinkFaults.NONE;

  FaultNetwork(long seed) {
    this.random = new Random(seed);
  }

  /** Fault hooks for the node with this id (the same for every incarnation of it). */
  FaultHooks hooksFor(String nodeId) {
    return new FaultHooks(transport -> new FilteringTransport(transport,
        to -> membershipAllows(nodeId, to), from -> membershipAllowsFrom(from, nodeId)),
        new FaultHooks.DataPlaneFilter() {
          @Override
          public boolean allows(String from, String to) {
            return FaultNetwork.this.allows(from, to);
          }

          @Override
          public long[] deliveries(String from, String to) {
            return FaultNetwork.this.deliveries();
          }
        });
  }

  void register(String nodeId, String membershipAddress) {
    nodeByAddress.put(membershipAddress, nodeId);
  }

  boolean allows(String from, String to) {
    return !cut.contains(from + ">" + to);
  }

  /** Nothing flows from {@code from} to {@code to} on either plane; the other direction is unchanged. */
  void cutOneWay(String from, String to) {
    cut.add(from + ">" + to);
  }

  /** Cuts both directions between every node of {@code a} and every node of {@code b}. */
  void partition(Collection<String> a, Collection<String> b) {
    for (String x : a) {
      for (String y : b) {
        if (!x.equals(y)) {
          cutOneWay(x, y);
          cutOneWay(y, x);
        }
      }
    }
  }

  /** Removes the cuts {@link #partition} made between these groups. */
  void restore(Collection<String> a, Collection<String> b) {
    for (String x : a) {
      for (String y : b) {
        cut.remove(x + ">" + y);
        cut.remove(y + ">" + x);
      }
    }
  }

  void linkFaults(LinkFaults faults) {
    this.linkFaults = faults;
  }

  /** Restores every link and stops losing, duplicating and delaying frames. */
  void heal() {
    cut.clear();
    linkFaults = LinkFaults.NONE;
  }

  /** The directional cuts in force, for reports. */
  List<String> cuts() {
    return new ArrayList<>(cut);
  }

  private long[] deliveries() {
    LinkFaults f = linkFaults;
    if (f == LinkFaults.NONE) {
      return ONCE_NOW;
    }
    synchronized (random) {
      if (random.nextDouble() < f.loss()) {
        return LOST;
      }
      int copies = random.nextDouble() < f.duplicate() ? 2 : 1;
      long[] delays = new long[copies];
      for (int i = 0; i < copies; i++) {
        delays[i] = f.maxDelayMillis() == 0 ? 0 : random.nextLong(f.maxDelayMillis() + 1);
      }
      return delays;
    }
  }

  private boolean membershipAllows(String from, String toAddress) {
    String to = nodeByAddress.get(toAddress);
    return to == null || allows(from, to);
  }

  private boolean membershipAllowsFrom(String fromAddress, String to) {
    String from = nodeByAddress.get(fromAddress);
    return from == null || allows(from, to);
  }
}
