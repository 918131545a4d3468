package io.kvstore.examples;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The README's code comes from compiled, tested sources: each tagged region appears in it verbatim. */
@Timeout(60)
class ReadmeSnippetsTest {
  private static final Path ROOT = Path.of("").toAbsolutePath().getParent();
  private static final Pattern TAG = Pattern.compile(
      "// tag::([a-z-]+)\\[]\\R(.*?)\\R\\s*// end::\\1\\[]", Pattern.DOTALL);

  @Test
  void singleNodeExample_behavesAsTheReadmeSays() {
    assertThat(SingleNodeExample.run()).containsExactly(
        "PUT user:42", "PUT user:42", "DELETE user:42",
        "name=Ada", "won=true", "users=1:Ada Lovelace", "deleted=true", "after=false",
        "session=token");
  }

  @Test
  void everyTaggedSnippet_appearsVerbatimInTheReadme() throws IOException {
    String readme = Files.readString(ROOT.resolve("README.md"));
    List<String> snippets = new ArrayList<>();
    try (var files = Files.walk(ROOT.resolve("kvstore-examples/src/main/java"))) {
      for (Path p : files.filter(f -> f.toString().endsWith(".java")).toList()) {
        Matcher m = TAG.matcher(Files.readString(p));
        while (m.find()) {
          snippets.add(m.group(2));
        }
      }
    }
    assertThat(snippets).as("tagged snippets in kvstore-examples").isNotEmpty();
    for (String snippet : snippets) {
      assertThat(readme).as("README.md must contain this snippet verbatim (re-indented)")
          .contains(dedent(snippet));
    }
  }

  static String dedent(String block) {
    List<String> lines = block.lines().toList();
    int indent = lines.stream().filter(l -> !l.isBlank())
        .mapToInt(l -> l.length() - l.stripLeading().length()).min().orElse(0);
    StringBuilder out = new StringBuilder();
    for (String l : lines) {
      out.append(l.isBlank() ? "" : l.substring(indent)).append('\n');
    }
    return out.toString().stripTrailing();
  }
}
