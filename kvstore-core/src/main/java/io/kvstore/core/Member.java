package io.kvstore.core;

import java.util.Objects;

/**
 * A member of the cluster as the cluster view reports it.
 *
 * @param nodeId the member's node id
 * @param membershipAddress {@code host:port} of its membership (SWIM) endpoint, or null when standalone
 * @param dataAddress {@code host:port} of its data-plane endpoint, or null when standalone
 * @param status whether it is serving or leaving
 */
public record Member(String nodeId, String membershipAddress, String dataAddress, Status status) {
  /** A member's state as far as this node knows. */
  public enum Status {
    /** Serving: replicates and answers anti-entropy. */
    ALIVE,
    /** Announced a graceful leave and will soon be removed. */
    LEAVING
  }

  /**
   * Checks the parts.
   *
   * @param nodeId the member's node id
   * @param membershipAddress membership endpoint or null
   * @param dataAddress data-plane endpoint or null
   * @param status the status
   */
  public Member {
    NodeIds.validate(nodeId);
    Objects.requireNonNull(status, "status");
  }
}
