import { createHash, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { parseDigest } from "../oci/digest.js";
import type { BlobStore, OpenBlob, PartialBlob, PartialReads } from "../store/store.js";
import { followReader } from "./follow.js";
import type { Announcement } from "./progress.js";

const blob = randomBytes(700 * 1024);
const digest = parseDigest(`sha256:${createHash("sha256").update(blob).digest("hex")}`);

/** Another replica's download as the store shows it: bytes under locators, and a published copy once there is one. */
function store(files: Map<string, Buffer>, published: { bytes?: Buffer }): BlobStore & PartialReads {
  const reader = (bytes: Buffer) => ({
    readInto: async (buf: Buffer, pos: number) => bytes.copy(buf, 0, pos, Math.min(bytes.byteLength, pos + buf.byteLength)),
    close: async () => undefined,
  });
  return {
    statBlob: async () => published.bytes?.byteLength,
    openBlob: async (): Promise<OpenBlob | undefined> => (published.bytes ? { size: published.bytes.byteLength, ...reader(published.bytes) } : undefined),
    createWriter: () => Promise.reject(new Error("not in this test")),
    openPartial: async (_d, locator): Promise<PartialBlob | undefined> => {
      const bytes = files.get(locator);
      return bytes ? reader(bytes) : undefined;
    },
  };
}

async function drain(gen: AsyncGenerator<{ buffers: Buffer[]; release(): void }>): Promise<{ bytes: Buffer; error?: unknown }> {
  const parts: Buffer[] = [];
  try {
    for await (const b of gen) {
      parts.push(Buffer.concat(b.buffers));
      b.release();
    }
    return { bytes: Buffer.concat(parts) };
  } catch (error) {
    return { bytes: Buffer.concat(parts), error };
  }
}

describe("following another replica's download", () => {
  it("streams the bytes below each announced mark, follows a takeover to its new file, and ends verified", async () => {
    const files = new Map([["a~1", blob.subarray(0, 300 * 1024)]]);
    const steps: Announcement[] = [
      { state: "running", locator: "a~1", mark: 100 * 1024, size: blob.byteLength },
      { state: "running", locator: "a~1", mark: 300 * 1024, size: blob.byteLength },
      // a died; b took over from its bytes and has them all now.
      { state: "running", locator: "b~1", mark: blob.byteLength, size: blob.byteLength },
    ];
    let i = 0;
    const r = followReader({
      store: store(files, {}),
      digest,
      source: "docker.io|x",
      announcement: async () => {
        const a = steps[Math.min(i++, steps.length - 1)];
        if (a?.state === "running" && a.locator === "b~1") files.set("b~1", blob);
        return a;
      },
      local: () => undefined,
      pollMs: 1,
      stallMs: 5_000,
      size: blob.byteLength,
    });
    const out = await drain(r.read(0, undefined, new AbortController().signal));
    expect(out.error).toBeUndefined();
    expect(out.bytes.equals(blob)).toBe(true);
  });

  it("serves a range, and reads the rest from the store once the blob is published", async () => {
    const published: { bytes?: Buffer } = {};
    const files = new Map([["a~1", blob]]);
    let calls = 0;
    const r = followReader({
      store: store(files, published),
      digest,
      source: "docker.io|x",
      announcement: async () => {
        if (++calls < 3) return { state: "running", locator: "a~1", mark: 200 * 1024, size: blob.byteLength };
        published.bytes = blob;
        files.delete("a~1");
        return { state: "published" };
      },
      local: () => undefined,
      pollMs: 1,
      stallMs: 5_000,
      size: blob.byteLength,
    });
    const out = await drain(r.read(100_000, 600_000, new AbortController().signal));
    expect(out.bytes.equals(blob.subarray(100_000, 600_001))).toBe(true);
  });

  it("finds the blob in the store when the announcement stopped moving (a holder that lost Redis)", async () => {
    const published: { bytes?: Buffer } = {};
    const started = Date.now();
    const r = followReader({
      store: store(new Map([["a~1", blob]]), published),
      digest,
      source: "docker.io|x",
      // Stuck at 100 KiB: the holder went on, published, and could announce none of it.
      announcement: async () => {
        if (Date.now() - started > 300) published.bytes = blob;
        return { state: "running", locator: "a~1", mark: 100 * 1024, size: blob.byteLength };
      },
      local: () => undefined,
      pollMs: 20,
      stallMs: 10_000,
      size: blob.byteLength,
    });
    const out = await drain(r.read(0, undefined, new AbortController().signal));
    expect(out.error).toBeUndefined();
    expect(out.bytes.equals(blob)).toBe(true);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("never hands over the last byte of content that does not match the digest", async () => {
    const bytes = Buffer.concat([blob.subarray(0, blob.byteLength - 1), Buffer.from([blob[blob.byteLength - 1]! ^ 1])]);
    const r = followReader({
      store: store(new Map([["a~1", bytes]]), {}),
      digest,
      source: "docker.io|x",
      announcement: async () => ({ state: "running", locator: "a~1", mark: bytes.byteLength, size: bytes.byteLength }),
      local: () => undefined,
      pollMs: 1,
      stallMs: 5_000,
      size: bytes.byteLength,
    });
    const out = await drain(r.read(0, undefined, new AbortController().signal));
    expect(String(out.error)).toMatch(/does not match its digest/);
    expect(out.bytes.byteLength).toBeLessThan(bytes.byteLength);
  });

  it("answers the holder's failure for the same repository, and gives up on a holder that stopped moving", async () => {
    const files = new Map([["a~1", blob]]);
    const failing = followReader({
      store: store(files, {}),
      digest,
      source: "docker.io|x",
      announcement: async () => ({ state: "failed", failure: { source: "docker.io|x", code: "DIGEST_INVALID", status: 502, message: "upstream lied" } }),
      local: () => undefined,
      pollMs: 1,
      stallMs: 5_000,
      size: blob.byteLength,
    });
    expect(String((await drain(failing.read(0, undefined, new AbortController().signal))).error)).toMatch(/upstream lied/);
    const started = Date.now();
    const stalled = followReader({
      store: store(files, {}),
      digest,
      source: "docker.io|x",
      announcement: async () => ({ state: "running", locator: "a~1", mark: 1000, size: blob.byteLength }),
      local: () => undefined,
      pollMs: 5,
      stallMs: 200,
      size: blob.byteLength,
    });
    const out = await drain(stalled.read(0, undefined, new AbortController().signal));
    expect(String(out.error)).toMatch(/made no progress/);
    expect(out.bytes.byteLength).toBe(1000);
    expect(Date.now() - started).toBeLessThan(3_000);
  });
});
