// Blob downloads from upstreams that misbehave: lie about digests, drop connections mid-blob,
// ignore Range, stall, or meet a full disk. Nothing wrong is cached and clients never get a
// truncated body as a success (a full or read-only disk: faults-storage.test.ts).
import { randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { request } from "undici";
import { describe, expect, it } from "vitest";
import { eventually } from "../support/eventually.js";
import { CLIENT_BOUND_MS, cleanUpAfterEach, digestOf, fake, get, MANIFEST_TYPE, mirrorFor, published, timedWithin, within } from "../support/fault-harness.js";
import { removeTempDir } from "../support/scratch.js";

cleanUpAfterEach();

describe("blobs from a misbehaving upstream", () => {
  it("refuses a blob whose bytes do not match its digest: the client gets an error, nothing is cached", async () => {
    const up = await fake();
    const claimed = digestOf(Buffer.from("what the client asked for"));
    const lie = randomBytes(300_000);
    up.on(/\/blobs\//, (_req, res) => {
      res.setHeader("content-length", String(lie.byteLength));
      res.end(lie);
    });
    const { mirror, storage } = await mirrorFor(up.url);
    const res = within(await get(`${mirror.url}/v2/library/x/blobs/${claimed}`));
    // The last byte is held back until verification, so the client sees a cut-off body, never a whole one.
    expect(res.error ?? (res.body.byteLength < lie.byteLength ? new Error("short") : undefined)).toBeDefined();
    expect(await published(storage)).toEqual([]);
    expect(await readdir(join(storage, "ingest"))).toEqual([]);
    // Not cached: the next request asks upstream again.
    within(await get(`${mirror.url}/v2/library/x/blobs/${claimed}`));
    expect(up.count("GET", claimed)).toBe(2);
  });

  it("resumes with a Range request when the upstream connection drops mid-blob", async () => {
    const up = await fake();
    const blob = randomBytes(2_000_000);
    const digest = digestOf(blob);
    let calls = 0;
    up.on(/\/blobs\//, (req, res) => {
      calls++;
      const range = /bytes=(\d+)-/.exec(req.headers.range ?? "");
      if (!range) {
        res.setHeader("content-length", String(blob.byteLength));
        res.write(blob.subarray(0, 700_000), () => res.destroy());
        return;
      }
      const from = Number(range[1]);
      res.statusCode = 206;
      res.setHeader("content-range", `bytes ${from}-${blob.byteLength - 1}/${blob.byteLength}`);
      res.setHeader("content-length", String(blob.byteLength - from));
      res.end(blob.subarray(from));
    });
    const { mirror, storage } = await mirrorFor(up.url);
    const res = within(await get(`${mirror.url}/v2/library/x/blobs/${digest}`));
    expect(res.error).toBeUndefined();
    expect(res.body.equals(blob)).toBe(true);
    expect(calls).toBe(2);
    const resume = up.seen.filter((r) => r.headers.range)[0];
    expect(Number(/bytes=(\d+)-/.exec(resume?.headers.range ?? "")?.[1])).toBeGreaterThan(0);
    // The client has every byte once they are verified; publication (fsync, rename) follows.
    expect(await eventually(() => published(storage), (p) => p.length > 0)).toEqual([digest.slice(7)]);
  });

  it("starts over when the upstream answers a resume with the whole body (200)", async () => {
    const up = await fake();
    const blob = randomBytes(1_000_000);
    const digest = digestOf(blob);
    let first = true;
    up.on(/\/blobs\//, (_req, res) => {
      res.setHeader("content-length", String(blob.byteLength));
      if (first) {
        first = false;
        res.write(blob.subarray(0, 300_000), () => res.destroy());
        return;
      }
      res.end(blob);
    });
    const { mirror } = await mirrorFor(up.url);
    const res = within(await get(`${mirror.url}/v2/library/x/blobs/${digest}`));
    expect(res.body.equals(blob)).toBe(true);
  });

  it("never hands a truncated body as a success when the upstream keeps dying", async () => {
    const up = await fake();
    const blob = randomBytes(1_000_000);
    const digest = digestOf(blob);
    up.on(/\/blobs\//, (_req, res) => {
      res.setHeader("content-length", String(blob.byteLength));
      res.write(blob.subarray(0, 100_000), () => res.destroy());
    });
    const { mirror, storage } = await mirrorFor(up.url, { upstream: { maxResumes: 2 } });
    const res = within(await get(`${mirror.url}/v2/library/x/blobs/${digest}`));
    expect(res.error).toBeDefined();
    expect(up.count("GET", digest)).toBe(3);
    expect(await published(storage)).toEqual([]);
    expect(await readdir(join(storage, "ingest"))).toEqual([]);
  });

  it("streams to every waiter as bytes arrive, before the download has finished", async () => {
    const up = await fake();
    const blob = randomBytes(1_500_000);
    const digest = digestOf(blob);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    up.on(/\/blobs\//, async (_req, res) => {
      res.setHeader("content-length", String(blob.byteLength));
      res.write(blob.subarray(0, 1_000_000));
      await held;
      res.end(blob.subarray(1_000_000));
    });
    const { mirror } = await mirrorFor(up.url);
    const asked = Date.now();
    const clients = await Promise.all([1, 2, 3].map(() => request(`${mirror.url}/v2/library/x/blobs/${digest}`)));
    // Each client reads the first half while upstream is still holding the second half back.
    const firstHalves = await Promise.all(
      clients.map(async (c) => {
        let got = 0;
        const chunks: Buffer[] = [];
        for await (const chunk of c.body) {
          chunks.push(chunk as Buffer);
          got += (chunk as Buffer).byteLength;
          if (got >= 900_000) break;
        }
        return got;
      }),
    );
    // While the upstream holds the rest back, the first halves arrive at once.
    expect(Date.now() - asked).toBeLessThan(CLIENT_BOUND_MS);
    for (const got of firstHalves) expect(got).toBeGreaterThanOrEqual(900_000);
    expect(up.count("GET", digest)).toBe(1);
    release();
    const again = within(await get(`${mirror.url}/v2/library/x/blobs/${digest}`));
    expect(again.body.equals(blob)).toBe(true);
  });

  it("discards a download nobody waits for once the orphan timeout passes", async () => {
    const up = await fake();
    const blob = randomBytes(500_000);
    const digest = digestOf(blob);
    up.on(/\/blobs\//, (_req, res) => {
      res.setHeader("content-length", String(blob.byteLength));
      res.write(blob.subarray(0, 100_000)); // then stall forever
    });
    const { mirror, storage } = await mirrorFor(up.url, { fill: { orphanTimeout: "200ms" } });
    const controller = new AbortController();
    // The headers come at once, though the body stalls.
    const res = await timedWithin(request(`${mirror.url}/v2/library/x/blobs/${digest}`, { signal: controller.signal }));
    controller.abort();
    res.body.destroy();
    await new Promise((r) => setTimeout(r, 700));
    expect(await readdir(join(storage, "ingest"))).toEqual([]);
    expect(await published(storage)).toEqual([]);
  });
});

