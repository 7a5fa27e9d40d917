// Rate-limit state shared across replicas, against Debian's redis-server and a real registry
// (distribution) behind a Docker Hub-like limiter: a budget at the reserve or a 429's Retry-After
// that one replica meets holds the others too. Counted at the registry's access log and the limiter.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ConfigInput } from "../../src/config/schema.js";
import { createLogger } from "../../src/observe/log.js";
import type { StatusV1 } from "../../src/observe/status-types.js";
import { startMirror, type RunningMirror } from "../../src/server.js";
import { eventually } from "../support/eventually.js";
import { pushImage } from "../support/fixtures/push.js";
import { uniqueImage } from "../support/fixtures/sets.js";
import { requireTools } from "../support/preflight.js";
import { RateLimitProxy } from "../support/ratelimit-proxy.js";
import { RedisServer } from "../support/redis-server.js";
import { UpstreamRegistry } from "../support/registry.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

const MANIFEST_ACCEPT = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json";

let registry: UpstreamRegistry;
let redis: RedisServer;
let limiter: RateLimitProxy;
let storage: string;
const mirrors: { mirror: RunningMirror; lines: string[] }[] = [];

/** A replica over the shared folder, Redis and limiter; tags revalidated on every pull unless backing off. */
async function replica(name: string, extra: Partial<ConfigInput> = {}): Promise<{ mirror: RunningMirror; lines: string[] }> {
  const lines: string[] = [];
  const mirror = await startMirror(
    {
      listen: "127.0.0.1:0",
      storage,
      replica: name,
      builtinUpstreams: false,
      defaultUpstream: "docker.io",
      upstreams: { "docker.io": { url: limiter.url } },
      redis: { addr: redis.addr },
      cache: { tagFreshness: "0s" },
      rateLimit: { reserve: 3, backoffFreshness: "1h" },
      logLevel: "info",
      ...extra,
    },
    { logger: createLogger("info", { write: (l: string) => lines.push(l) }) },
  );
  const r = { mirror, lines };
  mirrors.push(r);
  return r;
}

const manifest = (m: RunningMirror, name: string, method = "GET") => fetch(`${m.url}/v2/library/${name}/manifests/1`, { method, headers: { accept: MANIFEST_ACCEPT } });

async function manifestRequests(name: string): Promise<number> {
  await registry.settle();
  return registry.count({ kind: "manifest", pathIncludes: `/library/${name}/` });
}

async function upstreamStatus(m: RunningMirror) {
  const s = (await (await fetch(`${m.url}/api/v1/status`)).json()) as StatusV1;
  return s.upstreams.find((u) => u.name === "docker.io")!;
}

beforeAll(async () => {
  requireTools(["docker-registry", "redis-server"]);
  [registry, redis, storage] = await Promise.all([UpstreamRegistry.start({ name: "upstream docker.io" }), RedisServer.start(), makeTempDir("cluster-ratelimit")]);
  for (const name of ["rl-a", "rl-b", "rl-c", "rl-d"]) await pushImage(registry, `library/${name}`, await uniqueImage("docker"), "1");
  limiter = await RateLimitProxy.start(registry.url, { limit: 5, windowSeconds: 21600 });
  await registry.settle();
  registry.reset();
}, 60_000);

afterAll(async () => {
  for (const { mirror } of mirrors) await mirror.close(2_000);
  await limiter?.close();
  await registry?.close();
  await redis?.stop();
  if (storage) await removeTempDir(storage);
});

describe("replicas sharing a Redis", () => {
  it("count one replica's tag revalidation for all, and all back off once one sees the budget at the reserve", async () => {
    const [a, b] = [await replica("a"), await replica("b")];
    expect((await manifest(a.mirror, "rl-a")).status).toBe(200);
    expect(limiter.remaining).toBe(4);
    // Above the reserve, with a 0 s window: each pull revalidates, one HEAD each.
    const before = await manifestRequests("rl-a");
    expect((await manifest(b.mirror, "rl-a", "HEAD")).status).toBe(200);
    expect(await manifestRequests("rl-a")).toBe(before + 1);

    // a spends the budget down to the reserve (3 of 5 left).
    expect((await manifest(a.mirror, "rl-b")).status).toBe(200);
    expect(limiter.remaining).toBe(3);
    expect((await upstreamStatus(a.mirror)).revalidationBackoff).not.toBeNull();
    // b never saw that answer, yet backs off: it serves its cached tag without asking.
    await eventually(async () => (await upstreamStatus(b.mirror)).revalidationBackoff, (v) => v != null, 5_000);
    const quiet = await manifestRequests("rl-a");
    for (let i = 0; i < 3; i++) {
      const res = await manifest(b.mirror, "rl-a");
      expect(res.status).toBe(200);
      expect(res.headers.get("x-mirror-cache")).toBe("HIT");
      await res.arrayBuffer();
    }
    expect(await manifestRequests("rl-a")).toBe(quiet);
    // A replica started now learns it from Redis before its first request.
    const fetchedB = await manifestRequests("rl-b");
    const c = await replica("c");
    await eventually(async () => (await upstreamStatus(c.mirror)).revalidationBackoff, (v) => v != null, 5_000);
    expect((await manifest(c.mirror, "rl-b", "HEAD")).headers.get("x-mirror-cache")).toBe("HIT");
    expect(await manifestRequests("rl-b")).toBe(fetchedB);
  }, 60_000);

  it("count one replica's revalidation of a tag for every replica within the freshness window", async () => {
    // Own replicas with a 3 s window and a budget that never runs low (the limiter spends none on HEADs).
    const [d, e] = [await replica("d", { cache: { tagFreshness: "3s" }, rateLimit: { reserve: 0 } }), await replica("e", { cache: { tagFreshness: "3s" }, rateLimit: { reserve: 0 } })];
    limiter.remaining = 1000;
    const first = await manifest(d.mirror, "rl-a", "HEAD");
    expect(first.status).toBe(200);
    // Past the window: d revalidates (one HEAD at the registry)...
    await new Promise((r) => setTimeout(r, 3_200));
    const before = await manifestRequests("rl-a");
    expect((await manifest(d.mirror, "rl-a", "HEAD")).headers.get("x-mirror-cache")).toBe("REVALIDATED");
    expect(await manifestRequests("rl-a")).toBe(before + 1);
    // ...and that counts for e too: within the window it asks nobody.
    expect((await manifest(e.mirror, "rl-a", "HEAD")).headers.get("x-mirror-cache")).toBe("HIT");
    expect(await manifestRequests("rl-a")).toBe(before + 1);
  }, 60_000);

  it("hold every replica's manifest requests after one met a 429 with Retry-After", async () => {
    const [a, b] = [mirrors[0]!, mirrors[1]!];
    limiter.refuseWithRetryAfter = 60;
    const refused = await manifest(a.mirror, "rl-c");
    expect(refused.status).toBe(429);
    await refused.arrayBuffer();
    expect(limiter.refused).toBe(1);
    // The upstream would answer now, but it asked a for 60 s: b does not ask it either.
    limiter.refuseWithRetryAfter = undefined;
    await eventually(async () => b.lines.some((l) => l.includes("another replica was told to wait")), (seen) => seen, 5_000);
    const held = await manifest(b.mirror, "rl-d");
    expect(held.status).toBe(429);
    const wait = Number(held.headers.get("retry-after"));
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(60);
    expect(((await held.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe("TOOMANYREQUESTS");
    expect(limiter.refused).toBe(1);
    expect(await manifestRequests("rl-d")).toBe(0);
    expect((await upstreamStatus(b.mirror)).state).toBe("rate-limited");
  }, 60_000);
});
