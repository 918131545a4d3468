package io.kvstore.cluster;

import io.kvstore.core.CorruptionPolicy;
import io.kvstore.core.KvStore;
import io.kvstore.core.spi.Replicator;
import io.kvstore.core.KvStoreBuilder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.List;
import java.util.Objects;
import java.util.UUID;
import java.util.function.Consumer;

/**
 * Builds a clustered {@link KvStore}, or just its replicator. Obtain one from
 * {@link KvCluster#builder()}. Every setting has a documented default in {@link KvClusterConfig};
 * {@link #config()}, {@link #build()} and {@link #buildReplicator()} validate them and fail with an
 * {@link IllegalArgumentException} naming the first invalid one. Use port 0 for either port to bind a
 * free one; the real port is what other nodes are told.
 */
public final class KvClusterBuilder {
  private String nodeId;
  private String clusterName = KvClusterConfig.DEFAULT_CLUSTER_NAME;
  private String host = KvClusterConfig.DEFAULT_HOST;
  private String advertiseHost;
  private int membershipPort = KvClusterConfig.DEFAULT_MEMBERSHIP_PORT;
  private int dataPort = KvClusterConfig.DEFAULT_DATA_PORT;
  private List<String> seeds = List.of();
  private Duration pingInterval = KvClusterConfig.DEFAULT_PING_INTERVAL;
  private Duration pingTimeout = KvClusterConfig.DEFAULT_PING_TIMEOUT;
  private int pingRequestMembers = KvClusterConfig.DEFAULT_PING_REQUEST_MEMBERS;
  private int suspicionMultiplier = KvClusterConfig.DEFAULT_SUSPICION_MULTIPLIER;
  private Duration syncInterval = KvClusterConfig.DEFAULT_SYNC_INTERVAL;
  private Duration joinTimeout = KvClusterConfig.DEFAULT_JOIN_TIMEOUT;
  private Duration metadataTimeout = KvClusterConfig.DEFAULT_METADATA_TIMEOUT;
  private Duration gossipInterval = KvClusterConfig.DEFAULT_GOSSIP_INTERVAL;
  private Duration antiEntropyInterval = KvClusterConfig.DEFAULT_ANTI_ENTROPY_INTERVAL;
  private Duration antiEntropyTimeout = KvClusterConfig.DEFAULT_ANTI_ENTROPY_TIMEOUT;
  private long antiEntropyBytesPerSecond = KvClusterConfig.DEFAULT_ANTI_ENTROPY_BYTES_PER_SECOND;
  private Duration connectTimeout = KvClusterConfig.DEFAULT_CONNECT_TIMEOUT;
  private Duration handshakeTimeout = KvClusterConfig.DEFAULT_HANDSHAKE_TIMEOUT;
  private Duration reconnectBackoffMin = KvClusterConfig.DEFAULT_RECONNECT_BACKOFF_MIN;
  private Duration reconnectBackoffMax = KvClusterConfig.DEFAULT_RECONNECT_BACKOFF_MAX;
  private int maxBatchBytes = KvClusterConfig.DEFAULT_MAX_BATCH_BYTES;
  private long maxInFlightBytesPerPeer = KvClusterConfig.DEFAULT_MAX_IN_FLIGHT_BYTES_PER_PEER;
  private Duration leaveTimeout = KvClusterConfig.DEFAULT_LEAVE_TIMEOUT;
  private int maxInboundConnections = KvClusterConfig.DEFAULT_MAX_INBOUND_CONNECTIONS;
  private int maxUnauthenticatedConnectionsPerAddress =
      KvClusterConfig.DEFAULT_MAX_UNAUTHENTICATED_CONNECTIONS_PER_ADDRESS;
  private Duration membershipIdleTimeout = KvClusterConfig.DEFAULT_MEMBERSHIP_IDLE_TIMEOUT;
  private int replicationFactor = KvClusterConfig.DEFAULT_REPLICATION_FACTOR;
  private boolean replicationFactorSet;
  private Duration removalDelay = KvClusterConfig.DEFAULT_REMOVAL_DELAY;
  private Consumer<KvStoreBuilder> storeSettings = b -> { };
  private FaultHooks faults = FaultHooks.NONE;
  private ClusterKeyring keyring;
  private ClusterTls tls;