describe("regressions found in review", () => {
  it("a dropped connection whose first resume also fails still completes, and does not trip the breaker", async () => {
    const up = await fake();
    const blob = randomBytes(2_000_000);
    const digest = digestOf(blob);
    let calls = 0;
    up.on(/\/blobs\//, (req, res) => {
      calls++;
      if (calls === 1) {
        res.setHeader("content-length", String(blob.byteLength));
        res.write(blob.subarray(0, 600_000), () => res.destroy());
        return;
      }
      if (calls === 2) return void req.socket.destroy();
      const from = Number(/bytes=(\d+)-/.exec(req.headers.range ?? "")?.[1] ?? 0);
      res.statusCode = 206;
      res.setHeader("content-range", `bytes ${from}-${blob.byteLength - 1}/${blob.byteLength}`);
      res.setHeader("content-length", String(blob.byteLength - from));
      res.end(blob.subarray(from));
    });
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_TYPE, config: {}, layers: [] }));
    up.on(/\/manifests\//, (req, res) => {
      res.setHeader("content-type", MANIFEST_TYPE);
      res.setHeader("docker-content-digest", digestOf(manifest));
      res.end(req.method === "HEAD" ? undefined : manifest);
    });
    const { mirror } = await mirrorFor(up.url);
    const res = within(await get(`${mirror.url}/v2/library/x/blobs/${digest}`));
    expect(res.error).toBeUndefined();
    expect(res.body.equals(blob)).toBe(true);
    expect(calls).toBe(3);
    // The registry is healthy: a request right after is not refused by an open circuit.
    expect(within(await get(`${mirror.url}/v2/library/x/manifests/1`)).status).toBe(200);
  });

  it("completes a download whose connection dropped after the last byte (416 on resume)", async () => {
    const up = await fake();
    const blob = randomBytes(300_000);
    const digest = digestOf(blob);
    up.on(/\/blobs\//, (req, res) => {
      if (req.headers.range) {
        res.statusCode = 416;
        res.setHeader("content-range", `bytes */${blob.byteLength}`);
        res.end();
        return;
      }
      // Chunked, no length: every byte sent, then the connection dies before the final chunk.
      res.write(blob, () => res.destroy());
    });
    const { mirror } = await mirrorFor(up.url);
    const res = within(await get(`${mirror.url}/v2/library/x/blobs/${digest}`));
    expect(res.error).toBeUndefined();
    expect(res.body.equals(blob)).toBe(true);
  });

  it("serves a cached tag when the token service is down (5xx), not UNAUTHORIZED", async () => {
    const up = await fake();
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_TYPE, config: {}, layers: [] }));
    let authDown = false;
    up.on(/\/manifests\//, (req, res) => {
      if (req.headers.authorization !== "Bearer t") {
        res.statusCode = 401;
        res.setHeader("www-authenticate", `Bearer realm="${up.url}/token",service="fake"`);
        res.end();
        return;
      }
      res.setHeader("content-type", MANIFEST_TYPE);
      res.setHeader("docker-content-digest", digestOf(body));
      res.end(req.method === "HEAD" ? undefined : body);
    });
    up.on(/^\/token/, (_req, res) => {
      if (authDown) {
        res.statusCode = 503;
        res.end("down");
        return;
      }
      res.setHeader("content-type", "application/json");
      // Expires at once, so the next pull needs a new token.
      res.end(JSON.stringify({ token: "t", expires_in: 1 }));
    });
    const { mirror } = await mirrorFor(up.url, { cache: { tagFreshness: "0s" } });
    expect((await get(`${mirror.url}/v2/library/x/manifests/1`)).status).toBe(200);
    authDown = true;
    const res = within(await get(`${mirror.url}/v2/library/x/manifests/1`));
    expect([res.status, res.headers["x-mirror-cache"]]).toEqual([200, "STALE"]);
  });

  it("keeps working after its storage folder was emptied underneath it", async () => {
    const up = await fake();
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_TYPE, config: {}, layers: [] }));
    up.on(/\/manifests\//, (req, res) => {
      res.setHeader("content-type", MANIFEST_TYPE);
      res.setHeader("docker-content-digest", digestOf(body));
      res.end(req.method === "HEAD" ? undefined : body);
    });
    const { mirror, storage } = await mirrorFor(up.url);
    for (const entry of await readdir(storage)) await removeTempDir(join(storage, entry));
    const res = within(await get(`${mirror.url}/v2/library/x/manifests/1`));
    expect(res.status).toBe(200);
    expect(res.body.equals(body)).toBe(true);
  });

  it("does not list made-up repository names that only asked for a cached digest", async () => {
    const up = await fake();
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_TYPE, config: {}, layers: [] }));
    up.on(/\/library\/real\/manifests\//, (req, res) => {
      res.setHeader("content-type", MANIFEST_TYPE);
      res.setHeader("docker-content-digest", digestOf(body));
      res.end(req.method === "HEAD" ? undefined : body);
    });
    const { mirror } = await mirrorFor(up.url);
    await get(`${mirror.url}/v2/library/real/manifests/1`);
    // Cached, but upstream does not know that name: not served under it (issue 7), and not listed.
    expect(within(await get(`${mirror.url}/v2/attacker/zz1/manifests/${digestOf(body)}`)).status).toBe(404);
    const catalog = JSON.parse((await get(`${mirror.url}/v2/_catalog`)).body.toString()) as { repositories: string[] };
    expect(catalog.repositories).toEqual(["library/real"]);
  });

  it("does not fail a request because a download it joined was for a wrong name", async () => {
    const up = await fake();
    const blob = randomBytes(100_000);
    const digest = digestOf(blob);
    up.on(/\/library\/bogus\/blobs\//, async (_req, res) => {
      await new Promise((r) => setTimeout(r, 200));
      res.statusCode = 404;
      res.end('{"errors":[{"code":"BLOB_UNKNOWN","message":"no"}]}');
    });
    up.on(/\/library\/real\/blobs\//, (_req, res) => {
      res.setHeader("content-length", String(blob.byteLength));
      res.end(blob);
    });
    const { mirror } = await mirrorFor(up.url);
    const bogus = get(`${mirror.url}/v2/library/bogus/blobs/${digest}`);
    await new Promise((r) => setTimeout(r, 50));
    const real = within(await get(`${mirror.url}/v2/library/real/blobs/${digest}`));
    expect(within(await bogus).status).toBe(404);
    expect(real.status).toBe(200);
    expect(real.body.equals(blob)).toBe(true);
  });
});
