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
  private final Socket socket = new Socket();
  private final DataOutputStream out;
  private final DataInputStream in;

  RawPeer(String address) throws IOException {
    int colon = address.lastIndexOf(':');
    socket.connect(new InetSocketAddress(address.substring(0, colon),
        Integer.parseInt(address.substring(colon + 1))), 5_000);
    socket.setSoTimeout(10_000);
    out = new DataOutputStream(socket.getOutputStream());
    in = new DataInputStream(socket.getInputStream());
  }

  /** Writes a length-prefixed frame built by {@link Frames} (and releases the buffer). */
  RawPeer send(ByteBuf frame) throws IOException {
    try {
      byte[] body = new byte[frame.readableBytes()];
      frame.readBytes(body);
      return sendFrame(body);
    } finally {
      frame.release();
    }
  }

  RawPeer sendFrame(byte[] body) throws IOException {
    out.writeInt(body.length);
    out.write(body);
    out.flush();
    return this;
  }

  RawPeer sendRaw(byte[] bytes) throws IOException {
    out.write(bytes);
    out.flush();
    return this;
  }

  /** Reads the next data-plane frame. */
  Frames.Frame read() throws IOException {
    int length = in.readInt();
    byte[] body = new byte[length];
    in.readFully(body);
    return Frames.decode(Unpooled.wrappedBuffer(body));
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