  KvClusterBuilder() {}

  /**
   * This node's id (default: {@code node-} and 8 random hex digits); it is also the store's node id.
   * Must be unique in the cluster.
   *
   * @param nodeId 1 to 64 characters of {@code A-Z a-z 0-9 . _ : -}
   * @return this builder
   */
  public KvClusterBuilder nodeId(String nodeId) {
    this.nodeId = nodeId;
    return this;
  }

  /**
   * The cluster's name (default {@value KvClusterConfig#DEFAULT_CLUSTER_NAME}); nodes of differently
   * named clusters ignore each other on both planes.
   *
   * @param clusterName 2 to 64 characters of {@code A-Z a-z 0-9 _ -}
   * @return this builder
   */
  public KvClusterBuilder clusterName(String clusterName) {
    this.clusterName = clusterName;
    return this;
  }

  /**
   * The address both planes bind to (default {@value KvClusterConfig#DEFAULT_HOST}). A wildcard such
   * as {@code 0.0.0.0} needs an {@link #advertiseHost(String)}.
   *
   * @param host a host name or IP address of this machine
   * @return this builder
   */
  public KvClusterBuilder host(String host) {
    this.host = host;
    return this;
  }

  /**
   * The address other nodes reach this one at (default: the bind host), for NAT and containers.
   *
   * @param advertiseHost a host name or IP address
   * @return this builder
   */
  public KvClusterBuilder advertiseHost(String advertiseHost) {
    this.advertiseHost = advertiseHost;
    return this;
  }

  /**
   * The membership (SWIM) port (default {@value KvClusterConfig#DEFAULT_MEMBERSHIP_PORT}).
   *
   * @param port 1 to 65535, or 0 for a free port
   * @return this builder
   */
  public KvClusterBuilder membershipPort(int port) {
    this.membershipPort = port;
    return this;
  }

  /**
   * The data-plane port (default {@value KvClusterConfig#DEFAULT_DATA_PORT}).
   *
   * @param port 1 to 65535, or 0 for a free port
   * @return this builder
   */
  public KvClusterBuilder dataPort(int port) {
    this.dataPort = port;
    return this;
  }

  /**
   * Membership addresses of nodes to join through (default: none, start a new cluster). A node keeps
   * trying them every sync interval, so it may start before them. Giving every node the same two or
   * three seeds also lets the two sides of a healed partition find each other again.
   *
   * @param seeds {@code host:port} addresses
   * @return this builder
   */
  public KvClusterBuilder seeds(String... seeds) {
    return seeds(Arrays.asList(Objects.requireNonNull(seeds, "seeds")));
  }

  /**
   * Membership addresses of nodes to join through; see {@link #seeds(String...)}.
   *
   * @param seeds {@code host:port} addresses
   * @return this builder
   */
  public KvClusterBuilder seeds(Collection<String> seeds) {
    this.seeds = new ArrayList<>(Objects.requireNonNull(seeds, "seeds"));
    return this;
  }

  /**
   * How often the failure detector pings a member (default 600 ms); see
   * {@link KvClusterConfig#DEFAULT_PING_INTERVAL}.
   *
   * @param interval a positive duration longer than the ping timeout
   * @return this builder
   */
  public KvClusterBuilder pingInterval(Duration interval) {
    this.pingInterval = interval;
    return this;
  }

  /**
   * How long a ping waits for its answer (default 300 ms).
   *
   * @param timeout a positive duration shorter than the ping interval
   * @return this builder
   */
  public KvClusterBuilder pingTimeout(Duration timeout) {
    this.pingTimeout = timeout;
    return this;
  }

  /**
   * How many members ping a silent member on this node's behalf (default 2).
   *
   * @param members 0 to 16
   * @return this builder
   */
  public KvClusterBuilder pingRequestMembers(int members) {
    this.pingRequestMembers = members;
    return this;
  }

  /**
   * Scales how long a suspect has to refute before removal (default 3); see
   * {@link KvClusterConfig#DEFAULT_SUSPICION_MULTIPLIER}.
   *
   * @param multiplier 1 to 100
   * @return this builder
   */
  public KvClusterBuilder suspicionMultiplier(int multiplier) {
    this.suspicionMultiplier = multiplier;
    return this;
  }

