/**
 * kvstore-http: a REST facade over any {@link io.kvstore.core.KvStore}, single node or clustered.
 *
 * <p>Start with {@link io.kvstore.http.KvHttpServer#builder(io.kvstore.core.KvStore)}. The routes,
 * status codes and error codes are documented in {@code docs/HTTP.md}. Everything else in this
 * package is an implementation detail.
 */
package io.kvstore.http;
