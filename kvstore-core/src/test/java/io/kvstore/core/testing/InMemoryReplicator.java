package io.kvstore.core.testing;

import io.kvstore.core.AntiEntropy;
import io.kvstore.core.ApplyResult;
import io.kvstore.core.ClusterView;
import io.kvstore.core.Digest;
import io.kvstore.core.KeyVersion;
import io.kvstore.core.Member;
import io.kvstore.core.MembershipEvent;
import io.kvstore.core.Mutation;
import io.kvstore.core.Registration;
import io.kvstore.core.ReplicaStore;
import io.kvstore.core.Replicator;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.testing.Envelope.AckMsg;
import io.kvstore.core.testing.Envelope.AeMutationsMsg;
import io.kvstore.core.testing.Envelope.DigestMsg;
import io.kvstore.core.testing.Envelope.KeyVersionsMsg;
import io.kvstore.core.testing.Envelope.MutationMsg;
import io.kvstore.core.testing.Envelope.PullMsg;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The {@link Replicator} of one store on an {@link InMemoryNetwork}; obtain it from
 * {@link InMemoryNetwork#newReplicator()} and give it to {@code KvStoreBuilder.replicator(...)}.
 *
 * <p>It fans every local write out to every other node of the network, acknowledges the writes it
 * holds, answers and initiates anti-entropy exchanges, and reports the network's nodes as its cluster
 * view (always ready, every member {@link Member.Status#ALIVE}, no addresses). Membership listeners run
 * on the thread that changed membership (the one building or closing a store) and exceptions they throw
 * are logged and ignored. See {@link InMemoryNetwork} for delivery, faults and timeouts.
 */
public final class InMemoryReplicator implements Replicator {
  private static final Logger log = LoggerFactory.getLogger(InMemoryReplicator.class);

  private final InMemoryNetwork network;
  private final CopyOnWriteArrayList<Consumer<MembershipEvent>> listeners =
      new CopyOnWriteArrayList<>();
  private final ClusterView view = new View();
  private volatile ReplicaStore store;
  private volatile Member self;
  private volatile boolean closed;

  InMemoryReplicator(InMemoryNetwork network) {
    this.network = network;
  }

  @Override
  public void start(ReplicaStore store) {
    Objects.requireNonNull(store, "store");
    synchronized (this) {
      if (this.store != null) {
        throw new IllegalStateException("this replicator was already started for node "
            + this.store.nodeId() + "; get a new one from InMemoryNetwork.newReplicator()");
      }
      this.self = new Member(store.nodeId(), null, null, Member.Status.ALIVE);
      this.store = store;
    }
    network.join(this);
  }

  @Override
  public CompletableFuture<Void> replicate(Mutation mutation, WriteConcern concern, Duration timeout) {
    try {
      Objects.requireNonNull(mutation, "mutation");
      Objects.requireNonNull(concern, "concern");
      Objects.requireNonNull(timeout, "timeout");
      if (store == null) {
        throw new IllegalStateException("replicate called before start");
      }
      return network.replicate(this, mutation, concern, timeout);
    } catch (RuntimeException e) {
      return CompletableFuture.failedFuture(e);
    }
  }

  @Override
  public ClusterView clusterView() {
    return view;
  }

  @Override
  public void close() {
    synchronized (this) {
      if (closed) {
        return;
      }
      closed = true;
    }
    if (store != null) {
      try {
        network.leave(this);
      } catch (RuntimeException e) {
        log.warn("node {} failed to leave the in-memory network cleanly", nodeId(), e);
      }
    }
  }

  /**
   * This node's id.
   *
   * @return the id of the store that started this replicator
   * @throws IllegalStateException before {@link #start}
   */
  public String nodeId() {
    return self().nodeId();
  }

  Member self() {
    Member m = self;
    if (m == null) {
      throw new IllegalStateException("the replicator has not been started by a store yet");
    }
    return m;
  }

  ReplicaStore store() {
    return store;
  }

  void fire(MembershipEvent event) {
    for (Consumer<MembershipEvent> l : listeners) {
      try {
        l.accept(event);
      } catch (RuntimeException e) {
        log.warn("membership listener of node {} threw on {}; ignored", nodeId(), event, e);
      }
    }
  }

  // ---- messages --------------------------------------------------------------------------------

  void startAntiEntropy(String peer) {
    network.send(nodeId(), peer, MessageKind.DIGEST,
        new DigestMsg(network.newSession(), store.digest().toArray()));
  }

  void receive(Envelope e) {
    Envelope.Payload p = e.payload;
    if (p instanceof MutationMsg m) {
      ApplyResult r = store.apply(m.mutation());
      if (m.writeId() != 0 && r.isHeld()) {
        network.send(nodeId(), e.from, MessageKind.ACK, new AckMsg(m.writeId()));
      }
    } else if (p instanceof AckMsg a) {
      network.acknowledge(a.writeId(), e.from);
    } else if (p instanceof DigestMsg d) {
      answerDigest(e.from, d);
    } else if (p instanceof KeyVersionsMsg kv) {
      reconcile(e.from, kv);
    } else if (p instanceof PullMsg pull) {
      sendMutations(e.from, pull.session(), pull.keys());
    } else if (p instanceof AeMutationsMsg ms) {
      for (Mutation m : ms.mutations()) {
        store.apply(m);
      }
    } else {
      throw new IllegalStateException("unknown message " + e);
    }
  }

  /** Step 2: the responder lists its keys and versions of the differing buckets, whole buckets per chunk. */
  private void answerDigest(String initiator, DigestMsg msg) {
    Digest mine = store.digest();
    int[] differing;
    try {
      differing = mine.diff(Digest.of(msg.buckets()));
    } catch (IllegalArgumentException ex) {
      log.warn("node {} cannot compare digests with {}: {}", nodeId(), initiator, ex.getMessage());
      return;
    }
    if (differing.length == 0) {
      return;
    }
    BitSet all = new BitSet(mine.bucketCount());
    TreeMap<Integer, List<KeyVersion>> byBucket = new TreeMap<>();
    for (int b : differing) {
      all.set(b);
      byBucket.put(b, new ArrayList<>());
    }
    for (KeyVersion kv : store.keyVersions(all)) {
      List<KeyVersion> bucket = byBucket.get(Digest.bucketOf(kv.key(), mine.bucketCount()));
      if (bucket != null) {
        bucket.add(kv);
      }
    }
    int chunk = network.chunkSize();
    BitSet buckets = new BitSet();
    List<KeyVersion> keys = new ArrayList<>();
    for (Map.Entry<Integer, List<KeyVersion>> b : byBucket.entrySet()) {
      List<KeyVersion> list = b.getValue();
      if (!keys.isEmpty() && keys.size() + list.size() > chunk) {
        network.send(nodeId(), initiator, MessageKind.KEY_VERSIONS,
            new KeyVersionsMsg(msg.session(), buckets, keys));
        buckets = new BitSet();
        keys = new ArrayList<>();
      }
      list.sort(Comparator.comparing(KeyVersion::key));
      buckets.set(b.getKey());
      keys.addAll(list);
    }
    network.send(nodeId(), initiator, MessageKind.KEY_VERSIONS,
        new KeyVersionsMsg(msg.session(), buckets, keys));
  }

  /** Step 3: the initiator compares one chunk, pushes what it has newer and pulls what the peer has. */
  private void reconcile(String responder, KeyVersionsMsg msg) {
    List<KeyVersion> mine = store.keyVersions(msg.buckets());
    AntiEntropy.Plan plan = AntiEntropy.compare(mine, msg.keyVersions());
    if (!plan.push().isEmpty()) {
      sendMutations(responder, msg.session(), plan.push());
    }
    List<String> pull = new ArrayList<>(plan.pull());
    pull.sort(null);
    int chunk = network.chunkSize();
    for (int i = 0; i < pull.size(); i += chunk) {
      network.send(nodeId(), responder, MessageKind.PULL,
          new PullMsg(msg.session(), pull.subList(i, Math.min(pull.size(), i + chunk))));
    }
  }

  private void sendMutations(String to, long session, List<String> keys) {
    List<String> sorted = new ArrayList<>(keys);
    sorted.sort(null);
    List<Mutation> ms = store.mutations(sorted);
    int chunk = network.chunkSize();
    for (int i = 0; i < ms.size(); i += chunk) {
      network.send(nodeId(), to, MessageKind.AE_MUTATIONS,
          new AeMutationsMsg(session, ms.subList(i, Math.min(ms.size(), i + chunk))));
    }
  }

  @Override
  public String toString() {
    Member m = self;
    return "InMemoryReplicator{" + (m == null ? "unstarted" : m.nodeId()) + "}";
  }

  /** The network's nodes as this node sees them. */
  private final class View implements ClusterView {
    @Override
    public Member self() {
      return InMemoryReplicator.this.self();
    }

    @Override
    public List<Member> members() {
      return network.members();
    }

    @Override
    public boolean isReady() {
      return true;
    }

    @Override
    public Registration addListener(Consumer<MembershipEvent> listener) {
      Objects.requireNonNull(listener, "listener");
      listeners.add(listener);
      return () -> listeners.remove(listener);
    }
  }
}
