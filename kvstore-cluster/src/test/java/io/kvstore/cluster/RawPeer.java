package io.kvstore.cluster;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;

/** A hand-driven TCP client for feeding a node's ports whatever bytes a test wants. */
final class RawPeer implements AutoCloseable {
  private final Socket socket;
  private final DataOutputStream out;
  private final DataInputStream in;

  RawPeer(String address) throws IOException {
    this(connect(new Socket(), address));
  }

  /** Over a socket the caller connected (and, for TLS, shook hands on). */
  RawPeer(Socket connected) throws IOException {
    socket = connected;
    socket.setSoTimeout(10_000);
    out = new DataOutputStream(socket.getOutputStream());
    in = new DataInputStream(socket.getInputStream());
  }

  static Socket connect(Socket socket, String address) throws IOException {
    int colon = address.lastIndexOf(':');
    socket.connect(new InetSocketAddress(address.substring(0, colon),
        Integer.parseInt(address.substring(colon + 1))), 5_000);
    return socket;
  }

  /**
   * Writes frames built by {@link Frames}, length-prefixed, in one write (pipelined, so the peer
   * cannot close the connection between them), and releases the buffers.
   */
  RawPeer send(ByteBuf... frames) throws IOException {
    byte[][] bodies = new byte[frames.length][];
    for (int i = 0; i < frames.length; i++) {
      try {
        bodies[i] = new byte[frames[i].readableBytes()];
        frames[i].readBytes(bodies[i]);
      } finally {
        frames[i].release();
      }
    }
    return sendFrames(bodies);
  }

  /** Writes raw frame bodies, each length-prefixed, in one write. */
  RawPeer sendFrames(byte[]... bodies) throws IOException {
    java.io.ByteArrayOutputStream all = new java.io.ByteArrayOutputStream();
    DataOutputStream framed = new DataOutputStream(all);
    for (byte[] body : bodies) {
      framed.writeInt(body.length);
      framed.write(body);
    }
    return sendRaw(all.toByteArray());
  }

  RawPeer sendFrame(byte[] body) throws IOException {
    return sendFrames(body);
  }

  RawPeer sendRaw(byte[] bytes) throws IOException {
    out.write(bytes);
    out.flush();
    return this;
  }

  /** Reads the next data-plane frame. */
  Frames.Frame read() throws IOException {
    return Frames.decode(Unpooled.wrappedBuffer(readBody()));
  }

  /** Reads the next frame's body as it is on the wire (with its tag, on an authenticated link). */
  byte[] readBody() throws IOException {
    int length = in.readInt();
    byte[] body = new byte[length];
    in.readFully(body);
    return body;
  }

  /** Whether the other side closes the connection within the time (reading and discarding). */
  boolean closedWithin(java.time.Duration time) throws IOException {
    int before = socket.getSoTimeout();
    long deadline = System.nanoTime() + time.toNanos();
    try {
      while (true) {
        long left = (deadline - System.nanoTime()) / 1_000_000;
        if (left <= 0) {
          return false;
        }
        socket.setSoTimeout((int) Math.max(1, left));
        try {
          if (in.read() < 0) {
            return true;
          }
        } catch (SocketTimeoutException e) {
          return false;
        } catch (IOException e) {
          return true; // connection reset
        }
      }
    } finally {
      if (!socket.isClosed()) {
        socket.setSoTimeout(before);
      }
    }
  }

  /** Whether the other side closed the connection (reading until end of stream or a reset). */
  boolean closedByPeer() {
    try {
      while (in.read() >= 0) {
        // drain whatever was sent before the close
      }
      return true;
    } catch (EOFException e) {
      return true;
    } catch (SocketTimeoutException e) {
      return false;
    } catch (IOException e) {
      return true; // connection reset
    }
  }

  @Override
  public void close() throws IOException {
    socket.close();
  }
}
