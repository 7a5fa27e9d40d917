import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { digestOf } from "../oci/digest.js";
import { createLogger } from "../observe/log.js";
import type { BlobFill, FillReader } from "./fill.js";
import { cachedReader, hedgedReader, type OwnSource } from "./hedge.js";
import { type Batch, batchOf } from "./slabs.js";

const log = createLogger("silent");
const floor = { bytesPerSecond: 64 * 1024, windowMs: 200 };

/** A reader over `bytes`: `upTo` of them at once, then nothing more until the signal aborts (or it fails). */
function stallingReader(bytes: Buffer, upTo: number, then: "stall" | "fail" = "stall"): FillReader {
  return {
    async *read(start: number, end: number | undefined, signal: AbortSignal): AsyncGenerator<Batch> {
      const stop = Math.min(upTo, end === undefined ? bytes.byteLength : end + 1);
      for (let at = start; at < stop; at += 1000) yield batchOf([bytes.subarray(at, Math.min(at + 1000, stop))], []);
      if (upTo >= bytes.byteLength) return;
      if (then === "fail") throw new Error("the other repository's upstream went away");
      await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
    },
    release: () => undefined,
  };
}

function sharedFill(reader: FillReader, size: number): BlobFill {
  return { reader: () => reader, isVerified: false, size } as unknown as BlobFill;
}

async function readAll(r: FillReader, start = 0, end?: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const batch of r.read(start, end, new AbortController().signal)) {
    parts.push(...batch.buffers.map((b) => Buffer.from(b)));
    batch.release();
  }
  return Buffer.concat(parts);
}

describe("a client following another repository's download", () => {
  const blob = randomBytes(50_000);
  const digest = digestOf(blob);

  it("keeps to it while it delivers: its own source is never asked", async () => {
    let asked = 0;
    const r = hedgedReader({ shared: sharedFill(stallingReader(blob, blob.byteLength), blob.byteLength), own: async () => (asked++, { reader: stallingReader(blob, blob.byteLength), size: blob.byteLength }), digest, floor, log });
    expect((await readAll(r)).equals(blob)).toBe(true);
    expect(asked).toBe(0);
  });

  it("leaves it when it stalls below the floor and gets the rest from its own source", async () => {
    const own: OwnSource = { reader: stallingReader(blob, blob.byteLength), size: blob.byteLength };
    const r = hedgedReader({ shared: sharedFill(stallingReader(blob, 10_000), blob.byteLength), own: async () => own, digest, floor, log });
    const started = Date.now();
    expect((await readAll(r)).equals(blob)).toBe(true);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("leaves it when it fails", async () => {
    const own: OwnSource = { reader: stallingReader(blob, blob.byteLength), size: blob.byteLength };
    const r = hedgedReader({ shared: sharedFill(stallingReader(blob, 20_000, "fail"), blob.byteLength), own: async () => own, digest, floor, log });
    expect((await readAll(r)).equals(blob)).toBe(true);
  });

  it("a range: only the bytes asked for, wherever they came from", async () => {
    const own: OwnSource = { reader: stallingReader(blob, blob.byteLength), size: blob.byteLength };
    const r = hedgedReader({ shared: sharedFill(stallingReader(blob, 15_000), blob.byteLength), own: async () => own, digest, floor, log });
    expect((await readAll(r, 5_000, 39_999)).equals(blob.subarray(5_000, 40_000))).toBe(true);
  });

  it("cuts the body off when the bytes it already sent differ from its own source's", async () => {
    const other = Buffer.from(blob);
    other[10] = (other[10] as number) ^ 0xff;
    const own: OwnSource = { reader: stallingReader(blob, blob.byteLength), size: blob.byteLength };
    const r = hedgedReader({ shared: sharedFill(stallingReader(other, 10_000), blob.byteLength), own: async () => own, digest, floor, log });
    await expect(readAll(r)).rejects.toThrow(/differ from this repository's/);
  });

  it("cuts the body off when its own source has another size than was announced", async () => {
    const own: OwnSource = { reader: stallingReader(blob, blob.byteLength), size: blob.byteLength };
    const r = hedgedReader({ shared: sharedFill(stallingReader(blob, 10_000), blob.byteLength + 1), own: async () => own, digest, floor, log });
    await expect(readAll(r)).rejects.toThrow(/announced as/);
  });
});

describe("cachedReader", () => {
  it("reads a published blob whole or by range", async () => {
    const blob = randomBytes(700_000);
    let closed = false;
    const open = {
      size: blob.byteLength,
      readInto: async (buffer: Buffer, position: number) => blob.copy(buffer, 0, position, Math.min(blob.byteLength, position + buffer.byteLength)),
      close: async () => void (closed = true),
    };
    const r = cachedReader(open);
    expect((await readAll(r)).equals(blob)).toBe(true);
    expect((await readAll(r, 300_000, 599_999)).equals(blob.subarray(300_000, 600_000))).toBe(true);
    r.release();
    await new Promise((resolve) => setImmediate(resolve));
    expect(closed).toBe(true);
  });
});
