package io.kvstore.core.sim;

import io.kvstore.core.testing.InMemoryCluster;
import io.kvstore.core.testing.ReplicatorContract;

/**
 * The replicator contract over the in-memory network with its pump running: delivery on a background
 * thread and Awaitility-based waits, the way a real cluster's fixture behaves.
 */
class PumpedInMemoryReplicatorContractTest extends ReplicatorContract {
  @Override
  protected Fixture createFixture(int nodes) {
    return InMemoryCluster.builder().nodes(nodes).autoPump().build();
  }
}
