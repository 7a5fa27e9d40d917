// One upstream's misbehaviour stays its own: a blob trickling from one upstream never delays a
// client of another, and blobs are bounded by what the manifest or HEAD declared (or a configured
// maximum), so a lying or endless body is cut off and ingest/ never grows past it.
import { randomBytes } from "node:crypto";
import { readdir, stat } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { eventually } from "../support/eventually.js";
import { cleanUpAfterEach, digestOf, fake, get, MANIFEST_TYPE, mirrorFor, published } from "../support/fault-harness.js";

cleanUpAfterEach();

// Generous for a loaded 2-core CI machine; without the fixes these waits are unbounded.
const BOUND_MS = 6_000;

async function timed<T>(work: Promise<T>): Promise<{ value: T; ms: number }> {
  const started = Date.now();
  const value = await work;
  return { value, ms: Date.now() - started };
}

/** Headers with the full length, then `bytes` one small piece every 200 ms. */
function trickleBlob(res: ServerResponse, blob: Buffer): void {
  res.writeHead(200, { "content-length": String(blob.byteLength) });
  let at = 0;
  const t = setInterval(() => {
    if (at + 20 >= blob.byteLength) return; // never the last bytes
    res.write(blob.subarray(at, at + 20));
    at += 20;
  }, 200);
  res.on("close", () => clearInterval(t));
}

/** Chunked, no length, random bytes forever; `closed` says whether the mirror hung up. */
function endless(res: ServerResponse, state: { closed: boolean; sent: number }): void {
  res.writeHead(200, { "content-type": "application/octet-stream" });
  const t = setInterval(() => {
    res.write(randomBytes(64 * 1024));
    state.sent += 64 * 1024;
  }, 5);
  res.on("close", () => {
    clearInterval(t);
    state.closed = true;
  });
}

function manifestWithLayer(digest: string, size: number): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST_TYPE,
      config: { mediaType: "application/vnd.docker.container.image.v1+json", digest: digestOf(Buffer.from("{}")), size: 2 },
      layers: [{ mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", digest, size }],
    }),
  );
}

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const f of await readdir(dir).catch(() => [] as string[])) total += (await stat(join(dir, f)).catch(() => ({ size: 0 }))).size;
  return total;
}

describe("isolation between upstreams", () => {
  it("a client of a healthy upstream gets the whole blob at once while another upstream trickles the same digest", async () => {
    const slow = await fake();
    const healthy = await fake();
    const blob = randomBytes(400_000);
    const digest = digestOf(blob);
    slow.on(/\/blobs\//, (_req, res) => trickleBlob(res, blob));
    healthy.on(/\/blobs\//, (_req, res) => {
      res.writeHead(200, { "content-length": String(blob.byteLength) }).end(blob);
    });
    const { mirror, storage } = await mirrorFor(slow.url, {
      upstreams: { "docker.io": { url: slow.url }, "healthy.example:5000": { url: healthy.url } },
    });
    const trickling = new AbortController();
    const stuck = fetch(`${mirror.url}/v2/library/x/blobs/${digest}`, { signal: trickling.signal }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 300)); // the slow fill is running
    const other = await timed(get(`${mirror.url}/v2/healthy.example:5000/library/x/blobs/${digest}`));
    trickling.abort();
    await stuck;
    expect(other.ms).toBeLessThan(BOUND_MS);
    expect(other.value.error).toBeUndefined();
    expect(other.value.body.equals(blob)).toBe(true);
    expect(healthy.count("GET", digest)).toBe(1);
    // The healthy upstream's verified copy is published and shared from now on.
    expect(await eventually(() => published(storage), (p) => p.length > 0)).toEqual([digest.slice(7)]);
  });

  it("shares published (verified) bytes across upstreams: the second upstream is not asked", async () => {
    const a = await fake();
    const b = await fake();
    const blob = randomBytes(100_000);
    const digest = digestOf(blob);
    for (const up of [a, b]) up.on(/\/blobs\//, (_req, res) => void res.writeHead(200, { "content-length": String(blob.byteLength) }).end(blob));
    const { mirror, storage } = await mirrorFor(a.url, { upstreams: { "docker.io": { url: a.url }, "b.example:5000": { url: b.url } } });
    expect((await get(`${mirror.url}/v2/library/x/blobs/${digest}`)).body.equals(blob)).toBe(true);
    // Publication (fsync, rename) follows the last byte; wait for it.
    await eventually(() => published(storage), (p) => p.length > 0);
    const viaB = await get(`${mirror.url}/v2/b.example:5000/library/x/blobs/${digest}`);
    expect([viaB.headers["x-mirror-cache"], viaB.body.equals(blob)]).toEqual(["HIT", true]);
    expect(b.count("GET", digest)).toBe(0);
  });
});

