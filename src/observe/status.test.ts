// The status model from events alone: ratios, windows, pulls, rate-limit budgets, downloads,
// the all-time figures across a restart, and every snapshot valid against the published schema.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseConfig } from "../config/schema.js";
import { resolveConfig, type MirrorConfig } from "../config/resolve.js";
import { parseRateLimit, parseRetryAfter } from "./events.js";
import { createLogger } from "./log.js";
import { Metrics } from "./metrics.js";
import { StatusModel } from "./status.js";
import { TrafficWindows } from "./traffic.js";

const schema = JSON.parse(await readFile(new URL("../../schemas/status-v1.schema.json", import.meta.url), "utf8")) as object;
const ajv = new Ajv2020({ allErrors: true, strict: true });
addFormats.default(ajv);
const validate = ajv.compile(schema);

describe("status model", () => {
  let dir: string;
  let config: MirrorConfig;
  let offline = false;
  let clock = Date.parse("2026-01-01T12:00:00Z");
  const now = () => clock;
  const log = createLogger("silent");
  const breakers = { client: () => ({ isOffline: () => offline, budget: { backoff: () => undefined, currentHold: () => undefined } }) };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "mk-status-"));
    config = resolveConfig(parseConfig({ storage: dir, builtinUpstreams: false, upstreams: { "docker.io": { url: "http://127.0.0.1:1" }, "ghcr.io": { url: "http://127.0.0.1:2" } } }));
    offline = false;
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const start = async (metrics = new Metrics()) => ({ metrics, model: await StatusModel.start({ config, metrics, log, breakers, now }) });

  const valid = (s: unknown) => {
    expect(validate(s), JSON.stringify(validate.errors, null, 2)).toBe(true);
  };

  it("starts empty and valid: no ratios before the first request, every upstream unused", async () => {
    const { model } = await start();
    const s = await model.snapshot();
    valid(s);
    expect(s.traffic.allTime.hitRatio).toBeNull();
    expect(s.traffic.allTime.byteHitRatio).toBeNull();
    expect(s.upstreams.map((u) => [u.name, u.state])).toEqual([["docker.io", "unused"], ["ghcr.io", "unused"]]);
    await model.close();
  });

  it("counts hits by requests and by bytes, and the bytes saved", async () => {
    const { model, metrics } = await start();
    const req = (cache: string | undefined, route = "blob") => metrics.events.emit("request", { at: clock, method: "GET", route, status: cache ? 200 : 404, cache, client: "10.0.0.7" });
    req("HIT");
    req("HIT");
    req("REVALIDATED", "manifest");
    req("MISS");
    req(undefined);
    metrics.events.emit("served", { kind: "blob", source: "cache", bytes: 3000 });
    metrics.events.emit("served", { kind: "blob", source: "upstream", bytes: 1000 });
    const s = await model.snapshot();
    valid(s);
    expect(s.traffic.lastHour).toMatchObject({ requests: 4, hits: 3, hitRatio: 0.75, bytesFromCache: 3000, bytesFromUpstream: 1000, byteHitRatio: 0.75, bytesSaved: 3000 });
    expect(s.traffic.allTime.requests).toBe(4);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^mirrorkit_saved_bytes_total 3000$/m);
    await model.close();
  });

  it("keeps last hour, last day and all time apart", async () => {
    const { model, metrics } = await start();
    const hit = () => metrics.events.emit("request", { at: clock, method: "GET", route: "blob", status: 200, cache: "HIT", client: "c" });
    hit();
    clock += 2 * 3_600_000;
    hit();
    clock += 25 * 3_600_000;
    hit();
    const s = await model.snapshot();
    expect([s.traffic.lastHour.requests, s.traffic.lastDay.requests, s.traffic.allTime.requests]).toEqual([1, 1, 3]);
    await model.close();
  });

  it("estimates time saved from the measured download rate", async () => {
    const { model, metrics } = await start();
    metrics.events.emit("fillStart", { digest: "sha256:aa", upstream: "docker.io", name: "library/x" });
    metrics.events.emit("fillEnd", { digest: "sha256:aa", upstream: "docker.io", ok: true, bytes: 10_000_000, ms: 2_000 });
    metrics.events.emit("served", { kind: "blob", source: "cache", bytes: 50_000_000 });
    const s = await model.snapshot();
    // 5 MB/s measured, 50 MB served from cache: 10 s saved.
    expect(s.traffic.allTime.secondsSaved).toBeCloseTo(10, 3);
    expect(s.traffic.allTime.bytesFetched).toBe(10_000_000);
    await model.close();
  });

  it("lists downloads in progress with their progress, and forgets them when they end", async () => {
    const { model, metrics } = await start();
    metrics.events.emit("fillStart", { digest: "sha256:bb", upstream: "ghcr.io", name: "owner/img" });
    metrics.events.emit("fillProgress", { digest: "sha256:bb", received: 400, size: 1000 });
    let s = await model.snapshot();
    valid(s);
    expect(s.downloads).toMatchObject([{ digest: "sha256:bb", upstream: "ghcr.io", repository: "owner/img", receivedBytes: 400, sizeBytes: 1000 }]);
    metrics.events.emit("fillEnd", { digest: "sha256:bb", upstream: "ghcr.io", ok: false, bytes: 400, ms: 10 });
    s = await model.snapshot();
    expect(s.downloads).toEqual([]);
    await model.close();
  });

  it("records a pull once per client and image (HEAD then GET), newest first, errors included", async () => {
    const { model, metrics } = await start();
    const tagReq = (method: string, image: string, client: string, cache: string | undefined, status = 200) =>
      metrics.events.emit("request", { at: clock, method, route: "manifest", status, cache, client, upstream: "docker.io", name: image, reference: "1" });
    tagReq("HEAD", "library/a", "10.0.0.1", "MISS");
    clock += 100;
    tagReq("GET", "library/a", "10.0.0.1", "HIT");
    clock += 100;
    tagReq("HEAD", "library/a", "10.0.0.2", "HIT");
    clock += 100;
    tagReq("GET", "library/b", "10.0.0.2", "MISS");
    clock += 100;
    tagReq("GET", "library/b", "10.0.0.2", "HIT");
    clock += 100;
    tagReq("HEAD", "library/nope", "10.0.0.2", undefined, 404);
    // By digest: part of a pull already recorded, not a pull of its own.
    metrics.events.emit("request", { at: clock, method: "GET", route: "manifest", status: 200, cache: "HIT", client: "10.0.0.2", upstream: "docker.io", name: "library/a", reference: "sha256:0000" });
    const s = await model.snapshot();
    valid(s);
    expect(s.recentPulls.map((p) => [p.image, p.client, p.result, p.status])).toEqual([
      ["docker.io/library/nope:1", "10.0.0.2", "error", 404],
      ["docker.io/library/b:1", "10.0.0.2", "hit", 200],
      ["docker.io/library/b:1", "10.0.0.2", "miss", 200],
      ["docker.io/library/a:1", "10.0.0.2", "hit", 200],
      ["docker.io/library/a:1", "10.0.0.1", "hit", 200],
    ]);
    expect(s.images.mostUsed).toMatchObject([{ image: "docker.io/library/b:1", pulls: 2 }, { image: "docker.io/library/a:1", pulls: 2 }]);
    await model.close();
  });

  it("shows an upstream's rate-limit budget, latency, errors, breaker and Retry-After", async () => {
    const { model, metrics } = await start();
    metrics.events.emit("upstream", { at: clock, upstream: "docker.io", method: "GET", status: 200, ms: 40, rateLimit: { limit: 100, remaining: 76, windowSeconds: 21600 } });
    metrics.events.emit("upstream", { at: clock, upstream: "ghcr.io", method: "HEAD", ms: 5, error: "ECONNREFUSED" });
    let s = await model.snapshot();
    valid(s);
    const hub = s.upstreams.find((u) => u.name === "docker.io");
    expect(hub).toMatchObject({ state: "healthy", requests: 1, latencyMs: 40, rateLimit: { limit: 100, remaining: 76, windowSeconds: 21600 } });
    expect(s.upstreams.find((u) => u.name === "ghcr.io")).toMatchObject({ state: "failing", lastError: { message: "ECONNREFUSED" }, latencyMs: null });
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^mirrorkit_upstream_ratelimit_remaining\{upstream="docker.io"\} 76$/m);

    metrics.events.emit("upstream", { at: clock, upstream: "docker.io", method: "GET", status: 429, ms: 10, error: "status 429", retryAfterMs: 60_000 });
    s = await model.snapshot();
    expect(s.upstreams.find((u) => u.name === "docker.io")).toMatchObject({ state: "rate-limited", retryAfter: new Date(clock + 60_000).toISOString() });
    clock += 61_000;
    offline = true;
    s = await model.snapshot();
    expect(s.upstreams.map((u) => u.state)).toEqual(["breaker-open", "breaker-open"]);
    await model.close();
  });

  it("keeps the all-time figures and most-used images across a restart", async () => {
    const first = await start();
    first.metrics.events.emit("request", { at: clock, method: "GET", route: "manifest", status: 200, cache: "HIT", client: "c", upstream: "docker.io", name: "library/a", reference: "1" });
    first.metrics.events.emit("served", { kind: "blob", source: "cache", bytes: 1234 });
    await first.model.close();
    clock += 3 * 86_400_000;
    const second = await start();
    const s = await second.model.snapshot();
    expect(s.traffic.allTime).toMatchObject({ requests: 1, bytesFromCache: 1234 });
    expect(s.traffic.lastDay.requests).toBe(0);
    expect(s.images.mostUsed).toMatchObject([{ image: "docker.io/library/a:1", pulls: 1 }]);
    expect(s.countingSince).toBe(new Date(clock - 3 * 86_400_000).toISOString());
    await second.model.close();
  });

  it("starts from zero, saying why, when stats.json is damaged", async () => {
    await writeFile(join(dir, "stats.json"), "{not json");
    const lines: string[] = [];
    const model = await StatusModel.start({ config, metrics: new Metrics(), log: createLogger("warn", { write: (l: string) => lines.push(l) }), breakers, now });
    expect((await model.snapshot()).traffic.allTime.requests).toBe(0);
    expect(lines.join("")).toContain("stats.json is not valid JSON");
    await model.close();
  });

  it("measures the cache at start and follows publishes: size and object gauges without a cap", async () => {
    const { model, metrics } = await start();
    model.published(500);
    model.published(24);
    const s = await model.snapshot();
    expect(s.cache).toEqual({ sizeBytes: 524, objects: 2, maxBytes: null });
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^mirrorkit_cache_size_bytes 524$/m);
    expect(text).toMatch(/^mirrorkit_cache_objects 2$/m);
    model.evicted({ sizeBefore: 524, sizeAfter: 24, evicted: [{ digest: "sha256:x", size: 500 }] });
    expect((await model.snapshot()).cache).toMatchObject({ sizeBytes: 24, objects: 1 });
    await model.close();
  });
});

