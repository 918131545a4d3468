package io.kvstore.cluster;

import io.scalecube.cluster.transport.api.Message;
import io.scalecube.cluster.transport.api.Transport;
import java.util.function.Predicate;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * A ScaleCube {@link Transport} decorator for tests that drops membership messages as a network cut
 * would: sends to a blocked address vanish, requests to one never answer, and messages from a blocked
 * sender are not delivered. Shared by {@link TestNetwork} and {@link FaultNetwork}.
 */
final class FilteringTransport implements Transport {
  private final Transport delegate;
  private final Predicate<String> mayReach;
  private final Predicate<String> mayHearFrom;

  /**
   * @param delegate the real transport
   * @param mayReach whether messages to this membership address get through
   * @param mayHearFrom whether messages from this sender address get through
   */
  FilteringTransport(Transport delegate, Predicate<String> mayReach, Predicate<String> mayHearFrom) {
    this.delegate = delegate;
    this.mayReach = mayReach;
    this.mayHearFrom = mayHearFrom;
  }

  @Override
  public String address() {
    return delegate.address();
  }

  @Override
  public Mono<Transport> start() {
    return delegate.start().thenReturn(this);
  }

  @Override
  public Mono<Void> stop() {
    return delegate.stop();
  }

  @Override
  public boolean isStopped() {
    return delegate.isStopped();
  }

  @Override
  public Mono<Void> send(String address, Message message) {
    return mayReach.test(address) ? delegate.send(address, message) : Mono.empty();
  }

  @Override
  public Mono<Message> requestResponse(String address, Message request) {
    return mayReach.test(address) ? delegate.requestResponse(address, request) : Mono.never();
  }

  @Override
  public Flux<Message> listen() {
    return delegate.listen().filter(m -> m.sender() == null || mayHearFrom.test(m.sender()));
  }
}
