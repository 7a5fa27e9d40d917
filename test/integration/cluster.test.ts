// Replicas sharing one storage folder and one real redis-server in front of a real distribution
// upstream: one upstream GET per blob whichever replicas the clients use, counted at the upstream;
// with Redis gone each replica still serves what the store holds and /healthz says so.
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisCoordinator } from "../../src/cluster/redis.js";
import { createLogger } from "../../src/observe/log.js";
import { startMirror, type RunningMirror } from "../../src/server.js";
import { eventually } from "../support/eventually.js";
import { buildImage } from "../support/fixtures/image.js";
import { filesLayer, randomLayer } from "../support/fixtures/layers.js";
import { pushImage } from "../support/fixtures/push.js";
import { RedisServer } from "../support/redis-server.js";
import { UpstreamRegistry } from "../support/registry.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

let upstream: UpstreamRegistry;
let redis: RedisServer;
let storage: string;
const replicas: RunningMirror[] = [];

async function replica(): Promise<RunningMirror> {
  const m = await startMirror({
    listen: "127.0.0.1:0",
    replica: `r${replicas.length}`,
    storage,
    builtinUpstreams: false,
    defaultUpstream: "docker.io",
    upstreams: { "docker.io": { url: upstream.url } },
    logLevel: (process.env.MK_TEST_LOG as "info") ?? "silent",
    cache: { tagFreshness: "0s" },
    redis: { addr: redis.addr, lease: "3s" },
  });
  replicas.push(m);
  return m;
}

async function image(bytes: number) {
  const img = buildImage({ layers: [await randomLayer("data/big.bin", bytes), await filesLayer({ "etc/id": `${Math.random()}\n` })] });
  await pushImage({ url: upstream.url }, "library/shared", img, `t${Date.now()}`);
  return img;
}

async function getBlob(m: RunningMirror, digest: string): Promise<{ status: number; sha: string }> {
  const res = await fetch(`${m.url}/v2/library/shared/blobs/${digest}`);
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, sha: `sha256:${createHash("sha256").update(body).digest("hex")}` };
}

beforeAll(async () => {
  [upstream, redis, storage] = await Promise.all([UpstreamRegistry.start({ name: "upstream" }), RedisServer.start(), makeTempDir("cluster")]);
  await replica();
  await replica();
  await replica();
}, 60_000);

afterAll(async () => {
  for (const m of replicas) await m.close(1_000);
  await upstream?.close();
  await redis?.stop();
  if (storage) await removeTempDir(storage);
});

describe("replicas coordinated through Redis", () => {
  it("download each blob from upstream once, whichever replicas the clients use", async () => {
    const img = await image(8 * 1024 * 1024);
    const layer = img.layers[0]?.digest as string;
    upstream.reset();
    // Nine clients at once, three per replica.
    const results = await Promise.all(Array.from({ length: 9 }, (_, i) => getBlob(replicas[i % 3] as RunningMirror, layer)));
    for (const r of results) expect(r).toEqual({ status: 200, sha: layer });
    await upstream.settle();
    expect(upstream.count({ method: "GET", pathIncludes: layer })).toBe(1);
  }, 120_000);

  it("leave a tag alone while another replica revalidates it, serving the cached one", async () => {
    const img = await image(64 * 1024);
    const tag = `rv${Date.now()}`;
    await pushImage({ url: upstream.url }, "library/shared", img, tag);
    const head = async (m: RunningMirror) => {
      const res = await fetch(`${m.url}/v2/library/shared/manifests/${tag}`, { method: "HEAD", headers: { accept: img.manifest.mediaType } });
      return [res.status, res.headers.get("x-mirror-cache")];
    };
    expect(await head(replicas[0] as RunningMirror)).toEqual([200, "MISS"]);
    // tagFreshness 0s: every pull revalidates, unless another replica is doing it right now.
    const other = await RedisCoordinator.connect({ host: "127.0.0.1", port: redis.port, db: 0, tls: false, keyPrefix: "mirror-kit:", leaseMs: 10_000, timeoutMs: 2_000, log: createLogger("silent") });
    try {
      const lease = await other.tryLease(`tag:docker.io|library/shared|${tag}`);
      expect(lease?.held).toBe(true);
      await upstream.settle();
      upstream.reset();
      for (const m of replicas) expect(await head(m)).toEqual([200, "HIT"]);
      await upstream.settle();
      expect(upstream.count({ kind: "manifest" })).toBe(0);
      await lease?.release();
      expect(await head(replicas[1] as RunningMirror)).toEqual([200, "REVALIDATED"]);
      await upstream.settle();
      expect(upstream.count({ method: "HEAD", kind: "manifest" })).toBe(1);
    } finally {
      await other.close();
    }
  }, 60_000);

  it("keep serving what the store holds while Redis is down, say so in /healthz, and recover when it is back", async () => {
    const img = await image(512 * 1024);
    const layer = img.layers[0]?.digest as string;
    expect(await getBlob(replicas[0] as RunningMirror, layer)).toEqual({ status: 200, sha: layer });
    await redis.kill();
    for (const m of replicas) {
      const health = await eventually(async () => (await fetch(`${m.url}/healthz`)).json() as Promise<{ status: string; redis?: string }>, (h) => h.status !== "ok", 10_000);
      expect(health).toMatchObject({ status: "degraded", redis: expect.stringMatching(/^redis 127\.0\.0\.1:\d+ unreachable/) });
      const started = Date.now();
      expect(await getBlob(m, layer)).toEqual({ status: 200, sha: layer });
      expect(Date.now() - started).toBeLessThan(10_000);
    }
    // A miss while Redis is away is downloaded by the replica alone, not refused.
    const other = img.config.digest;
    const res = await fetch(`${(replicas[1] as RunningMirror).url}/v2/library/shared/blobs/${other}`);
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    await redis.start();
    for (const m of replicas) {
      const health = await eventually(async () => (await fetch(`${m.url}/healthz`)).json() as Promise<{ status: string }>, (h) => h.status === "ok", 20_000);
      expect(health).toEqual({ status: "ok" });
    }
    // Coordinated again: a new blob is fetched once.
    const again = await image(4 * 1024 * 1024);
    const l2 = again.layers[0]?.digest as string;
    upstream.reset();
    const results = await Promise.all(replicas.map((m) => getBlob(m, l2)));
    for (const r of results) expect(r).toEqual({ status: 200, sha: l2 });
    await upstream.settle();
    expect(upstream.count({ method: "GET", pathIncludes: l2 })).toBe(1);
  }, 120_000);
});
