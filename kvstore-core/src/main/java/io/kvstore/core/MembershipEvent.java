package io.kvstore.core;

/**
 * A change in cluster membership.
 *
 * @param type what happened
 * @param member the member it happened to, as known after the change
 */
public record MembershipEvent(Type type, Member member) {
  /** Kinds of membership change. */
  public enum Type {
    /** A member joined or became reachable again. */
    ADDED,
    /** A member's metadata changed. */
    UPDATED,
    /** A member announced it is leaving. */
    LEAVING,
    /** A member left, or failed and was removed by the failure detector. */
    REMOVED
  }
}
