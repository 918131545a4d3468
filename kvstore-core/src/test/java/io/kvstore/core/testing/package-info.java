/**
 * Test fixtures of kvstore-core, shipped to other modules in core's test-jar. They use only core's
 * public API.
 *
 * <ul>
 *   <li>{@link io.kvstore.core.testing.InMemoryCluster}: N wired {@code KvStore}s in one line, stepped
 *       deterministically or pumped by a background thread.
 *   <li>{@link io.kvstore.core.testing.InMemoryNetwork} / {@link io.kvstore.core.testing.InMemoryReplicator}:
 *       the seeded network under it: loss, duplication, delay, reordering
 *       ({@link io.kvstore.core.testing.NetworkFaults}), partitions, one-way blocks, write-concern acks and
 *       timeouts, chunked anti-entropy, stats and a trace.
 *   <li>{@link io.kvstore.core.testing.ReplicatorContract}: the abstract JUnit 5 suite every
 *       {@code Replicator} must pass; extend it and supply a
 *       {@link io.kvstore.core.testing.ReplicatorContract.Fixture}.
 *   <li>{@link io.kvstore.core.testing.ManualClock}, {@link io.kvstore.core.testing.Seeds},
 *       {@link io.kvstore.core.testing.SeedInFailures}, {@link io.kvstore.core.testing.Replicas}: injected
 *       time, replayable seeds ({@code -Dkvstore.seed=N}), and a replica's full state.
 *   <li>{@link io.kvstore.core.testing.PowerLossDisk}: the disk under a durable store, to crash it
 *       (kill -9) or cut its power (unsynced writes dropped, torn or reordered) and restart it on its
 *       data directory.
 * </ul>
 *
 * <p>To use them from another module:
 * <pre>{@code
 * <dependency>
 *   <groupId>io.kvstore</groupId>
 *   <artifactId>kvstore-core</artifactId>
 *   <type>test-jar</type>
 *   <scope>test</scope>
 * </dependency>
 * }</pre>
 */
package io.kvstore.core.testing;
