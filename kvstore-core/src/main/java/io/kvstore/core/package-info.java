/**
 * kvstore-core: an embeddable, thread-safe, versioned key-value store that runs alone or replicated.
 *
 * <p>Start with {@link io.kvstore.core.KvStore#builder()}. Every write is stamped with a
 * {@link io.kvstore.core.Version} (hybrid logical clock plus node id) and merged last-writer-wins;
 * deletes leave tombstones; a replicator ({@link io.kvstore.core.spi}, the SPI for replication layers) carries mutations to other nodes.
 */
package io.kvstore.core;
