// One upstream's misbehaviour stays its own: a blob trickling from one upstream never delays a
// client of another, and blobs are bounded by what the manifest or HEAD declared (or a configured
// maximum), so a lying or endless body is cut off and ingest/ never grows past it.
import { randomBytes } from "node:crypto";
import { readdir, stat } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { eventually } from "../support/eventually.js";
import { cleanUpAfterEach, digestOf, fake, get, MANIFEST_TYPE, mirrorFor, published, within } from "../support/fault-harness.js";

cleanUpAfterEach();

// Generous for a loaded 2-core CI machine; without the fixes these waits are unbounded.
const BOUND_MS = 6_000;


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
    const other = within(await get(`${mirror.url}/v2/healthy.example:5000/library/x/blobs/${digest}`), BOUND_MS);
    trickling.abort();
    await stuck;
    expect(other.error).toBeUndefined();
    expect(other.body.equals(blob)).toBe(true);
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
    expect(within(await get(`${mirror.url}/v2/library/x/blobs/${digest}`)).body.equals(blob)).toBe(true);
    // Publication (fsync, rename) follows the last byte; wait for it.
    await eventually(() => published(storage), (p) => p.length > 0);
    const viaB = within(await get(`${mirror.url}/v2/b.example:5000/library/x/blobs/${digest}`));
    expect([viaB.headers["x-mirror-cache"], viaB.body.equals(blob)]).toEqual(["HIT", true]);
    expect(b.count("GET", digest)).toBe(0);
  });
});

