package io.kvstore.examples;

import static org.assertj.core.api.Assertions.assertThat;

import io.kvstore.examples.server.KvServer;
import io.kvstore.examples.server.ServerOptions;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine;

/** The standalone server's command line, run in this JVM or in a child JVM, for the flag tests. */
public final class ServerCommand {
  private ServerCommand() {}

  /**
   * What one run returned and printed.
   *
   * @param code the exit code
   * @param out standard output (a child JVM: everything it printed)
   * @param err standard error (a child JVM: everything it printed)
   */
  public record Run(int code, String out, String err) {}

  /** Runs the server's command line in this JVM, as {@code main} would, capturing its output. */
  public static Run execute(String... args) {
    CommandLine cl = KvServer.commandLine(new KvServer());
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    cl.setOut(new PrintWriter(out));
    cl.setErr(new PrintWriter(err));
    int code = cl.execute(args);
    return new Run(code, out.toString(), err.toString());
  }

  /** The options these flags give, without starting anything. */
  public static ServerOptions parse(String... args) {
    KvServer server = new KvServer();
    KvServer.commandLine(server).parseArgs(args);
    return server.options();
  }

  /** The folder of the test TLS material ({@code src/test/resources/tls}). */
  public static Path tlsDir() {
    try {
      return Path.of(ServerCommand.class.getResource("/tls/server.p12").toURI()).getParent();
    } catch (URISyntaxException e) {
      throw new IllegalStateException(e);
    }
  }

  /** {@link #child(Map, List, String...)} with these variables and no JVM flags. */
  public static Run child(Map<String, String> env, String... args) throws Exception {
    return child(env, List.of(), args);
  }

  /** {@link #child(Map, List, String...)} with these JVM flags and no variables. */
  public static Run child(List<String> jvmArgs, String... args) throws Exception {
    return child(Map.of(), jvmArgs, args);
  }

  /**
   * The server in a child JVM on this class path, with none of the caller's {@code KVSTORE_*}
   * variables but {@code env}; killed (and the test failed) if it is still running after 20 s.
   */
  public static Run child(Map<String, String> env, List<String> jvmArgs, String... args)
      throws Exception {
    List<String> cmd = new ArrayList<>(List.of(
        Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xshare:auto",
        "-cp", System.getProperty("java.class.path")));
    cmd.addAll(jvmArgs);
    cmd.add(KvServer.class.getName());
    cmd.addAll(List.of(args));
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
    pb.environment().keySet().removeIf(k -> k.startsWith("KVSTORE_"));
    pb.environment().putAll(env);
    Process p = pb.start();
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    Thread reader = new Thread(() -> {
      try (InputStream in = p.getInputStream()) {
        in.transferTo(out);
      } catch (IOException e) {
        // the process ended
      }
    });
    reader.start();
    boolean exited = p.waitFor(20, TimeUnit.SECONDS);
    if (!exited) {
      p.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
    }
    reader.join(5_000);
    String text = out.toString(StandardCharsets.UTF_8);
    assertThat(exited).as("the server exited by itself; output: %s", text).isTrue();
    return new Run(p.exitValue(), text, text);
  }
}
