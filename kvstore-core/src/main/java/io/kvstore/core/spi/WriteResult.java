package io.kvstore.core.spi;

import io.kvstore.core.Version;
import java.util.Objects;

/**
 * What an owner answers to a forwarded {@link WriteRequest} that succeeded: the version it stamped,
 * and for a delete whether the key held a live value just before. A failed request fails its future
 * instead, with the exception the local write would have thrown.
 *
 * @param version the write's version
 * @param wasLive for a delete: whether a live value was deleted; false for a put
 */
public record WriteResult(Version version, boolean wasLive) {
  /**
   * Checks the version is set.
   *
   * @param version the write's version
   * @param wasLive for a delete: whether a live value was deleted
   */
  public WriteResult {
    Objects.requireNonNull(version, "version");
  }
}
