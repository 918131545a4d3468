package io.kvstore.core;

/** Key and value validation: every entry point calls these after any decoding. */
final class Keys {
  private Keys() {}

  /** Validates a key and returns it. */
  static String validate(String key, int maxKeyBytes) {
    String problem = problem(key, maxKeyBytes);
    if (problem != null) {
      throw new IllegalArgumentException(problem);
    }
    return key;
  }

  /** Why a key is invalid, or null if it is valid. */
  static String problem(String key, int maxKeyBytes) {
    if (key == null) {
      return "key must not be null";
    }
    int n = key.length();
    if (n == 0) {
      return "key must not be empty";
    }
    if (n <= maxKeyBytes && isPrintableAscii(key, n)) {
      return null; // the common case: one byte per char, nothing to reject
    }
    if (n > maxKeyBytes) {
      // Each char is at least one UTF-8 byte: too long whatever its encoding.
      return "key is " + utf8Length(key) + " bytes as UTF-8, more than the limit of " + maxKeyBytes
          + " (maxKeyBytes)";
    }
    int bytes = 0;
    for (int i = 0; i < n; i++) {
      char c = key.charAt(i);
      if (c < 0x80) {
        if (c < 0x20 || c == 0x7f) {
          return "key must not contain control characters, found U+" + hex(c) + " at index " + i;
        }
        bytes += 1;
      } else if (c < 0x800) {
        if (c <= 0x9f) {
          return "key must not contain control characters, found U+" + hex(c) + " at index " + i;
        }
        bytes += 2;
      } else if (Character.isHighSurrogate(c)) {
        if (i + 1 >= n || !Character.isLowSurrogate(key.charAt(i + 1))) {
          return "key has an unpaired surrogate U+" + hex(c) + " at index " + i
              + ": it is not valid Unicode";
        }
        bytes += 4;
        i++;
      } else if (Character.isLowSurrogate(c)) {
        return "key has an unpaired surrogate U+" + hex(c) + " at index " + i
            + ": it is not valid Unicode";
      } else {
        bytes += 3;
      }
    }
    if (bytes > maxKeyBytes) {
      return "key is " + bytes + " bytes as UTF-8, more than the limit of " + maxKeyBytes
          + " (maxKeyBytes)";
    }
    return null;
  }

  private static boolean isPrintableAscii(String key, int n) {
    for (int i = 0; i < n; i++) {
      char c = key.charAt(i);
      if (c < 0x20 || c >= 0x7f) {
        return false;
      }
    }
    return true;
  }

  static void validateValue(byte[] value, int maxValueBytes) {
    if (value == null) {
      throw new IllegalArgumentException("value must not be null (use delete to remove a key)");
    }
    if (value.length > maxValueBytes) {
      throw new IllegalArgumentException("value is " + value.length
          + " bytes, more than the limit of " + maxValueBytes + " (maxValueBytes)");
    }
  }

  static int utf8Length(String s) {
    int bytes = 0;
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c < 0x80) {
        bytes += 1;
      } else if (c < 0x800) {
        bytes += 2;
      } else if (Character.isHighSurrogate(c) && i + 1 < s.length()
          && Character.isLowSurrogate(s.charAt(i + 1))) {
        bytes += 4;
        i++;
      } else {
        bytes += 3;
      }
    }
    return bytes;
  }

  private static String hex(char c) {
    return String.format("%04X", (int) c);
  }
}
