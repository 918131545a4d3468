package io.kvstore.core.testing;

import java.util.EnumMap;
import java.util.Map;
import java.util.Objects;

/**
 * The faults an {@link InMemoryNetwork} injects into every message it carries. Immutable; each
 * {@code with…} method returns a changed copy. All decisions are drawn, per message, from the
 * network's seeded random source at send time, so a seed replays the same faults.
 *
 * <ul>
 *   <li><b>loss</b>: probability that a message copy is dropped; may be set per {@link MessageKind}.
 *   <li><b>duplication</b>: probability that a message is sent twice; each copy draws its own loss and
 *       delay, so the duplicate may overtake the original.
 *   <li><b>delay</b>: every copy is delivered a uniform number of steps in {@code [minDelay, maxDelay]}
 *       after it was sent (at least 1: nothing is delivered in the step that sent it).
 *   <li><b>reorder</b>: probability that a copy is held back an extra 1 to {@code reorderWindow} steps,
 *       so later messages overtake it. Messages due in the same step are delivered in send order.
 * </ul>
 *
 * <p>Partitions are not faults of this kind: see {@link InMemoryNetwork#partition}.
 */
public final class NetworkFaults {
  private static final NetworkFaults NONE = new NetworkFaults(0, new EnumMap<>(MessageKind.class), 0,
      1, 1, 0, 1);

  private final double loss;
  private final EnumMap<MessageKind, Double> lossByKind;
  private final double duplication;
  private final int minDelay;
  private final int maxDelay;
  private final double reorder;
  private final int reorderWindow;

  private NetworkFaults(double loss, EnumMap<MessageKind, Double> lossByKind, double duplication,
      int minDelay, int maxDelay, double reorder, int reorderWindow) {
    this.loss = loss;
    this.lossByKind = lossByKind;
    this.duplication = duplication;
    this.minDelay = minDelay;
    this.maxDelay = maxDelay;
    this.reorder = reorder;
    this.reorderWindow = reorderWindow;
  }

  /**
   * A perfect network: no loss, no duplication, every message delivered in the next step, in order.
   *
   * @return the fault-free settings
   */
  public static NetworkFaults none() {
    return NONE;
  }

  /**
   * With a loss probability for every kind of message that has no {@link #withLoss(MessageKind, double)
   * kind-specific} one.
   *
   * @param probability 0 to 1
   * @return changed copy
   */
  public NetworkFaults withLoss(double probability) {
    return new NetworkFaults(probability("loss", probability), lossByKind, duplication, minDelay,
        maxDelay, reorder, reorderWindow);
  }

  /**
   * With a loss probability for one kind of message, overriding {@link #withLoss(double)} for it.
   *
   * @param kind the kind
   * @param probability 0 to 1
   * @return changed copy
   */
  public NetworkFaults withLoss(MessageKind kind, double probability) {
    EnumMap<MessageKind, Double> copy = new EnumMap<>(lossByKind);
    copy.put(Objects.requireNonNull(kind, "kind"), probability("loss of " + kind, probability));
    return new NetworkFaults(loss, copy, duplication, minDelay, maxDelay, reorder, reorderWindow);
  }

  /**
   * With a duplication probability.
   *
   * @param probability 0 to 1
   * @return changed copy
   */
  public NetworkFaults withDuplication(double probability) {
    return new NetworkFaults(loss, lossByKind, probability("duplication", probability), minDelay,
        maxDelay, reorder, reorderWindow);
  }

  /**
   * With a delivery delay range, in steps.
   *
   * @param minSteps at least 1
   * @param maxSteps at least {@code minSteps}, at most 10,000
   * @return changed copy
   */
  public NetworkFaults withDelay(int minSteps, int maxSteps) {
    if (minSteps < 1 || maxSteps < minSteps || maxSteps > 10_000) {
      throw new IllegalArgumentException("delay must satisfy 1 <= minSteps <= maxSteps <= 10000, was "
          + minSteps + ".." + maxSteps);
    }
    return new NetworkFaults(loss, lossByKind, duplication, minSteps, maxSteps, reorder, reorderWindow);
  }

  /**
   * With reordering: each copy is held back an extra 1 to {@code windowSteps} steps with this
   * probability.
   *
   * @param probability 0 to 1
   * @param windowSteps 1 to 10,000
   * @return changed copy
   */
  public NetworkFaults withReorder(double probability, int windowSteps) {
    if (windowSteps < 1 || windowSteps > 10_000) {
      throw new IllegalArgumentException("reorder window must be 1 to 10000 steps, was " + windowSteps);
    }
    return new NetworkFaults(loss, lossByKind, duplication, minDelay, maxDelay,
        probability("reorder", probability), windowSteps);
  }

  /**
   * The loss probability of a kind of message.
   *
   * @param kind the kind
   * @return its kind-specific probability, else the general one
   */
  public double lossOf(MessageKind kind) {
    Double p = lossByKind.get(kind);
    return p != null ? p : loss;
  }

  /**
   * The general loss probability.
   *
   * @return 0 to 1
   */
  public double loss() {
    return loss;
  }

  /**
   * Kind-specific loss probabilities.
   *
   * @return an unmodifiable copy
   */
  public Map<MessageKind, Double> lossByKind() {
    return Map.copyOf(lossByKind);
  }

  /**
   * The duplication probability.
   *
   * @return 0 to 1
   */
  public double duplication() {
    return duplication;
  }

  /**
   * The shortest delay.
   *
   * @return steps, at least 1
   */
  public int minDelay() {
    return minDelay;
  }

  /**
   * The longest delay (before reordering).
   *
   * @return steps
   */
  public int maxDelay() {
    return maxDelay;
  }

  /**
   * The reordering probability.
   *
   * @return 0 to 1
   */
  public double reorder() {
    return reorder;
  }

  /**
   * The most extra steps a reordered message is held back.
   *
   * @return steps
   */
  public int reorderWindow() {
    return reorderWindow;
  }

  private static double probability(String name, double p) {
    if (!(p >= 0 && p <= 1)) {
      throw new IllegalArgumentException(name + " must be a probability from 0 to 1, was " + p);
    }
    return p;
  }

  @Override
  public String toString() {
    return "NetworkFaults{loss=" + loss + (lossByKind.isEmpty() ? "" : ", lossByKind=" + lossByKind)
        + ", duplication=" + duplication + ", delay=" + minDelay + ".." + maxDelay + ", reorder="
        + reorder + "/" + reorderWindow + "}";
  }
}
