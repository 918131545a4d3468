package io.kvstore.examples.server;

import io.kvstore.cluster.ClusterTls;
import io.kvstore.core.Durability;
import io.kvstore.cluster.KvClusterConfig;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Set;

/**
 * The standalone server's settings after parsing and defaulting: every flag resolved.
 *
 * @param nodeId the node id
 * @param host bind and advertise host
 * @param httpPort HTTP port (0 = any free port)
 * @param clusterPort membership (SWIM) port (0 = any free port)
 * @param dataPort data-plane port (0 = any free port)
 * @param join membership addresses of existing nodes, {@code host:port}
 * @param clusterName the cluster's name; nodes only join a cluster of the same name
 * @param authTokens bearer tokens the HTTP API accepts; empty for an open API
 * @param maxValueBytes the largest value accepted, in bytes
 * @param clusterSecretFile the cluster key file (one key per line, first = primary), re-read while the
 *     node runs so keys can be rotated; null for none
 * @param tlsCert PEM certificate chain for HTTPS, or null
 * @param tlsKey PEM PKCS#8 private key for HTTPS, or null
 * @param tlsKeyStore PKCS12/JKS keystore for HTTPS (instead of PEM), or null
 * @param tlsKeyStorePasswordFile file holding the keystore's password, or null
 * @param clusterTls the files of mutual TLS with a cluster CA between nodes, or null for plain TCP
 * @param allowedHosts extra {@code Host} names the HTTP API answers to ({@code --allowed-host})
 * @param console whether the HTTP server serves the web console at {@code /ui}
 * @param dataDir the data directory, or null to keep nothing on disk ({@code --in-memory})
 * @param durability when writes are acknowledged (null with no data directory)
 * @param replicationFactor owners per key ({@code --replication-factor}), or
 *     {@link KvClusterConfig#FULL_REPLICATION} (0) for every node owning every key
 * @param removalDelay how long a node gone without leaving keeps its partitions
 *     ({@code --removal-delay})
 * @param antiEntropyBytesPerSecond the most bytes per second this node's anti-entropy rounds move
 *     (catch-ups, rebalance pulls, handoffs; {@code --anti-entropy-rate}), 0 for no limit
 */
