package io.kvstore.cluster;

import io.kvstore.core.NodeIds;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * The validated, immutable settings of one clustered node. Build one with {@link KvCluster#builder()};
 * every field has a {@code DEFAULT_*} constant that explains its trade-off. docs/CLUSTER.md has the same
 * table with the timings worked out.
 *
 * <p>With the failure-detector defaults a killed member is removed within about 5.4 s in a 3-node
 * cluster and 7.2 s with 4 to 7 members: suspecting it takes up to {@code 3 × pingInterval} (waiting
 * for its turn to be pinged, then the direct and indirect pings), then the suspicion timeout
 * {@code suspicionMultiplier × ceil(log2(members + 1)) × pingInterval} runs (3.6 s and 5.4 s).
 *
 * @param nodeId this node's id: stamped into every version it writes and unique in the cluster
 * @param clusterName the cluster's name (2 to 64 characters of {@code A-Z a-z 0-9 _ -}): nodes with
 *     another name never join it or exchange data with it
 * @param host the address both planes bind to (a concrete address, not a wildcard)
 * @param advertiseHost the address other nodes use to reach this one (usually the same as host)
 * @param membershipPort the membership (SWIM) TCP port; 0 picks a free one
 * @param dataPort the data-plane TCP port; 0 picks a free one
 * @param seeds {@code host:port} membership addresses of nodes to join through; may be empty
 * @param pingInterval how often the failure detector pings one member
 * @param pingTimeout how long a ping waits for its answer before indirect pings are tried
 * @param pingRequestMembers how many members are asked to ping a silent member indirectly
 * @param suspicionMultiplier scales how long a suspected member has to refute before it is removed
 * @param syncInterval how often membership tables are exchanged with a random seed or member
 * @param joinTimeout how long the initial join waits for seeds before the node starts alone
 * @param metadataTimeout how long fetching a new member's metadata may take
 * @param gossipInterval how often membership gossip is spread
 * @param antiEntropyInterval how often a digest is compared with a random live peer
 * @param antiEntropyTimeout how long one step of an anti-entropy round waits for the peer
 * @param connectTimeout how long a data-plane connection attempt may take
 * @param handshakeTimeout how long a new data-plane connection may take to complete its handshake
 * @param reconnectBackoffMin the first delay before reconnecting a lost data-plane connection
 * @param reconnectBackoffMax the longest delay between reconnection attempts
 * @param maxBatchBytes the target size of one data-plane frame of mutations
 * @param maxInFlightBytesPerPeer unsent plus unacknowledged mutation bytes allowed per peer
 * @param leaveTimeout how long {@code close()} waits for the graceful leave to spread
 * @param keyring the cluster secrets that authenticate both planes, or null for none; with neither a
 *     keyring nor TLS the cluster is open (any node that can reach the ports can join, write and read;
 *     logged as a warning at start); see
 *     {@link ClusterKeyring} and docs/SECURITY.md
 * @param tls mutual TLS with a cluster CA for both planes, or null for plain TCP; with TLS and no
 *     keyring the cluster counts as authenticated (only holders of a certificate signed by the CA get
 *     in); both may be set, see {@link ClusterTls} and docs/SECURITY.md
 * @param replicationFactor how many nodes own each partition (partitioned mode, docs/CLUSTER.md), or
 *     {@link #FULL_REPLICATION} (0) for every node owning every key; a factor at or above the number
 *     of nodes is full replication too
 * @param removalDelay how long a node must be continuously absent (removed by the failure detector
 *     without a graceful leave) before placement stops counting it; a node back within it keeps its
 *     partitions
 * @param antiEntropyBytesPerSecond the most bytes per second this node's anti-entropy rounds push
 *     and pull (a catch-up, a rebalance's pulls, a handoff), so moving data does not starve live
 *     traffic; 0 for no limit
 */
public record KvClusterConfig(
    String nodeId,
    String clusterName,
    String host,
    String advertiseHost,
    int membershipPort,
    int dataPort,
    List<String> seeds,
    Duration pingInterval,
    Duration pingTimeout,
    int pingRequestMembers,
    int suspicionMultiplier,
    Duration syncInterval,
    Duration joinTimeout,
    Duration metadataTimeout,
    Duration gossipInterval,
    Duration antiEntropyInterval,
    Duration antiEntropyTimeout,
    Duration connectTimeout,
    Duration handshakeTimeout,
    Duration reconnectBackoffMin,
    Duration reconnectBackoffMax,
    int maxBatchBytes,
    long maxInFlightBytesPerPeer,
    Duration leaveTimeout,
    int maxInboundConnections,
    int maxUnauthenticatedConnectionsPerAddress,
    Duration membershipIdleTimeout,
    ClusterKeyring keyring,
    ClusterTls tls,
    int replicationFactor,
    Duration removalDelay,
    long antiEntropyBytesPerSecond) {

  /**
   * 64 MiB/s: a rebalance of a few GB finishes in a minute or two while leaving most of a 1 Gbit/s
   * link (and the disk) to live traffic; Cassandra's default stream throughput is 24 MiB/s.
   */
  public static final long DEFAULT_ANTI_ENTROPY_BYTES_PER_SECOND = 64L * 1024 * 1024;

  /** "kvstore": the name nodes use when none is given. */
  public static final String DEFAULT_CLUSTER_NAME = "kvstore";
  /** Loopback: a node is reachable from other machines only when a real address is chosen. */
  public static final String DEFAULT_HOST = "127.0.0.1";
  /** 7946, the customary SWIM port. */
  public static final int DEFAULT_MEMBERSHIP_PORT = 7946;
  /** 7947, next to the membership port. */
  public static final int DEFAULT_DATA_PORT = 7947;
  /**
   * 600 ms. Each ping costs one small message; a shorter interval detects failures sooner but, on a
   * loaded machine, makes false suspicions (and with them false removals) more likely: with 200 ms
   * pings, and so a 1.2 s suspicion timeout, ScaleCube removed healthy nodes during JVM warm-up.
   */
  public static final Duration DEFAULT_PING_INTERVAL = Duration.ofMillis(600);
  /**
   * 300 ms, half the interval: the other half is left for the indirect pings. Too short turns GC pauses
   * into suspicions; a suspicion alone removes no one, the suspect refutes it by gossip.
   */
  public static final Duration DEFAULT_PING_TIMEOUT = Duration.ofMillis(300);
  /** 2 members ask a silent member on our behalf, so one slow link does not cause a suspicion. */
  public static final int DEFAULT_PING_REQUEST_MEMBERS = 2;
  /**
   * 3. A suspect is removed after {@code 3 × ceil(log2(members + 1)) × pingInterval} (3.6 s with 3
   * members, 5.4 s with 4 to 7, 7.2 s with 8 to 15): long enough for a paused node to refute, short
   * enough to stop replicating to a dead one of a cluster of up to 7 within 8 s.
   */
  public static final int DEFAULT_SUSPICION_MULTIPLIER = 3;
  /**
   * 2 s. The periodic membership sync is what re-merges the two sides of a healed partition and lets a
   * node that started before its seeds join them; ScaleCube's 30 s default would take that long. A sync
   * is one small message per interval.
   */
  public static final Duration DEFAULT_SYNC_INTERVAL = Duration.ofSeconds(2);
  /**
   * 3 s. Starting waits at most this long for the seeds to answer; with none reachable the node starts
   * alone, becomes ready, and keeps trying the seeds every {@code syncInterval}.
   */
  public static final Duration DEFAULT_JOIN_TIMEOUT = Duration.ofSeconds(3);
  /** 3 s: a member whose metadata cannot be fetched in time is retried at the next sync. */
  public static final Duration DEFAULT_METADATA_TIMEOUT = Duration.ofSeconds(3);
  /** 200 ms: membership changes (suspicions, refutations, leaves) spread within a few intervals. */
  public static final Duration DEFAULT_GOSSIP_INTERVAL = Duration.ofMillis(200);
  /**
   * 1 s. Each round costs a digest exchange (8 KiB with 1024 buckets) with one peer; this bounds how long
   * a write lost by the fan-out stays missing on a live peer.
   */
  public static final Duration DEFAULT_ANTI_ENTROPY_INTERVAL = Duration.ofSeconds(1);
  /** 10 s per step of a round; a peer slower than that is left for the next round. */
  public static final Duration DEFAULT_ANTI_ENTROPY_TIMEOUT = Duration.ofSeconds(10);
  /** 2 s: longer on a healthy LAN means the peer is gone; the attempt is retried with backoff. */
  public static final Duration DEFAULT_CONNECT_TIMEOUT = Duration.ofSeconds(2);
  /** 5 s: a connection that has not shaken hands by then is closed and counted. */
  public static final Duration DEFAULT_HANDSHAKE_TIMEOUT = Duration.ofSeconds(5);
  /** 100 ms: the first retry after a lost connection is quick. */
  public static final Duration DEFAULT_RECONNECT_BACKOFF_MIN = Duration.ofMillis(100);
  /**
   * 2 s: the backoff doubles up to this. A healed partition is reconnected within this delay; a dead
   * peer costs one connection attempt per interval until membership removes it.
   */
  public static final Duration DEFAULT_RECONNECT_BACKOFF_MAX = Duration.ofSeconds(2);
  /**
   * 256 KiB: large enough to amortise per-frame costs, small enough that an ack is never far behind.
   * A single mutation larger than this travels alone in its frame.
   */
  public static final int DEFAULT_MAX_BATCH_BYTES = 256 * 1024;
  /**
   * 32 MiB per peer. Beyond it mutations for that peer are dropped (counted) and left to anti-entropy,
   * so a slow or unreachable peer costs bounded memory.
   */
  public static final long DEFAULT_MAX_IN_FLIGHT_BYTES_PER_PEER = 32L * 1024 * 1024;
  /** 5 s: how long {@code close()} waits for the leave announcement to spread. */
  public static final Duration DEFAULT_LEAVE_TIMEOUT = Duration.ofSeconds(5);
  /**
   * 256 per port. A member keeps one inbound connection per port from each other member (ScaleCube
   * caches one connection per address, the data plane one link per peer), so this serves clusters of
   * well over a hundred members with room for reconnections; it bounds what strangers can hold: at
   * most 256 × the pre-authentication frame limit (64 KiB on the membership port, 4 KiB on the data
   * port) of buffered bytes per port, each for at most {@code handshakeTimeout}.
   */
  public static final int DEFAULT_MAX_INBOUND_CONNECTIONS = 256;
  /**
   * 16 per remote address and port. Only connections that have not authenticated yet count, and a
   * member authenticates within milliseconds of connecting, so members sharing one address (a NAT, or
   * every node of a test on 127.0.0.1) are not limited by it; one address cannot take more than 16
   * of the {@link #DEFAULT_MAX_INBOUND_CONNECTIONS} slots with connections that prove nothing.
   */
  public static final int DEFAULT_MAX_UNAUTHENTICATED_CONNECTIONS_PER_ADDRESS = 16;
  /**
   * 60 s. With the default timings a member pings each other member at least every few seconds in
   * clusters of up to ~30 members; a connection silent for a minute is from a member that no longer
   * talks to this node (or a stranger); closing it frees its slot, and a member reconnects when it
   * next sends.
   */
  public static final Duration DEFAULT_MEMBERSHIP_IDLE_TIMEOUT = Duration.ofSeconds(60);

  /**
   * 0: no replication factor, every node owns every key (full replication, the default). A write then
   * costs N-1 messages and each node holds everything; a factor below N spreads the data so capacity
   * grows with the cluster.
   */
  public static final int FULL_REPLICATION = 0;
  /** {@link #FULL_REPLICATION}: partitioned mode is opt-in. */
  public static final int DEFAULT_REPLICATION_FACTOR = FULL_REPLICATION;
  /**
   * 5 minutes. A node removed by the failure detector (crashed, partitioned, paused) keeps its
   * partitions this long, so a restart or a short outage moves no data; a longer delay leaves its
   * partitions with one replica fewer for longer after a real loss. A graceful leave does not wait.
   */
  public static final Duration DEFAULT_REMOVAL_DELAY = Duration.ofMinutes(5);

  /** The largest data-plane frame: a value at the store's hard limit plus room for key and headers. */
  public static final int MAX_FRAME_BYTES = Frames.MAX_FRAME_BYTES;

  private static final Pattern CLUSTER_NAME =
      Pattern.compile("[A-Za-z0-9_][A-Za-z0-9_-]{0,62}[A-Za-z0-9_]");

  /**
   * Validates every field; the message names the field and the value.
   *
   * @param nodeId this node's id
   * @param clusterName the cluster's name
   * @param host the bind address
   * @param advertiseHost the advertised address
   * @param membershipPort the membership port
   * @param dataPort the data-plane port
   * @param seeds seed membership addresses
   * @param pingInterval failure-detector ping interval
   * @param pingTimeout failure-detector ping timeout
   * @param pingRequestMembers indirect ping helpers
   * @param suspicionMultiplier suspicion timeout multiplier
   * @param syncInterval membership sync interval
   * @param joinTimeout initial join timeout
   * @param metadataTimeout metadata fetch timeout
   * @param gossipInterval gossip interval
   * @param antiEntropyInterval anti-entropy interval
   * @param antiEntropyTimeout anti-entropy step timeout
   * @param connectTimeout data-plane connect timeout
   * @param handshakeTimeout data-plane handshake timeout
   * @param reconnectBackoffMin first reconnect delay
   * @param reconnectBackoffMax longest reconnect delay
   * @param maxBatchBytes target frame size
   * @param maxInFlightBytesPerPeer per-peer memory bound
   * @param leaveTimeout graceful leave wait
   * @param maxInboundConnections inbound connections per cluster port
   * @param maxUnauthenticatedConnectionsPerAddress unauthenticated inbound connections per remote
   *     address and port
   * @param membershipIdleTimeout how long an inbound membership connection may stay silent
   * @param keyring the cluster keyring, or null for none
   * @param tls the cluster TLS settings, or null for plain TCP
   * @param replicationFactor owners per partition, at least 1, or {@link #FULL_REPLICATION}
   * @param removalDelay how long an absent node keeps its partitions
   * @param antiEntropyBytesPerSecond anti-entropy rate limit, 0 for none
   */
  public KvClusterConfig {
    NodeIds.validate(nodeId);
    if (clusterName == null || !CLUSTER_NAME.matcher(clusterName).matches()) {
      throw new IllegalArgumentException("clusterName must be 2 to 64 characters of A-Z a-z 0-9 _ -, "
          + "not starting or ending with '-', was " + quote(clusterName));
    }
    requireHost("host", host);
    requireHost("advertiseHost", advertiseHost);
    if (isWildcard(advertiseHost)) {
      throw new IllegalArgumentException("advertiseHost must be an address other nodes can reach, was "
          + advertiseHost + (advertiseHost.equals(host) ? " (binding a wildcard host needs an explicit "
          + "advertiseHost)" : ""));
    }
    requirePort("membershipPort", membershipPort);
    requirePort("dataPort", dataPort);
    if (membershipPort != 0 && membershipPort == dataPort) {
      throw new IllegalArgumentException(
          "membershipPort and dataPort must differ, both were " + membershipPort);
    }
    Objects.requireNonNull(seeds, "seeds");
    for (String seed : seeds) {
      requireAddress("seed", seed);
    }
    seeds = List.copyOf(seeds);
    requirePositive("pingInterval", pingInterval);
    requirePositive("pingTimeout", pingTimeout);
    if (pingTimeout.compareTo(pingInterval) >= 0) {
      throw new IllegalArgumentException("pingTimeout (" + pingTimeout
          + ") must be shorter than pingInterval (" + pingInterval + ")");
    }
    requireRange("pingRequestMembers", pingRequestMembers, 0, 16);
    requireRange("suspicionMultiplier", suspicionMultiplier, 1, 100);
    requirePositive("syncInterval", syncInterval);
    requirePositive("joinTimeout", joinTimeout);
    requirePositive("metadataTimeout", metadataTimeout);
    requirePositive("gossipInterval", gossipInterval);
    requirePositive("antiEntropyInterval", antiEntropyInterval);
    requirePositive("antiEntropyTimeout", antiEntropyTimeout);
    requirePositive("connectTimeout", connectTimeout);
    requirePositive("handshakeTimeout", handshakeTimeout);
    requirePositive("reconnectBackoffMin", reconnectBackoffMin);
    requirePositive("reconnectBackoffMax", reconnectBackoffMax);
    if (reconnectBackoffMax.compareTo(reconnectBackoffMin) < 0) {
      throw new IllegalArgumentException("reconnectBackoffMax (" + reconnectBackoffMax
          + ") must not be shorter than reconnectBackoffMin (" + reconnectBackoffMin + ")");
    }
    requireRange("maxBatchBytes", maxBatchBytes, 1024, Frames.MAX_BATCH_BYTES_LIMIT);
    if (maxInFlightBytesPerPeer < 2L * MAX_FRAME_BYTES) {
      throw new IllegalArgumentException("maxInFlightBytesPerPeer must be at least "
          + (2L * MAX_FRAME_BYTES) + " (two of the largest frames), was " + maxInFlightBytesPerPeer);
    }
    requirePositive("leaveTimeout", leaveTimeout);
    requireRange("maxInboundConnections", maxInboundConnections, 1, 1_000_000);
    requireRange("maxUnauthenticatedConnectionsPerAddress", maxUnauthenticatedConnectionsPerAddress,
        1, maxInboundConnections);
    requirePositive("membershipIdleTimeout", membershipIdleTimeout);
    if (replicationFactor < 0) {
      throw new IllegalArgumentException("replicationFactor must be at least 1 (or FULL_REPLICATION, "
          + "0, for every node owning every key), was " + replicationFactor);
    }
    requirePositive("removalDelay", removalDelay);
    if (antiEntropyBytesPerSecond != 0 && antiEntropyBytesPerSecond < 64 * 1024) {
      throw new IllegalArgumentException("antiEntropyBytesPerSecond must be 0 (no limit) or at least "
          + "65536, was " + antiEntropyBytesPerSecond);
    }
    for (Duration d : List.of(pingInterval, syncInterval, joinTimeout, metadataTimeout, gossipInterval,
        connectTimeout)) {
      if (d.toMillis() > Integer.MAX_VALUE) {
        throw new IllegalArgumentException("membership timings must be below 24 days, was " + d);
      }
    }
  }

  static boolean isWildcard(String host) {
    return host.equals("0.0.0.0") || host.equals("::") || host.equals("[::]")
        || host.equals("0:0:0:0:0:0:0:0");
  }

  private static void requireHost(String name, String host) {
    if (host == null || host.isBlank() || host.length() > 255 || host.chars().anyMatch(
        c -> c <= ' ' || c == '/' || c == '@' || c > 0x7e)) {
      throw new IllegalArgumentException(name + " must be a host name or IP address, was "
          + quote(host));
    }
  }

  static void requireAddress(String name, String address) {
    if (address == null) {
      throw new IllegalArgumentException(name + " must be host:port, was null");
    }
    int colon = address.lastIndexOf(':');
    if (colon <= 0 || colon == address.length() - 1) {
      throw new IllegalArgumentException(name + " must be host:port, was " + quote(address));
    }
    requireHost(name + " host", address.substring(0, colon));
    int port;
    try {
      port = Integer.parseInt(address.substring(colon + 1));
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(name + " must be host:port, was " + quote(address), e);
    }
    if (port < 1 || port > 65535) {
      throw new IllegalArgumentException(name + " port must be 1 to 65535, was " + quote(address));
    }
  }

  private static void requirePort(String name, int port) {
    requireRange(name, port, 0, 65535);
  }

  private static void requireRange(String name, long value, long min, long max) {
    if (value < min || value > max) {
      throw new IllegalArgumentException(name + " must be between " + min + " and " + max
          + ", was " + value);
    }
  }

  private static void requirePositive(String name, Duration value) {
    if (value == null || value.isNegative() || value.isZero()) {
      throw new IllegalArgumentException(name + " must be a positive duration, was " + value);
    }
  }

  private static String quote(String s) {
    return s == null ? "null" : "'" + s + "'";
  }
}
