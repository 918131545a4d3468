package io.kvstore.core;

import io.kvstore.core.spi.ReplicaStore;

/**
 * Test-only: the {@link ReplicaStore} view a store hands its replicator, for tests (here and in
 * kvstore-cluster, through core's test-jar) that compare digests or apply mutations directly. The
 * main API has no way to it: a user's {@link KvStore} is not a {@link ReplicaStore}.
 */
public final class ReplicaViews {
  private ReplicaViews() {}

  /**
   * The replica view of a store built by {@link KvStore#builder()}.
   *
   * @param store the store
   * @return its replica view
   */
  public static ReplicaStore of(KvStore store) {
    if (!(store instanceof DefaultKvStore s)) {
      throw new IllegalArgumentException("not a store built by KvStore.builder(): " + store);
    }
    return s.replicaView();
  }
}
