package io.kvstore.http;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.http.Context;
import io.kvstore.core.KvStore;
import io.kvstore.core.ReadConcern;
import io.kvstore.core.ReadOptions;
import io.kvstore.core.Version;
import io.kvstore.core.Versioned;
import io.kvstore.core.WriteConcern;
import io.kvstore.core.WriteOptions;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.Executor;
import java.util.concurrent.Semaphore;

/**
 * The key-value routes: the documented API ({@code /put}, {@code /get}, {@code /delete},
 * {@code /set}) and {@code /v1/kv}. Keys in paths are taken from the raw request URI and strictly
 * percent-decoded here (see {@link UrlCodec}), then validated by the store.
 */
final class KvApi {
  static final int DEFAULT_LIST_LIMIT = 100;
  static final String EXPIRES_HEADER = "Kvstore-Expires-At";

  private static final Set<String> NONE = Set.of();
  private static final Set<String> KEY = Set.of("key");
  private static final Set<String> V1_GET = Set.of("consistency");
  private static final Set<String> V1_PUT = Set.of("ttl", "consistency");
  private static final Set<String> V1_DELETE = Set.of("consistency");
  private static final Set<String> V1_LIST = Set.of("prefix", "limit", "startAfter", "values");

  private final KvStore store;
  private final KvHttpServerConfig config;
  private final StoreCalls calls;
  private final Bodies bodies;
  private final Semaphore listings;
  private final OwnerHeaders owners;

  /**
   * @param completions where writes that had to wait (SYNC, QUORUM, ALL) are answered, so that they
   *     hold no request thread meanwhile (see {@link StoreCalls}); null to wait on the request thread
   */
  KvApi(KvStore store, KvHttpServerConfig config, OwnerHeaders owners, Executor completions) {
    this.store = store;
    this.owners = owners;
    this.config = config;
    this.calls = new StoreCalls(store, completions);
    this.bodies = new Bodies(config);
    this.listings = new Semaphore(config.maxConcurrentListings());
  }

  // ---- the documented API ----------------------------------------------------------------------

  void put(Context ctx) {
    QueryParams.parse(ctx.queryString(), NONE);
    Bodies.requireJson(ctx);
    JsonNode body = Json.parse(bodies.read(ctx, Routes.deadline(ctx, config)));
    if (!body.isObject()) {
      throw new ApiError(400, "invalid_json", "the body must be a JSON object like "
          + "{\"key\": \"k\", \"value\": \"v\"}, not " + typeOf(body));
    }
    for (Iterator<String> names = body.fieldNames(); names.hasNext(); ) {
      String name = names.next();
      if (!name.equals("key") && !name.equals("value")) {
        throw new ApiError(400, "invalid_field", "unknown field '" + name
            + "'; the body has exactly the fields key and value");
      }
    }
    String key = textField(body, "key");
    owners.set(ctx, key);
    String value = textField(body, "value");
    byte[] bytes = utf8(value, "field 'value'");
    calls.putAsync(ctx, key, bytes, WriteOptions.defaults(), Routes.deadline(ctx, config),
        version -> respondEntry(ctx, key, value, version));
  }

  void get(Context ctx, String rawRest) {
    String key = documentedKey(ctx, rawRest, "GET /get?key=k or GET /get/k");
    owners.set(ctx, key);
    // As GET /v1/kv/{key} at ONE: a key whose owners are all unreachable (partitioned mode) is 503
    // read_concern_not_met, not a 500 that reads as a server bug.
    Versioned v = calls.read(key, ReadOptions.concern(ReadConcern.ONE), Routes.deadline(ctx, config))
        .orElseThrow(() -> notFound(key));
    respondEntry(ctx, key, v.valueAsString(), v.version());
  }

  void delete(Context ctx, String rawRest) {
    String key = documentedKey(ctx, rawRest, "DELETE /delete?key=k or DELETE /delete/k");
    owners.set(ctx, key);
    calls.deleteAsync(ctx, key, WriteOptions.defaults(), Routes.deadline(ctx, config),
        deleted -> respondDeleted(ctx, key, deleted));
  }

  void set(Context ctx, String rawRest) {
    QueryParams.parse(ctx.queryString(), NONE);
    int slash = rawRest.indexOf('/');
    if (slash < 0) {
      throw ApiError.badRequest("POST /set/{key}/{value} needs a value after the key; "
          + "write a '/' inside the key as %2F");
    }
    String key = UrlCodec.decodePath(rawRest.substring(0, slash), "key");
    owners.set(ctx, key);
    String value = UrlCodec.decodePath(rawRest.substring(slash + 1), "value");
    calls.putAsync(ctx, key, value.getBytes(StandardCharsets.UTF_8), WriteOptions.defaults(),
        Routes.deadline(ctx, config), version -> respondEntry(ctx, key, value, version));
  }