public record ServerOptions(
    String nodeId,
    String host,
    int httpPort,
    int clusterPort,
    int dataPort,
    List<String> join,
    String clusterName,
    Set<String> authTokens,
    int maxValueBytes,
    Path clusterSecretFile,
    Path tlsCert,
    Path tlsKey,
    Path tlsKeyStore,
    Path tlsKeyStorePasswordFile,
    ClusterTlsFiles clusterTls,
    Set<String> allowedHosts,
    boolean console,
    Path dataDir,
    Durability durability,
    int replicationFactor,
    Duration removalDelay,
    long antiEntropyBytesPerSecond) {

  /**
   * The files of cluster TLS: PEM files, or a keystore and a truststore with password files. Exactly
   * one of the two sets is complete; the other is null.
   *
   * @param cert PEM certificate chain of this node, or null
   * @param key PEM PKCS#8 private key of {@code cert}, or null
   * @param ca PEM CA bundle that defines the cluster, or null
   * @param keyStore PKCS12/JKS keystore with this node's key and chain, or null
   * @param keyStorePasswordFile file holding the keystore's password, or null
   * @param trustStore PKCS12/JKS truststore with the cluster's CAs, or null
   * @param trustStorePasswordFile file holding the truststore's password, or null
   */
  public record ClusterTlsFiles(Path cert, Path key, Path ca, Path keyStore,
      Path keyStorePasswordFile, Path trustStore, Path trustStorePasswordFile) {

    /**
     * Loads and checks the files.
     *
     * @return the TLS settings
     * @throws IllegalArgumentException if a file is missing or invalid (the message names it)
     */
    public ClusterTls load() {
      return cert != null ? ClusterTls.pem(cert, key, ca)
          : ClusterTls.keyStoreWithPasswordFiles(keyStore, keyStorePasswordFile, trustStore,
              trustStorePasswordFile);
    }
  }

  /**
   * Copies the collections.
   *
   * @param nodeId the node id
   * @param host bind and advertise host
   * @param httpPort HTTP port
   * @param clusterPort membership port
   * @param dataPort data-plane port
   * @param join seeds
   * @param clusterName cluster name
   * @param authTokens bearer tokens
   * @param maxValueBytes largest value
   * @param clusterSecretFile cluster key file, or null
   * @param tlsCert PEM certificate chain, or null
   * @param tlsKey PEM private key, or null
   * @param tlsKeyStore keystore, or null
   * @param tlsKeyStorePasswordFile keystore password file, or null
   * @param clusterTls cluster TLS files, or null
   * @param allowedHosts extra HTTP {@code Host} names
   * @param console whether to serve the web console
   * @param dataDir the data directory, or null for memory only
   * @param durability the durability level, or null for memory only
   * @param replicationFactor owners per key, or 0 for full replication
   * @param removalDelay how long an absent node keeps its partitions
   * @param antiEntropyBytesPerSecond anti-entropy byte rate, 0 for none, else at least 65536
   */
  public ServerOptions {
    join = List.copyOf(join);
    authTokens = Set.copyOf(authTokens);
    allowedHosts = Set.copyOf(allowedHosts);
    if (replicationFactor < 0) {
      throw new IllegalArgumentException("replicationFactor must be at least 1, or 0 for full "
          + "replication, was " + replicationFactor);
    }
    java.util.Objects.requireNonNull(removalDelay, "removalDelay");
    if (antiEntropyBytesPerSecond != 0 && antiEntropyBytesPerSecond < MIN_ANTI_ENTROPY_RATE) {
      throw new IllegalArgumentException("antiEntropyBytesPerSecond must be 0 (no limit) or at "
          + "least " + MIN_ANTI_ENTROPY_RATE + ", was " + antiEntropyBytesPerSecond);
    }
  }

  /** The smallest anti-entropy rate other than 0, as {@code KvClusterBuilder} checks it. */
  public static final long MIN_ANTI_ENTROPY_RATE = 64 * 1024;

  /**
   * Options with the default anti-entropy rate.
   *
   * @param nodeId the node id
   * @param host bind and advertise host
   * @param httpPort HTTP port
   * @param clusterPort membership port
   * @param dataPort data-plane port
   * @param join seeds
   * @param clusterName cluster name
   * @param authTokens bearer tokens
   * @param maxValueBytes largest value
   * @param clusterSecretFile cluster key file, or null
   * @param tlsCert PEM certificate chain, or null
   * @param tlsKey PEM private key, or null
   * @param tlsKeyStore keystore, or null
   * @param tlsKeyStorePasswordFile keystore password file, or null
   * @param clusterTls cluster TLS files, or null
   * @param allowedHosts extra HTTP {@code Host} names
   * @param console whether to serve the web console
   * @param dataDir the data directory, or null for memory only
   * @param durability the durability level, or null for memory only
   * @param replicationFactor owners per key, or 0 for full replication
   * @param removalDelay how long an absent node keeps its partitions
   */
  public ServerOptions(String nodeId, String host, int httpPort, int clusterPort, int dataPort,
      List<String> join, String clusterName, Set<String> authTokens, int maxValueBytes,
      Path clusterSecretFile, Path tlsCert, Path tlsKey, Path tlsKeyStore,
      Path tlsKeyStorePasswordFile, ClusterTlsFiles clusterTls, Set<String> allowedHosts,
      boolean console, Path dataDir, Durability durability, int replicationFactor,
      Duration removalDelay) {
    this(nodeId, host, httpPort, clusterPort, dataPort, join, clusterName, authTokens, maxValueBytes,
        clusterSecretFile, tlsCert, tlsKey, tlsKeyStore, tlsKeyStorePasswordFile, clusterTls,
        allowedHosts, console, dataDir, durability, replicationFactor, removalDelay,
        KvClusterConfig.DEFAULT_ANTI_ENTROPY_BYTES_PER_SECOND);
  }

  /**
   * Options with full replication and the default removal delay.
   *
   * @param nodeId the node id
   * @param host bind and advertise host
   * @param httpPort HTTP port
   * @param clusterPort membership port
   * @param dataPort data-plane port
   * @param join seeds
   * @param clusterName cluster name
   * @param authTokens bearer tokens
   * @param maxValueBytes largest value
   * @param clusterSecretFile cluster key file, or null
   * @param tlsCert PEM certificate chain, or null
   * @param tlsKey PEM private key, or null
   * @param tlsKeyStore keystore, or null
   * @param tlsKeyStorePasswordFile keystore password file, or null
   * @param clusterTls cluster TLS files, or null
   * @param allowedHosts extra HTTP {@code Host} names
   * @param console whether to serve the web console
   * @param dataDir the data directory, or null for memory only
   * @param durability the durability level, or null for memory only
   */
  public ServerOptions(String nodeId, String host, int httpPort, int clusterPort, int dataPort,
      List<String> join, String clusterName, Set<String> authTokens, int maxValueBytes,
      Path clusterSecretFile, Path tlsCert, Path tlsKey, Path tlsKeyStore,
      Path tlsKeyStorePasswordFile, ClusterTlsFiles clusterTls, Set<String> allowedHosts,
      boolean console, Path dataDir, Durability durability) {
    this(nodeId, host, httpPort, clusterPort, dataPort, join, clusterName, authTokens, maxValueBytes,
        clusterSecretFile, tlsCert, tlsKey, tlsKeyStore, tlsKeyStorePasswordFile, clusterTls,
        allowedHosts, console, dataDir, durability, KvClusterConfig.FULL_REPLICATION,
        KvClusterConfig.DEFAULT_REMOVAL_DELAY);
  }

  /**
   * Options without extra HTTP host names, with the web console.
   *
   * @param nodeId the node id
   * @param host bind and advertise host
   * @param httpPort HTTP port
   * @param clusterPort membership port
   * @param dataPort data-plane port
   * @param join seeds
   * @param clusterName cluster name
   * @param authTokens bearer tokens
   * @param maxValueBytes largest value
   * @param clusterSecretFile cluster key file, or null
   * @param tlsCert PEM certificate chain, or null
   * @param tlsKey PEM private key, or null
   * @param tlsKeyStore keystore, or null
   * @param tlsKeyStorePasswordFile keystore password file, or null
   * @param clusterTls cluster TLS files, or null
   */
  public ServerOptions(String nodeId, String host, int httpPort, int clusterPort, int dataPort,
      List<String> join, String clusterName, Set<String> authTokens, int maxValueBytes,
      Path clusterSecretFile, Path tlsCert, Path tlsKey, Path tlsKeyStore,
      Path tlsKeyStorePasswordFile, ClusterTlsFiles clusterTls) {
    this(nodeId, host, httpPort, clusterPort, dataPort, join, clusterName, authTokens, maxValueBytes,
        clusterSecretFile, tlsCert, tlsKey, tlsKeyStore, tlsKeyStorePasswordFile, clusterTls,
        Set.of(), true, null, null);
  }

  /**
   * Options with the web console on, as the server's default, memory-only.
   *
   * @param nodeId the node id
   * @param host bind and advertise host
   * @param httpPort HTTP port
   * @param clusterPort membership port
   * @param dataPort data-plane port
   * @param join seeds
   * @param clusterName cluster name
   * @param authTokens bearer tokens
   * @param maxValueBytes largest value
   * @param clusterSecretFile cluster key file, or null
   * @param tlsCert PEM certificate chain, or null
   * @param tlsKey PEM private key, or null
   * @param tlsKeyStore keystore, or null
   * @param tlsKeyStorePasswordFile keystore password file, or null
   * @param clusterTls cluster TLS files, or null
   * @param allowedHosts extra HTTP {@code Host} names
   */
  public ServerOptions(String nodeId, String host, int httpPort, int clusterPort, int dataPort,
      List<String> join, String clusterName, Set<String> authTokens, int maxValueBytes,
      Path clusterSecretFile, Path tlsCert, Path tlsKey, Path tlsKeyStore,
      Path tlsKeyStorePasswordFile, ClusterTlsFiles clusterTls, Set<String> allowedHosts) {
    this(nodeId, host, httpPort, clusterPort, dataPort, join, clusterName, authTokens, maxValueBytes,
        clusterSecretFile, tlsCert, tlsKey, tlsKeyStore, tlsKeyStorePasswordFile, clusterTls,
        allowedHosts, true, null, null);
  }

  /**
   * Options without cluster secret or TLS: an open cluster and plain HTTP, with the web console.
   *
   * @param nodeId the node id
   * @param host bind and advertise host
   * @param httpPort HTTP port
   * @param clusterPort membership port
   * @param dataPort data-plane port
   * @param join seeds
   * @param clusterName cluster name
   * @param authTokens bearer tokens
   * @param maxValueBytes largest value
   */
  public ServerOptions(String nodeId, String host, int httpPort, int clusterPort, int dataPort,
      List<String> join, String clusterName, Set<String> authTokens, int maxValueBytes) {
    this(nodeId, host, httpPort, clusterPort, dataPort, join, clusterName, authTokens, maxValueBytes,
        null, null, null, null, null, null, Set.of(), true, null, null);
  }

  @Override
  public String toString() {
    // Never print the tokens.
    return "ServerOptions{nodeId=" + nodeId + ", host=" + host + ", httpPort=" + httpPort
        + ", clusterPort=" + clusterPort + ", dataPort=" + dataPort + ", join=" + join
        + ", clusterName=" + clusterName + ", authTokens=" + authTokens.size() + " configured"
        + ", maxValueBytes=" + maxValueBytes + ", clusterSecretFile=" + clusterSecretFile
        + ", tlsCert=" + tlsCert + ", tlsKey=" + tlsKey + ", tlsKeyStore=" + tlsKeyStore
        + ", tlsKeyStorePasswordFile=" + tlsKeyStorePasswordFile + ", clusterTls=" + clusterTls
        + ", allowedHosts=" + allowedHosts + ", console=" + console + ", dataDir=" + dataDir
        + ", durability=" + durability + ", replicationFactor="
        + (replicationFactor == KvClusterConfig.FULL_REPLICATION ? "full" : replicationFactor)
        + ", removalDelay=" + removalDelay + ", antiEntropyBytesPerSecond="
        + (antiEntropyBytesPerSecond == 0 ? "unlimited" : antiEntropyBytesPerSecond) + "}";
  }
}
