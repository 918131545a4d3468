package io.kvstore.http;

import io.javalin.http.Context;
import java.util.List;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The owner headers of key-addressed responses (docs/HTTP.md, "Owner headers"):
 * {@value #OWNERS} names the nodes owning the key, in preference order, and {@value #LOCAL} says
 * whether this node is one of them. Set as soon as a handler knows the key, so error answers carry
 * them too; {@link Routes} takes them off again when the store refuses the key ({@code invalid_key}).
 * Without a source (a single node) nothing is set.
 */
final class OwnerHeaders {
  static final String OWNERS = "X-Kvstore-Owners";
  static final String LOCAL = "X-Kvstore-Local";
  private static final Logger log = LoggerFactory.getLogger(OwnerHeaders.class);

  private final String self;
  private final Function<String, List<String>> source;

  OwnerHeaders(String self, Function<String, List<String>> source) {
    this.self = self;
    this.source = source;
  }

  /** Sets both headers for {@code key}, or neither if there is no source or it has no answer. */
  void set(Context ctx, String key) {
    if (source == null) {
      return;
    }
    List<String> owners;
    try {
      owners = source.apply(key);
    } catch (RuntimeException e) {
      log.debug("the key owner source failed for a key of {} bytes: {}", key.length(), e.toString());
      return;
    }
    if (owners == null || owners.isEmpty()) {
      return;
    }
    ctx.header(OWNERS, String.join(",", owners));
    ctx.header(LOCAL, String.valueOf(owners.contains(self)));
  }

  /** Takes both headers off the response (nothing happens if they were never set). */
  static void remove(Context ctx) {
    if (!ctx.res().isCommitted()) {
      ctx.res().setHeader(OWNERS, null);
      ctx.res().setHeader(LOCAL, null);
    }
  }
}
