package io.kvstore.core.testing;

import java.util.stream.LongStream;

/**
 * Seeds for randomized tests written as JUnit 5 parameterized tests.
 *
 * <pre>{@code
 * static LongStream seeds() { return Seeds.seeds(1000, 50); }
 *
 * @ParameterizedTest(name = "seed={0}")
 * @MethodSource("seeds")
 * void mergeIsCommutative(long seed) { ... fail(Seeds.describe(seed) + ": ...") ... }
 * }</pre>
 *
 * <p>{@code -Dkvstore.seed=N} replays exactly seed N (the only seed run); {@code -Dkvstore.seeds=M}
 * changes how many seeds run (for a longer local soak). Without properties the seeds are fixed, so CI
 * runs are reproducible.
 */
public final class Seeds {
  /** System property naming the one seed to replay. */
  public static final String SEED_PROPERTY = "kvstore.seed";
  /** System property overriding how many seeds run. */
  public static final String COUNT_PROPERTY = "kvstore.seeds";

  private Seeds() {}

  /**
   * The seeds to run: just {@code -Dkvstore.seed} when it is set; otherwise {@code count} (or
   * {@code -Dkvstore.seeds}) consecutive seeds from {@code base}.
   *
   * @param base the first seed
   * @param count how many seeds, at least 1
   * @return the seeds
   */
  public static LongStream seeds(long base, int count) {
    String one = System.getProperty(SEED_PROPERTY);
    if (one != null && !one.isBlank()) {
      return LongStream.of(parse(SEED_PROPERTY, one));
    }
    String n = System.getProperty(COUNT_PROPERTY);
    long c = n == null || n.isBlank() ? count : parse(COUNT_PROPERTY, n);
    if (c < 1) {
      throw new IllegalArgumentException(COUNT_PROPERTY + " must be at least 1, was " + c);
    }
    return LongStream.range(base, base + c);
  }

  /**
   * The text every failure message of a seeded test should start with.
   *
   * @param seed the seed
   * @return {@code seed=N (replay: -Dkvstore.seed=N)}
   */
  public static String describe(long seed) {
    return "seed=" + seed + " (replay: -D" + SEED_PROPERTY + "=" + seed + ")";
  }

  private static long parse(String property, String text) {
    try {
      return Long.parseLong(text.trim());
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("-D" + property + " must be a whole number, was '" + text + "'",
          e);
    }
  }
}
