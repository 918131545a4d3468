/**
 * kvstore-cluster: replication for kvstore over ScaleCube (SWIM) membership and a Netty TCP data
 * plane.
 *
 * <p>Start with {@link io.kvstore.cluster.KvCluster#builder()}. The public types are the builder, its
 * validated {@link io.kvstore.cluster.KvClusterConfig}, the {@link io.kvstore.cluster.ClusterNode} handle
 * and its {@link io.kvstore.cluster.ReplicationStats}; no ScaleCube, Reactor or Netty type appears in
 * them. The protocol, timings and failure modes are described in docs/CLUSTER.md.
 */
package io.kvstore.cluster;
