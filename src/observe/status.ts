// The status model behind GET /, /api/v1/status and `mirror-kit status`: built only from the
// proxy's events (events.ts), the cache's own scan, and the all-time figures in stats.json.
import type { MirrorConfig, UpstreamConfig } from "../config/resolve.js";
import { cacheUsage } from "../store/evict.js";
import type { EvictionReport } from "../store/evict.js";
import { FsStore } from "../store/fs-store.js";
import type { CatalogStore } from "../store/store.js";
import type { FillEndEvent, FillProgressEvent, FillStartEvent, RequestEvent, ServedEvent, UpstreamEvent } from "./events.js";
import { type CachedRepository, scanInventory } from "./inventory.js";
import type { Logger } from "./log.js";
import type { Metrics } from "./metrics.js";
import { loadStats, MAX_REMEMBERED_IMAGES, saveStats, type PersistedStats } from "./stats-file.js";
import type { DownloadStatus, ImageSize, PullStatus, StatusV1, TrafficStatus, UpstreamStatus } from "./status-types.js";
import { addTraffic, type Traffic, TrafficWindows } from "./traffic.js";

/** What the model needs to know about the circuit breakers (Upstreams provides it). */
export interface BreakerView {
  client(upstream: UpstreamConfig): { isOffline(): boolean; budget: { backoff(): { since: number; reason: string } | undefined; currentHold(): { ms: number } | undefined } };
}

export interface StatusOptions {
  config: MirrorConfig;
  metrics: Metrics;
  log: Logger;
  breakers: BreakerView;
  /** The store whose usage and images are shown (a bucket too); default: the storage folder, read only. */
  store?: CatalogStore;
  now?: () => number;
}

interface UpstreamRecord {
  requests: number;
  latencyMs: number | null;
  lastError: { message: string; at: number } | null;
  lastOk: number;
  rateLimit: { limit: number; remaining: number; windowSeconds: number | null; observedAt: number } | null;
  retryUntil: number;
}

const RECENT_PULLS = 100;
/** A GET by tag from the client that sent a HEAD for it this recently is the same pull. */
const SAME_PULL_MS = 5_000;
const SAVE_EVERY_MS = 30_000;
const INVENTORY_TTL_MS = 10_000;
const TOP = 10;
const LATENCY_WEIGHT = 0.2;

export class StatusModel {
  private readonly now: () => number;
  private readonly startedAt: number;
  private readonly windows: TrafficWindows;
  private stats!: PersistedStats;
  private dirty = false;
  private saveTimer: NodeJS.Timeout | undefined;
  private size = 0;
  private objects = 0;
  private readonly upstreams = new Map<string, UpstreamRecord>();
  private readonly downloads = new Map<string, DownloadStatus & { started: number }>();
  private readonly pulls: (PullStatus & { atMs: number; method: string })[] = [];
  private inventory: { at: number; largest: Promise<ImageSize[]> } | undefined;

  private readonly store: CatalogStore;

  private constructor(private readonly o: StatusOptions) {
    this.store = o.store ?? FsStore.view(o.config.storage);
    this.now = o.now ?? Date.now;
    this.startedAt = this.now();
    this.windows = new TrafficWindows(this.now);
  }

  /** Load the all-time figures, measure the cache, and start listening to the proxy. */
  static async start(o: StatusOptions): Promise<StatusModel> {
    const model = new StatusModel(o);
    const { stats, problem } = await loadStats(o.config.storage, model.startedAt);
    if (problem) o.log.warn(problem);
    model.stats = stats;
    const usage = await cacheUsage(model.store);
    model.size = usage.bytes;
    model.objects = usage.objects;
    model.publishGauges();
    const ev = o.metrics.events;
    ev.on("request", (e) => model.onRequest(e));
    ev.on("served", (e) => model.onServed(e));
    ev.on("upstream", (e) => model.onUpstream(e));
    ev.on("fillStart", (e) => model.onFillStart(e));
    ev.on("fillProgress", (e) => model.onFillProgress(e));
    ev.on("fillEnd", (e) => model.onFillEnd(e));
    model.saveTimer = setInterval(() => void model.save(), SAVE_EVERY_MS);
    model.saveTimer.unref();
    return model;
  }

  /** A blob or manifest was published (store.onPublish). */
  published(bytes: number): void {
    this.size += bytes;
    this.objects += 1;
    this.inventory = undefined;
    this.publishGauges();
  }

  /** Eviction ran: its scan is the exact size. */
  evicted(report: EvictionReport): void {
    this.size = report.sizeAfter;
    this.objects = Math.max(0, this.objects - report.evicted.length);
    if (report.evicted.length > 0) this.inventory = undefined;
    this.publishGauges();
  }

