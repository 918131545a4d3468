package io.kvstore.http;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;

/**
 * The query string of one request, strictly decoded. Unknown and repeated parameters are errors, so
 * a typo ({@code ?tll=30s}) is reported instead of silently ignored.
 */
final class QueryParams {
  private final Map<String, String> values;

  private QueryParams(Map<String, String> values) {
    this.values = values;
  }

  /**
   * Parses {@code rawQuery} (may be null).
   *
   * @param allowed the parameter names this route accepts
   * @throws ApiError 400 for malformed encoding, unknown or repeated parameters
   */
  static QueryParams parse(String rawQuery, Set<String> allowed) {
    Map<String, String> values = new LinkedHashMap<>();
    if (rawQuery != null && !rawQuery.isEmpty()) {
      for (String pair : rawQuery.split("&", -1)) {
        if (pair.isEmpty()) {
          continue;
        }
        int eq = pair.indexOf('=');
        String name = UrlCodec.decodeQuery(eq < 0 ? pair : pair.substring(0, eq),
            "query parameter name");
        String value = eq < 0 ? "" : UrlCodec.decodeQuery(pair.substring(eq + 1),
            "query parameter '" + name + "'");
        if (!allowed.contains(name)) {
          throw ApiError.invalidParameter("unknown query parameter '" + name + "'; this route accepts "
              + (allowed.isEmpty() ? "none" : String.join(", ", new TreeSet<>(allowed))));
        }
        if (values.putIfAbsent(name, value) != null) {
          throw ApiError.invalidParameter("query parameter '" + name + "' is given more than once");
        }
      }
    }
    return new QueryParams(values);
  }

  Optional<String> get(String name) {
    return Optional.ofNullable(values.get(name));
  }

  boolean has(String name) {
    return values.containsKey(name);
  }
}
