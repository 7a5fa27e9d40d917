// Chaining: a laptop mirror whose `parent` is a team mirror in front of a real distribution upstream.
// Pulls go through the parent (which caches them; the upstream sees only the parent's requests); the
// parent is stopped mid-pull and the laptop finishes the blob from the upstream itself, whole and
// verified; while the parent is down new images come straight from the upstream; with
// `fallback: false` the laptop never goes around its parent. Counts come from the upstream's log.
import { createHash } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { skopeoCopy } from "../support/clients.js";
import { buildImage, type Image } from "../support/fixtures/image.js";
import { randomLayer } from "../support/fixtures/layers.js";
import { pushImage } from "../support/fixtures/push.js";
import { startTestMirror, type TestMirror } from "../support/mirror.js";
import { PacedLink } from "../support/paced-link.js";
import { requireTools } from "../support/preflight.js";
import { UpstreamRegistry } from "../support/registry.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

const BIG = 24 * 1024 * 1024;

async function cached(storage: string, digest: string): Promise<boolean> {
  const files = await readdir(join(storage, "blobs", "sha256", digest.slice(7, 9))).catch(() => [] as string[]);
  return files.includes(digest.slice(7));
}

describe("a laptop mirror chained to a team mirror", () => {
  let hub: UpstreamRegistry;
  let team: TestMirror;
  let link: PacedLink;
  let parentUrl: string;
  let laptop: TestMirror;
  let work: string;
  let small: Image;
  let big: Image;
  let later: Image;

  beforeAll(async () => {
    requireTools(["docker-registry", "skopeo"]);
    work = await makeTempDir("chain");
    hub = await UpstreamRegistry.start({ name: "upstream docker.io" });
    small = buildImage({ format: "oci", layers: [await randomLayer("small.bin", 64 * 1024)] });
    big = buildImage({ format: "oci", layers: [await randomLayer("big.bin", BIG)] });
    later = buildImage({ format: "oci", layers: [await randomLayer("later.bin", 64 * 1024)] });
    await pushImage(hub, "library/mk-chain-small", small, "1");
    await pushImage(hub, "library/mk-chain-big", big, "1");
    await pushImage(hub, "library/mk-chain-later", later, "1");
    team = await startTestMirror({ "docker.io": hub.url });
    // The laptop reaches its parent over a slow link (4 MiB/s), so the big layer is still arriving
    // when the parent goes away. Its own upstream is the real registry, for the fallback.
    link = await PacedLink.start(team.url, 4 * 1024 * 1024);
    parentUrl = link.url;
    laptop = await startTestMirror({ "docker.io": hub.url }, { parent: { url: parentUrl }, upstream: { breakerCooldown: "1m" } });
  });

  afterAll(async () => {
    await laptop?.close();
    await link?.close();
    await team?.close();
    await hub?.close();
    if (work) await removeTempDir(work);
  });

  it("pulls through the parent: the parent caches the image and the upstream sees its requests only", async () => {
    await hub.settle();
    hub.reset();
    await skopeoCopy(`${laptop.host}/library/mk-chain-small:1`, join(work, "small"));
    for (const d of [small.manifest.digest, small.config.digest, small.layers[0]!.digest]) {
      expect(await cached(team.storage, d), `team holds ${d}`).toBe(true);
      expect(await cached(laptop.storage, d), `laptop holds ${d}`).toBe(true);
    }
    await hub.settle();
    // One GET per blob at the upstream: the parent's. The laptop never went around it.
    for (const l of [small.config, small.layers[0]!]) expect(hub.count({ method: "GET", pathIncludes: l.digest })).toBe(1);
  });

  it("the parent stops mid-pull: the laptop finishes the blob from the upstream itself, whole and verified", async () => {
    const layer = big.layers[0]!;
    await hub.settle();
    hub.reset();
    const res = await fetch(`${laptop.url}/v2/library/mk-chain-big/blobs/${layer.digest}`);
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const hash = createHash("sha256");
    let received = 0;
    let stopped = false;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      hash.update(value);
      received += value.byteLength;
      if (!stopped && received > 2 * 1024 * 1024) {
        stopped = true;
        // Well before the end (24 MiB at 4 MiB/s): the parent and its link go away.
        expect(received).toBeLessThan(layer.size / 2);
        await link.close();
        await team.close();
      }
    }
    expect(stopped).toBe(true);
    expect(received).toBe(layer.size);
    expect(`sha256:${hash.digest("hex")}`).toBe(layer.digest);
    for (let until = Date.now() + 10_000; !(await cached(laptop.storage, layer.digest)); ) {
      if (Date.now() > until) throw new Error("the laptop never published the blob");
      await new Promise((r) => setTimeout(r, 50));
    }
    await hub.settle();
    // The parent's own GET, then the laptop's resume straight from the upstream.
    expect(hub.count({ method: "GET", pathIncludes: layer.digest })).toBe(2);
  });

  it("while the parent is down, new images come straight from the upstream", async () => {
    await hub.settle();
    hub.reset();
    await skopeoCopy(`${laptop.host}/library/mk-chain-later:1`, join(work, "later"));
    expect(await cached(laptop.storage, later.layers[0]!.digest)).toBe(true);
    await hub.settle();
    expect(hub.count({ method: "GET", pathIncludes: later.layers[0]!.digest })).toBe(1);
  });

  it("with fallback: false the laptop never goes around its parent", async () => {
    const strict = await startTestMirror({ "docker.io": hub.url }, { parent: { url: parentUrl, fallback: false } });
    try {
      await hub.settle();
      hub.reset();
      const res = await fetch(`${strict.url}/v2/library/mk-chain-small/manifests/1`, { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });
      await res.arrayBuffer();
      expect(res.status).toBe(503);
      await hub.settle();
      expect(hub.count({})).toBe(0);
    } finally {
      await strict.close();
    }
  });
});
