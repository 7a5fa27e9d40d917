// Prometheus metrics, one registry per server instance (several mirrors can share a process in tests).
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";

export class Metrics {
  readonly registry = new Registry();
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
    help: "Bytes of published content in the cache (known when a size cap is set)",
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
