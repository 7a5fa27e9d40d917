// Chaining (config `parent`): an upstream fetched through a parent mirror (containerd's ?ns=<upstream>),
// and from the upstream itself while the parent is down or failing, or sends a blob below the floor.
import type { Dispatcher } from "undici";
import type { ParentConfig, UpstreamConfig } from "../config/resolve.js";
import type { Logger } from "../observe/log.js";
import type { Metrics } from "../observe/metrics.js";
import type { CircuitBreaker } from "./breaker.js";
import type { RateLimitBudget } from "./budget.js";
import { discard, type FetchOptions, UpstreamClient, type UpstreamResponse } from "./client.js";
import { UpstreamError } from "./errors.js";
import { VIA_HEADER, viaForParent } from "./hops.js";

/** One upstream as the parent mirror serves it: the parent's URL and credentials, ?ns= the upstream. */
class ViaParent extends UpstreamClient {
  constructor(
    private readonly upstream: UpstreamConfig,
    parent: ParentConfig,
    private readonly mirrorId: string,
    dispatcher: Dispatcher,
    breaker: CircuitBreaker,
    log: Logger,
    metrics: Metrics,
    budget: RateLimitBudget,
  ) {
    super(
      {
        ...upstream,
        name: `${upstream.name} (parent)`,
        url: parent.url,
        // The parent's credentials only, and only for the parent's own origin.
        username: parent.username,
        password: parent.password,
        trustedRealmOrigins: [parent.url.origin],
      },
      dispatcher,
      breaker,
      log,
      metrics,
      budget,
    );
  }

  protected override requestUrl(path: string): URL {
    const url = super.requestUrl(path);
    url.searchParams.set("ns", this.upstream.name);
    return url;
  }

  // Every mirror this request passed, then this one: a mirror-kit parent refuses what comes back to it.
  override fetch(method: "GET" | "HEAD", path: string, options: FetchOptions): Promise<UpstreamResponse> {
    return super.fetch(method, path, { ...options, headers: { ...options.headers, [VIA_HEADER]: viaForParent(this.mirrorId) } });
  }
}

/**
 * The upstream client of a chained mirror: the parent first; the upstream itself when the parent
 * gives no answer or a 5xx (fallback), or never (fallback: false). Whatever arrives is checked
 * against its digest as always, so a parent cannot substitute content.
 */
export class ChainedClient extends UpstreamClient {
  private readonly parent: ViaParent;
  private warnedAt = 0;
  private loopWarnedAt = 0;

  constructor(
    config: UpstreamConfig,
    private readonly parentConfig: ParentConfig,
    /** This mirror's id in the via header (hops.ts). */
    mirrorId: string,
    dispatcher: Dispatcher,
    breaker: CircuitBreaker,
    /** One breaker for the parent, shared by every upstream: a parent that is down is down for all. */
    parentBreaker: CircuitBreaker,
    private readonly chainLog: Logger,
    metrics: Metrics,
    /** Shared with the parent's client: a 429 or a low budget passed on by the parent counts for this upstream. */
    budget: RateLimitBudget,
  ) {
    super(config, dispatcher, breaker, chainLog, metrics, budget);
    this.parent = new ViaParent(config, parentConfig, mirrorId, dispatcher, parentBreaker, chainLog, metrics, budget);
  }

  /** The parent answered 508: the chain leads back to a mirror this request came through. Once a minute. */
  private warnLoop(): void {
    if (Date.now() - this.loopWarnedAt < 60_000) return;
    this.loopWarnedAt = Date.now();
    this.chainLog.error({ upstream: this.name, parent: this.parentConfig.url.origin }, "chaining loop: the parent mirror leads back to a mirror this request came through (508); check each mirror's parent setting");
  }

  /** The upstream itself, unless the config keeps this mirror behind its parent (fallback: false). */
  override get hasOtherSource(): boolean {
    return this.parentConfig.fallback;
  }

  override isOffline(): boolean {
    return this.parent.isOffline() && (!this.parentConfig.fallback || super.isOffline());
  }

  override async fetch(method: "GET" | "HEAD", path: string, options: FetchOptions): Promise<UpstreamResponse> {
    if (options.direct && this.parentConfig.fallback) return super.fetch(method, path, options);
    let failure: UpstreamError | undefined;
    try {
      // The parent's health always feeds its breaker, even for a fill's own resume loop: a parent
      // that is down is then skipped at once instead of costing a connect timeout per resume.
      const res = await this.parent.fetch(method, path, { ...options, breaker: true });
      if (res.statusCode === 508) this.warnLoop();
      if (res.statusCode < 500 || !this.parentConfig.fallback) return res;
      await discard(res);
      failure = new UpstreamError(this.parent.name, "status", `status ${res.statusCode}`, res.statusCode);
    } catch (err) {
      if (!(err instanceof UpstreamError) || err.failure !== "unreachable" || options.signal?.aborted || !this.parentConfig.fallback) throw err;
      failure = err;
    }
    // Once per half minute: while the parent is down every request takes this path.
    if (Date.now() - this.warnedAt > 30_000) {
      this.warnedAt = Date.now();
      this.chainLog.warn({ upstream: this.name, parent: this.parentConfig.url.origin, reason: failure.message }, "parent mirror unavailable; fetching from the upstream itself");
    }
    return super.fetch(method, path, options);
  }
}
