package io.kvstore.http;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * Strict percent-decoding of URL parts as UTF-8. Unlike {@link java.net.URLDecoder}, a malformed
 * escape or a byte sequence that is not UTF-8 is an error (400), never a replacement character: a key
 * is stored exactly as the client meant it or not at all.
 */
final class UrlCodec {
  private UrlCodec() {}

  /** Decodes a path segment: {@code +} stays a plus sign (RFC 3986). */
  static String decodePath(String raw, String what) {
    return decode(raw, false, what);
  }

  /** Decodes a query component: {@code +} is a space (HTML form encoding). */
  static String decodeQuery(String raw, String what) {
    return decode(raw, true, what);
  }

  private static String decode(String raw, boolean plusIsSpace, String what) {
    boolean plain = true;
    for (int i = 0; i < raw.length() && plain; i++) {
      char c = raw.charAt(i);
      plain = c != '%' && !(plusIsSpace && c == '+');
    }
    if (plain) {
      return raw;
    }
    ByteArrayOutputStream bytes = new ByteArrayOutputStream(raw.length());
    int i = 0;
    while (i < raw.length()) {
      char c = raw.charAt(i);
      if (c == '%') {
        int hi = i + 2 < raw.length() ? Character.digit(raw.charAt(i + 1), 16) : -1;
        int lo = hi >= 0 ? Character.digit(raw.charAt(i + 2), 16) : -1;
        if (hi < 0 || lo < 0) {
          throw ApiError.badRequest("the " + what + " has a malformed percent-escape at index " + i
              + ": '%' must be followed by two hex digits");
        }
        bytes.write((hi << 4) | lo);
        i += 3;
      } else if (c == '+' && plusIsSpace) {
        bytes.write(' ');
        i++;
      } else {
        int end = i;
        while (end < raw.length() && raw.charAt(end) != '%'
            && !(plusIsSpace && raw.charAt(end) == '+')) {
          end++;
        }
        bytes.writeBytes(raw.substring(i, end).getBytes(StandardCharsets.UTF_8));
        i = end;
      }
    }
    try {
      return StandardCharsets.UTF_8.newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT)
          .decode(ByteBuffer.wrap(bytes.toByteArray()))
          .toString();
    } catch (CharacterCodingException e) {
      throw ApiError.badRequest("the " + what + " is not valid UTF-8 once percent-decoded");
    }
  }
}
