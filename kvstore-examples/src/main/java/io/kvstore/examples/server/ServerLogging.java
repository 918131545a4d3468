package io.kvstore.examples.server;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.encoder.JsonEncoder;
import ch.qos.logback.classic.encoder.PatternLayoutEncoder;
import ch.qos.logback.classic.joran.JoranConfigurator;
import ch.qos.logback.classic.spi.Configurator;
import ch.qos.logback.classic.spi.ConfiguratorRank;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.ConsoleAppender;
import ch.qos.logback.core.OutputStreamAppender;
import ch.qos.logback.core.encoder.Encoder;
import ch.qos.logback.core.joran.spi.JoranException;
import ch.qos.logback.core.spi.ContextAwareBase;
import ch.qos.logback.core.status.Status;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import org.slf4j.ILoggerFactory;
import org.slf4j.LoggerFactory;

/**
 * How the standalone server logs: Logback, configured from {@code --log-level}, {@code --log-format}
 * and {@code --log-config} before the server writes its first line.
 *
 * <p>The default is one readable line per event on standard error,
 * {@value #TEXT_PATTERN}; {@code json} writes one JSON object per line (Logback's {@link JsonEncoder}).
 * The node id is a property of the logger context ({@value #NODE_ID}), not MDC, so lines from Netty,
 * ScaleCube and Javalin threads carry it as well. A file given with {@code --log-config} (or Logback's
 * own {@code -Dlogback.configurationFile}) replaces the built-in configuration and may use
 * {@code %property{nodeId}}.
 *
 * <p>Until the server configures it, {@link DefaultConfigurator} sets up the text format at INFO
 * without reading any XML, so the examples and tools in this module log sanely too.
 */
public final class ServerLogging {
  /** The logger-context property holding the node id. */
  public static final String NODE_ID = "nodeId";

  /** The text format: time, level, node id, logger (abbreviated), message. */
  public static final String TEXT_PATTERN =
      "%d{yyyy-MM-dd HH:mm:ss.SSS} %-5level [%property{nodeId}] %logger{20} - %msg%n";

  /** Logback's system property naming a configuration file. */
  public static final String LOGBACK_CONFIG_PROPERTY = "logback.configurationFile";

  private static final List<String> LEVELS = List.of("trace", "debug", "info", "warn", "error",
      "off");

  /** The log formats of {@code --log-format}. */
  public enum Format {
    /** One readable line per event. */
    TEXT,
    /** One JSON object per line. */
    JSON
  }

  private ServerLogging() {}

  /**
   * Parses a level name of {@code --log-level}.
   *
   * @param name trace, debug, info, warn, error or off (any case)
   * @return the level
   * @throws IllegalArgumentException naming the accepted values
   */
  public static Level parseLevel(String name) {
    String n = name == null ? "" : name.strip().toLowerCase(Locale.ROOT);
    if (!LEVELS.contains(n)) {
      throw new IllegalArgumentException("wants one of " + String.join(", ", LEVELS) + ", got '"
          + name + "'");
    }
    return Level.toLevel(n);
  }

  /**
   * Configures logging for a server, to standard error.
   *
   * @param level the root level, or null for the configuration's own (INFO for the built-in ones)
   * @param format the built-in format, used when no configuration file is given
   * @param configFile a Logback XML file that replaces the built-in configuration, or null
   * @param nodeId the node id every line carries
   * @throws IllegalArgumentException if the file cannot be read or is not a valid configuration
   */
  public static void configure(Level level, Format format, Path configFile, String nodeId) {
    configure(level, format, configFile, nodeId, null);
  }

