package io.kvstore.examples;

import io.kvstore.core.KvStore;
import io.kvstore.core.Registration;
import io.kvstore.core.Version;
import io.kvstore.core.Versioned;
import io.kvstore.core.WriteOptions;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The README's embedding snippet, compiled and run by {@code ReadmeSnippetsTest}: the regions between
 * the {@code tag::} and {@code end::} comments appear verbatim in README.md.
 */
public final class SingleNodeExample {
  private SingleNodeExample() {}

  /**
   * Runs the snippet and returns what it observed, for the test to check.
   *
   * @return the observations, one line each
   */
  public static List<String> run() {
    List<String> seen = new ArrayList<>();
    // tag::embedded[]
    try (KvStore store = KvStore.builder().nodeId("node-1").build()) {
      Registration watch = store.addListener("user:", event ->
          seen.add(event.type() + " " + event.key()));           // local and remote changes

      Version v1 = store.put("user:42", "Ada");                   // blocking put, UTF-8 value
      Optional<String> name = store.getString("user:42");        // Optional[Ada]

      boolean won = store.putIfVersion("user:42",                 // optimistic concurrency
          "Ada Lovelace".getBytes(StandardCharsets.UTF_8), v1);

      store.put("session:42", "token".getBytes(StandardCharsets.UTF_8),
          WriteOptions.defaults().withTtl(Duration.ofMinutes(30)));  // expires by itself

      List<Versioned> users = store.scan("user:", 100);           // prefix scan, key order
      boolean deleted = store.delete("user:42");                  // leaves a tombstone
      watch.close();
      // end::embedded[]
      seen.add("name=" + name.orElseThrow());
      seen.add("won=" + won);
      seen.add("users=" + users.size() + ":" + users.get(0).valueAsString());
      seen.add("deleted=" + deleted);
      seen.add("after=" + store.get("user:42").isPresent());
      seen.add("session=" + store.getString("session:42").orElse("-"));
    }
    return seen;
  }

  /**
   * Prints what the snippet observed.
   *
   * @param args ignored
   */
  public static void main(String[] args) {
    run().forEach(System.out::println);
  }

}