  /** {@code /get/key=k} (the original documentation's form), {@code /get/k} or {@code ?key=k}. */
  private static String documentedKey(Context ctx, String rawRest, String usage) {
    QueryParams q = QueryParams.parse(ctx.queryString(), rawRest == null ? KEY : NONE);
    if (rawRest != null) {
      String raw = rawRest.startsWith("key=") ? rawRest.substring(4) : rawRest;
      return UrlCodec.decodePath(raw, "key");
    }
    return q.get("key").orElseThrow(() -> ApiError.invalidKey("no key given; use " + usage));
  }

  private static String textField(JsonNode body, String name) {
    JsonNode node = body.get(name);
    if (node == null) {
      throw new ApiError(400, "missing_field", "field '" + name + "' is missing; the body is "
          + "{\"key\": \"k\", \"value\": \"v\"}");
    }
    if (!node.isTextual()) {
      throw new ApiError(400, "invalid_field", "field '" + name + "' must be a string, was "
          + typeOf(node));
    }
    return node.textValue();
  }

  private static String typeOf(JsonNode node) {
    return node.getNodeType().name().toLowerCase(Locale.ROOT);
  }

  private static byte[] utf8(String s, String what) {
    try {
      ByteBuffer b = StandardCharsets.UTF_8.newEncoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT)
          .encode(CharBuffer.wrap(s));
      byte[] out = new byte[b.remaining()];
      b.get(out);
      return out;
    } catch (CharacterCodingException e) {
      throw new ApiError(400, "invalid_field", what + " has an unpaired surrogate: it is not valid "
          + "Unicode");
    }
  }

  private static void respondEntry(Context ctx, String key, String value, Version version) {
    ObjectNode out = Json.object();
    out.put("key", key);
    out.put("value", value);
    out.put("version", version.toString());
    ctx.header("ETag", ETags.of(version));
    Routes.json(ctx, 200, out);
  }

  private static void respondDeleted(Context ctx, String key, boolean deleted) {
    ObjectNode out = Json.object();
    out.put("key", key);
    out.put("deleted", deleted);
    Routes.json(ctx, 200, out);
  }

  private static ApiError notFound(String key) {
    return new ApiError(404, "not_found", "no value for key '" + key + "'");
  }

  // ---- /v1/kv ----------------------------------------------------------------------------------

  void v1Get(Context ctx, String rawRest) {
    // The key first, so that an answer about a valid key carries the owner headers.
    String key = UrlCodec.decodePath(rawRest, "key");
    owners.set(ctx, key);
    ReadOptions read = readConcern(QueryParams.parse(ctx.queryString(), V1_GET));
    ETags.Condition ifNoneMatch = ETags.parse("If-None-Match", header(ctx, "If-None-Match"));
    Versioned v = calls.read(key, read, Routes.deadline(ctx, config))
        .orElseThrow(() -> notFound(key));
    ctx.header("ETag", ETags.of(v.version()));
    v.expiresAt().ifPresent(at -> ctx.header(EXPIRES_HEADER, at.toString()));
    if (ifNoneMatch != null && ifNoneMatch.matchesWeak(v.version())) {
      ctx.status(304);
      return;
    }
    ctx.res().setCharacterEncoding(null); // raw bytes have no charset
    ctx.status(200).contentType("application/octet-stream").result(v.value());
  }

  void v1Put(Context ctx, String rawRest) {
    String key = UrlCodec.decodePath(rawRest, "key");
    owners.set(ctx, key);
    QueryParams q = QueryParams.parse(ctx.queryString(), V1_PUT);
    WriteOptions options = concern(q);
    Duration ttl = q.get("ttl").map(Ttls::parse).orElse(null);
    if (ttl != null) {
      options = options.withTtl(ttl);
    }
    ETags.Condition ifMatch = ETags.parse("If-Match", header(ctx, "If-Match"));
    ETags.Condition ifNoneMatch = ETags.parse("If-None-Match", header(ctx, "If-None-Match"));
    if (ifMatch != null && ifNoneMatch != null) {
      throw new ApiError(400, "invalid_precondition",
          "send If-Match or If-None-Match, not both");
    }
    if (ifNoneMatch != null && !ifNoneMatch.any()) {
      throw new ApiError(400, "invalid_precondition",
          "on writes only If-None-Match: * (create only) is supported");
    }
    byte[] value = bodies.read(ctx, Routes.deadline(ctx, config));
    if (ifMatch != null) {
      options = options.ifVersion(matchingVersion(key, ifMatch));
    } else if (ifNoneMatch != null) {
      options = options.ifAbsent();
    }
    calls.putAsync(ctx, key, value, options, Routes.deadline(ctx, config),
        version -> respondPut(ctx, key, ttl, version));
  }

  private static void respondPut(Context ctx, String key, Duration ttl, Version version) {
    ObjectNode out = Json.object();
    out.put("key", key);
    out.put("version", version.toString());
    if (ttl != null) {
      // The store computes expiry the same way: the write's physical time plus the TTL.
      String at = Instant.ofEpochMilli(version.physicalMillis() + ttl.toMillis()).toString();
      out.put("expiresAt", at);
      ctx.header(EXPIRES_HEADER, at);
    }
    ctx.header("ETag", ETags.of(version));
    Routes.json(ctx, 200, out);
  }

  void v1Delete(Context ctx, String rawRest) {
    String key = UrlCodec.decodePath(rawRest, "key");
    owners.set(ctx, key);
    QueryParams q = QueryParams.parse(ctx.queryString(), V1_DELETE);
    WriteOptions options = concern(q);
    ETags.Condition ifMatch = ETags.parse("If-Match", header(ctx, "If-Match"));
    if (header(ctx, "If-None-Match") != null) {
      throw new ApiError(400, "invalid_precondition", "If-None-Match has no meaning for DELETE");
    }
    if (ifMatch != null) {
      options = options.ifVersion(matchingVersion(key, ifMatch));
    }
    calls.deleteAsync(ctx, key, options, Routes.deadline(ctx, config),
        deleted -> respondDeleted(ctx, key, deleted));
  }

  /**
   * Evaluates {@code If-Match} against the current version and returns that version, so the write
   * can be made conditional on it: if the key changes in between, the store refuses the write (412).
   */
  private Version matchingVersion(String key, ETags.Condition ifMatch) {
    Version current = calls.read(key).map(Versioned::version).orElse(null);
    if (!ifMatch.matchesStrong(current)) {
      ApiError e = new ApiError(412, "precondition_failed", current == null
          ? "If-Match failed: key '" + key + "' has no value; nothing was written"
          : "If-Match failed: key '" + key + "' is at version " + current + "; nothing was written");
      if (current != null) {
        e.header("ETag", ETags.of(current)).field("current", current.toString());
      }
      throw e;
    }
    return current;
  }

  /** A read's {@code consistency}: {@code one} (the default) or {@code quorum}. */
  private static ReadOptions readConcern(QueryParams q) {
    String c = q.get("consistency").orElse(null);
    if (c == null) {
      return ReadOptions.defaults();
    }
    switch (c.toLowerCase(Locale.ROOT)) {
      case "one":
        return ReadOptions.concern(ReadConcern.ONE);
      case "quorum":
        return ReadOptions.concern(ReadConcern.QUORUM);
      default:
        throw ApiError.invalidParameter("consistency of a read must be one or quorum, was '" + c
            + "'");
    }
  }

  private static WriteOptions concern(QueryParams q) {
    String c = q.get("consistency").orElse(null);
    if (c == null) {
      return WriteOptions.defaults();
    }
    switch (c.toLowerCase(Locale.ROOT)) {
      case "one":
        return WriteOptions.concern(WriteConcern.ONE);
      case "quorum":
        return WriteOptions.concern(WriteConcern.QUORUM);
      case "all":
        return WriteOptions.concern(WriteConcern.ALL);
      default:
        throw ApiError.invalidParameter("consistency must be one, quorum or all, was '" + c + "'");
    }
  }

  void v1List(Context ctx) {
    QueryParams q = QueryParams.parse(ctx.queryString(), V1_LIST);
    String prefix = q.get("prefix").orElse("");
    String startAfter = q.get("startAfter").orElse(null);
    int max = store.config().maxScanLimit();
    int limit = DEFAULT_LIST_LIMIT > max ? max : DEFAULT_LIST_LIMIT;
    if (q.has("limit")) {
      String text = q.get("limit").orElseThrow();
      try {
        limit = Integer.parseInt(text);
      } catch (NumberFormatException e) {
        limit = -1;
      }
      if (limit < 1 || limit > max) {
        throw ApiError.invalidParameter("limit must be an integer from 1 to " + max
            + " (maxScanLimit), was '" + text + "'");
      }
    }
    boolean values = false;
    if (q.has("values")) {
      String text = q.get("values").orElseThrow();
      if (text.equals("true")) {
        values = true;
      } else if (!text.equals("false")) {
        throw ApiError.invalidParameter("values must be true or false, was '" + text + "'");
      }
    }
    if (!listings.tryAcquire()) {
      throw new ApiError(503, "too_many_listings", "this server is already building "
          + config.maxConcurrentListings() + " listings (maxConcurrentListings); try again shortly")
          .header("Retry-After", "1");
    }
    try {
      respondList(ctx, prefix, startAfter, limit, max, values);
    } finally {
      listings.release();
    }
  }

  /**
   * Writes one page as JSON into a buffer that never grows past {@code maxListBytes} (unless the
   * page's first item alone is larger: a page always makes progress). Each item's encoded size is
   * computed before it is written, escapes included, so a value of control bytes (6 bytes of JSON
   * each) counts for what it costs.
   */
  private void respondList(Context ctx, String prefix, String startAfter, int limit, int max,
      boolean values) {
    // One more than asked tells whether another page follows.
    int fetch = limit < max ? limit + 1 : limit;
    List<Versioned> page = store.scan(prefix, startAfter, fetch);
    long budget = config.maxListBytes();
    Page out = new Page();
    String last = null;
    int taken = 0;
    try (JsonGenerator json = Json.MAPPER.getFactory().createGenerator(out)) {
      json.writeStartObject();
      json.writeStringField("prefix", prefix);
      json.writeArrayFieldStart("items");
      // What the closing part costs at most: ],"nextStartAfter":"<key>"} (or null).
      long tailBase = 24;
      for (Versioned v : page) {
        if (taken == limit) {
          break;
        }
        byte[] key = v.key().getBytes(StandardCharsets.UTF_8);
        String version = v.version().toString();
        String expires = v.expiresAt().map(Instant::toString).orElse(null);
        byte[] value = values ? v.value() : null;
        boolean text = value != null && isUtf8(value);
        long item = (taken > 0 ? 1 : 0) + 7 + 2 + escapedLength(key) + 11 + 2 + version.length()
            + (expires == null ? 0 : 13 + 2 + expires.length())
            + (value == null ? 0 : text ? 9 + 2 + escapedLength(value)
                : 15 + 2 + 4L * ((value.length + 2) / 3))
            + 1;
        json.flush();
        if (taken > 0 && out.size() + item + tailBase + escapedLength(key) > budget) {
          break;
        }
        json.writeStartObject();
        json.writeFieldName("key");
        json.writeUTF8String(key, 0, key.length);
        json.writeStringField("version", version);
        if (expires != null) {
          json.writeStringField("expiresAt", expires);
        }
        if (value != null) {
          if (text) {
            json.writeFieldName("value");
            json.writeUTF8String(value, 0, value.length);
          } else {
            json.writeFieldName("valueBase64");
            json.writeBinary(value);
          }
        }
        json.writeEndObject();
        last = v.key();
        taken++;
      }
      json.writeEndArray();
      boolean more = taken < page.size() || (fetch == limit && page.size() == limit);
      if (more) {
        json.writeStringField("nextStartAfter", last);
      } else {
        json.writeNullField("nextStartAfter");
      }
      json.writeEndObject();
    } catch (IOException e) {
      throw new IllegalStateException("writing JSON to memory failed", e);
    }
    ctx.status(200).contentType(Json.CONTENT_TYPE);
    ctx.res().setContentLength(out.size());
    ctx.result(out.asInput());
  }

  /** A byte buffer whose contents are read in place, without the copy of {@code toByteArray}. */
  private static final class Page extends ByteArrayOutputStream {
    Page() {
      super(8192);
    }

    InputStream asInput() {
      return new ByteArrayInputStream(buf, 0, count);
    }
  }

  /**
   * The length of valid UTF-8 {@code bytes} as the body of a JSON string written by Jackson:
   * a quote, a backslash and the five control characters with short escapes (backspace, tab, line
   * feed, form feed, carriage return) take 2 bytes, other control characters 6 (a backslash, "u"
   * and four hex digits), everything else (non-ASCII included) itself.
   */
  static long escapedLength(byte[] bytes) {
    long n = 0;
    for (byte b : bytes) {
      if (b < 0 || b >= 0x20) {
        n += b == '"' || b == '\\' ? 2 : 1;
      } else {
        n += b == '\b' || b == '\t' || b == '\n' || b == '\f' || b == '\r' ? 2 : 6;
      }
    }
    return n;
  }

  /** Whether {@code bytes} are valid UTF-8, checked without decoding them into one big string. */
  static boolean isUtf8(byte[] bytes) {
    CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
        .onMalformedInput(CodingErrorAction.REPORT)
        .onUnmappableCharacter(CodingErrorAction.REPORT);
    ByteBuffer in = ByteBuffer.wrap(bytes);
    CharBuffer chars = CharBuffer.allocate(Math.min(bytes.length + 1, 4096));
    while (true) {
      CoderResult r = decoder.decode(in, chars, true);
      if (r.isError()) {
        return false;
      }
      if (r.isUnderflow()) {
        chars.clear();
        return !decoder.flush(chars).isError();
      }
      chars.clear();
    }
  }

  private static String header(Context ctx, String name) {
    List<String> values = Collections.list(ctx.req().getHeaders(name));
    return values.isEmpty() ? null : String.join(", ", values);
  }
}
