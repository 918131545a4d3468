package io.kvstore.cluster;

import static org.awaitility.Awaitility.await;

import io.kvstore.core.KvStore;
import io.kvstore.core.Member;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Function;
import java.util.function.UnaryOperator;
import java.util.stream.Collectors;

/**
 * Real nodes (ScaleCube + Netty on loopback, ephemeral ports) in this JVM, wired through a
 * {@link TestNetwork} so tests can cut and heal links. Close it to stop every node still running.
 */
final class TestCluster implements AutoCloseable {
  static final String HOST = "127.0.0.1";

  final TestNetwork network = new TestNetwork();
  private final String clusterName;
  private final UnaryOperator<KvClusterBuilder> settings;
  private final List<Node> nodes = new CopyOnWriteArrayList<>();

  /** One running node. */
  record Node(String id, KvStore store, ClusterReplicator replicator) {
    String membershipAddress() {
      return replicator.membershipAddress();
    }

    Set<String> memberIds() {
      return store.cluster().members().stream().map(Member::nodeId)
          .collect(Collectors.toCollection(TreeSet::new));
    }

    ReplicationStats stats() {
      return replicator.stats();
    }
  }

  TestCluster(String clusterName, UnaryOperator<KvClusterBuilder> settings) {
    this.clusterName = clusterName;
    this.settings = settings;
  }

  /** Starts {@code n} nodes {@code <prefix>1..n}, the later ones seeded with the first, and waits
   * until every node sees all of them and is ready. */
  static TestCluster start(String clusterName, String prefix, int n) {
    return start(clusterName, prefix, n, b -> b);
  }

  static TestCluster start(String clusterName, String prefix, int n,
      UnaryOperator<KvClusterBuilder> settings) {
    return startEach(clusterName, prefix, n, settings, id -> b -> b);
  }

  /** Like {@link #start(String, String, int, UnaryOperator)}, with settings per node id as well
   * (for example each node's own TLS certificate). */
  static TestCluster startEach(String clusterName, String prefix, int n,
      UnaryOperator<KvClusterBuilder> settings,
      Function<String, UnaryOperator<KvClusterBuilder>> perNode) {
    TestCluster cluster = new TestCluster(clusterName, settings);
    try {
      Node first = cluster.startNode(prefix + 1, perNode.apply(prefix + 1));
      for (int i = 2; i <= n; i++) {
        cluster.startNode(prefix + i, perNode.apply(prefix + i), first.membershipAddress());
      }
      cluster.awaitFullMembership(Duration.ofSeconds(30));
      return cluster;
    } catch (RuntimeException | Error e) {
      cluster.close();
      throw e;
    }
  }

  Node startNode(String id, String... seeds) {
    return startNode(id, b -> b, seeds);
  }

  Node startNode(String id, UnaryOperator<KvClusterBuilder> extra, String... seeds) {
    KvClusterBuilder builder = KvCluster.builder()
        .nodeId(id)
        .clusterName(clusterName)
        .host(HOST)
        .membershipPort(0)
        .dataPort(0)
        .seeds(seeds)
        .leaveTimeout(Duration.ofSeconds(2))
        .faultHooks(network.hooksFor(id));
    KvStore store = extra.apply(settings.apply(builder)).build();
    ClusterReplicator replicator = java.util.Objects.requireNonNull(ClusterReplicator.owning(store.cluster()));
    network.register(id, replicator.membershipAddress());
    Node node = new Node(id, store, replicator);
    nodes.add(node);
    return node;
  }

  List<Node> nodes() {
    return List.copyOf(nodes);
  }

  Node node(String id) {
    return nodes.stream().filter(n -> n.id().equals(id)).findFirst().orElseThrow();
  }

  Set<String> ids() {
    return nodes.stream().map(Node::id).collect(Collectors.toCollection(TreeSet::new));
  }

  /** Waits until every running node lists exactly the running nodes and is ready. */
  void awaitFullMembership(Duration within) {
    await().atMost(within).untilAsserted(() -> {
      Set<String> expected = ids();
      for (Node n : nodes) {
        if (!n.memberIds().equals(expected) || !n.store().cluster().isReady()) {
          throw new AssertionError(n.id() + " sees " + n.memberIds() + " (ready "
              + n.store().cluster().isReady() + "), expected " + expected);
        }
      }
    });
  }

  /** Stops a node without a graceful leave: it is cut off first, so its leave never arrives. */
  void crash(Node node) {
    List<String> others = new ArrayList<>(ids());
    others.remove(node.id());
    network.partition(List.of(node.id()), others);
    nodes.remove(node);
    node.store().close();
    network.heal();
  }

  /** Stops a node with a graceful leave. */
  void stop(Node node) {
    nodes.remove(node);
    node.store().close();
  }

  @Override
  public void close() {
    List<Thread> closers = new ArrayList<>();
    for (Node n : nodes) {
      Thread t = new Thread(() -> n.store().close(), "close-" + n.id());
      t.start();
      closers.add(t);
    }
    nodes.clear();
    for (Thread t : closers) {
      try {
        t.join(15_000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  static List<String> list(String... ids) {
    return Arrays.asList(ids);
  }
}
