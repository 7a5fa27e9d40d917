// Storage faults for real, not only the unit table: the mirror binary run as an unprivileged user
// (setpriv) over a folder it cannot write (EACCES), and over a FUSE file system that starts failing
// with EIO (faulty-fs.py, Debian's python3-fusepy, through /dev/fuse). What the README's Failure
// behaviour table claims is checked: cached content still served, a blob miss answers 503 UNAVAILABLE
// naming the errno, /healthz 503 with the reason, nothing corrupted, recovery when the fault ends.
// The upstream is a real distribution registry; requests are counted at its access log.
import { createHash } from "node:crypto";
import { chmod, chown, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../support/eventually.js";
import { get, timedWithin, within } from "../support/fault-harness.js";
import { FaultyFs } from "../support/faulty-fs.js";
import { buildImage, type Image } from "../support/fixtures/image.js";
import { randomLayer } from "../support/fixtures/layers.js";
import { pushImage } from "../support/fixtures/push.js";
import { requireTools } from "../support/preflight.js";
import { run } from "../support/process.js";
import { UpstreamRegistry } from "../support/registry.js";
import { Replica } from "../support/replica.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

/** /healthz re-probes at most once a second; a verdict is at most that old, plus the load. */
const HEALTH_BOUND_MS = 8_000;
const NOBODY = { uid: 65534, gid: 65534 };
const BIN = join(import.meta.dirname, "..", "..", "dist", "cli", "main.js");

let hub: UpstreamRegistry;
let dir: string;
/** Pulled before the fault: cached. */
let before: Image;
/** Asked for during the fault: a miss. */
let during: Image;


function blobUrl(mirror: Replica, repo: string, digest: string): string {
  return `${mirror.url}/v2/${repo}/blobs/${digest}`;
}

/** Every published blob under `root` (a storage folder) matches its digest; ingest/ holds nothing. */
async function expectNothingCorrupt(root: string): Promise<string[]> {
  const found: string[] = [];
  const blobs = join(root, "blobs", "sha256");
  for (const prefix of await readdir(blobs).catch(() => [] as string[])) {
    for (const name of await readdir(join(blobs, prefix))) {
      const actual = createHash("sha256").update(await readFile(join(blobs, prefix, name))).digest("hex");
      expect(actual, `blobs/sha256/${prefix}/${name}`).toBe(name);
      found.push(`sha256:${name}`);
    }
  }
  expect(await eventually(() => readdir(join(root, "ingest")).catch(() => [] as string[]), (e) => e.length === 0)).toEqual([]);
  return found;
}

/**
 * The table's row, against a mirror whose storage `startFault` breaks and `endFault` mends:
 * `code` is the errno the mirror must name. `root` is where the stored bytes really are.
 */
async function faultAndRecovery(mirror: Replica, root: string, code: string, startFault: () => Promise<void>, endFault: () => Promise<void>): Promise<void> {
  const repo = "library/mk-disk";
  const cached = before.layers[0]!;
  // Before: a pull caches the manifest and its blobs.
  for (const path of [`manifests/1`, `blobs/${before.config.digest}`, `blobs/${cached.digest}`]) {
    const res = await get(`${mirror.url}/v2/${repo}/${path}`, { accept: before.manifest.mediaType });
    expect(res.status, `${path}: ${res.body.toString().slice(0, 200)}`).toBe(200);
  }
  await eventually(() => expectNothingCorrupt(root), (found) => found.includes(cached.digest) && found.includes(before.config.digest));
  expect((await get(`${mirror.url}/healthz`)).status).toBe(200);

  await startFault();
  try {
    const health = await timedWithin(eventually(() => get(`${mirror.url}/healthz`), (r) => r.status !== 200, HEALTH_BOUND_MS), HEALTH_BOUND_MS);
    expect(health.status).toBe(503);
    expect(JSON.parse(health.body.toString())).toMatchObject({ status: "unhealthy", reason: expect.stringContaining(code) });

    // A miss: 503 UNAVAILABLE naming the errno, at once, and no path from the storage folder.
    hub.reset();
    const miss = within(await get(blobUrl(mirror, "library/mk-disk-2", during.layers[0]!.digest)));
    expect(miss.status).toBe(503);
    const error = JSON.parse(miss.body.toString()) as { errors: { code: string; message: string }[] };
    expect(error.errors[0]?.code).toBe("UNAVAILABLE");
    expect(error.errors[0]?.message).toContain(code);
    expect(error.errors[0]?.message).not.toContain(root);

    // A manifest fetched now is served, said to be unstored.
    const manifest = within(await get(`${mirror.url}/v2/library/mk-disk-2/manifests/1`, { accept: during.manifest.mediaType }));
    const said = mirror.proc.lines.filter((l) => l.includes("mk-disk-2/manifests") || l.includes('"level":50')).join("\n");
    expect([manifest.status, manifest.headers["x-mirror-cache"], manifest.headers["x-mirror-stored"]], `${manifest.body.toString().slice(0, 300)}\n${said}`).toEqual([200, "MISS", "no"]);
    expect(manifest.body.equals(during.manifest.bytes)).toBe(true);

    // What is cached is still served, byte for byte, without asking upstream for it.
    const hit = within(await get(blobUrl(mirror, repo, cached.digest)));
    expect([hit.status, hit.headers["x-mirror-cache"], hit.body.equals(cached.bytes)]).toEqual([200, "HIT", true]);
    await hub.settle();
    expect(hub.count({ method: "GET", pathIncludes: cached.digest })).toBe(0);
  } finally {
    await endFault();
  }

  // Mended: healthy again, and the miss is downloaded and cached.
  const healthy = await timedWithin(eventually(() => get(`${mirror.url}/healthz`), (r) => r.status === 200, HEALTH_BOUND_MS), HEALTH_BOUND_MS);
  expect(healthy.status).toBe(200);
  const again = within(await get(blobUrl(mirror, "library/mk-disk-2", during.layers[0]!.digest)));
  expect([again.status, again.body.equals(during.layers[0]!.bytes)]).toEqual([200, true]);
  const found = await eventually(() => expectNothingCorrupt(root), (f) => f.includes(during.layers[0]!.digest));
  expect(found).toEqual(expect.arrayContaining([cached.digest, before.config.digest, during.layers[0]!.digest]));
}

beforeAll(async () => {
  requireTools(["docker-registry", "setpriv"]);
  dir = await makeTempDir("faults-disk");
  // The unprivileged mirror reads its config here and keeps its run records here.
  await chown(dir, NOBODY.uid, NOBODY.gid);
  hub = await UpstreamRegistry.start({ name: "upstream docker.io" });
  before = buildImage({ format: "oci", layers: [await randomLayer("before.bin", 512 * 1024)] });
  during = buildImage({ format: "oci", layers: [await randomLayer("during.bin", 512 * 1024)] });
  await pushImage(hub, "library/mk-disk", before, "1");
  await pushImage(hub, "library/mk-disk-2", during, "1");
}, 60_000);

afterAll(async () => {
  await hub?.close();
  if (dir) await removeTempDir(dir);
});

function config(storage: string) {
  return { storage, defaultUpstream: "docker.io", upstreams: { "docker.io": { url: hub.url } }, logLevel: "info" as const };
}

describe("EACCES: the mirror binary as an unprivileged user", () => {
  it("refuses to start over a storage folder it cannot write, naming EACCES", async () => {
    const locked = join(dir, "locked");
    await run("mkdir", ["-m", "0755", locked]);
    const res = await timedWithin(
      run("setpriv", [`--reuid=${NOBODY.uid}`, `--regid=${NOBODY.gid}`, "--clear-groups", process.execPath, BIN, "serve", "--listen", "127.0.0.1:0", "--storage", locked, "--upstream", `docker.io=${hub.url}`], {
        allowFailure: true,
        timeoutMs: 30_000,
        env: { ...process.env, MIRROR_KIT_RUN_DIR: join(dir, "run-locked") },
      }),
      30_000,
    );
    expect(res.code).toBe(1);
    expect(res.stderr).toContain("EACCES");
    expect(await readdir(locked)).toEqual([]);
  });

  it("a folder made unwritable while serving: cached content served, misses 503 naming EACCES, /healthz 503, recovery", async () => {
    const storage = join(dir, "store");
    const mirror = await Replica.start("nobody", dir, config(storage), NOBODY);
    try {
      // Run as nobody: everything it wrote is nobody's; taking the write bits away is the fault.
      await faultAndRecovery(
        mirror,
        storage,
        "EACCES",
        () => run("chmod", ["-R", "a-w", storage]).then(() => undefined),
        () => run("chmod", ["-R", "u+w", storage]).then(() => undefined),
      );
      expect(mirror.proc.running).toBe(true);
    } finally {
      await mirror.stop();
    }
  });
});

describe("EIO: a FUSE file system that starts failing", () => {
  let disk: FaultyFs;

  beforeAll(async () => {
    requireTools(["umount"]);
    disk = await FaultyFs.mount();
  });

  afterAll(async () => {
    await disk?.unmount();
  });

  it("writes fail with EIO while serving: cached content served, misses 503 naming EIO, /healthz 503, recovery", async () => {
    const mirror = await Replica.start("eio", dir, config(disk.mountpoint));
    try {
      await faultAndRecovery(
        mirror,
        disk.backing,
        "EIO",
        () => disk.fail("write"),
        () => disk.heal(),
      );
      expect(mirror.proc.running).toBe(true);
    } finally {
      await mirror.stop();
    }
  });

  it("reads fail with EIO too: a cached blob answers 503 naming EIO, never wrong bytes; served again once mended", async () => {
    const mirror = await Replica.start("eio-reads", dir, config(disk.mountpoint));
    const cached = before.layers[0]!;
    try {
      // Cached by the previous test on this file system, or now.
      expect((await get(blobUrl(mirror, "library/mk-disk", cached.digest))).body.equals(cached.bytes)).toBe(true);
      await disk.fail("all");
      const broken = within(await get(blobUrl(mirror, "library/mk-disk", cached.digest)));
      const said = mirror.proc.lines.filter((l) => l.includes('"level":50')).join("\n");
      expect(broken.status, `${broken.body.toString().slice(0, 300)}\n${said}`).toBe(503);
      const error = JSON.parse(broken.body.toString()) as { errors: { code: string; message: string }[] };
      expect(error.errors[0]?.code).toBe("UNAVAILABLE");
      expect(error.errors[0]?.message).toContain("EIO");
      const health = await timedWithin(eventually(() => get(`${mirror.url}/healthz`), (r) => r.status !== 200, HEALTH_BOUND_MS), HEALTH_BOUND_MS);
      expect(health.status).toBe(503);
      await disk.heal();
      const again = within(await get(blobUrl(mirror, "library/mk-disk", cached.digest)));
      expect([again.status, again.headers["x-mirror-cache"], again.body.equals(cached.bytes)]).toEqual([200, "HIT", true]);
      await expectNothingCorrupt(disk.backing);
    } finally {
      await disk.heal();
      await mirror.stop();
    }
  });
});
