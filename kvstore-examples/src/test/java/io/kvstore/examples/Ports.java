package io.kvstore.examples;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;

/** Free loopback ports for servers that must be started with fixed port numbers. */
final class Ports {
  private Ports() {}

  /**
   * {@code n} triples of {@code {httpPort, clusterPort}} where http, cluster and cluster + 1 are free.
   */
  static List<int[]> freeNodePorts(int n) {
    Set<Integer> taken = new HashSet<>();
    List<int[]> out = new ArrayList<>();
    while (out.size() < n) {
      // Below Linux's ephemeral range (32768-60999): a port above it, free when picked, may be
      // taken by any outgoing connection before the node binds it (PartitionedProcessIT's seventh
      // node, started ~30 s after its ports were picked, once found its data port 36768 in use).
      int http = 20_000 + ThreadLocalRandom.current().nextInt(12_000);
      int cluster = 20_000 + ThreadLocalRandom.current().nextInt(12_000);
      if (taken.contains(http) || taken.contains(cluster) || taken.contains(cluster + 1)
          || http == cluster || http == cluster + 1) {
        continue;
      }
      if (free(http) && free(cluster) && free(cluster + 1)) {
        taken.add(http);
        taken.add(cluster);
        taken.add(cluster + 1);
        out.add(new int[] {http, cluster});
      }
    }
    return out;
  }

  static boolean free(int port) {
    try (ServerSocket s = new ServerSocket(port, 1, InetAddress.getLoopbackAddress())) {
      s.setReuseAddress(true);
      return true;
    } catch (IOException e) {
      return false;
    }
  }
}
