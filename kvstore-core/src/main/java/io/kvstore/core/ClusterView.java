package io.kvstore.core;

import io.kvstore.core.spi.Replicator;
import java.util.List;
import java.util.function.Consumer;

/**
 * What a node knows of its cluster: itself, its members and whether it is ready to serve. Shown by
 * kvstore-http; implemented by each {@link Replicator}. Methods are thread-safe and do not block.
 */
public interface ClusterView {
  /**
   * This node.
   *
   * @return the local member
   */
  Member self();

  /**
   * The members this node currently knows, itself included, ordered by node id.
   *
   * @return a snapshot of the members
   */
  List<Member> members();

  /**
   * Whether this node has joined its cluster and finished its first synchronisation (always true for a
   * standalone store).
   *
   * @return true when ready to serve
   */
  boolean isReady();

  /**
   * Registers a listener for membership changes. It runs on a membership thread and must not block;
   * exceptions it throws are logged and ignored.
   *
   * @param listener called once per change
   * @return a registration whose {@code close()} removes the listener
   */
  Registration addListener(Consumer<MembershipEvent> listener);

  /**
   * A view of a node alone.
   *
   * @param self the node
   * @return a view that always lists just that node and is always ready
   */
  static ClusterView standalone(Member self) {
    return new ClusterView() {
      @Override
      public Member self() {
        return self;
      }

      @Override
      public List<Member> members() {
        return List.of(self);
      }

      @Override
      public boolean isReady() {
        return true;
      }

      @Override
      public Registration addListener(Consumer<MembershipEvent> listener) {
        return () -> { };
      }
    };
  }
}
