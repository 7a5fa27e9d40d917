// The upstream clients of one server, created lazily per configured upstream, sharing one undici
// agent (connection pools, timeouts, redirects that drop Authorization across origins); chained
// through the parent mirror when one is configured.
import { Agent, interceptors, type Dispatcher } from "undici";
import type { MirrorConfig, UpstreamConfig } from "../config/resolve.js";
import type { Logger } from "../observe/log.js";
import type { Metrics } from "../observe/metrics.js";
import { CircuitBreaker } from "../upstream/breaker.js";
import { UpstreamClient } from "../upstream/client.js";
import { ChainedClient } from "../upstream/parent.js";

export class Upstreams {
  private readonly clients = new Map<string, UpstreamClient>();
  private readonly agent: Agent;
  private readonly dispatcher: Dispatcher;
  private parentBreaker: CircuitBreaker | undefined;

  constructor(
    private readonly config: MirrorConfig,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {
    this.agent = new Agent({
      connect: { timeout: config.connectTimeoutMs },
      headersTimeout: config.responseTimeoutMs,
      bodyTimeout: config.responseTimeoutMs,
      connections: 32,
    });
    // Registries redirect blob GETs to CDNs; undici's redirect handler strips credentials on a
    // change of origin, so a CDN never sees the upstream's token.
    this.dispatcher = this.agent.compose(interceptors.redirect({ maxRedirections: 5 }));
  }

  client(upstream: UpstreamConfig): UpstreamClient {
    let c = this.clients.get(upstream.name);
    if (!c) {
      const breaker = new CircuitBreaker(this.config.breakerCooldownMs);
      const { parent } = this.config;
      // An upstream's credentials are its own: one that has them is never fetched through the parent.
      c =
        parent && upstream.username === undefined
          ? new ChainedClient(upstream, parent, this.dispatcher, breaker, (this.parentBreaker ??= new CircuitBreaker(this.config.breakerCooldownMs)), this.log, this.metrics)
          : new UpstreamClient(upstream, this.dispatcher, breaker, this.log, this.metrics);
      this.clients.set(upstream.name, c);
    }
    return c;
  }

  close(): Promise<void> {
    return this.agent.destroy();
  }
}