describe("isolation between repositories of one upstream", () => {
  // Judged over 1 s, so a joiner's patience is 1 s (the default window is 30 s, patience 5 s).
  const FLOOR = { minThroughput: "64KB", throughputWindow: "1s" };

  /** An upstream serving `blob` under every repository: HEADs at once, GETs as `serve` says per repository. */
  async function upstreamOf(blob: Buffer, serve: (repo: string, res: ServerResponse, range: string | undefined) => void) {
    const up = await fake();
    up.on(/\/blobs\//, (req, res) => {
      if (req.method === "HEAD") return void res.writeHead(200, { "content-length": String(blob.byteLength) }).end();
      serve(/^\/v2\/(.+)\/blobs\//.exec(req.url ?? "")?.[1] ?? "", res, req.headers.range);
    });
    return up;
  }

  it("a client of another repository leaves a download trickling for one repository and gets the blob from its own, within a bound", async () => {
    const blob = randomBytes(400_000);
    const digest = digestOf(blob);
    // Hostile for library/slow only: it trickles there, every time; library/fast is served at once.
    const up = await upstreamOf(blob, (repo, res) => (repo === "library/slow" ? trickleBlob(res, blob) : void res.writeHead(200, { "content-length": String(blob.byteLength) }).end(blob)));
    const { mirror, storage, logs } = await mirrorFor(up.url, { upstream: FLOOR });
    const trickling = new AbortController();
    const stuck = fetch(`${mirror.url}/v2/library/slow/blobs/${digest}`, { signal: trickling.signal }).then((r) => r.arrayBuffer()).catch(() => undefined);
    await eventually(async () => up.count("GET", `library/slow/blobs/${digest}`), (n) => n > 0);
    await new Promise((r) => setTimeout(r, 300)); // the trickle has begun; the next client joins it
    const other = within(await get(`${mirror.url}/v2/library/fast/blobs/${digest}`), BOUND_MS);
    trickling.abort();
    await stuck;
    expect(other.error).toBeUndefined();
    expect(other.status).toBe(200);
    expect(other.body.equals(blob)).toBe(true);
    // Its patience (1 s) and its own download; without the hedge it waited for the floor to cut the
    // trickle and for every resume of it to trickle too (over 10 s).
    expect(logs.join("")).toContain("it continues from its own repository");
    expect(up.count("GET", `library/fast/blobs/${digest}`)).toBe(1);
    expect(await eventually(() => published(storage), (p) => p.length > 0)).toEqual([digest.slice(7)]);
  });

  it("healthy: a client of another repository joins the download in progress, one GET for both", async () => {
    const blob = randomBytes(600_000);
    const digest = digestOf(blob);
    // 100 KB every 150 ms: about 650 KB/s, well above the floor, and still arriving when the second client asks.
    const up = await upstreamOf(blob, (_repo, res) => {
      res.writeHead(200, { "content-length": String(blob.byteLength) });
      let at = 0;
      const t = setInterval(() => {
        res.write(blob.subarray(at, at + 100_000));
        at += 100_000;
        if (at >= blob.byteLength) {
          clearInterval(t);
          res.end();
        }
      }, 150);
      res.on("close", () => clearInterval(t));
    });
    const { mirror, logs } = await mirrorFor(up.url, { upstream: FLOOR });
    const first = get(`${mirror.url}/v2/library/a/blobs/${digest}`);
    await eventually(async () => up.count("GET", digest), (n) => n > 0);
    await new Promise((r) => setTimeout(r, 200));
    const second = await get(`${mirror.url}/v2/library/b/blobs/${digest}`);
    const one = await first;
    for (const r of [one, second]) {
      expect(within(r, BOUND_MS).error).toBeUndefined();
      expect(r.body.equals(blob)).toBe(true);
    }
    // Counted at the upstream: the first repository's GET only; the second asked a HEAD (is it there?).
    expect(up.count("GET", digest)).toBe(1);
    expect(up.count("HEAD", `library/b/blobs/${digest}`)).toBe(1);
    expect(logs.join("")).not.toContain("it continues from its own repository");
  });

  it("the other repository's download fails mid-body: the joiner finishes from its own repository", async () => {
    const blob = randomBytes(400_000);
    const digest = digestOf(blob);
    // library/broken sends a quarter and drops the connection, and refuses every resume.
    const up = await upstreamOf(blob, (repo, res, range) => {
      if (repo !== "library/broken") return void res.writeHead(200, { "content-length": String(blob.byteLength) }).end(blob);
      if (range) return void res.writeHead(500).end();
      res.writeHead(200, { "content-length": String(blob.byteLength) });
      res.write(blob.subarray(0, 100_000));
      setTimeout(() => res.destroy(), 500);
    });
    const { mirror } = await mirrorFor(up.url, { upstream: FLOOR });
    const broken = get(`${mirror.url}/v2/library/broken/blobs/${digest}`);
    await eventually(async () => up.count("GET", `library/broken/blobs/${digest}`), (n) => n > 0);
    await new Promise((r) => setTimeout(r, 200));
    const other = within(await get(`${mirror.url}/v2/library/good/blobs/${digest}`), BOUND_MS);
    expect(other.error).toBeUndefined();
    expect(other.body.equals(blob)).toBe(true);
    // The broken repository's client is cut off, never handed a complete body.
    const b = await broken;
    expect(b.error ?? (b.body.byteLength < blob.byteLength ? new Error("short") : undefined)).toBeDefined();
    expect(up.count("GET", `library/good/blobs/${digest}`)).toBe(1);
  });

  it("the other repository's download trickled other bytes: the joiner is cut off, never handed a complete wrong body; its own copy is cached", async () => {
    const blob = randomBytes(400_000);
    const digest = digestOf(blob);
    const lie = randomBytes(blob.byteLength);
    const up = await upstreamOf(blob, (repo, res) => (repo === "library/liar" ? trickleBlob(res, lie) : void res.writeHead(200, { "content-length": String(blob.byteLength) }).end(blob)));
    const { mirror, storage } = await mirrorFor(up.url, { upstream: FLOOR });
    const lying = new AbortController();
    const stuck = fetch(`${mirror.url}/v2/library/liar/blobs/${digest}`, { signal: lying.signal }).then((r) => r.arrayBuffer()).catch(() => undefined);
    await eventually(async () => up.count("GET", `library/liar/blobs/${digest}`), (n) => n > 0);
    await new Promise((r) => setTimeout(r, 300));
    const other = within(await get(`${mirror.url}/v2/library/honest/blobs/${digest}`), BOUND_MS);
    lying.abort();
    await stuck;
    // The bytes it already had came from the liar: the rest cannot make them right.
    expect(other.error ?? (other.body.byteLength < blob.byteLength ? new Error("short") : undefined)).toBeDefined();
    // Its own repository's download went on and was verified: the next pull is a hit.
    expect(await eventually(() => published(storage), (p) => p.length > 0)).toEqual([digest.slice(7)]);
    const again = within(await get(`${mirror.url}/v2/library/honest/blobs/${digest}`));
    expect([again.headers["x-mirror-cache"], again.body.equals(blob)]).toEqual(["HIT", true]);
    expect(up.count("GET", `library/honest/blobs/${digest}`)).toBe(1);
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
    expect(within(await get(`${mirror.url}/v2/library/x/manifests/1`)).status).toBe(200);
    const res = within(await get(`${mirror.url}/v2/library/x/blobs/${layer}`), BOUND_MS);
    if (res.status === 200) {
      // Headers went out first: the size came from the manifest, and the body was cut off.
      expect(res.headers["content-length"]).toBe("100000");
      expect(res.error ?? (res.body.byteLength < 100_000 ? new Error("short") : undefined)).toBeDefined();
    } else {
      // The excess arrived before the headers went out: a clear upstream fault instead.
      expect(res.status).toBe(502);
      expect(res.body.toString()).toContain("more than the 100000 bytes expected");
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
    within(await get(`${mirror.url}/v2/library/x/manifests/1`));
    const res = within(await get(`${mirror.url}/v2/library/x/blobs/${digest}`), BOUND_MS);
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.body.toString()).toContain("the manifest says 50000");
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
    const res = within(await get(`${mirror.url}/v2/library/x/blobs/${digest}`), BOUND_MS);
    sampling = false;
    await sampler;
    expect(res.error ?? (res.status !== 200 ? new Error(String(res.status)) : undefined)).toBeDefined();
    expect(res.body.byteLength).toBeLessThanOrEqual(1024 * 1024);
    expect(peak).toBeLessThanOrEqual(1024 * 1024);
    await new Promise((r) => setTimeout(r, 200));
    expect(state.closed).toBe(true);
    expect(await published(storage)).toEqual([]);
    expect(await readdir(join(storage, "ingest"))).toEqual([]);
  });
});
