package io.kvstore.cluster;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A loopback TCP proxy that records every byte it forwards, in both directions: listens on
 * {@code listenHost:port} for each given port and forwards to {@code targetHost:samePort}. A node
 * bound to the target host that advertises the listen host is then reached only through the tap.
 */
final class WireTap implements AutoCloseable {
  private final ByteArrayOutputStream seen = new ByteArrayOutputStream();
  private final List<ServerSocket> servers = new CopyOnWriteArrayList<>();
  private final List<Socket> sockets = new CopyOnWriteArrayList<>();
  private volatile boolean closed;

  WireTap(String listenHost, String targetHost, int... ports) throws IOException {
    for (int port : ports) {
      ServerSocket server = new ServerSocket();
      server.bind(new InetSocketAddress(InetAddress.getByName(listenHost), port));
      servers.add(server);
      daemon("wiretap-accept-" + port, () -> accept(server, targetHost, port));
    }
  }

  /** Every byte forwarded so far, both directions interleaved. */
  byte[] bytes() {
    synchronized (seen) {
      return seen.toByteArray();
    }
  }

  private void accept(ServerSocket server, String targetHost, int port) {
    while (!closed) {
      try {
        Socket in = server.accept();
        Socket out = new Socket();
        sockets.add(in);
        sockets.add(out);
        out.connect(new InetSocketAddress(InetAddress.getByName(targetHost), port), 5_000);
        daemon("wiretap-up-" + port, () -> pump(in, out));
        daemon("wiretap-down-" + port, () -> pump(out, in));
      } catch (IOException e) {
        if (closed) {
          return;
        }
      }
    }
  }

  private void pump(Socket from, Socket to) {
    byte[] buf = new byte[16 * 1024];
    try (InputStream in = from.getInputStream(); OutputStream out = to.getOutputStream()) {
      int n;
      while ((n = in.read(buf)) >= 0) {
        synchronized (seen) {
          seen.write(buf, 0, n);
        }
        out.write(buf, 0, n);
        out.flush();
      }
    } catch (IOException e) {
      // one side closed: close the other below
    } finally {
      close(from);
      close(to);
    }
  }

  private static void daemon(String name, Runnable r) {
    Thread t = new Thread(r, name);
    t.setDaemon(true);
    t.start();
  }

  private static void close(java.io.Closeable c) {
    try {
      c.close();
    } catch (IOException e) {
      // closing anyway
    }
  }

  @Override
  public void close() {
    closed = true;
    servers.forEach(WireTap::close);
    sockets.forEach(WireTap::close);
  }
}
