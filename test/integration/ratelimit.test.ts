// Rate-limit awareness against a real registry (distribution) behind a proxy that behaves like
// Docker Hub's limiter (ratelimit-* headers on manifest GETs; 429 or 503 with Retry-After), with
// skopeo as the client. Upstream requests are counted at the registry (its access log) and the proxy.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ConfigInput } from "../../src/config/schema.js";
import { createLogger } from "../../src/observe/log.js";
import type { StatusV1 } from "../../src/observe/status-types.js";
import { startMirror, type RunningMirror } from "../../src/server.js";
import type { Image } from "../support/fixtures/image.js";
import { pushImage } from "../support/fixtures/push.js";
import { uniqueImage } from "../support/fixtures/sets.js";
import { metricValue } from "../support/mirror.js";
import { requireTools } from "../support/preflight.js";
import { run } from "../support/process.js";
import { RateLimitProxy } from "../support/ratelimit-proxy.js";
import { UpstreamRegistry } from "../support/registry.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

const MANIFEST_ACCEPT = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json";

describe("rate-limit awareness", () => {
  let registry: UpstreamRegistry;
  const images: Record<string, Image> = {};
  const cleanups: (() => Promise<void>)[] = [];

  /** A mirror over its own limiter, with its log lines kept. */
  async function mirrorOver(limit: number, extra: Partial<ConfigInput>): Promise<{ mirror: RunningMirror; limiter: RateLimitProxy; lines: string[]; host: string }> {
    const limiter = await RateLimitProxy.start(registry.url, { limit, windowSeconds: 21600 });
    const storage = await makeTempDir("ratelimit-storage");
    const lines: string[] = [];
    const mirror = await startMirror(
      { listen: "127.0.0.1:0", storage, builtinUpstreams: false, defaultUpstream: "docker.io", upstreams: { "docker.io": { url: limiter.url } }, logLevel: "info", ...extra },
      { logger: createLogger("info", { write: (l: string) => lines.push(l) }) },
    );
    cleanups.push(async () => {
      await mirror.close(2_000);
      await limiter.close();
      await removeTempDir(storage);
    });
    return { mirror, limiter, lines, host: new URL(mirror.url).host };
  }

  /** A real client's manifest pull (skopeo inspect: the manifest only, no blobs). */
  const inspect = (host: string, name: string) => run("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${host}/library/${name}:1`], { allowFailure: true, timeoutMs: 60_000 });

  const status = async (mirror: RunningMirror) => {
    const s = (await (await fetch(`${mirror.url}/api/v1/status`)).json()) as StatusV1;
    return s.upstreams.find((u) => u.name === "docker.io")!;
  };

  /** Manifest requests (HEAD or GET) for library/<name> that reached the registry. */
  const upstreamManifestRequests = async (name: string, method?: string) => {
    await registry.settle();
    return registry.count({ kind: "manifest", pathIncludes: `/library/${name}/`, ...(method ? { method } : {}) });
  };

  beforeAll(async () => {
    requireTools(["docker-registry", "skopeo"]);
    registry = await UpstreamRegistry.start({ name: "upstream docker.io" });
    for (const name of ["mk-rl-a", "mk-rl-b", "mk-rl-c", "mk-rl-d", "mk-rl-e", "mk-rl-f"]) {
      images[name] = await uniqueImage("docker");
      await pushImage(registry, `library/${name}`, images[name]!, "1");
    }
  });

  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
    await registry?.close();
  });

  it("backs off revalidation once the announced budget is at the reserve: logged, in /api/v1/status and /metrics, counted at the upstream", async () => {
    // Revalidate every pull (0s) unless the budget is low; 5 manifest GETs per window, keep 3 back.
    const { mirror, limiter, lines, host } = await mirrorOver(5, { cache: { tagFreshness: "0s" }, rateLimit: { reserve: 3, backoffFreshness: "1h" } });
    expect((await inspect(host, "mk-rl-a")).code).toBe(0);
    expect(limiter.remaining).toBe(4);
    expect((await status(mirror)).revalidationBackoff).toBeNull();
    // Above the reserve: the next pull of the same tag asks upstream again (one HEAD).
    const heads = await upstreamManifestRequests("mk-rl-a", "HEAD");
    expect((await inspect(host, "mk-rl-a")).code).toBe(0);
    expect(await upstreamManifestRequests("mk-rl-a", "HEAD")).toBe(heads + 1);

    // A new image spends a GET: 3 left, at the reserve.
    expect((await inspect(host, "mk-rl-b")).code).toBe(0);
    expect(limiter.remaining).toBe(3);
    const up = await status(mirror);
    expect(up.rateLimit).toMatchObject({ limit: 5, remaining: 3, windowSeconds: 21600 });
    expect(up.revalidationBackoff?.reason).toBe("rate-limit budget 3/5 is at or below the reserve (3 pulls): tags are revalidated at most every 3600 s");
    expect(await metricValue(mirror.url, "mirrorkit_upstream_ratelimit_remaining", { upstream: "docker.io" })).toBe(3);
    expect(lines.filter((l) => l.includes("revalidation backs off"))).toHaveLength(1);

    // Now the same pulls are answered from the cache: no HEAD, no GET reaches the registry.
    const before = await upstreamManifestRequests("mk-rl-a");
    const beforeB = await upstreamManifestRequests("mk-rl-b");
    for (let i = 0; i < 3; i++) {
      expect((await inspect(host, "mk-rl-a")).code).toBe(0);
      expect((await inspect(host, "mk-rl-b")).code).toBe(0);
    }
    expect(await upstreamManifestRequests("mk-rl-a")).toBe(before);
    expect(await upstreamManifestRequests("mk-rl-b")).toBe(beforeB);
    // A tag not cached yet is still fetched: backing off only stretches the freshness of cached tags.
    expect((await inspect(host, "mk-rl-c")).code).toBe(0);
    expect(limiter.remaining).toBe(2);
  });

  it("honours a 429's Retry-After: holds manifest requests (misses get 429 with the time left, cached tags are served stale), lets blobs through", async () => {
    const { mirror, limiter, host } = await mirrorOver(1000, { cache: { tagFreshness: "0s" } });
    expect((await inspect(host, "mk-rl-d")).code).toBe(0);
    const missesE = await upstreamManifestRequests("mk-rl-e");
    limiter.refuseWithRetryAfter = 60;
    // (fetch, not skopeo, for the misses: skopeo honours Retry-After itself and would wait it out.)
    const refused = await fetch(`${mirror.url}/v2/library/mk-rl-e/manifests/1`, { headers: { accept: MANIFEST_ACCEPT } });
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("60");
    await refused.arrayBuffer();
    expect(limiter.refused).toBe(1);
    // The upstream would answer now, but it asked for 60 s: the mirror does not ask it before then.
    limiter.refuseWithRetryAfter = undefined;
    const held = await fetch(`${mirror.url}/v2/library/mk-rl-e/manifests/1`, { headers: { accept: MANIFEST_ACCEPT } });
    expect(held.status).toBe(429);
    const wait = Number(held.headers.get("retry-after"));
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(60);
    expect(((await held.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe("TOOMANYREQUESTS");
    // A cached tag is served, stale, without a revalidation.
    const headsD = await upstreamManifestRequests("mk-rl-d");
    const stale = await fetch(`${mirror.url}/v2/library/mk-rl-d/manifests/1`, { method: "HEAD", headers: { accept: MANIFEST_ACCEPT } });
    expect(stale.status).toBe(200);
    expect(stale.headers.get("x-mirror-cache")).toBe("STALE");
    expect((await inspect(host, "mk-rl-d")).code).toBe(0);
    expect(await upstreamManifestRequests("mk-rl-d")).toBe(headsD);
    expect(await upstreamManifestRequests("mk-rl-e")).toBe(missesE);
    // Docker Hub limits manifests only: a blob still comes from upstream.
    const layer = images["mk-rl-e"]!;
    const blob = await fetch(`${mirror.url}/v2/library/mk-rl-e/blobs/${layer.layers[0]!.digest}`);
    expect(blob.status).toBe(200);
    expect((await blob.arrayBuffer()).byteLength).toBe(layer.layers[0]!.size);
    const up = await status(mirror);
    expect(up.state).toBe("rate-limited");
    expect(Date.parse(up.retryAfter!)).toBeGreaterThan(Date.now());
    expect(await metricValue(mirror.url, "mirrorkit_upstream_requests_total", { upstream: "docker.io", status: "held" })).toBeGreaterThanOrEqual(2);
  });

  it("cuts an absurd Retry-After to rateLimit.maxRetryAfter, asks again after it, and holds every request for a 503's Retry-After", async () => {
    const { mirror, limiter, host } = await mirrorOver(1000, { rateLimit: { maxRetryAfter: "2s" } });
    limiter.refuseWithRetryAfter = 999_999_999;
    const first = await fetch(`${mirror.url}/v2/library/mk-rl-f/manifests/1`, { headers: { accept: MANIFEST_ACCEPT } });
    expect(first.status).toBe(429);
    expect(first.headers.get("retry-after")).toBe("2");
    expect(limiter.refused).toBe(1);
    limiter.refuseWithRetryAfter = undefined;
    // Past the 2 s hold the mirror asks again, and the pull works.
    await new Promise((r) => setTimeout(r, 2_500));
    expect((await inspect(host, "mk-rl-f")).code).toBe(0);
    expect(await upstreamManifestRequests("mk-rl-f", "GET")).toBeGreaterThan(0);

    // 503 with Retry-After: the upstream says it is down, so blobs wait too.
    limiter.refuseStatus = 503;
    limiter.refuseWithRetryAfter = 2;
    const img = images["mk-rl-f"]!;
    const down = await fetch(`${mirror.url}/v2/library/mk-rl-f/blobs/${img.layers[0]!.digest}`);
    expect(down.status).toBe(503);
    expect(down.headers.get("retry-after")).toBe("2");
    expect(limiter.refused).toBe(2);
    limiter.refuseWithRetryAfter = undefined;
    const heldBlob = await fetch(`${mirror.url}/v2/library/mk-rl-f/blobs/${img.layers[1]!.digest}`);
    expect(heldBlob.status).toBe(503);
    await heldBlob.arrayBuffer();
    expect(limiter.refused).toBe(2);
    await new Promise((r) => setTimeout(r, 2_500));
    const back = await fetch(`${mirror.url}/v2/library/mk-rl-f/blobs/${img.layers[1]!.digest}`);
    expect(back.status).toBe(200);
    expect((await back.arrayBuffer()).byteLength).toBe(img.layers[1]!.size);
  });
});
