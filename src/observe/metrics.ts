// Prometheus metrics, one registry per server instance (several mirrors can share a process in tests).
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import { ProxyEvents } from "./events.js";

export class Metrics {
  readonly registry = new Registry();
  /**
   * The same observations as events, for the status model. Carried here because every part that
   * reports a metric already holds this object, so reporting an event needs no new wiring.
   */
  readonly events = new ProxyEvents();
  readonly httpRequests = new Counter({
    name: "mirrorkit_http_requests_total",
    help: "Client requests by method, route and status",
    labelNames: ["method", "route", "status"] as const,
    registers: [this.registry],
  });
  readonly cacheResults = new Counter({
    name: "mirrorkit_cache_results_total",
    help: "Manifest and blob answers by kind and result (hit, miss, revalidated, stale)",
    labelNames: ["kind", "result"] as const,
    registers: [this.registry],
  });
  readonly servedBytes = new Counter({
    name: "mirrorkit_served_bytes_total",
    help: "Blob bytes sent to clients, by source: cache (published content) or upstream (a fill in progress)",
    labelNames: ["source"] as const,
    registers: [this.registry],
  });
  readonly upstreamRequests = new Counter({
    name: "mirrorkit_upstream_requests_total",
    help: "Requests sent upstream by upstream, method and status (error = no HTTP answer)",
    labelNames: ["upstream", "method", "status"] as const,
    registers: [this.registry],
  });
  readonly upstreamBytes = new Counter({
    name: "mirrorkit_upstream_bytes_total",
    help: "Blob bytes downloaded from upstreams",
    labelNames: ["upstream"] as const,
    registers: [this.registry],
  });
  readonly activeFills = new Gauge({
    name: "mirrorkit_fills_active",
    help: "Blob downloads in progress",
    registers: [this.registry],
  });
  readonly fillResumes = new Counter({
    name: "mirrorkit_fill_resumes_total",
    help: "Blob downloads resumed with a Range request after the upstream connection dropped",
    labelNames: ["upstream"] as const,
    registers: [this.registry],
  });

  readonly cacheBytes = new Gauge({
    name: "mirrorkit_cache_size_bytes",
    help: "Bytes of published content in the cache (blobs and manifests)",
    registers: [this.registry],
  });
  readonly cacheObjects = new Gauge({
    name: "mirrorkit_cache_objects",
    help: "Published objects (blobs and manifests) in the cache",
    registers: [this.registry],
  });
  readonly savedBytes = new Counter({
    name: "mirrorkit_saved_bytes_total",
    help: "Bytes served from the cache, each of which an upstream did not have to send",
    registers: [this.registry],
  });
  readonly rateLimitRemaining = new Gauge({
    name: "mirrorkit_upstream_ratelimit_remaining",
    help: "Pull budget left at an upstream, from its ratelimit-remaining header (last seen)",
    labelNames: ["upstream"] as const,
    registers: [this.registry],
  });
  readonly rateLimitLimit = new Gauge({
    name: "mirrorkit_upstream_ratelimit_limit",
    help: "Pull budget per window at an upstream, from its ratelimit-limit header (last seen)",
    labelNames: ["upstream"] as const,
    registers: [this.registry],
  });
  readonly evictedBytes = new Counter({
    name: "mirrorkit_evicted_bytes_total",
    help: "Bytes evicted to keep the cache under its size cap",
    registers: [this.registry],
  });

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: "mirrorkit_" });
  }
}
