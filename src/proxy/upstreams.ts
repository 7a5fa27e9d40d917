// The upstream clients of one server, created lazily per configured upstream, chained through the
// parent mirror when one is configured. Upstreams share one transport (proxy routing, connection
// pools, timeouts, redirects that drop Authorization across origins); one with its own `ca` has its own.
import type { Dispatcher } from "undici";
import { shareBudget } from "../cluster/budget-share.js";
import type { Coordinator } from "../cluster/coordinator.js";
import type { MirrorConfig, UpstreamConfig } from "../config/resolve.js";
import type { Logger } from "../observe/log.js";
import type { Metrics } from "../observe/metrics.js";
import { redactUrl } from "../upstream/errors.js";
import { CircuitBreaker } from "../upstream/breaker.js";
import { RateLimitBudget } from "../upstream/budget.js";
import { UpstreamClient } from "../upstream/client.js";
import { newMirrorId } from "../upstream/hops.js";
import { ChainedClient } from "../upstream/parent.js";
import { createTransport, type Transport } from "../upstream/transport.js";
import type { UpstreamTrust } from "../upstream/trust.js";

export class Upstreams {
  private readonly clients = new Map<string, UpstreamClient>();
  private readonly shared: Transport;
  private readonly own = new Map<string, Transport>();
  private parentBreaker: CircuitBreaker | undefined;
  /** Replicas sharing a Redis: what one learns about an upstream's rate limit, all learn. */
  private coordinator: Coordinator | undefined;

  /** This mirror's id in the via header of requests to its parent (upstream/hops.ts). */
  readonly mirrorId = newMirrorId();

  constructor(
    private readonly config: MirrorConfig,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly trust?: UpstreamTrust,
  ) {
    this.shared = this.transport();
    const { http, https, noProxy } = config.proxy;
    if (http || https) {
      log.info({ httpProxy: http ? redactUrl(http) : "none", httpsProxy: https ? redactUrl(https) : "none", noProxy }, "upstream requests go through a forward proxy");
    }
    for (const l of trust?.loaded ?? []) log.info(l, "CA certificates trusted for upstream TLS");
  }

  /** Share rate-limit state with the other replicas (set before the first request; clients are made lazily). */
  shareWith(coordinator: Coordinator): void {
    this.coordinator = coordinator;
  }

  client(upstream: UpstreamConfig): UpstreamClient {
    let c = this.clients.get(upstream.name);
    if (!c) {
      const breaker = new CircuitBreaker(this.config.breakerCooldownMs);
      const dispatcher = this.dispatcherFor(upstream.name);
      const { parent } = this.config;
      const name = upstream.name;
      const budget = new RateLimitBudget(this.config.rateLimit, (backoff, b) => {
        if (backoff) this.log.warn({ upstream: name, remaining: b.remaining, limit: b.limit }, `revalidation backs off: ${backoff.reason}`);
        else this.log.info({ upstream: name, remaining: b.remaining, limit: b.limit }, "rate-limit budget above the reserve again: tags revalidated as usual");
      });
      if (this.coordinator) shareBudget(budget, name, this.coordinator, this.log, this.config.rateLimit.backoffFreshnessMs);
      // An upstream's credentials are its own: one that has them is never fetched through the parent.
      c =
        parent && upstream.username === undefined
          ? new ChainedClient(upstream, parent, this.mirrorId, dispatcher, breaker, (this.parentBreaker ??= new CircuitBreaker(this.config.breakerCooldownMs)), this.log, this.metrics, budget)
          : new UpstreamClient(upstream, dispatcher, breaker, this.log, this.metrics, budget);
      this.clients.set(upstream.name, c);
    }
    return c;
  }

  async close(): Promise<void> {
    await Promise.all([this.shared.close(), ...[...this.own.values()].map((t) => t.close())]);
  }

  private dispatcherFor(name: string): Dispatcher {
    const ca = this.trust?.perUpstream.get(name);
    if (!ca) return this.shared.dispatcher;
    let t = this.own.get(name);
    if (!t) {
      t = this.transport(ca);
      this.own.set(name, t);
    }
    return t.dispatcher;
  }

  private transport(ca?: readonly string[]): Transport {
    const { connectTimeoutMs, responseTimeoutMs, proxy } = this.config;
    return createTransport({ connectTimeoutMs, responseTimeoutMs, proxy, ...(ca ? { ca } : {}) });
  }
}
