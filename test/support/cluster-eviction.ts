// The size cap across replica processes sharing one store and one Redis, for any storage backend:
// one evictor at a time (runs never overlap), the shared usage in Redis matches the store, the
// total ends under the cap, a pinned image and a blob a client is still reading stay whole.
import { createHash } from "node:crypto";
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ConfigInput } from "../../src/config/schema.js";
import { pullImage } from "./cluster.js";
import { eventually } from "./eventually.js";
import { buildImage, type Image } from "./fixtures/image.js";
import { filesLayer, randomLayer } from "./fixtures/layers.js";
import { pushImage } from "./fixtures/push.js";
import { requireTools } from "./preflight.js";
import { run } from "./process.js";
import { RedisServer } from "./redis-server.js";
import { UpstreamRegistry } from "./registry.js";
import { Replica } from "./replica.js";
import { makeTempDir, removeTempDir } from "./scratch.js";

const MiB = 1024 * 1024;
const CAP = 12 * MiB;

/** A store the replicas share: its config, and what it holds as published content (digest → bytes). */
export interface SharedBackend {
  /** A blob a client is reading when eviction runs: kept in the store, or removed while the read goes on. */
  openBlobs: "kept" | "readable";
  storage(replica: string, dir: string): ConfigInput["storage"];
  published(): Promise<Map<string, number>>;
  close(): Promise<void>;
}

/** Read a blob through a replica, stopping after the first bytes until `resume` is called. */
function pausedRead(url: string, repo: string, digest: string): { resume(): void; done: Promise<string> } {
  let resume = () => undefined as void;
  const done = new Promise<string>((resolve, reject) => {
    const req = request(`${url}/v2/${repo}/blobs/${digest}`, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`));
      const hash = createHash("sha256");
      let paused = false;
      res.on("data", (chunk: Buffer) => {
        hash.update(chunk);
        if (paused) return;
        paused = true;
        res.pause();
        resume = () => void res.resume();
      });
      res.on("end", () => resolve(`sha256:${hash.digest("hex")}`));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
  return { resume: () => resume(), done };
}

export function clusterEvictionSuite(name: string, startBackend: () => Promise<SharedBackend>): void {
  let upstream: UpstreamRegistry;
  let redis: RedisServer;
  let backend: SharedBackend;
  let dir: string;
  const replicas: Replica[] = [];

  beforeAll(async () => {
    requireTools(["redis-server", "redis-cli", "docker-registry"]);
    [upstream, redis, backend, dir] = await Promise.all([UpstreamRegistry.start({ name: "upstream" }), RedisServer.start(), startBackend(), makeTempDir("cluster-evict")]);
    for (const r of ["a", "b", "c"]) {
      replicas.push(
        await Replica.start(r, dir, {
          storage: backend.storage(r, dir),
          defaultUpstream: "docker.io",
          upstreams: { "docker.io": { url: upstream.url } },
          redis: { addr: redis.addr, lease: "2s" },
          cache: { maxSize: `${CAP}B`, evictionGrace: "2s", rules: [{ match: "docker.io/library/pinned:*", pin: true }] },
        }),
      );
    }
  }, 240_000);

  afterAll(async () => {
    for (const r of replicas) await r.stop();
    await upstream?.close();
    await redis?.stop();
    await backend?.close();
    if (dir) await removeTempDir(dir);
  });

  describe(`the size cap across three replicas on ${name} with one Redis`, () => {
    it("evicts on one replica at a time, keeps the shared usage right, and never a pinned image or a blob being read", async () => {
      const images = new Map<string, Image>();
      for (const [repo, bytes] of [["pinned", 3 * MiB], ["reading", 5 * MiB], ["f1", 3 * MiB], ["f2", 3 * MiB], ["f3", 3 * MiB], ["f4", 3 * MiB]] as const) {
        const img = buildImage({ layers: [await randomLayer("data/blob.bin", bytes), await filesLayer({ "etc/id": `${repo}-${Date.now()}\n` })] });
        await pushImage({ url: upstream.url }, `library/${repo}`, img, "v1");
        images.set(repo, img);
      }
      const [a, b, c] = replicas as [Replica, Replica, Replica];
      const img = (repo: string) => images.get(repo) as Image;
      await pullImage(a.url, "library/pinned", "v1", img("pinned"));
      await pullImage(b.url, "library/reading", "v1", img("reading"));
      await pullImage(c.url, "library/f1", "v1", img("f1"));
      // A client of c reads the 5 MiB layer slowly, across the evictions below.
      const readingLayer = img("reading").layers[0]?.digest as string;
      const reading = pausedRead(c.url, "library/reading", readingLayer);
      // Each image becomes older than the 2 s grace before the next is pulled, through another replica;
      // f3 and f4 land at the same time, so two replicas want to evict at once.
      await new Promise((r) => setTimeout(r, 2_500));
      await pullImage(a.url, "library/f2", "v1", img("f2"));
      await new Promise((r) => setTimeout(r, 2_500));
      await Promise.all([pullImage(b.url, "library/f3", "v1", img("f3")), pullImage(c.url, "library/f4", "v1", img("f4"))]);

      const total = (m: Map<string, number>) => [...m.values()].reduce((n, v) => n + v, 0);
      const held = await eventually(() => backend.published(), (m) => total(m) <= CAP, 20_000);
      expect(total(held)).toBeLessThanOrEqual(CAP);
      // A store that keeps what is being read keeps it while the client is still reading.
      if (backend.openBlobs === "kept") expect(held.has(readingLayer)).toBe(true);
      reading.resume();
      expect(await reading.done).toBe(readingLayer);
      // The pinned image is whole: its manifest, config and layers.
      const pinned = img("pinned");
      for (const d of [pinned.manifest.digest, pinned.config.digest, ...pinned.layers.map((l) => l.digest)]) expect(held.has(d), d).toBe(true);
      // Something was evicted, by runs that never overlapped in time.
      const runs = replicas.flatMap((r) => r.logged(/cluster eviction run over/).map((l) => ({ replica: r.name, start: l.startedAt as number, end: l.endedAt as number })));
      const evictions = replicas.flatMap((r) => r.logged(/least recently used content evicted/));
      expect(evictions.length).toBeGreaterThan(0);
      runs.sort((x, y) => x.start - y.start);
      for (let i = 1; i < runs.length; i++) expect(runs[i]!.start, JSON.stringify(runs)).toBeGreaterThanOrEqual(runs[i - 1]!.end);
      // The usage every replica adds to and the evictor corrects is the store's real size.
      const figures = await eventually(
        async () => ({ redis: Number((await run("redis-cli", ["-p", String(redis.port), "GET", "mirror-kit:usage"])).stdout.trim()), store: total(await backend.published()) }),
        (v) => v.redis === v.store,
        10_000,
      );
      expect(figures.redis).toBe(figures.store);
    }, 180_000);
  });
}
