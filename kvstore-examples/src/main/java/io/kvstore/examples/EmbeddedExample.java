package io.kvstore.examples;

import io.kvstore.cluster.KvCluster;
import io.kvstore.core.ChangeEvent;
import io.kvstore.core.KvStore;
import io.kvstore.core.Registration;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteOptions;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A 3-node cluster inside one JVM, through the public API only: a write on one node read on another,
 * a change listener, a clean shutdown. The tagged region is the README's cluster snippet.
 */
public final class EmbeddedExample {
  private EmbeddedExample() {}

  /**
   * Runs the example.
   *
   * @return what it observed, one line each
   * @throws InterruptedException if interrupted while waiting for replication
   */
  public static List<String> run() throws InterruptedException {
    List<String> seen = new CopyOnWriteArrayList<>();
    // tag::cluster[]
    KvStore n1 = KvCluster.builder().nodeId("n1").clusterName("demo")
        .host("127.0.0.1").membershipPort(0).dataPort(0)        // 0 = any free port
        .build();
    String seed = KvCluster.node(n1).orElseThrow().membershipAddress();
    KvStore n2 = KvCluster.builder().nodeId("n2").clusterName("demo")
        .membershipPort(0).dataPort(0).seeds(seed).build();
    KvStore n3 = KvCluster.builder().nodeId("n3").clusterName("demo")
        .membershipPort(0).dataPort(0).seeds(seed).build();

    awaitMembers(List.of(n1, n2, n3), 3, Duration.ofSeconds(30)); // membership is gossiped

    Registration watch = n3.addListener("order:", (ChangeEvent e) ->
        seen.add(e.origin() + " " + e.type() + " " + e.key()));  // remote writes show up too

    n1.put("order:1", "paid".getBytes(StandardCharsets.UTF_8),
        WriteOptions.concern(WriteConcern.ALL).withTimeout(Duration.ofSeconds(10)));
    Optional<String> onN3 = n3.getString("order:1");             // Optional[paid]: ALL waited

    watch.close();
    for (KvStore node : List.of(n3, n2, n1)) {
      node.close();                                              // leaves the cluster gracefully
    }
    // end::cluster[]
    seen.add("n3 read " + onN3.orElse("nothing"));
    return seen;
  }

  /**
   * Waits until every node sees {@code count} members and is ready (joined and synchronised).
   *
   * @param nodes the nodes
   * @param count members each must see
   * @param timeout how long to wait at most
   * @throws InterruptedException if interrupted
   * @throws IllegalStateException if the cluster did not form in time
   */
  public static void awaitMembers(List<KvStore> nodes, int count, Duration timeout)
      throws InterruptedException {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (!nodes.stream().allMatch(n -> n.cluster().members().size() == count
        && n.cluster().isReady())) {
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException("the cluster did not form within " + timeout);
      }
      Thread.sleep(20);
    }
  }

  /**
   * Prints what the example observed.
   *
   * @param args ignored
   * @throws InterruptedException if interrupted
   */
  public static void main(String[] args) throws InterruptedException {
    run().forEach(System.out::println);
  }
}
