/**
 * The SPI between kvstore-core and a replication layer: for implementers of a
 * {@link io.kvstore.core.spi.Replicator} (kvstore-cluster, the simulation in its tests), not for users
 * of a store.
 *
 * <p>A store built with {@link io.kvstore.core.KvStoreBuilder#replicator(Replicator)} hands its
 * replicator a private {@link io.kvstore.core.spi.ReplicaStore} view in
 * {@link io.kvstore.core.spi.Replicator#start(ReplicaStore)}; the user's
 * {@link io.kvstore.core.KvStore} does not implement it. {@link io.kvstore.core.spi.Mutation},
 * {@link io.kvstore.core.spi.Digest}, {@link io.kvstore.core.spi.KeyVersion},
 * {@link io.kvstore.core.spi.AntiEntropy} and {@link io.kvstore.core.spi.ApplyResult} are what a
 * replicator sends, compares and acknowledges; {@link io.kvstore.core.spi.Hashing} fixes the digest's
 * hash functions. Nothing here is needed to read or write a store.
 */
package io.kvstore.core.spi;
