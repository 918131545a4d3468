package io.kvstore.cluster;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.core.StreamWriteFeature;
import com.fasterxml.jackson.databind.JsonNode;

/** Jackson settings shared by the membership codecs: tight parser limits, no auto-closing. */
final class JsonSupport {
  private JsonSupport() {}

  /** A JSON factory whose parser refuses deep nesting and long tokens before allocating for them. */
  static JsonFactory boundedFactory(int maxDocumentBytes) {
    return JsonFactory.builder()
        .streamReadConstraints(StreamReadConstraints.builder()
            .maxNestingDepth(24)
            .maxStringLength(64 * 1024)
            .maxNumberLength(24)
            .maxNameLength(128)
            .maxDocumentLength(maxDocumentBytes)
            .build())
        .disable(StreamReadFeature.AUTO_CLOSE_SOURCE)
        .disable(StreamWriteFeature.AUTO_CLOSE_TARGET)
        .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
        .build();
  }

  static String text(JsonNode node, String field, int maxChars, boolean required) {
    JsonNode v = node.get(field);
    if (v == null || v.isNull()) {
      if (required) {
        throw new IllegalArgumentException("'" + field + "' is missing");
      }
      return null;
    }
    if (!v.isTextual()) {
      throw new IllegalArgumentException("'" + field + "' must be a string");
    }
    String s = v.textValue();
    if (s.length() > maxChars || (required && s.isEmpty())) {
      throw new IllegalArgumentException("'" + field + "' must be 1 to " + maxChars + " characters");
    }
    return s;
  }

  static long integer(JsonNode node, String field, long min, long max) {
    JsonNode v = node.get(field);
    if (v == null || !v.isIntegralNumber() || !v.canConvertToLong()) {
      throw new IllegalArgumentException("'" + field + "' must be an integer");
    }
    long x = v.longValue();
    if (x < min || x > max) {
      throw new IllegalArgumentException("'" + field + "' must be between " + min + " and " + max);
    }
    return x;
  }
}
