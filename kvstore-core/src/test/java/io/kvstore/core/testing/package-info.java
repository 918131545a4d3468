/**
 * Test fixtures of kvstore-core, shipped to other modules in core's test-jar. They use only core's
 * public API.
 *
 * <ul>
 *   <li>{@link io.kvstore.core.testing.ReplicatorContract}: the abstract JUnit 5 suite every
 *       {@code Replicator} must pass; extend it and supply a
 *       {@link io.kvstore.core.testing.ReplicatorContract.Fixture}. kvstore-cluster runs it over its
 *       replication engine on a simulated network and over real Netty connections.
 *   <li>{@link io.kvstore.core.testing.ManualClock}, {@link io.kvstore.core.testing.Seeds},
 *       {@link io.kvstore.core.testing.SeedInFailures}, {@link io.kvstore.core.testing.Replicas}: injected
 *       time, replayable seeds ({@code -Dkvstore.seed=N}), and a replica's full state.
 *   <li>{@link io.kvstore.core.testing.PowerLossDisk}: the disk under a durable store, to crash it
 *       (kill -9) or cut its power (unsynced writes dropped, torn or reordered) and restart it on its
 *       data directory.
 * </ul>
 *
 * <p>Core has no network of its own: the deterministic multi-node simulation lives in kvstore-cluster's
 * tests ({@code SimNetwork}), where it drives the real replication engine rather than a copy of its
 * protocol.
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
