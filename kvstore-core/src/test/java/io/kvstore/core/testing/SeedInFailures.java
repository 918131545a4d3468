package io.kvstore.core.testing;

import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.TestExecutionExceptionHandler;
import org.opentest4j.TestAbortedException;

/**
 * Puts a seed in front of every failure of a test class, so a randomized test that fails in an
 * assertion far from the seed still says how to replay it. Assumption failures pass unchanged.
 *
 * <pre>{@code
 * static final long SEED = Long.getLong(Seeds.SEED_PROPERTY, 42);
 * @RegisterExtension static final SeedInFailures SEED_IN_FAILURES = new SeedInFailures(SEED);
 * }</pre>
 */
public final class SeedInFailures implements TestExecutionExceptionHandler {
  private final long seed;

  /**
   * For one seed.
   *
   * @param seed the seed the failing test ran with
   */
  public SeedInFailures(long seed) {
    this.seed = seed;
  }

  @Override
  public void handleTestExecutionException(ExtensionContext context, Throwable throwable)
      throws Throwable {
    if (throwable instanceof TestAbortedException) {
      throw throwable;
    }
    AssertionError e = new AssertionError(Seeds.describe(seed) + ": " + throwable, throwable);
    throw e;
  }
}
