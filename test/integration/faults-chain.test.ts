// A parent mirror that sends a blob below the throughput floor: the chained mirror continues it from
// the upstream itself with a Range request (the other source), instead of resuming from the same slow
// parent until its resumes are spent. Real processes: distribution as the upstream, both mirrors as
// the built binary, the parent behind a paced link; counted at the upstream's access log.
import { createHash } from "node:crypto";
import { join } from "node:path";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildImage, type Image } from "../support/fixtures/image.js";
import { randomLayer } from "../support/fixtures/layers.js";
import { pushImage } from "../support/fixtures/push.js";
import { PacedLink } from "../support/paced-link.js";
import { requireTools } from "../support/preflight.js";
import { UpstreamRegistry } from "../support/registry.js";
import { Replica } from "../support/replica.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

/** 4 MiB: 2 minutes through the parent's link, a blink from the upstream on loopback. */
const LAYER_BYTES = 4 * 1024 * 1024;
/** The parent's link: 32 KiB/s, far below the chained mirror's floor. */
const LINK_BYTES_PER_SEC = 32 * 1024;
/** 256 KiB/s judged over 1 s. */
const FLOOR = { minThroughput: "256KB", throughputWindow: "1s" };
/** The window, the switch and the transfer, with generous slack for a loaded 2-core CI machine. */
const BOUND_MS = 20_000;

let hub: UpstreamRegistry;
let parent: Replica;
let link: PacedLink;
let dir: string;
let image: Image;
const started: Replica[] = [];

async function child(name: string, fallback: boolean): Promise<Replica> {
  const r = await Replica.start(name, dir, {
    storage: join(dir, `store-${name}`),
    defaultUpstream: "docker.io",
    upstreams: { "docker.io": { url: hub.url } },
    parent: { url: link.url, fallback },
    upstream: { ...FLOOR, maxResumes: 1 },
  });
  started.push(r);
  return r;
}

/** GET the blob from `mirror`; the body's bytes and digest, or how it broke, and how long it took. */
async function pull(mirror: Replica, digest: string) {
  const begun = Date.now();
  const hash = createHash("sha256");
  let bytes = 0;
  let error: Error | undefined;
  let status = 0;
  try {
    const res = await request(`${mirror.url}/v2/library/mk-floor/blobs/${digest}`);
    status = res.statusCode;
    for await (const chunk of res.body) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).byteLength;
    }
  } catch (err) {
    error = err as Error;
  }
  return { status, bytes, digest: `sha256:${hash.digest("hex")}`, error, ms: Date.now() - begun };
}

beforeAll(async () => {
  requireTools(["docker-registry"]);
  dir = await makeTempDir("faults-chain");
  hub = await UpstreamRegistry.start({ name: "upstream docker.io" });
  image = buildImage({ format: "oci", layers: [await randomLayer("floor.bin", LAYER_BYTES)] });
  await pushImage(hub, "library/mk-floor", image, "1");
  parent = await Replica.start("parent", dir, { storage: join(dir, "store-parent"), defaultUpstream: "docker.io", upstreams: { "docker.io": { url: hub.url } } });
  started.push(parent);
  link = await PacedLink.start(parent.url, LINK_BYTES_PER_SEC);
}, 60_000);

afterAll(async () => {
  for (const r of started) await r.stop();
  await link?.close();
  await hub?.close();
  if (dir) await removeTempDir(dir);
});

describe("a parent mirror below the throughput floor", () => {
  it("the chained mirror continues the blob from the upstream itself with a Range request: verified, within a bound, one GET each", async () => {
    const layer = image.layers[0]!;
    const laptop = await child("laptop", true);
    await hub.settle();
    hub.reset();
    const got = await pull(laptop, layer.digest);
    expect(got.error).toBeUndefined();
    expect(got.status).toBe(200);
    expect(got.bytes).toBe(layer.size);
    expect(got.digest).toBe(layer.digest);
    // Through the parent's link alone this would take over two minutes.
    expect(got.ms).toBeLessThan(BOUND_MS);
    expect(laptop.logged(/below the throughput floor; continuing from the upstream itself/)).toHaveLength(1);
    await hub.settle();
    // At the upstream: the parent's own GET (whole, fast: it is on loopback), then the laptop's
    // resume from where the parent's trickle stopped, which is neither empty nor the whole blob.
    const gets = hub.log.entries.filter((e) => e.method === "GET" && e.path.includes(layer.digest));
    expect(gets).toHaveLength(2);
    const sent = gets.map((e) => e.bytes).sort((a, b) => a - b);
    expect(sent[1]).toBe(layer.size);
    expect(sent[0]).toBeGreaterThan(0);
    expect(sent[0]).toBeLessThan(layer.size - LINK_BYTES_PER_SEC / 2);
  });

  it("with fallback: false the download fails within a bound and the upstream is never asked", async () => {
    const layer = image.layers[0]!;
    const strict = await child("strict", false);
    await hub.settle();
    hub.reset();
    const got = await pull(strict, layer.digest);
    // Cut off, never handed over as complete: the parent is the only source, and it is too slow.
    expect(got.error !== undefined || got.bytes < layer.size).toBe(true);
    expect(got.ms).toBeLessThan(BOUND_MS);
    expect(strict.logged(/continuing from the upstream itself/)).toHaveLength(0);
    await hub.settle();
    // The parent already holds the blob from the first test: nothing reaches the upstream at all.
    expect(hub.count({ method: "GET", pathIncludes: layer.digest })).toBe(0);
  });
});
