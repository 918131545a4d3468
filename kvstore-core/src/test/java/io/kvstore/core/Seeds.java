package io.kvstore.core;

import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.LongStream;
import java.util.stream.Stream;

/**
 * Seeds for the property tests: {@code @ParameterizedTest(name = Seeds.NAME)} with
 * {@code @MethodSource("io.kvstore.core.Seeds#seeds")}.
 *
 * <p>By default each property runs over {@value #DEFAULT_COUNT} seeds derived from a fixed base, so a
 * CI failure reproduces locally. System properties:
 * <ul>
 *   <li>{@code -Dkvstore.seed=N} runs every property with exactly that one seed (replay a failure);
 *   <li>{@code -Dkvstore.seeds=K} runs K seeds instead of the default (explore more, or fewer);
 *   <li>{@code -Dkvstore.seedBase=B} derives the seeds from another base (explore other cases).
 * </ul>
 * Every failure message names its seed and the flag that replays it ({@link #tag(long)}).
 */
final class Seeds {
  /** Display name of one parameterized invocation. */
  static final String NAME = "seed={0}";
  static final int DEFAULT_COUNT = 200;
  private static final long DEFAULT_BASE = 0x6b7673746f7265L; // "kvstore"

  private Seeds() {}

  /** The seeds of one full property run, or the one seed given by {@code -Dkvstore.seed}. */
  static Stream<Long> seeds() {
    return derive(DEFAULT_COUNT);
  }

  /** Fewer seeds, for properties whose single case is expensive. */
  static Stream<Long> someSeeds() {
    return derive(DEFAULT_COUNT / 4);
  }

  /** Fewer still, for a case of whole store restarts on a real disk (a third of a second each). */
  static Stream<Long> fewSeeds() {
    return derive(DEFAULT_COUNT / 10);
  }

  private static Stream<Long> derive(int defaultCount) {
    String one = System.getProperty("kvstore.seed");
    if (one != null && !one.isBlank()) {
      return Stream.of(Long.parseLong(one.trim()));
    }
    int count = Integer.getInteger("kvstore.seeds", defaultCount);
    long base = Long.getLong("kvstore.seedBase", DEFAULT_BASE);
    SplittableRandom r = new SplittableRandom(base);
    return LongStream.generate(r::nextLong).limit(count).boxed();
  }

  /** The text every seeded assertion starts with: the seed and how to replay it. */
  static String tag(long seed) {
    return "seed " + seed + " (replay: -Dkvstore.seed=" + seed + ")";
  }

  /** An AssertJ description: {@code .as(Seeds.describe(seed, "what %s", arg))}. */
  static String describe(long seed, String what, Object... args) {
    return tag(seed) + ": " + String.format(what, args);
  }

  /**
   * Runs a property body and, if it fails in any way (an assertion or an unexpected exception),
   * rethrows with the seed in the message, so even a failure that no {@code .as()} describes names it.
   */
  static void run(long seed, SeededBody body) {
    try {
      body.run(new SplittableRandom(seed));
    } catch (AssertionError | RuntimeException e) {
      String message = e.getMessage() == null ? "" : e.getMessage();
      if (message.contains(tag(seed))) {
        throw e;
      }
      throw new AssertionError(tag(seed) + ": " + e, e);
    }
  }

  /** A property body given the seeded random source. */
  @FunctionalInterface
  interface SeededBody {
    void run(SplittableRandom random);
  }

  /** Picks one element. */
  static <T> T pick(SplittableRandom r, List<T> items) {
    return items.get(r.nextInt(items.size()));
  }
}