  /**
   * How often membership tables are exchanged with a random seed or member (default 2 s); this bounds
   * how long a healed partition stays split.
   *
   * @param interval a positive duration
   * @return this builder
   */
  public KvClusterBuilder syncInterval(Duration interval) {
    this.syncInterval = interval;
    return this;
  }

  /**
   * How long starting waits for the seeds (default 3 s).
   *
   * @param timeout a positive duration
   * @return this builder
   */
  public KvClusterBuilder joinTimeout(Duration timeout) {
    this.joinTimeout = timeout;
    return this;
  }

  /**
   * How long fetching a new member's metadata may take (default 3 s).
   *
   * @param timeout a positive duration
   * @return this builder
   */
  public KvClusterBuilder metadataTimeout(Duration timeout) {
    this.metadataTimeout = timeout;
    return this;
  }

  /**
   * How often membership gossip is spread (default 200 ms).
   *
   * @param interval a positive duration
   * @return this builder
   */
  public KvClusterBuilder gossipInterval(Duration interval) {
    this.gossipInterval = interval;
    return this;
  }

  /**
   * How often this node compares digests with a random live peer (default 1 s).
   *
   * @param interval a positive duration
   * @return this builder
   */
  public KvClusterBuilder antiEntropyInterval(Duration interval) {
    this.antiEntropyInterval = interval;
    return this;
  }

  /**
   * The most bytes per second this node's anti-entropy rounds push and pull: a node catching up, a
   * new owner pulling partitions in a rebalance, a handoff (default
   * {@link KvClusterConfig#DEFAULT_ANTI_ENTROPY_BYTES_PER_SECOND}, 64 MiB/s). Live writes are not
   * limited. 0 removes the limit.
   *
   * @param bytesPerSecond 0, or at least 65536
   * @return this builder
   */
  public KvClusterBuilder antiEntropyBytesPerSecond(long bytesPerSecond) {
    this.antiEntropyBytesPerSecond = bytesPerSecond;
    return this;
  }

  /**
   * How long one step of an anti-entropy round waits for the peer (default 10 s).
   *
   * @param timeout a positive duration
   * @return this builder
   */
  public KvClusterBuilder antiEntropyTimeout(Duration timeout) {
    this.antiEntropyTimeout = timeout;
    return this;
  }

  /**
   * How long a data-plane connection attempt may take (default 2 s).
   *
   * @param timeout a positive duration
   * @return this builder
   */
  public KvClusterBuilder connectTimeout(Duration timeout) {
    this.connectTimeout = timeout;
    return this;
  }

  /**
   * How long a new connection may take to authenticate (default 5 s): on the data port, to complete
   * the handshake; on the membership port, to deliver its first valid message. Slower ones are
   * closed and counted.
   *
   * @param timeout a positive duration
   * @return this builder
   */
  public KvClusterBuilder handshakeTimeout(Duration timeout) {
    this.handshakeTimeout = timeout;
    return this;
  }

  /**
   * The delays between reconnection attempts: the first, doubling up to the longest (default 100 ms
   * to 2 s).
   *
   * @param min the first delay, positive
   * @param max the longest delay, at least {@code min}
   * @return this builder
   */
  public KvClusterBuilder reconnectBackoff(Duration min, Duration max) {
    this.reconnectBackoffMin = min;
    this.reconnectBackoffMax = max;
    return this;
  }

  /**
   * The target size of one data-plane frame of mutations (default 256 KiB).
   *
   * @param bytes 1 KiB to 1 MiB
   * @return this builder
   */
  public KvClusterBuilder maxBatchBytes(int bytes) {
    this.maxBatchBytes = bytes;
    return this;
  }

  /**
   * Unsent plus unacknowledged mutation bytes allowed per peer before mutations for it are dropped and
   * left to anti-entropy (default 32 MiB).
   *
   * @param bytes at least two of the largest frames
   * @return this builder
   */
  public KvClusterBuilder maxInFlightBytesPerPeer(long bytes) {
    this.maxInFlightBytesPerPeer = bytes;
    return this;
  }

