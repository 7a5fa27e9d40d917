// Owning what is cached, on a real mirror with a real distribution upstream: `rm` takes an image out
// (the next pull fetches it again) while layers another image shares stay; `refresh` revalidates a
// fresh tag now; `prune --unused` / `--older-than` remove what nothing uses, never what a kept image
// needs, never a pinned image; no repository link is left pointing at deleted content, and no empty
// repository folder is left behind. Upstream
// requests are counted in the upstream's own access log.
import { mkdtemp, readdir, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildImage, type Image } from "../support/fixtures/image.js";
import { randomLayer } from "../support/fixtures/layers.js";
import { pushImage } from "../support/fixtures/push.js";
import { buildFixtureSet, type FixtureSet } from "../support/fixtures/sets.js";
import { cacheHeader, startTestMirror, type TestMirror } from "../support/mirror.js";
import { requireTools } from "../support/preflight.js";
import { run } from "../support/process.js";
import { UpstreamRegistry } from "../support/registry.js";

const BIN = join(import.meta.dirname, "..", "..", "dist", "cli", "main.js");
const cli = (args: string[]) => run(process.execPath, [BIN, ...args], { timeoutMs: 100_000, allowFailure: true, env: { PATH: process.env.PATH ?? "" } });

async function cachedBlobs(storage: string): Promise<Set<string>> {
  const out = new Set<string>();
  const root = join(storage, "blobs", "sha256");
  for (const p of await readdir(root).catch(() => [] as string[])) for (const h of await readdir(join(root, p))) out.add(`sha256:${h}`);
  return out;
}

/** Repository links (_manifests, _layers) to any of `digests`, in every repository. */
async function linksTo(storage: string, digests: readonly string[]): Promise<string[]> {
  const wanted = new Set(digests);
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const path = join(dir, e.name);
      if (e.isDirectory() && (e.name === "_manifests" || e.name === "_layers")) {
        for (const alg of await readdir(path)) for (const hex of await readdir(join(path, alg))) if (wanted.has(`${alg}:${hex}`)) out.push(join(path, alg, hex));
      } else if (e.isDirectory() && e.name !== "_tags") await walk(path);
    }
  };
  await walk(join(storage, "repositories"));
  return out;
}

/** Folders under repositories/ that hold nothing (relative paths), and whether a repository's folder exists. */
async function emptyFolders(storage: string): Promise<string[]> {
  const root = join(storage, "repositories");
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true });
    if (entries.length === 0 && dir !== root) out.push(relative(root, dir));
    for (const e of entries) if (e.isDirectory()) await walk(join(dir, e.name));
  };
  await walk(root);
  return out;
}

const repoFolder = (storage: string, name: string) => stat(join(storage, "repositories", "docker.io", "library", name)).then(() => true, () => false);

async function age(storage: string, digests: string[], msAgo: number): Promise<void> {
  const t = new Date(Date.now() - msAgo);
  for (const d of digests) await utimes(join(storage, "blobs", "sha256", d.slice(7, 9), d.slice(7)), t, t);
}