describe("rate-limit and Retry-After headers", () => {
  it.each([
    ["100;w=21600", "76;w=21600", { limit: 100, remaining: 76, windowSeconds: 21600 }],
    ["100", "0", { limit: 100, remaining: 0 }],
    [" 200 ; w = 3600", "199", { limit: 200, remaining: 199, windowSeconds: 3600 }],
    [undefined, "76", undefined],
    ["lots", "76", undefined],
  ])("limit %j remaining %j", (limit, remaining, expected) => {
    expect(parseRateLimit(limit, remaining)).toEqual(expected);
  });

  it.each([
    ["120", 120_000],
    ["Thu, 01 Jan 2026 12:01:00 GMT", 60_000],
    ["soon", undefined],
    [undefined, undefined],
  ])("Retry-After %j", (header, expected) => {
    expect(parseRetryAfter(header, Date.parse("2026-01-01T12:00:00Z"))).toBe(expected);
  });
});

describe("traffic windows", () => {
  it("drops minutes older than a day when their bucket comes round again", () => {
    let t = 0;
    const w = new TrafficWindows(() => t);
    w.add({ requests: 5 });
    t = 24 * 3_600_000;
    w.add({ requests: 1 });
    expect(w.last(86_400_000).requests).toBe(1);
  });
});