  /**
   * How long closing waits for the leave announcement to spread (default 5 s).
   *
   * @param timeout a positive duration
   * @return this builder
   */
  public KvClusterBuilder leaveTimeout(Duration timeout) {
    this.leaveTimeout = timeout;
    return this;
  }

  /**
   * The most inbound connections each cluster port holds at once (default 256); one more is closed
   * on arrival and counted ({@code inboundConnectionsRefused}).
   *
   * @param connections at least 1
   * @return this builder
   */
  public KvClusterBuilder maxInboundConnections(int connections) {
    this.maxInboundConnections = connections;
    return this;
  }

  /**
   * The most not-yet-authenticated inbound connections from one remote IP address that each cluster
   * port holds (default 16); one more from that address is closed on arrival and counted.
   * Authenticated connections (members) do not count against it.
   *
   * @param connections 1 to {@code maxInboundConnections}
   * @return this builder
   */
  public KvClusterBuilder maxUnauthenticatedConnectionsPerAddress(int connections) {
    this.maxUnauthenticatedConnectionsPerAddress = connections;
    return this;
  }

  /**
   * How long an inbound membership connection may go without delivering a message before it is
   * closed (default 60 s); a member reconnects when it next sends.
   *
   * @param timeout a positive duration (the first message is timed by the handshake timeout)
   * @return this builder
   */
  public KvClusterBuilder membershipIdleTimeout(Duration timeout) {
    this.membershipIdleTimeout = timeout;
    return this;
  }

  /**
   * How many nodes own each key (default: unset, every node owns every key, which is full
   * replication). Below the number of nodes the cluster is partitioned: each of the
   * {@code 1024} partitions lives on this many nodes, and capacity grows with the cluster (see
   * docs/CLUSTER.md, "Partitioned mode"). At or above the number of nodes behaviour is exactly full
   * replication. Every node of a cluster needs the same factor.
   *
   * @param replicationFactor at least 1
   * @return this builder
   */
  public KvClusterBuilder replicationFactor(int replicationFactor) {
    this.replicationFactor = replicationFactor;
    this.replicationFactorSet = true;
    return this;
  }

  /**
   * How long a node removed by the failure detector without a graceful leave (crashed, cut off,
   * paused) keeps its partitions before placement moves them to the others (default 5 minutes; see
   * {@link KvClusterConfig#DEFAULT_REMOVAL_DELAY}). A node back within it moves nothing; a graceful
   * leave does not wait; a SWIM suspicion never counts.
   *
   * @param delay a positive duration
   * @return this builder
   */
  public KvClusterBuilder removalDelay(Duration delay) {
    this.removalDelay = delay;
    return this;
  }

  /**
   * Settings of the store itself (limits, TTL purge, write concern defaults, data directory and
   * durability...). The node id, the cluster name and the replicator are set by this builder and
   * override whatever the consumer sets; corruption found at recovery defaults to
   * {@link CorruptionPolicy#MOVE_ASIDE} (start empty, let the peers repair the node).
   *
   * @param settings applied to the store's builder by {@link #build()}
   * @return this builder
   */
  public KvClusterBuilder store(Consumer<KvStoreBuilder> settings) {
    this.storeSettings = Objects.requireNonNull(settings, "settings");
    return this;
  }

  /**
   * The cluster secrets that authenticate this node to the others on both planes (default: none;
   * without a keyring or {@link #tls(ClusterTls) TLS} the cluster is open, logged as a warning).
   * Every node of the cluster needs a keyring accepting the others' primary keys. See
   * {@link ClusterKeyring} for rotation and docs/SECURITY.md for what it protects.
   *
   * @param keyring the keyring, or null for none
   * @return this builder
   */
  public KvClusterBuilder keyring(ClusterKeyring keyring) {
    this.keyring = keyring;
    return this;
  }

  /**
   * Shorthand for {@code keyring(ClusterKeyring.of(secret))}: a single shared secret.
   *
   * @param secret at least {@value ClusterKeyring#MIN_KEY_BYTES} random bytes (not kept)
   * @return this builder
   * @throws IllegalArgumentException if the secret is too short or too long
   */
  public KvClusterBuilder clusterSecret(byte[] secret) {
    this.keyring = ClusterKeyring.of(secret);
    return this;
  }

