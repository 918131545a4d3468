package io.kvstore.core.sim;

import io.kvstore.core.testing.InMemoryCluster;
import io.kvstore.core.testing.NetworkFaults;
import io.kvstore.core.testing.ReplicatorContract;
import io.kvstore.core.testing.SeedInFailures;
import io.kvstore.core.testing.Seeds;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The replicator contract over the deterministic in-memory network, stepped by the test thread, with
 * duplication, delays and reordering (no loss: the write-concern tests expect healthy links to ack).
 */
class InMemoryReplicatorContractTest extends ReplicatorContract {
  static final long SEED = Long.getLong(Seeds.SEED_PROPERTY, 42L);

  @RegisterExtension
  static final SeedInFailures SEED_IN_FAILURES = new SeedInFailures(SEED);

  @Override
  protected Fixture createFixture(int nodes) {
    return InMemoryCluster.builder().nodes(nodes).seed(SEED)
        .faults(NetworkFaults.none().withDuplication(0.2).withDelay(1, 3).withReorder(0.2, 5))
        .antiEntropyChunkSize(8)
        .build();
  }
}