  /** Write the all-time figures if they changed (also on a timer and at shutdown). */
  async save(): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    try {
      await saveStats(this.o.config.storage, this.stats);
    } catch (err) {
      this.dirty = true;
      this.o.log.warn({ err: (err as NodeJS.ErrnoException).code ?? String(err) }, "cannot save stats.json; all-time figures kept in memory");
    }
  }

  async close(): Promise<void> {
    if (this.saveTimer) clearInterval(this.saveTimer);
    await this.save();
  }

  async snapshot(): Promise<StatusV1> {
    const now = this.now();
    const iso = (ms: number) => new Date(ms).toISOString();
    const rate = this.stats.totals.fetchMs > 0 ? this.stats.totals.bytesFetched / this.stats.totals.fetchMs : undefined;
    return {
      version: 1,
      generatedAt: iso(now),
      startedAt: iso(this.startedAt),
      countingSince: iso(this.stats.since),
      cache: { sizeBytes: this.size, objects: this.objects, maxBytes: this.o.config.cacheMaxBytes > 0 ? this.o.config.cacheMaxBytes : null },
      traffic: {
        lastHour: trafficStatus(this.windows.last(3_600_000), rate),
        lastDay: trafficStatus(this.windows.last(86_400_000), rate),
        allTime: trafficStatus(this.stats.totals, rate),
      },
      upstreams: this.upstreamStatuses(now),
      downloads: [...this.downloads.values()].map(({ started: _started, ...d }) => d),
      recentPulls: this.pulls.map(({ atMs: _atMs, method: _method, ...p }) => p).reverse(),
      images: { largest: await this.largest(now), mostUsed: this.mostUsed() },
    };
  }

  private onRequest(e: RequestEvent): void {
    if ((e.route === "manifest" || e.route === "blob") && e.cache && !e.canary) {
      const hit = e.cache !== "MISS";
      this.count({ requests: 1, hits: hit ? 1 : 0 });
    }
    if (e.route !== "manifest" || !e.upstream || !e.name || !e.reference || e.reference.includes(":")) return;
    const image = `${e.upstream}/${e.name}:${e.reference}`;
    const result: PullStatus["result"] = e.cache ? (e.cache.toLowerCase() as PullStatus["result"]) : "error";
    const last = this.pulls[this.pulls.length - 1];
    if (last && last.method === "HEAD" && e.method === "GET" && last.image === image && last.client === e.client && e.at - last.atMs < SAME_PULL_MS) {
      // The second request of one pull (HEAD then GET): its outcome is the pull's, not a new pull.
      Object.assign(last, { result, status: e.status, method: e.method });
      return;
    }
    this.pulls.push({ at: new Date(e.at).toISOString(), atMs: e.at, method: e.method, image, client: e.client, result, status: e.status });
    if (this.pulls.length > RECENT_PULLS) this.pulls.shift();
    if (result !== "error" && !e.canary) this.remember(image, e.at);
  }

  private onServed(e: ServedEvent): void {
    if (e.source === "cache") {
      this.count({ bytesFromCache: e.bytes });
      this.o.metrics.savedBytes.inc(e.bytes);
    } else {
      this.count({ bytesFromUpstream: e.bytes });
    }
  }

  private onUpstream(e: UpstreamEvent): void {
    const rec = this.upstream(e.upstream);
    rec.requests += 1;
    if (e.status !== undefined) rec.latencyMs = rec.latencyMs === null ? e.ms : rec.latencyMs + LATENCY_WEIGHT * (e.ms - rec.latencyMs);
    if (e.error) rec.lastError = { message: e.error, at: e.at };
    else rec.lastOk = e.at;
    if (e.rateLimit) {
      rec.rateLimit = { limit: e.rateLimit.limit, remaining: e.rateLimit.remaining, windowSeconds: e.rateLimit.windowSeconds ?? null, observedAt: e.at };
      this.o.metrics.rateLimitRemaining.set({ upstream: e.upstream }, e.rateLimit.remaining);
      this.o.metrics.rateLimitLimit.set({ upstream: e.upstream }, e.rateLimit.limit);
    }
    if (e.retryAfterMs !== undefined) rec.retryUntil = Math.max(rec.retryUntil, e.at + e.retryAfterMs);
  }

  private onFillStart(e: FillStartEvent): void {
    const started = this.now();
    this.downloads.set(e.digest, { digest: e.digest, upstream: e.upstream, repository: e.name, receivedBytes: 0, sizeBytes: null, startedAt: new Date(started).toISOString(), started });
  }

  private onFillProgress(e: FillProgressEvent): void {
    const d = this.downloads.get(e.digest);
    if (!d) return;
    d.receivedBytes = e.received;
    d.sizeBytes = e.size ?? null;
  }

  private onFillEnd(e: FillEndEvent): void {
    this.downloads.delete(e.digest);
    this.count({ bytesFetched: e.bytes, fetchMs: e.ms });
  }

  private count(delta: Partial<Traffic>): void {
    this.windows.add(delta);
    addTraffic(this.stats.totals, delta);
    this.dirty = true;
  }

  private remember(image: string, at: number): void {
    const images = this.stats.images;
    const use = images[image] ?? { pulls: 0, lastPull: 0 };
    use.pulls += 1;
    use.lastPull = at;
    images[image] = use;
    const refs = Object.keys(images);
    if (refs.length > MAX_REMEMBERED_IMAGES) {
      const least = refs.reduce((a, b) => ((images[a] as { pulls: number }).pulls <= (images[b] as { pulls: number }).pulls ? a : b));
      delete images[least];
    }
    this.dirty = true;
  }

  private upstream(name: string): UpstreamRecord {
    let rec = this.upstreams.get(name);
    if (!rec) {
      rec = { requests: 0, latencyMs: null, lastError: null, lastOk: 0, rateLimit: null, retryUntil: 0 };
      this.upstreams.set(name, rec);
    }
    return rec;
  }

  private upstreamStatuses(now: number): UpstreamStatus[] {
    const seen = new Set<string>();
    const out: UpstreamStatus[] = [];
    for (const up of this.o.config.upstreams.values()) {
      if (seen.has(up.name)) continue;
      seen.add(up.name);
      const rec = this.upstreams.get(up.name);
      const client = this.o.breakers.client(up);
      const breakerOpen = client.isOffline();
      const backoff = client.budget.backoff();
      const failing = rec?.lastError !== null && rec?.lastError !== undefined && rec.lastError.at >= rec.lastOk;
      // A hold another replica learned (shared through Redis) holds this one too, with no event here.
      const hold = client.budget.currentHold();
      const retryUntil = Math.max(rec?.retryUntil ?? 0, hold ? now + hold.ms : 0);
      const state = breakerOpen ? "breaker-open" : retryUntil > now ? "rate-limited" : !rec ? "unused" : failing ? "failing" : "healthy";
      out.push({
        name: up.name,
        url: up.url.href,
        state,
        breakerOpen,
        requests: rec?.requests ?? 0,
        latencyMs: rec?.latencyMs === null || rec?.latencyMs === undefined ? null : Math.round(rec.latencyMs * 10) / 10,
        lastError: rec?.lastError ? { message: rec.lastError.message, at: new Date(rec.lastError.at).toISOString() } : null,
        rateLimit: rec?.rateLimit ? { ...rec.rateLimit, observedAt: new Date(rec.rateLimit.observedAt).toISOString() } : null,
        retryAfter: retryUntil > now ? new Date(retryUntil).toISOString() : null,
        revalidationBackoff: backoff ? { since: new Date(backoff.since).toISOString(), reason: backoff.reason } : null,
      });
    }
    return out;
  }

  /** Every cached image by repository (GET /api/v1/repositories, the dashboard). */
  repositories(): Promise<CachedRepository[]> {
    return scanInventory(this.store);
  }

  /** The largest cached images; the scan is shared for a few seconds and redone after a publish. */
  private largest(now: number): Promise<ImageSize[]> {
    if (!this.inventory || now - this.inventory.at > INVENTORY_TTL_MS) {
      const largest = this.repositories().then(
        (repos) =>
          repos
            .flatMap((r) => r.tags.map((t) => ({ image: `${r.upstream}/${r.name}:${t.tag}`, sizeBytes: t.sizeBytes, lastUsed: new Date(t.lastUsed).toISOString() })))
            .sort((a, b) => b.sizeBytes - a.sizeBytes)
            .slice(0, TOP),
        (err: unknown) => {
          this.o.log.warn({ err: (err as NodeJS.ErrnoException).code ?? String(err) }, "cannot list cached images");
          return [];
        },
      );
      this.inventory = { at: now, largest };
    }
    return this.inventory.largest;
  }

  private mostUsed(): StatusV1["images"]["mostUsed"] {
    return Object.entries(this.stats.images)
      .sort((a, b) => b[1].pulls - a[1].pulls || b[1].lastPull - a[1].lastPull)
      .slice(0, TOP)
      .map(([image, use]) => ({ image, pulls: use.pulls, lastPull: new Date(use.lastPull).toISOString() }));
  }

  private publishGauges(): void {
    this.o.metrics.cacheBytes.set(this.size);
    this.o.metrics.cacheObjects.set(this.objects);
  }
}

function trafficStatus(t: Traffic, bytesPerMs: number | undefined): TrafficStatus {
  const served = t.bytesFromCache + t.bytesFromUpstream;
  return {
    requests: t.requests,
    hits: t.hits,
    hitRatio: t.requests > 0 ? t.hits / t.requests : null,
    bytesFromCache: t.bytesFromCache,
    bytesFromUpstream: t.bytesFromUpstream,
    byteHitRatio: served > 0 ? t.bytesFromCache / served : null,
    bytesFetched: t.bytesFetched,
    bytesSaved: t.bytesFromCache,
    secondsSaved: bytesPerMs ? Math.round(t.bytesFromCache / bytesPerMs) / 1000 : null,
  };
}
