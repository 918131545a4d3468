package io.kvstore.examples.load;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.Locale;

/**
 * One blocking HTTP/1.1 keep-alive connection, for the load tool: the calling thread writes the
 * request and reads the response itself, with no selector or executor between them, so a request
 * costs the client two system calls and no thread hand-offs. {@link java.net.http.HttpClient} hands
 * every request from the caller to its selector thread and the response to a worker and back: on a
 * small machine that client, not the server, set the HTTP figures (docs/BENCHMARKS.md §4).
 *
 * <p>Plain HTTP only; the response body is read (by {@code Content-Length} or chunked) and dropped.
 * A server's {@code Connection: close}, or any I/O error, closes the socket and the next request
 * opens a new one. Not thread-safe: one connection per client thread.
 */
final class SocketHttpConnection implements AutoCloseable {
  private final String host;
  private final int port;
  private final byte[] hostHeader;
  private final int timeoutMillis;
  private Socket socket;
  private InputStream in;
  private OutputStream out;

  SocketHttpConnection(URI base, int timeoutMillis) {
    if (!"http".equalsIgnoreCase(base.getScheme())) {
      throw new IllegalArgumentException("the socket client speaks plain http, not "
          + base.getScheme() + "; use --http-client jdk for https");
    }
    this.host = base.getHost();
    this.port = base.getPort() < 0 ? 80 : base.getPort();
    String h = base.getHost().contains(":") ? "[" + base.getHost() + "]" : base.getHost();
    this.hostHeader = ("Host: " + h + ":" + port + "\r\n").getBytes(StandardCharsets.US_ASCII);
    this.timeoutMillis = timeoutMillis;
  }

  /**
   * Sends one request and reads its whole response.
   *
   * @param method e.g. PUT
   * @param target the path and query, already percent-encoded
   * @param headers extra header lines, each ending in CRLF (may be empty)
   * @param body the body, or null for none
   * @return the status code
   * @throws IOException when the exchange fails; the connection is closed then
   */
  int send(String method, String target, String headers, byte[] body) throws IOException {
    try {
      if (socket == null) {
        connect();
      }
      StringBuilder head = new StringBuilder(128).append(method).append(' ').append(target)
          .append(" HTTP/1.1\r\n");
      out.write(head.toString().getBytes(StandardCharsets.US_ASCII));
      out.write(hostHeader);
      StringBuilder rest = new StringBuilder(headers);
      if (body != null) {
        rest.append("Content-Length: ").append(body.length).append("\r\n");
      }
      rest.append("\r\n");
      out.write(rest.toString().getBytes(StandardCharsets.UTF_8));
      if (body != null) {
        out.write(body);
      }
      out.flush();
      return readResponse(method.equals("HEAD"));
    } catch (IOException | RuntimeException e) {
      close();
      throw e;
    }
  }

  private void connect() throws IOException {
    Socket s = new Socket();
    try {
      s.setTcpNoDelay(true);
      s.setSoTimeout(timeoutMillis);
      s.connect(new InetSocketAddress(host, port), timeoutMillis);
      in = new BufferedInputStream(s.getInputStream(), 16384);
      out = new BufferedOutputStream(s.getOutputStream(), 16384);
      socket = s;
    } catch (IOException e) {
      s.close();
      throw e;
    }
  }

  private int readResponse(boolean head) throws IOException {
    String status = line();
    if (!status.startsWith("HTTP/1.") || status.length() < 12) {
      throw new IOException("not an HTTP/1.x status line: " + status);
    }
    int code = Integer.parseInt(status.substring(9, 12));
    long length = -1;
    boolean chunked = false;
    boolean closeAfter = status.startsWith("HTTP/1.0");
    for (String h; !(h = line()).isEmpty(); ) {
      int colon = h.indexOf(':');
      if (colon < 0) {
        continue;
      }
      String name = h.substring(0, colon).trim().toLowerCase(Locale.ROOT);
      String value = h.substring(colon + 1).trim();
      switch (name) {
        case "content-length" -> length = Long.parseLong(value);
        case "transfer-encoding" -> chunked = value.toLowerCase(Locale.ROOT).contains("chunked");
        case "connection" -> closeAfter = value.equalsIgnoreCase("close");
        default -> { }
      }
    }
    boolean noBody = head || code == 204 || code == 304 || (code >= 100 && code < 200);
    if (!noBody) {
      if (chunked) {
        for (long size; (size = Long.parseLong(chunkSize(line()), 16)) > 0; ) {
          skip(size);
          line();
        }
        while (!line().isEmpty()) {
          // trailers
        }
      } else if (length >= 0) {
        skip(length);
      } else {
        closeAfter = true; // the body runs to the end of the connection
        while (in.read() != -1) {
          // drain
        }
      }
    }
    if (closeAfter) {
      close();
    }
    return code;
  }

  private static String chunkSize(String line) {
    int semi = line.indexOf(';');
    return (semi < 0 ? line : line.substring(0, semi)).trim();
  }

  private void skip(long n) throws IOException {
    for (long left = n; left > 0; ) {
      long skipped = in.skip(left);
      if (skipped <= 0) {
        if (in.read() == -1) {
          throw new EOFException("the response ended " + left + " bytes early");
        }
        skipped = 1;
      }
      left -= skipped;
    }
  }

  private String line() throws IOException {
    ByteArrayOutputStream b = new ByteArrayOutputStream(64);
    for (int c; (c = in.read()) != '\n'; ) {
      if (c == -1) {
        throw new EOFException("the server closed the connection");
      }
      if (c != '\r') {
        b.write(c);
      }
    }
    return b.toString(StandardCharsets.ISO_8859_1);
  }

  @Override
  public void close() {
    Socket s = socket;
    socket = null;
    in = null;
    out = null;
    if (s != null) {
      try {
        s.close();
      } catch (IOException ignored) {
        // closing anyway
      }
    }
  }
}
