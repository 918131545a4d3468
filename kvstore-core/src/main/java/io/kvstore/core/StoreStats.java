package io.kvstore.core;

/**
 * A snapshot of a store's counters since it started.
 *
 * @param gets reads (get, getString, getVersioned)
 * @param puts local puts applied
 * @param deletes local deletes applied
 * @param conditionFailures local conditional writes refused because their condition did not hold
 * @param remoteApplied mutations from other nodes that changed this store
 * @param remoteIgnored mutations from other nodes ignored as older than or equal to what is held
 * @param refusedClockDrift mutations from other nodes refused because their clock was too far ahead
 * @param refusedInvalid mutations from other nodes refused for an invalid key or value
 * @param liveEntries keys holding a value (values whose TTL passed leave at the next sweep)
 * @param tombstones deleted or expired keys still remembered to stop resurrection
 * @param purged tombstones and expired entries removed after the grace period
 */
public record StoreStats(
    long gets,
    long puts,
    long deletes,
    long conditionFailures,
    long remoteApplied,
    long remoteIgnored,
    long refusedClockDrift,
    long refusedInvalid,
    long liveEntries,
    long tombstones,
    long purged) {}
