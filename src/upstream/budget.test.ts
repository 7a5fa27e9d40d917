import { describe, expect, it } from "vitest";
import type { RateLimitConfig } from "../config/resolve.js";
import { resolveConfig } from "../config/resolve.js";
import { ConfigError, parseConfig } from "../config/schema.js";
import { RateLimitBudget, requestKind } from "./budget.js";

const config: RateLimitConfig = { reserve: { value: 20, unit: "percent" }, backoffFreshnessMs: 3_600_000, defaultRetryAfterMs: 60_000, maxRetryAfterMs: 3_600_000 };

function budget(c: Partial<RateLimitConfig> = {}) {
  let now = 1_000_000;
  const changes: (string | undefined)[] = [];
  const b = new RateLimitBudget({ ...config, ...c }, (backoff) => changes.push(backoff?.reason), () => now);
  return { b, changes, advance: (ms: number) => (now += ms) };
}

describe("RateLimitBudget", () => {
  it("backs off at or below the reserve, stretches the window, and stops when the budget is back", () => {
    const { b, changes } = budget();
    b.observe(200, { limit: "100;w=21600", remaining: "21;w=21600" });
    expect(b.backoff()).toBeUndefined();
    expect(b.freshnessMs(60_000)).toBe(60_000);
    b.observe(200, { limit: "100;w=21600", remaining: "20;w=21600" });
    expect(b.backoff()?.reason).toMatch(/^rate-limit budget 20\/100 is at or below the reserve \(20%\): tags are revalidated at most every 3600 s$/);
    expect(b.freshnessMs(60_000)).toBe(3_600_000);
    // Never shorter than a tag's own window.
    expect(b.freshnessMs(7_200_000)).toBe(7_200_000);
    b.observe(200, { limit: "100;w=21600", remaining: "19;w=21600" });
    b.observe(200, { limit: "100;w=21600", remaining: "80;w=21600" });
    expect(b.backoff()).toBeUndefined();
    // One change each way, not one per answer.
    expect(changes).toHaveLength(2);
    expect(changes[1]).toBeUndefined();
  });

  it("counts a reserve in pulls, and ends the backoff once the announced window has passed", () => {
    const { b, advance } = budget({ reserve: { value: 3, unit: "pulls" } });
    b.observe(200, { limit: "10;w=60", remaining: "4;w=60" });
    expect(b.backoff()).toBeUndefined();
    b.observe(200, { limit: "10;w=60", remaining: "3;w=60" });
    expect(b.backoff()?.reason).toContain("(3 pulls)");
    advance(61_000);
    expect(b.backoff()).toBeUndefined();
  });

  it("ignores answers without both budget headers", () => {
    const { b } = budget();
    b.observe(200, { limit: "100", remaining: undefined });
    b.observe(200, { limit: "junk", remaining: "0" });
    expect(b.backoff()).toBeUndefined();
  });

  it("holds manifest requests for a 429's Retry-After, not blobs", () => {
    const { b, advance } = budget();
    expect(b.observe(429, { retryAfter: "30" })).toBe(30_000);
    expect(b.heldMs("manifest")).toBe(30_000);
    expect(b.heldStatus("manifest")).toBe(429);
    expect(b.heldMs("other")).toBe(0);
    advance(30_000);
    expect(b.heldMs("manifest")).toBe(0);
  });

  it("holds every request for a 503 with Retry-After (an HTTP date too); a 503 without one holds nothing", () => {
    const { b } = budget();
    expect(b.observe(503, {})).toBe(0);
    expect(b.heldMs("other")).toBe(0);
    const at = new Date(1_000_000 + 120_000).toUTCString();
    expect(b.observe(503, { retryAfter: at })).toBe(120_000);
    expect(b.heldMs("other")).toBe(120_000);
    expect(b.heldStatus("other")).toBe(503);
  });

  it("waits rateLimit.defaultRetryAfter for a 429 without a usable Retry-After, and never longer than maxRetryAfter", () => {
    const { b } = budget({ maxRetryAfterMs: 600_000 });
    expect(b.observe(429, { retryAfter: "soon" })).toBe(60_000);
    expect(b.observe(429, { retryAfter: "999999999" })).toBe(600_000);
    expect(b.heldMs("manifest")).toBe(600_000);
  });

  it("tells manifest requests from the others by path", () => {
    expect(requestKind("library/busybox/manifests/latest")).toBe("manifest");
    expect(requestKind("library/busybox/blobs/sha256:ab")).toBe("other");
    expect(requestKind("library/busybox/tags/list")).toBe("other");
  });
});

describe("rateLimit settings", () => {
  it("default to a 20% reserve, 1h backoff freshness, 60s default and 1h longest Retry-After", () => {
    const c = resolveConfig(parseConfig({}, "test"));
    expect(c.rateLimit).toEqual({ reserve: { value: 20, unit: "percent" }, backoffFreshnessMs: 3_600_000, defaultRetryAfterMs: 60_000, maxRetryAfterMs: 3_600_000 });
    expect(resolveConfig(parseConfig({ rateLimit: { reserve: 5 } }, "test")).rateLimit.reserve).toEqual({ value: 5, unit: "pulls" });
    expect(resolveConfig(parseConfig({ rateLimit: { reserve: "10%" } }, "test")).rateLimit.reserve).toEqual({ value: 10, unit: "percent" });
  });

  it.each([
    [{ reserve: "120%" }, "rateLimit.reserve"],
    [{ reserve: "some" }, "rateLimit.reserve"],
    [{ reserve: -1 }, "rateLimit.reserve"],
    [{ backoffFreshness: "0s" }, "rateLimit.backoffFreshness"],
    [{ maxRetryAfter: "forever" }, "rateLimit.maxRetryAfter"],
    [{ retryAfter: "1m" }, "rateLimit"],
  ])("refuses %j, naming %s", (rateLimit, field) => {
    expect(() => parseConfig({ rateLimit }, "test")).toThrow(ConfigError);
    expect(() => parseConfig({ rateLimit }, "test")).toThrow(field);
  });
});

describe("RateLimitBudget shared between replicas", () => {
  it("tells the others a hold and a crossing of the reserve, never each answer's count", () => {
    const { b } = budget();
    const told: unknown[] = [];
    b.share = (l) => told.push(l);
    b.observe(200, { limit: "100;w=21600", remaining: "50;w=21600" });
    b.observe(200, { limit: "100;w=21600", remaining: "20;w=21600" });
    b.observe(200, { limit: "100;w=21600", remaining: "19;w=21600" });
    b.observe(429, { retryAfter: "30" });
    expect(told).toEqual([{ budget: { limit: 100, remaining: 20, windowSeconds: 21600 } }, { hold: { kind: "manifest", ms: 30_000 } }]);
  });

  it("holds and backs off on what another replica learned, capped by its own maxRetryAfter, without telling it on", () => {
    const { b, advance } = budget({ maxRetryAfterMs: 10_000 });
    const told: unknown[] = [];
    b.share = (l) => told.push(l);
    b.learn({ hold: { kind: "all", ms: 60_000 }, budget: { limit: 100, remaining: 5 } });
    expect(b.heldMs("other")).toBe(10_000);
    expect(b.heldStatus("other")).toBe(503);
    expect(b.currentHold()).toEqual({ kind: "all", ms: 10_000 });
    expect(b.backoff()?.reason).toContain("5/100");
    advance(10_001);
    expect(b.currentHold()).toBeUndefined();
    expect(told).toEqual([]);
  });
});
