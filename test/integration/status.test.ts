// /api/v1/status and the metrics behind the dashboard, against a real registry (distribution) fronted
// by a proxy that sends Docker Hub's rate-limit headers, with skopeo as the pulling client.
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMirror, type RunningMirror } from "../../src/server.js";
import type { StatusV1 } from "../../src/observe/status-types.js";
import type { CachedRepository } from "../../src/observe/inventory.js";
import { skopeoCopy } from "../support/clients.js";
import { blobsOf, type Image } from "../support/fixtures/image.js";
import { pushImage } from "../support/fixtures/push.js";
import { uniqueImage } from "../support/fixtures/sets.js";
import { eventually } from "../support/eventually.js";
import { metricValue } from "../support/mirror.js";
import { requireTools } from "../support/preflight.js";
import { RateLimitProxy } from "../support/ratelimit-proxy.js";
import { UpstreamRegistry } from "../support/registry.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

const schema = JSON.parse(await readFile(new URL("../../schemas/status-v1.schema.json", import.meta.url), "utf8")) as object;
const ajv = new Ajv2020({ allErrors: true, strict: true });
addFormats.default(ajv);
const validate = ajv.compile(schema);

describe("status API and metrics with a real registry and a real client", () => {
  let registry: UpstreamRegistry;
  let limiter: RateLimitProxy;
  let storage: string;
  let work: string;
  let mirror: RunningMirror | undefined;
  let image: Image;

  const start = async () => {
    mirror = await startMirror({
      listen: "127.0.0.1:0",
      storage,
      builtinUpstreams: false,
      defaultUpstream: "docker.io",
      upstreams: { "docker.io": { url: limiter.url } },
      logLevel: "silent",
      cache: { tagFreshness: "10m" },
    });
    return mirror;
  };

  const status = async (): Promise<StatusV1> => {
    const res = await fetch(`${mirror!.url}/api/v1/status`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const body = (await res.json()) as StatusV1;
    expect(validate(body), JSON.stringify(validate.errors, null, 2)).toBe(true);
    return body;
  };

  const pull = async (n: number) => {
    const host = new URL(mirror!.url).host;
    await skopeoCopy(`${host}/library/mk-status:1`, join(work, `oci-${n}`));
  };

  beforeAll(async () => {
    requireTools(["docker-registry", "skopeo"]);
    storage = await makeTempDir("status-storage");
    work = await makeTempDir("status-work");
    registry = await UpstreamRegistry.start({ name: "upstream docker.io" });
    limiter = await RateLimitProxy.start(registry.url, { limit: 100, windowSeconds: 21600 });
    image = await uniqueImage("docker");
    await pushImage(registry, "library/mk-status", image, "1");
    await start();
  });

  afterAll(async () => {
    await mirror?.close(2_000);
    await limiter?.close();
    await registry?.close();
    if (storage) await removeTempDir(storage);
    if (work) await removeTempDir(work);
  });

  it("before any pull: valid, empty, cache size and object gauges present at 0", async () => {
    const s = await status();
    expect(s.cache).toEqual({ sizeBytes: 0, objects: 0, maxBytes: null });
    expect(s.upstreams).toMatchObject([{ name: "docker.io", state: "unused", rateLimit: null }]);
    const text = await (await fetch(`${mirror!.url}/metrics`)).text();
    expect(text).toMatch(/^mirrorkit_cache_size_bytes 0$/m);
    expect(text).toMatch(/^mirrorkit_cache_objects 0$/m);
  });

  it("after a cold pull: the rate-limit budget, the pull, the download and the cache size without a cap", async () => {
    await pull(1);
    let s = await status();
    const hub = s.upstreams[0]!;
    expect(limiter.manifestGets).toBeGreaterThan(0);
    expect(hub.state).toBe("healthy");
    expect(hub.rateLimit).toMatchObject({ limit: 100, remaining: limiter.remaining, windowSeconds: 21600 });
    expect(hub.latencyMs).toBeGreaterThan(0);
    expect(await metricValue(mirror!.url, "mirrorkit_upstream_ratelimit_remaining", { upstream: "docker.io" })).toBe(limiter.remaining);

    expect(s.recentPulls[0]).toMatchObject({ image: "docker.io/library/mk-status:1", client: "127.0.0.1", result: "miss", status: 200 });
    const blobBytes = blobsOf(image).reduce((n, b) => n + b.size, 0);
    expect(s.traffic.allTime.bytesFetched).toBe(blobsOf(image).filter((b) => b.digest !== image.manifest.digest).reduce((n, b) => n + b.size, 0));
    expect(s.downloads).toEqual([]);

    // The gauges match what is on disk, with no size cap configured. The last blob is published
    // (fsync + rename) just after its final byte reached the client: wait for both to settle.
    await eventually(async () => [(await status()).cache.sizeBytes, (await diskUsage(join(storage, "blobs"))).bytes], ([a, b]) => a === b && a! >= blobBytes);
    const onDisk = await diskUsage(join(storage, "blobs"));
    s = await status();
    expect(s.cache.sizeBytes).toBe(onDisk.bytes);
    expect(s.cache.objects).toBe(onDisk.files);
    expect(s.cache.sizeBytes).toBeGreaterThanOrEqual(blobBytes);
    expect(await metricValue(mirror!.url, "mirrorkit_cache_size_bytes")).toBe(onDisk.bytes);
    expect(await metricValue(mirror!.url, "mirrorkit_cache_objects")).toBe(onDisk.files);
    expect(s.images.largest).toMatchObject([{ image: "docker.io/library/mk-status:1", sizeBytes: onDisk.bytes }]);
  });

  it("a warm pull is all hits: bytes saved in the status and the counter, no budget spent", async () => {
    const spent = limiter.manifestGets;
    const before = await status();
    await pull(2);
    const s = await status();
    expect(limiter.manifestGets).toBe(spent);
    expect(s.recentPulls[0]).toMatchObject({ image: "docker.io/library/mk-status:1", result: "hit" });
    const saved = s.traffic.allTime.bytesSaved - before.traffic.allTime.bytesSaved;
    expect(saved).toBeGreaterThanOrEqual(blobsOf(image).filter((b) => b.digest !== image.manifest.digest).reduce((n, b) => n + b.size, 0));
    expect(s.traffic.lastHour.hits).toBeGreaterThan(before.traffic.lastHour.hits);
    expect(s.traffic.allTime.hitRatio).toBeGreaterThan(0);
    expect(s.traffic.allTime.secondsSaved).not.toBeNull();
    expect(await metricValue(mirror!.url, "mirrorkit_saved_bytes_total")).toBe(s.traffic.allTime.bytesSaved);
    expect(s.images.mostUsed).toMatchObject([{ image: "docker.io/library/mk-status:1", pulls: 2 }]);
  });

  it("lists cached repositories and tags with size and last use", async () => {
    const res = await fetch(`${mirror!.url}/api/v1/repositories`);
    const { repositories } = (await res.json()) as { repositories: CachedRepository[] };
    expect(repositories).toMatchObject([{ upstream: "docker.io", name: "library/mk-status", tags: [{ tag: "1", digest: image.manifest.digest }] }]);
    expect(repositories[0]!.tags[0]!.sizeBytes).toBe((await diskUsage(join(storage, "blobs"))).bytes);
    expect(repositories[0]!.tags[0]!.lastUsed).toBeGreaterThan(Date.now() - 600_000);
  });

  it("a restart keeps the all-time figures and measures the cache again", async () => {
    const before = await status();
    await mirror!.close(2_000);
    mirror = undefined;
    await start();
    const s = await status();
    expect(s.traffic.allTime.bytesSaved).toBe(before.traffic.allTime.bytesSaved);
    expect(s.traffic.allTime.requests).toBe(before.traffic.allTime.requests);
    expect(s.countingSince).toBe(before.countingSince);
    expect(s.cache).toEqual(before.cache);
    expect(s.images.mostUsed).toEqual(before.images.mostUsed);
  });

  it("streams the status as server-sent events", async () => {
    const res = await fetch(`${mirror!.url}/api/v1/events`);
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const reader = res.body!.getReader();
    let text = "";
    while (!text.includes("\n\n")) text += new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    const m = /^event: status\ndata: (.*)\n\n/.exec(text);
    expect(m, text).not.toBeNull();
    expect(validate(JSON.parse(m![1]!))).toBe(true);
  });
});

async function diskUsage(dir: string): Promise<{ bytes: number; files: number }> {
  let bytes = 0;
  let files = 0;
  for (const entry of await readdir(dir, { recursive: true })) {
    const s = await stat(join(dir, entry));
    if (s.isFile()) {
      bytes += s.size;
      files++;
    }
  }
  return { bytes, files };
}