  /**
   * Configures logging, writing the built-in formats to {@code out} (tests) or standard error.
   */
  static void configure(Level level, Format format, Path configFile, String nodeId,
      OutputStream out) {
    ILoggerFactory factory = LoggerFactory.getILoggerFactory();
    if (!(factory instanceof LoggerContext context)) {
      return; // another SLF4J provider on the class path: it is configured its own way
    }
    if (configFile != null) {
      loadFile(context, configFile, nodeId);
    } else if (System.getProperty(LOGBACK_CONFIG_PROPERTY) != null) {
      // Logback has read that file already when the first logger was made.
      context.putProperty(NODE_ID, nodeId);
    } else {
      context.reset();
      context.putProperty(NODE_ID, nodeId);
      builtIn(context, format, out);
    }
    if (level != null) {
      context.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME).setLevel(level);
    }
  }

  /** Back to the built-in text format at INFO (tests restore it after configuring their own). */
  static void reset() {
    if (LoggerFactory.getILoggerFactory() instanceof LoggerContext context) {
      context.reset();
      context.putProperty(NODE_ID, "-");
      builtIn(context, Format.TEXT, null);
    }
  }

  private static void loadFile(LoggerContext context, Path file, String nodeId) {
    if (!Files.isRegularFile(file) || !Files.isReadable(file)) {
      throw new IllegalArgumentException("cannot read " + file);
    }
    context.reset();
    context.putProperty(NODE_ID, nodeId);
    JoranConfigurator joran = new JoranConfigurator();
    joran.setContext(context);
    long since = System.currentTimeMillis();
    StringBuilder errors = new StringBuilder();
    try {
      joran.doConfigure(file.toFile());
    } catch (JoranException e) {
      errors.append(e.getMessage());
    }
    for (Status s : context.getStatusManager().getCopyOfStatusList()) {
      if (s.getLevel() == Status.ERROR && s.getTimestamp() >= since) {
        errors.append(errors.length() == 0 ? "" : "; ").append(s.getMessage());
      }
    }
    if (errors.length() > 0) {
      context.reset();
      context.putProperty(NODE_ID, nodeId);
      builtIn(context, Format.TEXT, null);
      throw new IllegalArgumentException(file + " is not a valid Logback configuration: " + errors);
    }
  }

  private static void builtIn(LoggerContext context, Format format, OutputStream out) {
    Encoder<ILoggingEvent> encoder;
    if (format == Format.JSON) {
      JsonEncoder json = new JsonEncoder();
      json.setWithSequenceNumber(false);
      json.setWithNanoseconds(false);
      json.setWithMessage(false);
      json.setWithArguments(false);
      json.setWithFormattedMessage(true);
      encoder = json;
    } else {
      PatternLayoutEncoder text = new PatternLayoutEncoder();
      text.setPattern(TEXT_PATTERN);
      text.setCharset(StandardCharsets.UTF_8);
      encoder = text;
    }
    encoder.setContext(context);
    encoder.start();
    OutputStreamAppender<ILoggingEvent> appender;
    if (out == null) {
      ConsoleAppender<ILoggingEvent> console = new ConsoleAppender<>();
      console.setTarget("System.err");
      appender = console;
    } else {
      appender = new OutputStreamAppender<>();
      appender.setOutputStream(out instanceof PrintStream ? out : new PrintStream(out, true,
          StandardCharsets.UTF_8));
    }
    appender.setName(format == Format.JSON ? "json" : "text");
    appender.setContext(context);
    appender.setEncoder(encoder);
    appender.setImmediateFlush(true);
    appender.start();
    ch.qos.logback.classic.Logger root = context.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME);
    root.setLevel(Level.INFO);
    root.addAppender(appender);
  }

  /**
   * Logback's configuration until the server applies its flags: the text format at INFO on standard
   * error, set up without parsing XML. Steps aside for {@code -Dlogback.configurationFile} and for a
   * {@code logback-test.xml} or {@code logback.xml} on the class path. Found through
   * {@code META-INF/services/ch.qos.logback.classic.spi.Configurator}.
   */
  @ConfiguratorRank(ConfiguratorRank.CUSTOM_NORMAL_PRIORITY)
  public static final class DefaultConfigurator extends ContextAwareBase implements Configurator {
    /** Called by Logback's ServiceLoader. */
    public DefaultConfigurator() {}

    @Override
    public ExecutionStatus configure(LoggerContext context) {
      ClassLoader loader = ServerLogging.class.getClassLoader();
      if (System.getProperty(LOGBACK_CONFIG_PROPERTY) != null
          || loader.getResource("logback-test.xml") != null
          || loader.getResource("logback.xml") != null) {
        return ExecutionStatus.INVOKE_NEXT_IF_ANY;
      }
      context.putProperty(NODE_ID, "-");
      builtIn(context, Format.TEXT, null);
      return ExecutionStatus.DO_NOT_INVOKE_NEXT_IF_ANY;
    }
  }
}
