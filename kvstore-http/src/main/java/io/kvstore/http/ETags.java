package io.kvstore.http;

import io.kvstore.core.Version;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * Entity tags per RFC 9110: the {@code ETag} of a value is its {@link Version#toString()} in double
 * quotes, and {@code If-Match} / {@code If-None-Match} are parsed as {@code "*"} or a comma-separated
 * list of entity tags. A header that is not of that form is a 400 ({@code invalid_precondition}); a
 * well-formed tag that names no current version simply does not match.
 */
final class ETags {
  private ETags() {}

  /** A parsed {@code If-Match} or {@code If-None-Match}: {@code *} or a list of tags. */
  record Condition(boolean any, List<Tag> tags) {
    /** Strong comparison (If-Match): a weak tag never matches. */
    boolean matchesStrong(Version current) {
      if (current == null) {
        return false;
      }
      if (any) {
        return true;
      }
      String v = current.toString();
      for (Tag t : tags) {
        if (!t.weak() && t.opaque().equals(v)) {
          return true;
        }
      }
      return false;
    }

    /** Weak comparison (If-None-Match on reads): the weak flag is ignored. */
    boolean matchesWeak(Version current) {
      if (current == null) {
        return false;
      }
      if (any) {
        return true;
      }
      String v = current.toString();
      for (Tag t : tags) {
        if (t.opaque().equals(v)) {
          return true;
        }
      }
      return false;
    }
  }

  /** One entity tag: its opaque text (without quotes) and whether it is weak. */
  record Tag(boolean weak, String opaque) {}

  static String of(Version version) {
    return "\"" + version + "\"";
  }

  /**
   * Parses a precondition header.
   *
   * @param header the header's name, for messages
   * @param value the combined field value, or null when absent
   * @return the condition, or null when the header is absent
   */
  static Condition parse(String header, String value) {
    if (value == null) {
      return null;
    }
    String v = value.trim();
    if (v.equals("*")) {
      return new Condition(true, List.of());
    }
    List<Tag> tags = new ArrayList<>();
    int i = 0;
    int n = v.length();
    while (i < n) {
      char c = v.charAt(i);
      if (c == ',' || c == ' ' || c == '\t') {
        i++;
        continue;
      }
      boolean weak = false;
      if (c == 'W' && i + 1 < n && v.charAt(i + 1) == '/') {
        weak = true;
        i += 2;
      }
      if (i >= n || v.charAt(i) != '"') {
        throw malformed(header);
      }
      int end = i + 1;
      while (end < n && v.charAt(end) != '"') {
        char e = v.charAt(end);
        if (e < 0x21 || e == 0x7f) {
          throw malformed(header);
        }
        end++;
      }
      if (end >= n) {
        throw malformed(header);
      }
      tags.add(new Tag(weak, v.substring(i + 1, end)));
      i = end + 1;
      if (i < n && v.charAt(i) != ',' && v.charAt(i) != ' ' && v.charAt(i) != '\t') {
        throw malformed(header);
      }
    }
    if (tags.isEmpty()) {
      throw malformed(header);
    }
    return new Condition(false, Collections.unmodifiableList(tags));
  }

  private static ApiError malformed(String header) {
    return new ApiError(400, "invalid_precondition", header + " must be * or a list of entity tags "
        + "in double quotes, as in " + header + ": \"1712345678901.0@node-1\" (the ETag of a read)");
  }
}
