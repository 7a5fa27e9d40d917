// A cache disk that fails under a running mirror: made read-only while serving, or full. Faults are
// reported (503 with the errno, /healthz unhealthy with the reason), never a 500; what was fetched
// is still served, marked not stored; a blob that does not fit is streamed whole, never cut off.
import { randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import type { ConfigInput } from "../../src/config/schema.js";
import { createLogger } from "../../src/observe/log.js";
import { startMirror } from "../../src/server.js";
import { eventually } from "../support/eventually.js";
import type { FakeUpstream } from "../support/fake-upstream.js";
import { cleanUpAfterEach, cleanups, digestOf, fake, get, MANIFEST_TYPE, published, timedWithin, within } from "../support/fault-harness.js";
import { run } from "../support/process.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

cleanUpAfterEach();

/** A mirror whose storage is its own tmpfs of `size` (tests run as root, see .ci/run). */
async function mirrorOnTmpfs(up: FakeUpstream, size: string, extra: ConfigInput = {}) {
  const storage = await makeTempDir("tmpfs");
  await run("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", storage]);
  cleanups.push(async () => {
    await run("umount", ["-l", storage], { allowFailure: true });
    await removeTempDir(storage);
  });
  const logs: string[] = [];
  const sink = new Writable({ write: (c: Buffer, _e, cb) => (logs.push(c.toString()), cb()) });
  const mirror = await startMirror(
    { listen: "127.0.0.1:0", storage, builtinUpstreams: false, upstreams: { "docker.io": { url: up.url } }, logLevel: "warn", ...extra },
    { logger: createLogger("warn", sink) },
  );
  cleanups.push(() => mirror.close(500));
  return { mirror, storage, logs };
}

function serveBlobs(up: FakeUpstream, blobs: Buffer[], opts: { chunked?: boolean } = {}): void {
  up.on(/\/blobs\//, (req, res) => {
    const b = blobs.find((x) => req.url?.includes(digestOf(x)));
    if (!b) return void res.writeHead(404).end();
    if (opts.chunked) {
      res.writeHead(200);
      // Several writes, so the disk fills in the middle of the body.
      for (let at = 0; at < b.byteLength; at += 256 * 1024) res.write(b.subarray(at, at + 256 * 1024));
      res.end();
      return;
    }
    res.writeHead(200, { "content-length": String(b.byteLength) }).end(b);
  });
}

function serveManifests(up: FakeUpstream): void {
  const byDigest = new Map<string, Buffer>();
  up.on(/\/manifests\//, (req, res) => {
    const ref = /manifests\/([^/?]+)/.exec(req.url ?? "")?.[1] ?? "";
    const body = byDigest.get(ref) ?? Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_TYPE, config: {}, layers: [], annotations: { tag: ref } }));
    byDigest.set(digestOf(body), body);
    res.writeHead(200, { "content-type": MANIFEST_TYPE, "docker-content-digest": digestOf(body) }).end(req.method === "HEAD" ? undefined : body);
  });
}


describe("a cache made read-only while serving", () => {
  it("answers 503 naming EROFS for blobs, serves fetched manifests unstored without refetching, keeps serving the cache, and /healthz says why", async () => {
    const up = await fake();
    const cachedBlob = randomBytes(50_000);
    const newBlob = randomBytes(50_000);
    serveBlobs(up, [cachedBlob, newBlob]);
    serveManifests(up);
    const { mirror, storage } = await mirrorOnTmpfs(up, "16m");
    const before = within(await get(`${mirror.url}/v2/library/x/manifests/before`));
    expect(before.status, before.body.toString()).toBe(200);
    expect(within(await get(`${mirror.url}/v2/library/x/blobs/${digestOf(cachedBlob)}`)).body.equals(cachedBlob)).toBe(true);
    await eventually(() => published(storage), (p) => p.includes(digestOf(cachedBlob).slice(7)));
    expect(within(await get(`${mirror.url}/healthz`)).status).toBe(200);

    await run("mount", ["-o", "remount,ro", storage]);
    cleanups.push(async () => void (await run("mount", ["-o", "remount,rw", storage], { allowFailure: true })));

    // The probe runs at most once a second: unhealthy within about that.
    const health = await timedWithin(eventually(() => get(`${mirror.url}/healthz`), (r) => r.status !== 200));
    expect(health.status).toBe(503);
    expect(JSON.parse(health.body.toString())).toMatchObject({ status: "unhealthy", reason: expect.stringContaining("EROFS") });

    const blob = within(await get(`${mirror.url}/v2/library/x/blobs/${digestOf(newBlob)}`));
    expect(blob.status).toBe(503);
    const error = JSON.parse(blob.body.toString()) as { errors: { code: string; message: string }[] };
    expect(error.errors[0]?.code).toBe("UNAVAILABLE");
    expect(error.errors[0]?.message).toContain("EROFS (read-only file system)");

    // A manifest fetched now is served, said to be unstored, and not fetched again on the next pull.
    const getsBefore = up.count("GET", "/manifests/");
    const first = within(await get(`${mirror.url}/v2/library/x/manifests/after`));
    expect([first.status, first.headers["x-mirror-cache"], first.headers["x-mirror-stored"]]).toEqual([200, "MISS", "no"]);
    const again = within(await get(`${mirror.url}/v2/library/x/manifests/after`));
    expect([again.status, again.body.equals(first.body)]).toEqual([200, true]);
    expect(up.count("GET", "/manifests/") - getsBefore).toBe(1);

    // What is cached keeps being served.
    const hit = within(await get(`${mirror.url}/v2/library/x/blobs/${digestOf(cachedBlob)}`));
    expect([hit.status, hit.headers["x-mirror-cache"], hit.body.equals(cachedBlob)]).toEqual([200, "HIT", true]);
    expect(within(await get(`${mirror.url}/v2/library/x/manifests/before`)).status).toBe(200);

    // Writable again: healthy again (the probe is at most a second old).
    await run("mount", ["-o", "remount,rw", storage]);
    expect((await eventually(() => get(`${mirror.url}/healthz`), (r) => r.status === 200)).status).toBe(200);
    expect(await readdir(join(storage, "ingest"))).toEqual([]);
  });
});

