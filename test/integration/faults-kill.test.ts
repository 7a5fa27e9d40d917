// SIGKILL of the mirror (the built binary) during 16 concurrent cold pulls by skopeo, in front of a
// real distribution upstream over a paced link, then a restart on the same storage folder. Every
// client that reported success has the right bytes; the cache holds nothing corrupt or partial
// (every object matches its digest, every tag points at content that is there); after the restart
// every pull completes, and what was complete before the kill is not downloaded again.
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../support/eventually.js";
import { buildImage, type Image } from "../support/fixtures/image.js";
import { filesLayer, randomLayer } from "../support/fixtures/layers.js";
import { pushImage } from "../support/fixtures/push.js";
import { metricValue } from "../support/mirror.js";
import { PacedLink } from "../support/paced-link.js";
import { requireTools } from "../support/preflight.js";
import { run } from "../support/process.js";
import { UpstreamRegistry } from "../support/registry.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

const BIN = join(import.meta.dirname, "..", "..", "dist", "cli", "main.js");
/** Two clients per image, all at once: 16 pulls, 8 cold images (shared downloads and separate ones). */
const PULLS = 16;
const IMAGES = 8;
/** Two images are small (done before the kill); the others have a layer the kill cuts. */
const SMALL = 2;
const BIG_LAYER_BYTES = 3 * 1024 * 1024;
/** Per connection: a big layer takes ~6 s to arrive. */
const LINK_BYTES_PER_SEC = 512 * 1024;
/** Killed once this much came from upstream (and a pull completed): into the big layers, far from their end. */
const KILL_AFTER_BYTES = ((IMAGES - SMALL) * BIG_LAYER_BYTES) / 4;

let hub: UpstreamRegistry;
let link: PacedLink;
let storage: string;
let work: string;
const images: Image[] = [];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** The mirror binary on a free port over `storage`; resolves once /v2/ answers. */
async function startMirror(): Promise<{ proc: ChildProcess; url: string; output: () => string }> {
  const port = await freePort();
  const proc = spawn(process.execPath, [BIN, "serve", "--listen", `127.0.0.1:${port}`, "--storage", storage, "--upstream", `docker.io=${link.url}`, "--log-level", "warn"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const keep = (c: Buffer) => (output = (output + c.toString()).slice(-8000));
  proc.stdout?.on("data", keep);
  proc.stderr?.on("data", keep);
  const url = `http://127.0.0.1:${port}`;
  const status = await eventually(
    () => fetch(`${url}/v2/`).then((r) => (void r.arrayBuffer(), r.status), () => (proc.exitCode === null ? 0 : -1)),
    (s) => s !== 0,
    60_000,
  );
  if (status !== 200) throw new Error(`mirror did not start (${status}): ${output}`);
  return { proc, url, output: () => output };
}

interface Pull {
  image: Image;
  dest: string;
  code: number;
  stderr: string;
}

/** skopeo copy docker://MIRROR/library/kN:1 dir:DEST (dir keeps the manifest's bytes as served). */
async function pull(mirrorUrl: string, i: number, round: string): Promise<Pull> {
  const dest = join(work, `${round}-${i}`);
  const res = await run(
    "skopeo",
    ["--policy", join(work, "policy.json"), "--override-os", "linux", "--override-arch", "amd64", "copy", "--src-tls-verify=false", "--src-no-creds", `docker://${new URL(mirrorUrl).host}/library/k${i % IMAGES}:1`, `dir:${dest}`],
    { env: { ...process.env, CONTAINERS_REGISTRIES_CONF: join(work, "registries.conf") }, timeoutMs: 150_000, allowFailure: true },
  );
  return { image: images[i % IMAGES] as Image, dest, code: res.code, stderr: res.stderr };
}

/** What a successful pull wrote matches the image pushed upstream, byte for byte. */
async function expectExact(p: Pull): Promise<void> {
  expect((await readFile(join(p.dest, "manifest.json"))).equals(p.image.manifest.bytes)).toBe(true);
  for (const b of [p.image.config, ...p.image.layers]) {
    expect((await readFile(join(p.dest, b.digest.slice(7)))).equals(b.bytes), `${b.digest} of ${p.dest}`).toBe(true);
  }
}

function sha256Hex(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}

async function list(dir: string): Promise<string[]> {
  return readdir(dir, { recursive: true, withFileTypes: true }).then(
    (entries) => entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name)),
    () => [],
  );
}

/**
 * Nothing corrupt or partial is visible in the cache: every object matches its digest, every
 * manifest record and tag parses and names an object that is there. Returns the objects' digests.
 */
async function checkStorage(): Promise<Set<string>> {
  const objects = new Set<string>();
  for (const file of await list(join(storage, "blobs", "sha256"))) {
    const hex = file.slice(file.lastIndexOf("/") + 1);
    expect(sha256Hex(await readFile(file)), `object ${file}`).toBe(hex);
    objects.add(`sha256:${hex}`);
  }
  for (const file of await list(join(storage, "manifests", "sha256"))) {
    expect(JSON.parse(await readFile(file, "utf8"))).toHaveProperty("mediaType");
    expect(objects.has(`sha256:${file.slice(file.lastIndexOf("/") + 1, -".json".length)}`), `manifest record ${file}`).toBe(true);
  }
  for (const file of (await list(join(storage, "repositories"))).filter((f) => f.includes("/_tags/"))) {
    const tag = JSON.parse(await readFile(file, "utf8")) as { digest: string };
    expect(objects.has(tag.digest), `tag ${file} -> ${tag.digest}`).toBe(true);
  }
  return objects;
}

