package io.kvstore.cluster;

import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;

/**
 * A data-plane handler behind the {@link FrameReader}: it receives decoded frames, and nothing it
 * does with one may throw out of the pipeline (the exception would reach Netty's tail and be logged
 * there with the connection left open).
 */
abstract class FrameHandler extends ChannelInboundHandlerAdapter {
  @Override
  public final void channelRead(ChannelHandlerContext ctx, Object msg) {
    Frames.Frame frame = (Frames.Frame) msg;
    try {
      onFrame(ctx, frame);
    } catch (RuntimeException e) {
      failed(ctx, frame, e);
    }
  }

  /** One frame from the peer, on the channel's event loop. */
  abstract void onFrame(ChannelHandlerContext ctx, Frames.Frame frame);

  /** Handling a frame threw: count and log it, and close the connection. */
  abstract void failed(ChannelHandlerContext ctx, Frames.Frame frame, RuntimeException e);
}