describe("rm, refresh and prune", () => {
  let fx: FixtureSet;
  let b: Image;
  let c: Image;
  let p: Image;
  let configDir: string;
  let hub: UpstreamRegistry;
  let mirror: TestMirror;
  const manifestOf = "application/vnd.docker.distribution.manifest.v2+json";

  beforeAll(async () => {
    requireTools(["docker-registry"]);
    fx = await buildFixtureSet();
    // b shares a's busybox layer; c is only ever fetched blob by blob.
    b = buildImage({ layers: [fx.runnable.layers[0]!, await randomLayer("b.bin", 32 * 1024)] });
    c = buildImage({ layers: [await randomLayer("c.bin", 32 * 1024)] });
    p = buildImage({ layers: [await randomLayer("p.bin", 32 * 1024)] });
    hub = await UpstreamRegistry.start({ name: "upstream docker.io" });
    await pushImage(hub, "library/mk-a", fx.runnable, "1");
    await pushImage(hub, "library/mk-b", b, "1");
    await pushImage(hub, "library/mk-c", c, "1");
    await pushImage(hub, "library/mk-pinned", p, "1");
    mirror = await startTestMirror({ "docker.io": hub.url }, { cache: { tagFreshness: "10m" } });
    // The mirror's config file as prune reads it: its storage and a pin.
    configDir = await mkdtemp(join(tmpdir(), "mk-prune-config-"));
    await writeFile(join(configDir, "config.yaml"), `storage: ${JSON.stringify(mirror.storage)}\ncache:\n  rules:\n    - { match: "docker.io/library/mk-pinned:*", pin: true }\n`);
    const warm = await cli(["prefetch", "--mirror", mirror.url, "mk-a:1", "mk-b:1", "mk-pinned:1"]);
    expect(warm.code, warm.stderr).toBe(0);
  });

  afterAll(async () => {
    await mirror?.close();
    await hub?.close();
    if (configDir) await rm(configDir, { recursive: true, force: true });
  });

  it("rm removes an image and what only it used; a shared layer and the other image stay", async () => {
    const r = await cli(["rm", "--storage", mirror.storage, "mk-a:1"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("removed docker.io/library/mk-a:1");
    const blobs = await cachedBlobs(mirror.storage);
    expect(blobs.has(fx.runnable.manifest.digest)).toBe(false);
    for (const l of fx.runnable.layers.slice(1)) expect(blobs.has(l.digest)).toBe(false);
    expect(blobs.has(fx.runnable.layers[0]!.digest)).toBe(true);
    expect(blobs.has(b.manifest.digest)).toBe(true);
    // No repository claims any more to hold what rm deleted.
    const deleted = [fx.runnable.manifest.digest, fx.runnable.config.digest, ...fx.runnable.layers.slice(1).map((l) => l.digest)];
    expect(await linksTo(mirror.storage, deleted)).toEqual([]);
    expect((await linksTo(mirror.storage, [b.manifest.digest])).length).toBeGreaterThan(0);
    // Nothing is left of mk-a's repository: no empty folder for ls to list.
    expect(await repoFolder(mirror.storage, "mk-a")).toBe(false);
    expect(await repoFolder(mirror.storage, "mk-b")).toBe(true);
    expect(await emptyFolders(mirror.storage)).toEqual([]);

    await hub.settle();
    hub.reset();
    expect(await cacheHeader(mirror.url, "/v2/library/mk-a/manifests/1", manifestOf)).toBe("MISS");
    expect(await cacheHeader(mirror.url, "/v2/library/mk-b/manifests/1", manifestOf)).toBe("HIT");
    await hub.settle();
    expect(hub.count({ kind: "manifest", pathIncludes: "mk-a" })).toBeGreaterThan(0);
    expect(hub.count({ kind: "manifest", pathIncludes: "mk-b" })).toBe(0);
  });

  it("rm of an image that is not cached fails, naming it", async () => {
    const r = await cli(["rm", "--storage", mirror.storage, "mk-never:1"]);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toContain("not cached: docker.io/library/mk-never:1");
  });

  it("refresh revalidates a tag inside its freshness window, now", async () => {
    await hub.settle();
    hub.reset();
    const r = await cli(["refresh", "--storage", mirror.storage, "--mirror", mirror.url, "mk-b:1"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`now ${b.manifest.digest} (unchanged)`);
    await hub.settle();
    expect(hub.count({ method: "HEAD", kind: "manifest", pathIncludes: "mk-b/manifests/1" })).toBe(1);
  });

  it("prune --unused removes blobs no cached image references, and nothing a tag needs", async () => {
    const orphan = c.layers[0]!.digest;
    await (await fetch(`${mirror.url}/v2/library/mk-c/blobs/${orphan}`)).arrayBuffer();
    // Published (fsync, rename) just after the last byte went out.
    for (const until = Date.now() + 10_000; !(await cachedBlobs(mirror.storage)).has(orphan); ) {
      if (Date.now() > until) throw new Error("the blob was never published");
      await new Promise((r) => setTimeout(r, 50));
    }
    await age(mirror.storage, [orphan], 3_600_000);
    // Fetched by digest alone, the blob is linked to its repository; that link must go with it.
    expect(await linksTo(mirror.storage, [orphan])).toHaveLength(1);
    const r = await cli(["prune", "--storage", mirror.storage, "--unused"]);
    expect(r.code, r.stderr).toBe(0);
    const blobs = await cachedBlobs(mirror.storage);
    expect(blobs.has(orphan)).toBe(false);
    for (const d of [b.manifest.digest, b.config.digest, ...b.layers.map((l) => l.digest)]) expect(blobs.has(d), d).toBe(true);
    expect(await linksTo(mirror.storage, [orphan])).toEqual([]);
    // mk-c held only that link: its folder went with it.
    expect(await repoFolder(mirror.storage, "mk-c")).toBe(false);
    expect(await emptyFolders(mirror.storage)).toEqual([]);
  });

  it("prune --older-than removes images not used for that long, whole, but not a layer a recent image needs", async () => {
    const shared = b.layers[0]!.digest;
    const pinned = [p.manifest.digest, p.config.digest, ...p.layers.map((l) => l.digest)];
    await age(mirror.storage, [b.manifest.digest, b.config.digest, ...b.layers.map((l) => l.digest), ...pinned], 2 * 3_600_000);
    // The storage comes from the config file, and so does the pin it spares.
    const r = await cli(["prune", "--config", join(configDir, "config.yaml"), "--older-than", "1h"]);
    expect(r.code, r.stderr).toBe(0);
    const blobs = await cachedBlobs(mirror.storage);
    for (const d of [b.manifest.digest, b.config.digest, b.layers[1]!.digest]) expect(blobs.has(d), d).toBe(false);
    for (const d of pinned) expect(blobs.has(d), `pinned ${d}`).toBe(true);
    expect(await linksTo(mirror.storage, [b.manifest.digest, b.config.digest, b.layers[1]!.digest])).toEqual([]);
    // mk-b is no repository any more; a link to the layer it shares with mk-a may stay (still true).
    expect(await repoFolder(mirror.storage, "mk-b/_tags")).toBe(false);
    expect(await repoFolder(mirror.storage, "mk-b/_manifests")).toBe(false);
    expect(await emptyFolders(mirror.storage)).toEqual([]);
    expect(await cacheHeader(mirror.url, "/v2/library/mk-pinned/manifests/1", manifestOf)).toBe("HIT");
    // mk-a's manifest was fetched again in the first test: the layer it shares with mk-b stays.
    expect(blobs.has(shared)).toBe(true);
    expect(await cacheHeader(mirror.url, "/v2/library/mk-b/manifests/1", manifestOf)).toBe("MISS");
  });

  it("prune --older-than refuses a duration that is not one, naming the flag", async () => {
    for (const bad of ["30", "0s"]) {
      const r = await cli(["prune", "--storage", mirror.storage, "--older-than", bad]);
      expect(r.code, bad).toBe(2);
      expect(r.stderr).toContain("--older-than");
    }
  });

  it("prune without saying what to prune is a usage error", async () => {
    const r = await cli(["prune", "--storage", mirror.storage]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("say what to prune");
  });
});
