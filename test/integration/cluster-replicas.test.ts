// Proof with real processes: three `mirror-kit serve` replicas share one storage folder and one
// Debian redis-server, in front of a real distribution upstream behind a slow link. Counted at the
// upstream's access log: clients (skopeo) spread over the replicas cause one GET per blob; SIGKILL
// of the downloading replica hands the download to another replica and nothing partial is ever
// visible; a Redis restart is ridden out; a replica started later serves cached blobs with no request.
import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { skopeoCopy } from "../support/clients.js";
import { eventually } from "../support/eventually.js";
import { getBlob, pushTwoLayers } from "../support/cluster.js";
import type { Image } from "../support/fixtures/image.js";
import { PacedLink } from "../support/paced-link.js";
import { requireTools } from "../support/preflight.js";
import { RedisServer } from "../support/redis-server.js";
import { UpstreamRegistry } from "../support/registry.js";
import { Replica } from "../support/replica.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

// Slow enough that a 12 MiB layer takes seconds: a replica can be killed mid-download.
const LINK_BYTES_PER_SEC = 3 * 1024 * 1024;

let upstream: UpstreamRegistry;
let link: PacedLink;
let redis: RedisServer;
let dir: string;
let storage: string;
const replicas: Replica[] = [];

function config() {
  return {
    storage,
    defaultUpstream: "docker.io",
    upstreams: { "docker.io": { url: link.url } },
    redis: { addr: redis.addr, lease: "2s" },
  };
}

async function startReplica(name: string): Promise<Replica> {
  const r = await Replica.start(name, dir, config());
  replicas.push(r);
  return r;
}

const push = (repo: string, bigBytes: number): Promise<Image> => pushTwoLayers(upstream, repo, bigBytes);

/** Every published blob's content matches its name: nothing partial or wrong is visible. */
async function publishedBlobsAreWhole(): Promise<string[]> {
  const root = join(storage, "blobs", "sha256");
  const out: string[] = [];
  for (const prefix of await readdir(root).catch(() => [])) {
    for (const hex of await readdir(join(root, prefix))) {
      const actual = createHash("sha256").update(await readFile(join(root, prefix, hex))).digest("hex");
      expect(actual).toBe(hex);
      out.push(`sha256:${hex}`);
    }
  }
  return out;
}

beforeAll(async () => {
  requireTools(["skopeo", "redis-server", "docker-registry"]);
  [upstream, redis, dir] = await Promise.all([UpstreamRegistry.start({ name: "upstream" }), RedisServer.start(), makeTempDir("replicas")]);
  storage = join(dir, "store");
  link = await PacedLink.start(upstream.url, LINK_BYTES_PER_SEC);
  // Each under its own replica name: a replica starting removes only its own leftovers in ingest/.
  for (const name of ["a", "b", "c"]) await startReplica(name);
}, 90_000);

afterAll(async () => {
  for (const r of replicas) await r.stop();
  await link?.close();
  await upstream?.close();
  await redis?.stop();
  if (dir) await removeTempDir(dir);
});

describe("three replica processes, one store, one Redis", () => {
  let pulled: Image;

  it("cause one upstream GET per blob when clients pull the same image through every replica at once", async () => {
    pulled = await push("library/team", 2 * 1024 * 1024);
    await upstream.settle();
    upstream.reset();
    const out = await makeTempDir("skopeo-out");
    try {
      await Promise.all(replicas.slice(0, 3).map((r, i) => skopeoCopy(`${new URL(r.url).host}/library/team:v1`, join(out, `oci-${i}`))));
    } finally {
      await removeTempDir(out);
    }
    await upstream.settle();
    for (const blob of [pulled.config, ...pulled.layers]) {
      expect({ blob: blob.digest, gets: upstream.count({ method: "GET", pathIncludes: blob.digest }) }).toEqual({ blob: blob.digest, gets: 1 });
    }
    await publishedBlobsAreWhole();
  }, 180_000);

  it("finish a download elsewhere when the downloading replica is SIGKILLed, with nothing partial visible", async () => {
    const img = await push("library/killed", 12 * 1024 * 1024);
    const layer = img.layers[0]?.digest as string;
    await upstream.settle();
    upstream.reset();
    const [a, b, c] = replicas as [Replica, Replica, Replica];
    const first = getBlob(a.url, "library/killed", layer);
    // a holds the lease once its GET reached the upstream (through the slow link).
    await eventually(async () => upstream.count({ method: "GET", pathIncludes: layer }), (n) => n > 0, 20_000).catch(() => undefined);
    await eventually(async () => a.logged(/upstream request/).some((l) => String(l.url).includes(layer)), (seen) => seen, 20_000);
    const second = getBlob(b.url, "library/killed", layer);
    const third = getBlob(c.url, "library/killed", layer);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await publishedBlobsAreWhole()).not.toContain(layer);
    await a.kill();
    // The killed replica's client sees a broken body, never a complete one.
    const broken = await first;
    expect("error" in broken || broken.sha !== layer).toBe(true);
    expect(await second).toEqual({ status: 200, sha: layer });
    expect(await third).toEqual({ status: 200, sha: layer });
    expect([...b.logged(/taking over a download/), ...c.logged(/taking over a download/)]).toHaveLength(1);
    expect(await publishedBlobsAreWhole()).toContain(layer);
    await upstream.settle();
    // The killed download and the one that took over.
    expect(upstream.count({ method: "GET", pathIncludes: layer })).toBe(2);
  }, 180_000);

  it("ride out a Redis restart: healthz degraded, cached blobs served, then coordinated again", async () => {
    const [, b, c] = replicas as [Replica, Replica, Replica];
    const cached = pulled.layers[0]?.digest as string;
    await redis.kill();
    for (const r of [b, c]) {
      const h = await eventually(async () => (await fetch(`${r.url}/healthz`)).json() as Promise<{ status: string; redis?: string }>, (v) => v.status === "degraded", 15_000);
      expect(h.redis).toMatch(/unreachable/);
      expect(await getBlob(r.url, "library/team", cached)).toEqual({ status: 200, sha: cached });
    }
    expect(b.logged(/redis unreachable/).length).toBeGreaterThan(0);
    await redis.start();
    for (const r of [b, c]) {
      expect(await eventually(async () => (await fetch(`${r.url}/healthz`)).json() as Promise<{ status: string }>, (v) => v.status === "ok", 20_000)).toEqual({ status: "ok" });
    }
    const img = await push("library/after", 1024 * 1024);
    const layer = img.layers[0]?.digest as string;
    await upstream.settle();
    upstream.reset();
    const results = await Promise.all([b, c, b, c].map((r) => getBlob(r.url, "library/after", layer)));
    for (const r of results) expect(r).toEqual({ status: 200, sha: layer });
    await upstream.settle();
    expect(upstream.count({ method: "GET", pathIncludes: layer })).toBe(1);
  }, 120_000);

  it("serve cached blobs from a replica started later, with no upstream request", async () => {
    const d = await startReplica("d");
    await upstream.settle();
    upstream.reset();
    for (const blob of [pulled.config, ...pulled.layers]) {
      expect(await getBlob(d.url, "library/team", blob.digest)).toEqual({ status: 200, sha: blob.digest });
    }
    await upstream.settle();
    expect(upstream.count({})).toBe(0);
  }, 60_000);
});