beforeAll(async () => {
  requireTools(["skopeo"]);
  hub = await UpstreamRegistry.start({ name: "upstream docker.io" });
  link = await PacedLink.start(hub.url, LINK_BYTES_PER_SEC);
  for (let i = 0; i < IMAGES; i++) {
    const data = i < SMALL ? await randomLayer("data.bin", 64 * 1024) : await randomLayer("data.bin", BIG_LAYER_BYTES);
    const image = buildImage({ layers: [data, await filesLayer({ "etc/id": `kill ${i} ${Date.now()}\n` })] });
    await pushImage({ url: hub.url }, `library/k${i}`, image, "1");
    images.push(image);
  }
  storage = await makeTempDir("kill-store");
  work = await makeTempDir("kill-pulls");
  await writeFile(join(work, "policy.json"), JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
  await writeFile(join(work, "registries.conf"), "unqualified-search-registries = []\n");
}, 180_000);

afterAll(async () => {
  await link?.close();
  await hub?.close();
  if (storage) await removeTempDir(storage);
  if (work) await removeTempDir(work);
});

describe("SIGKILL during 16 concurrent cold pulls", () => {
  it("leaves nothing corrupt or partial; clients that succeeded have the right bytes; after a restart every pull completes", async () => {
    const first = await startMirror();
    let killedAt = 0;
    try {
      let completed = 0;
      const pulls = Array.from({ length: PULLS }, (_, i) =>
        pull(first.url, i, "before").then((p) => {
          if (p.code === 0) completed++;
          return p;
        }),
      );
      // Kill mid-download: a pull has completed, enough bytes came from upstream, downloads still run.
      const state = await eventually(
        async () => ({ completed, fetched: await metricValue(first.url, "mirrorkit_upstream_bytes_total").catch(() => 0) }),
        (v) => v.completed > 0 && v.fetched >= KILL_AFTER_BYTES,
        120_000,
      );
      expect(state.completed).toBeGreaterThan(0);
      expect(state.fetched).toBeGreaterThanOrEqual(KILL_AFTER_BYTES);
      expect(await metricValue(first.url, "mirrorkit_fills_active"), "downloads running at the kill").toBeGreaterThan(0);
      const exited = new Promise((resolve) => first.proc.once("exit", resolve));
      first.proc.kill("SIGKILL");
      await exited;
      killedAt = Date.now();
      const before = await Promise.all(pulls);
      // Clients see the broken connection at once: none is left hanging on a dead mirror.
      expect(Date.now() - killedAt).toBeLessThan(60_000);
      const succeeded = before.filter((p) => p.code === 0);
      // The kill came while big layers were still arriving: those pulls cannot have completed.
      expect(succeeded.length, before.map((p) => `${p.code}: ${p.stderr.slice(-200)}`).join("\n")).toBeLessThan(PULLS);
      for (const p of succeeded) await expectExact(p);
      console.log(`SIGKILL during ${PULLS} pulls: ${succeeded.length} had completed (right bytes), ${PULLS - succeeded.length} failed`);
    } finally {
      if (first.proc.exitCode === null && first.proc.signalCode === null) first.proc.kill("SIGKILL");
    }

    const kept = await checkStorage();
    const imageBlobs = images.flatMap((im) => [im.config, ...im.layers]);
    const bigLayers = images.slice(SMALL).map((im) => im.layers[0]!.digest);
    expect(bigLayers.filter((d) => !kept.has(d)).length, "big layers cut off by the kill").toBeGreaterThan(0);

    const second = await startMirror();
    try {
      // Leftovers of the killed downloads are gone before anything else happens.
      expect(await readdir(join(storage, "ingest"))).toEqual([]);
      await hub.settle();
      hub.reset();
      const restarted = Date.now();
      const after = await Promise.all(Array.from({ length: PULLS }, (_, i) => pull(second.url, i, "after")));
      expect(after.filter((p) => p.code !== 0).map((p) => p.stderr.slice(-300))).toEqual([]);
      // Every pull completes within a bound: 16 skopeo pulls, the big layers over the paced link
      // (about 6 s each), with slack for a loaded machine; a pull left hanging would not.
      expect(Date.now() - restarted).toBeLessThan(90_000);
      for (const p of after) await expectExact(p);
      await hub.settle();
      // Counted at the upstream: what the cache held whole was not downloaded again; the rest once.
      for (const b of imageBlobs) {
        expect(hub.count({ method: "GET", pathIncludes: `/blobs/${b.digest}` }), b.digest).toBe(kept.has(b.digest) ? 0 : 1);
      }
      expect(await eventually(() => readdir(join(storage, "ingest")), (e) => e.length === 0, 30_000)).toEqual([]);
      const final = await checkStorage();
      for (const b of imageBlobs) expect(final.has(b.digest), b.digest).toBe(true);
    } finally {
      const exited = new Promise((resolve) => second.proc.once("exit", resolve));
      second.proc.kill("SIGTERM");
      await exited;
    }
  }, 300_000);
});