  /**
   * Runs both planes (data plane and membership) over mutual TLS with a cluster CA (default: none,
   * plain TCP). Only nodes whose certificate is signed by one of the CA bundle's certificates can
   * connect to this node or be connected to, and the traffic is encrypted. TLS alone makes an
   * authenticated cluster; a {@link #keyring(ClusterKeyring) keyring} may be added on top (its HMAC
   * checks then run inside TLS). Every node of the cluster needs TLS: a node without it cannot talk
   * to one with it. See {@link ClusterTls} and docs/SECURITY.md.
   *
   * @param tls from {@link ClusterTls#pem} or {@link ClusterTls#keyStore}, or null for plain TCP
   * @return this builder
   */
  public KvClusterBuilder tls(ClusterTls tls) {
    this.tls = tls;
    return this;
  }

  /** Test-only: fault injection into both planes. */
  KvClusterBuilder faultHooks(FaultHooks hooks) {
    this.faults = Objects.requireNonNull(hooks, "hooks");
    return this;
  }

  /**
   * The validated config these settings make.
   *
   * @return the config
   * @throws IllegalArgumentException naming the first invalid setting
   */
  public KvClusterConfig config() {
    if (nodeId == null) {
      nodeId = "node-" + UUID.randomUUID().toString().substring(0, 8);
    }
    if (replicationFactorSet && replicationFactor < 1) {
      throw new IllegalArgumentException("replicationFactor must be at least 1, was "
          + replicationFactor + " (leave it unset for full replication: every node owns every key)");
    }
    return new KvClusterConfig(nodeId, clusterName, host,
        advertiseHost != null ? advertiseHost : host, membershipPort, dataPort, seeds, pingInterval,
        pingTimeout, pingRequestMembers, suspicionMultiplier, syncInterval, joinTimeout,
        metadataTimeout, gossipInterval, antiEntropyInterval, antiEntropyTimeout, connectTimeout,
        handshakeTimeout, reconnectBackoffMin, reconnectBackoffMax, maxBatchBytes,
        maxInFlightBytesPerPeer, leaveTimeout, maxInboundConnections,
        maxUnauthenticatedConnectionsPerAddress, membershipIdleTimeout, keyring, tls,
        replicationFactor, removalDelay, antiEntropyBytesPerSecond);
  }

  /**
   * A replicator for a store built separately with {@code KvStore.builder().nodeId(sameId)
   * .replicator(it)}; the store starts it (binding the ports) and closes it.
   *
   * {@link KvCluster#node} of that store gives its {@link ClusterNode}. The one public signature of
   * kvstore-cluster with an SPI type ({@link Replicator}): it is the hook for a store built by hand.
   *
   * @return an unstarted replicator
   * @throws IllegalArgumentException naming the first invalid setting
   */
  public Replicator buildReplicator() {
    return buildClusterReplicator();
  }

  /** {@link #buildReplicator()} as its own type, for this package's wiring and tests. */
  ClusterReplicator buildClusterReplicator() {
    return new ClusterReplicator(config(), faults);
  }

  /**
   * Builds the store and its replicator, binds both ports and joins the cluster (waiting at most the
   * join timeout for the seeds). The store serves reads and writes at once; its
   * {@code cluster().isReady()} tells when it has caught up with a peer.
   *
   * @return a running store; close it to leave the cluster
   * @throws IllegalArgumentException naming the first invalid setting
   * @throws IllegalStateException if a port cannot be bound or membership cannot start
   */
  public KvStore build() {
    KvClusterConfig config = config();
    KvStoreBuilder builder = KvStore.builder();
    // A corrupted replica must not serve or spread its data; its peers repair it. Overridable.
    builder.onCorruption(CorruptionPolicy.MOVE_ASIDE);
    storeSettings.accept(builder);
    builder.nodeId(config.nodeId());
    builder.clusterName(config.clusterName());
    builder.replicator(new ClusterReplicator(config, faults));
    return builder.build();
  }
}
