// The blob throughput floor: an upstream whose blob body trickles (headers at once, then a byte at a
// time) is cut off at upstream.minThroughput and the download resumed with a Range request, or
// failed once the resumes are spent. Without the floor such a body held every client of the blob
// for as long as the upstream cared to trickle (each byte resets undici's idle timer).
import { randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import type { ServerResponse } from "node:http";
import { describe, expect, it } from "vitest";
import { eventually } from "../support/eventually.js";
import { cleanUpAfterEach, digestOf, fake, get, mirrorFor, published, within } from "../support/fault-harness.js";

cleanUpAfterEach();

// A floor of 64 KiB/s judged over 1 s; a trickle of 10 bytes/s is far below it.
const FLOOR = { minThroughput: "64KB", throughputWindow: "1s" };
// What a client may wait per cut-off: the window, the resume backoff, and generous slack for a
// loaded 2-core CI machine (without the floor these waits are unbounded).
const PER_ATTEMPT_MS = 10_000;

/** Send a byte every 100 ms from `at` until the connection goes away. */
function trickle(res: ServerResponse, blob: Buffer, at: number): void {
  let pos = at;
  const timer = setInterval(() => {
    if (res.destroyed || pos >= blob.byteLength) return clearInterval(timer);
    res.write(blob.subarray(pos, pos + 1));
    pos++;
  }, 100);
  res.on("close", () => clearInterval(timer));
}

describe("blob throughput floor", () => {
  it("cuts a trickling body off and resumes it with a Range request: the client gets every byte, the blob is cached", async () => {
    const up = await fake();
    const blob = randomBytes(1_000_000);
    const digest = digestOf(blob);
    up.on(/\/blobs\//, (req, res) => {
      const range = /bytes=(\d+)-/.exec(req.headers.range ?? "");
      if (!range) {
        res.setHeader("content-length", String(blob.byteLength));
        // A healthy start, then a trickle.
        res.write(blob.subarray(0, 200_000), () => trickle(res, blob, 200_000));
        return;
      }
      const from = Number(range[1]);
      res.statusCode = 206;
      res.setHeader("content-range", `bytes ${from}-${blob.byteLength - 1}/${blob.byteLength}`);
      res.setHeader("content-length", String(blob.byteLength - from));
      res.end(blob.subarray(from));
    });
    const { mirror, storage, logs } = await mirrorFor(up.url, { upstream: FLOOR });
    const started = Date.now();
    const res = await get(`${mirror.url}/v2/library/x/blobs/${digest}`);
    const waited = Date.now() - started;
    expect(res.error).toBeUndefined();
    expect(res.status).toBe(200);
    expect(res.body.equals(blob)).toBe(true);
    expect(waited).toBeLessThan(PER_ATTEMPT_MS);
    // Counted at the upstream: the first GET, then one resume from past the healthy start.
    const gets = up.seen.filter((r) => r.method === "GET" && r.url.includes(digest));
    expect(gets).toHaveLength(2);
    expect(Number(/bytes=(\d+)-/.exec(gets[1]?.headers.range ?? "")?.[1])).toBeGreaterThanOrEqual(200_000);
    expect(logs.join("")).toContain("upstream.minThroughput");
    expect(await eventually(() => published(storage), (p) => p.length > 0)).toEqual([digest.slice(7)]);
  });

  it("fails a blob whose upstream only ever trickles, within a bound: the body is cut off, nothing is cached", async () => {
    const up = await fake();
    const blob = randomBytes(500_000);
    const digest = digestOf(blob);
    up.on(/\/blobs\//, (req, res) => {
      const range = /bytes=(\d+)-/.exec(req.headers.range ?? "");
      const from = range ? Number(range[1]) : 0;
      if (range) {
        res.statusCode = 206;
        res.setHeader("content-range", `bytes ${from}-${blob.byteLength - 1}/${blob.byteLength}`);
      }
      res.setHeader("content-length", String(blob.byteLength - from));
      // Headers at once, then a byte at a time from the very first: even that start is retried.
      res.flushHeaders();
      trickle(res, blob, from);
    });
    const { mirror, storage } = await mirrorFor(up.url, { upstream: { ...FLOOR, maxResumes: 1 } });
    const started = Date.now();
    const res = await get(`${mirror.url}/v2/library/x/blobs/${digest}`);
    const waited = Date.now() - started;
    // Headers went out with the announced length; the cut-off body is never a complete one.
    expect(res.error ?? (res.body.byteLength < blob.byteLength ? new Error("short") : undefined)).toBeDefined();
    expect(waited).toBeLessThan(2 * PER_ATTEMPT_MS);
    expect(up.count("GET", digest)).toBe(2);
    expect(await published(storage)).toEqual([]);
    expect(await eventually(() => readdir(join(storage, "ingest")), (entries) => entries.length === 0)).toEqual([]);
    // Not cached, and the failure is not sticky: the next request asks upstream again.
    within(await get(`${mirror.url}/v2/library/x/blobs/${digest}`), 2 * PER_ATTEMPT_MS);
    expect(up.count("GET", digest)).toBe(4);
  });
});
