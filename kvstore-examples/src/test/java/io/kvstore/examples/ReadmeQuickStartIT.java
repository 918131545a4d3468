package io.kvstore.examples;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Runs the README's quick start as written: the commands that start nodes 1, 2 and 3 (with the
 * README's ports), the curl session and its twin with the {@code kv} client (comparing each output,
 * versions aside), {@code --help}, and the local-cluster launcher. If the README changes, this test runs the new commands. The build half of
 * the first command ({@code ./mvnw -B -q package -DskipTests}) is what produced the jar under test.
 */
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class ReadmeQuickStartIT {
  private static final Path ROOT = Path.of("").toAbsolutePath().getParent();
  private static final String JAR_CMD = "java -jar kvstore-examples/target/kvstore-server.jar";
  private static final String CP_CMD = "java -cp kvstore-examples/target/kvstore-server.jar";
  private static final Pattern VERSION = Pattern.compile("\\d+\\.\\d+@[A-Za-z0-9._:-]+");
  private final List<Process> started = new ArrayList<>();
  private final HttpClient http = HttpClient.newHttpClient();

  @AfterEach
  void stopEverything() throws InterruptedException {
    for (Process p : started) {
      p.destroy();
    }
    for (Process p : started) {
      if (!p.waitFor(30, TimeUnit.SECONDS)) {
        p.destroyForcibly();
      }
    }
  }

  private static String readme() throws IOException {
    return Files.readString(ROOT.resolve("README.md"));
  }

  /** The lines of the fenced block after {@code <!-- quickstart:name -->}. */
  static List<String> block(String readme, String name) {
    int marker = readme.indexOf("<!-- quickstart:" + name + " -->");
    assertThat(marker).as("README marker quickstart:%s", name).isNotNegative();
    int open = readme.indexOf("```", marker);
    int start = readme.indexOf('\n', open) + 1;
    int end = readme.indexOf("```", start);
    return Arrays.stream(readme.substring(start, end).split("\n")).filter(l -> !l.isBlank()).toList();
  }

  private Process startServer(String readmeCommand) throws IOException {
    int at = readmeCommand.indexOf(JAR_CMD);
    assertThat(at).as("a README node command runs the server jar: %s", readmeCommand)
        .isNotNegative();
    String flags = readmeCommand.substring(at + JAR_CMD.length()).trim();
    List<String> cmd = new ArrayList<>(LocalCluster.serverCommand());
    if (!flags.isEmpty()) {
      cmd.addAll(Arrays.asList(flags.split("\\s+")));
    }
    Path log = Files.createDirectories(Path.of("target", "readme-logs"))
        .resolve("node-" + started.size() + ".log");
    Process p = new ProcessBuilder(cmd).directory(ROOT.toFile()).redirectErrorStream(true)
        .redirectOutput(log.toFile()).start();
    started.add(p);
    return p;
  }

  private int status(String url) {
    try {
      return http.send(HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(2)).build(),
          HttpResponse.BodyHandlers.discarding()).statusCode();
    } catch (IOException e) {
      return -1;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return -1;
    }
  }

  private String body(String url) throws Exception {
    return http.send(HttpRequest.newBuilder(URI.create(url)).build(),
        HttpResponse.BodyHandlers.ofString()).body();
  }

  @Test
  void quickStart_nodesAndCurlSession_workAsWritten() throws Exception {
    for (int port : new int[] {8080, 8081, 8082, 7946, 7947, 7956, 7957, 7966, 7967}) {
      assertThat(Ports.free(port)).as("the README's port %d must be free for this test", port)
          .isTrue();
    }
    String readme = readme();
    List<String> node1 = block(readme, "node1");
    assertThat(node1).hasSize(1);
    assertThat(node1.get(0)).startsWith("./mvnw -B -q package -DskipTests && ");
    startServer(node1.get(0));
    await().atMost(Duration.ofSeconds(90)).until(() -> status("http://localhost:8080/ready") == 200);
    for (String line : block(readme, "nodes")) {
      startServer(line);
    }
    await().atMost(Duration.ofSeconds(90)).until(() ->
        status("http://localhost:8081/ready") == 200 && status("http://localhost:8082/ready") == 200
            && membersOf(body("http://localhost:8080/v1/cluster")) == 3);
    // The README's "Web console" section: the quick-start node serves it.
    assertThat(readme).contains("<http://localhost:8080/ui/>");
    assertThat(status("http://localhost:8080/ui/")).isEqualTo(200);

    runSession(block(readme, "session"));
    runCliSession(readme);

    // The restart: stop all three, start node 1 alone with its command again; its data is there.
    stopEverything();
    started.clear();
    startServer(node1.get(0));
    await().atMost(Duration.ofSeconds(90)).until(() -> status("http://localhost:8080/ready") == 200);
    runSession(block(readme, "restart"));
  }

  /** The data directories the README's three nodes make (./kvstore-data/<node-id>). */
  @BeforeEach
  @AfterEach
  void deleteReadmeDataDirs() throws IOException {
    for (String id : List.of("127.0.0.1-7946", "127.0.0.1-7956", "127.0.0.1-7966")) {
      Path dir = ROOT.resolve("kvstore-data").resolve(id);
      if (Files.exists(dir)) {
        try (var files = Files.walk(dir)) {
          for (Path p : files.sorted(java.util.Comparator.reverseOrder()).toList()) {
            Files.delete(p);
          }
        }
      }
    }
  }

  /** A way to run one README command line and return what it printed. */
  @FunctionalInterface
  private interface Shell {
    String run(String command) throws Exception;
  }

  /** Runs a curl console block: lines alternate {@code $ command} and its expected output. */
  private void runSession(List<String> session) throws Exception {
    runSession(session, "$ ", ReadmeQuickStartIT::run, command -> command.contains(" -X "));
  }

  /** The CLI twin of the session: the README's alias, then each '$ kv ...' line as written. */
  private void runCliSession(String readme) throws Exception {
    List<String> alias = block(readme, "cli-alias");
    assertThat(alias).containsExactly("alias kv='" + JAR_CMD + " cli'");
    runSession(block(readme, "cli-session"), "$ kv ", ReadmeQuickStartIT::runKv,
        command -> command.matches("kv( --url \\S+)? (put|delete) .*"));
  }

  /**
   * Runs a console block whose lines alternate a command (starting with {@code prompt}) and its
   * expected output. A write runs once, as a person would type it; a read may be retried briefly,
   * since replication at write concern ONE is asynchronous.
   */
  private void runSession(List<String> session, String prompt, Shell shell,
      java.util.function.Predicate<String> isWrite) throws Exception {
    for (int i = 0; i < session.size(); i++) {
      String line = session.get(i);
      assertThat(line).as("session lines alternate '%s...' and its output", prompt)
          .startsWith(prompt);
      List<String> expected = new ArrayList<>();
      while (i + 1 < session.size() && !session.get(i + 1).startsWith("$ ")) {
        expected.add(session.get(++i));
      }
      String command = line.substring(2);
      String want = normalize(String.join("\n", expected));
      if (isWrite.test(command)) {
        assertThat(normalize(shell.run(command))).as("output of: %s", command).isEqualTo(want);
      } else {
        await().atMost(Duration.ofSeconds(10)).untilAsserted(() ->
            assertThat(normalize(shell.run(command))).as("output of: %s", command)
                .isEqualTo(want));
      }
    }
  }

  /**
   * Runs a README CLI line with {@code kv} defined as the alias says, but with this build's java
   * and jar, from the repository root, without the caller's {@code KVSTORE_*} variables.
   */
  private static String runKv(String command) throws Exception {
    List<String> kv = new ArrayList<>(LocalCluster.serverCommand());
    kv.add("cli");
    StringBuilder fn = new StringBuilder("kv() { ");
    for (String part : kv) {
      fn.append('\'').append(part.replace("'", "'\\''")).append("' ");
    }
    fn.append("\"$@\"; }; ");
    ProcessBuilder pb = new ProcessBuilder("bash", "-c", fn + command).directory(ROOT.toFile())
        .redirectErrorStream(true);
    pb.environment().keySet().removeIf(k -> k.startsWith("KVSTORE_"));
    Process p = pb.start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
    return out;
  }

  @Test
  void helpCommand_listsTheFlags() throws Exception {
    Process p = startServer(JAR_CMD + " --help");
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
    assertThat(p.exitValue()).isZero();
    Path log = Path.of("target", "readme-logs", "node-0.log");
    String text = out + Files.readString(log);
    assertThat(text).contains("--join").contains("--cluster-port").contains("KVSTORE_");
  }

  @Test
  void localClusterCommand_startsThreeNodesAndStopsThemOnEnter() throws Exception {
    for (int port : new int[] {8080, 8081, 8082, 7946, 7956, 7966}) {
      assertThat(Ports.free(port)).as("the README's port %d must be free for this test", port)
          .isTrue();
    }
    List<String> lines = block(readme(), "local-cluster");
    assertThat(lines).hasSize(1);
    String line = lines.get(0);
    assertThat(line).startsWith(CP_CMD + " ");
    List<String> cmd = new ArrayList<>(List.of(
        Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-cp", System.getProperty("kvstore.server.jar")));
    cmd.addAll(Arrays.asList(line.substring(CP_CMD.length()).trim().split("\\s+")));
    cmd.addAll(List.of("--dir", "target/readme-local-cluster"));
    Process p = new ProcessBuilder(cmd).directory(ROOT.resolve("kvstore-examples").toFile())
        .redirectErrorStream(true).start();
    started.add(p);
    BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(),
        StandardCharsets.UTF_8));
    List<String> printed = new ArrayList<>();
    String l;
    while ((l = out.readLine()) != null && !l.startsWith("Press Enter")) {
      printed.add(l);
    }
    assertThat(printed).as("launcher output").anyMatch(s -> s.startsWith("node-3 http://127.0.0.1:8082"));
    assertThat(status("http://127.0.0.1:8082/ready")).isEqualTo(200);
    try (OutputStream in = p.getOutputStream()) {
      in.write('\n');
    }
    assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
    assertThat(p.exitValue()).isZero();
    await().atMost(Duration.ofSeconds(30)).until(() -> Ports.free(8080) && Ports.free(8082));
  }

  /** Members listed in a {@code /v1/cluster} body (its "members" array holds objects with an "id"). */
  private static int membersOf(String clusterJson) {
    int members = clusterJson.indexOf("\"members\"");
    return members < 0 ? 0 : clusterJson.substring(members).split("\"id\"").length - 1;
  }

  private static String run(String command) throws Exception {
    Process p = new ProcessBuilder("bash", "-c", command).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
    return out;
  }

  private static String normalize(String s) {
    Matcher m = VERSION.matcher(s.strip());
    return m.replaceAll("<version>");
  }
}