describe("bounded blobs", () => {
  it("cuts off an endless chunked body at the size the served manifest declared; nothing kept", async () => {
    const up = await fake();
    const layer = digestOf(Buffer.from("the real layer"));
    const m = manifestWithLayer(layer, 100_000);
    const state = { closed: false, sent: 0 };
    up.on(/\/manifests\//, (req, res) => void res.writeHead(200, { "content-type": MANIFEST_TYPE, "docker-content-digest": digestOf(m) }).end(req.method === "HEAD" ? undefined : m));
    up.on(/\/blobs\//, (_req, res) => endless(res, state));
    const { mirror, storage } = await mirrorFor(up.url);
    expect((await get(`${mirror.url}/v2/library/x/manifests/1`)).status).toBe(200);
    const res = await timed(get(`${mirror.url}/v2/library/x/blobs/${layer}`));
    expect(res.ms).toBeLessThan(BOUND_MS);
    if (res.value.status === 200) {
      // Headers went out first: the size came from the manifest, and the body was cut off.
      expect(res.value.headers["content-length"]).toBe("100000");
      expect(res.value.error ?? (res.value.body.byteLength < 100_000 ? new Error("short") : undefined)).toBeDefined();
    } else {
      // The excess arrived before the headers went out: a clear upstream fault instead.
      expect(res.value.status).toBe(502);
      expect(res.value.body.toString()).toContain("more than the 100000 bytes expected");
    }
    await new Promise((r) => setTimeout(r, 200));
    expect(state.closed).toBe(true);
    expect(await published(storage)).toEqual([digestOf(m).slice(7)]);
    expect(await readdir(join(storage, "ingest"))).toEqual([]);
  });

  it("refuses at once a Content-Length that contradicts the manifest (a lying length)", async () => {
    const up = await fake();
    const blob = randomBytes(50_000);
    const digest = digestOf(blob);
    const m = manifestWithLayer(digest, blob.byteLength);
    up.on(/\/manifests\//, (req, res) => void res.writeHead(200, { "content-type": MANIFEST_TYPE, "docker-content-digest": digestOf(m) }).end(req.method === "HEAD" ? undefined : m));
    up.on(/\/blobs\//, (_req, res) => {
      // Claims ten times the size, then trickles: only the manifest's word ends this early.
      res.writeHead(200, { "content-length": String(blob.byteLength * 10) });
      res.write(blob.subarray(0, 1000));
    });
    const { mirror, storage } = await mirrorFor(up.url);
    await get(`${mirror.url}/v2/library/x/manifests/1`);
    const res = await timed(get(`${mirror.url}/v2/library/x/blobs/${digest}`));
    expect(res.ms).toBeLessThan(BOUND_MS);
    expect(res.value.status).toBeGreaterThanOrEqual(400);
    expect(res.value.body.toString()).toContain("the manifest says 50000");
    expect(await published(storage)).toEqual([digestOf(m).slice(7)]);
    expect(await readdir(join(storage, "ingest"))).toEqual([]);
  });

  it("with no length from anywhere, cuts off an endless body at upstream.maxBlobSize; ingest/ stays below it", async () => {
    const up = await fake();
    const digest = digestOf(Buffer.from("no such content"));
    const state = { closed: false, sent: 0 };
    up.on(/\/blobs\//, (_req, res) => endless(res, state));
    const { mirror, storage } = await mirrorFor(up.url, { upstream: { maxBlobSize: "1MB" } });
    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, await dirBytes(join(storage, "ingest")));
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const res = await timed(get(`${mirror.url}/v2/library/x/blobs/${digest}`));
    sampling = false;
    await sampler;
    expect(res.ms).toBeLessThan(BOUND_MS);
    expect(res.value.error ?? (res.value.status !== 200 ? new Error(String(res.value.status)) : undefined)).toBeDefined();
    expect(res.value.body.byteLength).toBeLessThanOrEqual(1024 * 1024);
    expect(peak).toBeLessThanOrEqual(1024 * 1024);
    await new Promise((r) => setTimeout(r, 200));
    expect(state.closed).toBe(true);
    expect(await published(storage)).toEqual([]);
    expect(await readdir(join(storage, "ingest"))).toEqual([]);
  });
});