describe("a full disk", () => {
  it("streams a blob larger than the free space whole, marked MISS and not stored, with one upstream GET", async () => {
    const up = await fake();
    const big = randomBytes(3 * 1024 * 1024);
    const small = randomBytes(10_000);
    serveBlobs(up, [big, small]);
    const { mirror, storage, logs } = await mirrorOnTmpfs(up, "1m");
    const res = within(await get(`${mirror.url}/v2/library/x/blobs/${digestOf(big)}`));
    expect(res.error).toBeUndefined();
    expect(res.body.equals(big)).toBe(true);
    expect([res.headers["x-mirror-cache"], res.headers["x-mirror-stored"]]).toEqual(["MISS", "no"]);
    expect(logs.join("")).toContain("without being stored");
    expect(up.count("GET", digestOf(big))).toBe(1);
    expect(await published(storage)).toEqual([]);
    expect(await readdir(join(storage, "ingest"))).toEqual([]);
    // What fits is still cached.
    expect(within(await get(`${mirror.url}/v2/library/x/blobs/${digestOf(small)}`)).body.equals(small)).toBe(true);
    expect(await eventually(() => published(storage), (p) => p.length > 0)).toEqual([digestOf(small).slice(7)]);
  });

  it("a body with no length that fills the disk midway still reaches the client whole; nothing partial is kept", async () => {
    const up = await fake();
    const big = randomBytes(3 * 1024 * 1024);
    serveBlobs(up, [big], { chunked: true });
    const { mirror, storage, logs } = await mirrorOnTmpfs(up, "1m");
    const res = within(await get(`${mirror.url}/v2/library/x/blobs/${digestOf(big)}`));
    expect(res.error).toBeUndefined();
    expect(res.body.equals(big)).toBe(true);
    expect(logs.join("")).toContain("ENOSPC");
    expect(up.count("GET", digestOf(big))).toBe(1);
    expect(await published(storage)).toEqual([]);
    expect(await eventually(() => readdir(join(storage, "ingest")), (e) => e.length === 0)).toEqual([]);
  });

  it("with a size cap, evicts older content to make room before giving up on storing", async () => {
    const up = await fake();
    const old = randomBytes(600 * 1024);
    const next = randomBytes(600 * 1024);
    serveBlobs(up, [old, next]);
    const { mirror, storage } = await mirrorOnTmpfs(up, "1m", { cache: { maxSize: "900KB", evictionGrace: "1ms" } });
    expect(within(await get(`${mirror.url}/v2/library/x/blobs/${digestOf(old)}`)).body.equals(old)).toBe(true);
    await eventually(() => published(storage), (p) => p.length > 0);
    await new Promise((r) => setTimeout(r, 20)); // past the eviction grace
    const res = within(await get(`${mirror.url}/v2/library/x/blobs/${digestOf(next)}`));
    expect(res.body.equals(next)).toBe(true);
    expect(res.headers["x-mirror-stored"]).toBeUndefined();
    expect(await eventually(() => published(storage), (p) => p.includes(digestOf(next).slice(7)))).toEqual([digestOf(next).slice(7)]);
  });
});
