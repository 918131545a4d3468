package io.kvstore.http;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.http.Context;
import io.kvstore.core.ClusterView;
import io.kvstore.core.KvStore;
import io.kvstore.core.Member;
import io.kvstore.core.StorageStatus;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.util.Locale;
import java.util.Set;
import java.util.function.Supplier;

/** {@code /health}, {@code /ready}, {@code /v1/cluster} and {@code /metrics}. */
final class OpsApi {
  static final String PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8";

  private final KvStore store;
  private final PrometheusMeterRegistry registry;

  /** Null: no partition fields on /v1/cluster. */
  private final Supplier<PartitionMapInfo> partitionMap;

  OpsApi(KvStore store, PrometheusMeterRegistry registry, Supplier<PartitionMapInfo> partitionMap) {
    this.store = store;
    this.registry = registry;
    this.partitionMap = partitionMap;
  }

  void health(Context ctx) {
    QueryParams.parse(ctx.queryString(), Set.of());
    ObjectNode out = Json.object();
    StorageStatus storage = store.storage();
    out.put("status", storage.writable() ? "serving" : "read_only");
    out.put("node", store.config().nodeId());
    ObjectNode disk = out.putObject("storage");
    disk.put("durability", storage.isDurable() ? storage.durability().name() : "MEMORY");
    disk.put("writable", storage.writable());
    Routes.json(ctx, 200, out);
  }

  void ready(Context ctx) {
    QueryParams.parse(ctx.queryString(), Set.of());
    ClusterView view = store.cluster();
    if (!view.isReady()) {
      throw new ApiError(503, "not_ready", "node '" + view.self().nodeId()
          + "' has not finished joining and synchronising with its cluster");
    }
    ObjectNode out = Json.object();
    out.put("ready", true);
    out.put("node", view.self().nodeId());
    PartitionMapInfo map = partitionMap == null ? null : partitionMap.get();
    if (map != null) {
      safety(out, map);
      out.put("pendingPartitions", map.pendingByNode().getOrDefault(view.self().nodeId(), 0));
    }
    Routes.json(ctx, 200, out);
  }

  void cluster(Context ctx) {
    QueryParams.parse(ctx.queryString(), Set.of());
    ClusterView view = store.cluster();
    PartitionMapInfo map = partitionMap == null ? null : partitionMap.get();
    ObjectNode out = Json.object();
    out.set("self", member(view.self(), map));
    ((ObjectNode) out.get("self")).put("contentFingerprint",
        String.format("%016x", store.contentFingerprint()));
    out.put("ready", view.isReady());
    if (map != null) {
      safety(out, map);
    }
    ArrayNode members = out.putArray("members");
    for (Member m : view.members()) {
      members.add(member(m, map));
    }
    if (map != null) {
      ObjectNode pm = out.putObject("partitionMap");
      pm.put("version", map.versionText());
      pm.put("replicationFactor", map.replicationFactor());
      ObjectNode nodes = pm.putObject("nodes");
      map.partitionsByNode().forEach(nodes::put);
      ObjectNode pending = pm.putObject("pendingPartitions");
      map.pendingByNode().forEach(pending::put);
    }
    Routes.json(ctx, 200, out);
  }

  /** {@code safeToShutdown} (true, false, or null when unknown) and why not. */
  private static void safety(ObjectNode out, PartitionMapInfo map) {
    if (map.safeToShutdown() == null) {
      out.putNull("safeToShutdown");
      return;
    }
    out.put("safeToShutdown", map.safeToShutdown());
    if (map.shutdownBlocker() != null) {
      out.put("shutdownBlocker", map.shutdownBlocker());
    }
  }

  private static ObjectNode member(Member m, PartitionMapInfo map) {
    ObjectNode node = Json.object();
    node.put("id", m.nodeId());
    node.put("membershipAddress", m.membershipAddress());
    node.put("dataAddress", m.dataAddress());
    node.put("status", m.status().name().toLowerCase(Locale.ROOT));
    if (map != null) {
      node.put("partitions", map.partitionsByNode().getOrDefault(m.nodeId(), 0));
      Integer pending = map.pendingByNode().get(m.nodeId());
      if (pending != null) {
        node.put("pendingPartitions", pending);
      }
    }
    return node;
  }

  void metrics(Context ctx) {
    QueryParams.parse(ctx.queryString(), Set.of());
    ctx.status(200).contentType(PROMETHEUS_TEXT).result(registry.scrape());
  }
}
