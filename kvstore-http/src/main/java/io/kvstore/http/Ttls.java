package io.kvstore.http;

import java.time.Duration;
import java.time.format.DateTimeParseException;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Parses the {@code ttl} query parameter: an integer with a unit ({@code 500ms}, {@code 30s},
 * {@code 5m}, {@code 1h}, {@code 7d}) or an ISO-8601 duration ({@code PT30S}, {@code P1D}); at least
 * 1 ms and at most {@link #MAX}.
 */
final class Ttls {
  /** A year: longer is almost certainly a mistake, and keeps expiry arithmetic far from overflow. */
  static final Duration MAX = Duration.ofDays(365);

  private static final Pattern SIMPLE = Pattern.compile("([0-9]{1,15})(ms|s|m|h|d)");

  private Ttls() {}

  static Duration parse(String text) {
    Duration ttl;
    Matcher m = SIMPLE.matcher(text);
    if (m.matches()) {
      long n = Long.parseLong(m.group(1));
      ttl = switch (m.group(2)) {
        case "ms" -> Duration.ofMillis(n);
        case "s" -> Duration.ofSeconds(n);
        case "m" -> n > MAX.toMinutes() ? MAX.plusDays(1) : Duration.ofMinutes(n);
        case "h" -> n > MAX.toHours() ? MAX.plusDays(1) : Duration.ofHours(n);
        default -> n > MAX.toDays() ? MAX.plusDays(1) : Duration.ofDays(n);
      };
    } else if (text.toUpperCase(Locale.ROOT).startsWith("P")) {
      try {
        ttl = Duration.parse(text);
      } catch (DateTimeParseException e) {
        throw invalid(text);
      }
    } else {
      throw invalid(text);
    }
    if (ttl.compareTo(Duration.ofMillis(1)) < 0 || ttl.compareTo(MAX) > 0) {
      throw new ApiError(400, "invalid_ttl", "ttl must be between 1ms and 365d, was '" + text + "'");
    }
    return ttl;
  }

  private static ApiError invalid(String text) {
    return new ApiError(400, "invalid_ttl", "ttl '" + text + "' is not a duration; use an integer "
        + "with a unit (500ms, 30s, 5m, 1h, 7d) or ISO-8601 (PT30S)");
  }
}
