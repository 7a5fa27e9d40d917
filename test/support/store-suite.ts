// The one test suite every storage backend passes (as distribution's storage driver suite): what a
// store promises the proxy — publish visibility, cancel, concurrent writers, eviction, readAt.
import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { type Digest, digestOf } from "../../src/oci/digest.js";
import { MirrorError } from "../../src/oci/errors.js";
import type { OpenedStore } from "../../src/store/open.js";
import { cacheUsage, evict, pinnedDigests } from "../../src/store/evict.js";
import { hasPartialReads, isEvictable, type BlobWriter } from "../../src/store/store.js";

export interface StoreHarness {
  /** The backend under test, opened as replica `replica` (two names: two replicas sharing it). */
  open(replica: string): Promise<OpenedStore>;
  /** What the backend holds outside published content (ingest areas, uploads in progress). */
  leftovers(): Promise<string[]>;
  /**
   * What eviction does with a blob a reader of this process holds open: keeps it ("kept"), or
   * removes it while the open reader goes on reading it to the end ("readable").
   */
  openBlobs: "kept" | "readable";
  /** Make the uses a store recorded visible to the other replicas now (a backend that batches them). */
  shareUses?(store: OpenedStore): Promise<void>;
  /** Remove everything the suite created. */
  cleanup(): Promise<void>;
}

const MANIFEST = "application/vnd.oci.image.manifest.v1+json";

/** Random content of n bytes and its digest. */
function content(n: number): { data: Buffer; d: Digest } {
  const data = randomBytes(n);
  return { data, d: digestOf(data) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function readAll(store: OpenedStore, d: Digest): Promise<Buffer | undefined> {
  const blob = await store.openBlob(d);
  if (!blob) return undefined;
  try {
    const out = Buffer.alloc(blob.size);
    for (let pos = 0; pos < blob.size; ) {
      const n = await blob.readInto(out.subarray(pos), pos);
      if (n <= 0) throw new Error(`short read at ${pos} of ${blob.size}`);
      pos += n;
    }
    return out;
  } finally {
    await blob.close();
  }
}

/** Write `data` in chunks of `chunk` bytes. */
async function writeChunks(w: BlobWriter, data: Buffer, chunk: number): Promise<void> {
  for (let at = 0; at < data.byteLength; at += chunk) await w.write([data.subarray(at, Math.min(at + chunk, data.byteLength))]);
}

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${code}`).toBeInstanceOf(MirrorError);
  expect((err as MirrorError).code).toBe(code);
}

/**
 * Run the shared suite against one backend. `blobSize` is large enough to span several of the
 * backend's parts where it has any (a multipart upload), small enough to stay fast.
 */
export function storeSuite(name: string, makeHarness: () => Promise<StoreHarness>, options: { blobSize?: number; evictable: boolean }): void {
  const size = options.blobSize ?? 3 * 1024 * 1024 + 17;
  describe(`store suite: ${name}`, () => {
    let harness: StoreHarness | undefined;
    const opened: OpenedStore[] = [];
    const h = async (): Promise<StoreHarness> => (harness ??= await makeHarness());
    const open = async (replica: string): Promise<OpenedStore> => {
      const s = await (await h()).open(replica);
      opened.push(s);
      return s;
    };
    afterAll(async () => {
      for (const s of opened) await s.close();
      await harness?.cleanup();
    });

    it("makes a blob visible only once it is verified and published, to every replica", async () => {
      const a = await open("a");
      const b = await open("b");
      const { data, d } = content(size);
      const published: number[] = [];
      a.onPublish = (n) => published.push(n);
      const w = await a.createWriter(d);
      await writeChunks(w, data, 256 * 1024);
      expect(w.written).toBe(size);
      expect(await a.statBlob(d)).toBeUndefined();
      await w.verify(size);
      // Verified is not published: a crash now must leave no visible blob.
      expect(await a.statBlob(d)).toBeUndefined();
      expect(await b.openBlob(d)).toBeUndefined();
      await w.publish();
      await w.close();
      expect(published).toEqual([size]);
      expect(await a.statBlob(d)).toBe(size);
      expect(await b.statBlob(d)).toBe(size);
      expect((await readAll(b, d))?.equals(data)).toBe(true);
      expect(await (await h()).leftovers()).toEqual([]);
    });

    it("reads back what a writer has written so far, while it is still writing", async () => {
      const a = await open("a");
      const { data, d } = content(size);
      const w = await a.createWriter(d);
      const half = Math.floor(size / 2);
      await writeChunks(w, data.subarray(0, half), 100_000);
      const buf = Buffer.alloc(4096);
      for (const pos of [0, 1, half - 4096, Math.floor(half / 3)]) {
        const n = await w.readAt(buf, pos);
        expect(n).toBe(4096);
        expect(buf.equals(data.subarray(pos, pos + 4096))).toBe(true);
      }
      // At the newest byte: only what is written, never bytes beyond it.
      expect(await w.readAt(buf, half - 10)).toBe(10);
      expect(await w.readAt(buf, half)).toBe(0);
      await writeChunks(w, data.subarray(half), 100_000);
      const tail = Buffer.alloc(100);
      expect(await w.readAt(tail, size - 100)).toBe(100);
      expect(tail.equals(data.subarray(size - 100))).toBe(true);
      await w.verify(size);
      await w.publish();
      // Still readable after publish until closed (a late reader of the fill).
      expect(await w.readAt(buf, 0)).toBe(4096);
      expect(buf.equals(data.subarray(0, 4096))).toBe(true);
      await w.close();
    });

    it("leaves nothing behind when a writer is cancelled, however far it got", async () => {
      const a = await open("a");
      for (const n of [0, 1000, size]) {
        const { data, d } = content(size);
        const w = await a.createWriter(d);
        await writeChunks(w, data.subarray(0, n), 300_000);
        await w.cancel();
        await w.cancel();
        // A fill that stopped storing still serves its readers what was written, until close.
        const back = Buffer.alloc(Math.min(n, 1000));
        expect(await w.readAt(back, 0)).toBe(back.byteLength);
        expect(back.equals(data.subarray(0, back.byteLength))).toBe(true);
        await w.close();
        expect(await a.statBlob(d)).toBeUndefined();
      }
      expect(await (await h()).leftovers()).toEqual([]);
    });

    it.each([
      ["a digest that does not match", (data: Buffer) => Buffer.concat([data.subarray(0, -1), Buffer.from([data[data.length - 1]! ^ 1])]), undefined, "DIGEST_INVALID"],
      ["fewer bytes than declared", (data: Buffer) => data.subarray(0, -1), "declared", "SIZE_INVALID"],
      ["more bytes than declared", (data: Buffer) => Buffer.concat([data, Buffer.from("x")]), "declared", "SIZE_INVALID"],
    ] as const)("refuses %s and keeps nothing of it", async (_case, corrupt, declared, code) => {
      const a = await open("a");
      const { data, d } = content(size);
      const w = await a.createWriter(d);
      await writeChunks(w, corrupt(data), 512 * 1024);
      await expectCode(w.verify(declared ? size : undefined), code);
      await w.cancel();
      await w.close();
      expect(await a.statBlob(d)).toBeUndefined();
      expect(await (await h()).leftovers()).toEqual([]);
    });

    it("hands over the hash of what was written, for the rest to be hashed by the caller", async () => {
      const a = await open("a");
      const { data, d } = content(size);
      const w = await a.createWriter(d);
      await writeChunks(w, data.subarray(0, 5000), 1000);
      const hash = w.takeHash();
      hash.update(data.subarray(5000));
      expect(hash.digest("hex")).toBe(d.hex);
      await w.cancel();
      await w.close();
      expect(await (await h()).leftovers()).toEqual([]);
    });

    it("publishes once when two replicas write the same blob at the same time", async () => {
      const a = await open("a");
      const b = await open("b");
      const { data, d } = content(size);
      const published: string[] = [];
      a.onPublish = () => published.push("a");
      b.onPublish = () => published.push("b");
      const [wa, wb] = await Promise.all([a.createWriter(d), b.createWriter(d)]);
      // Interleaved: neither writer sees the other's bytes.
      for (let at = 0; at < size; at += 400_000) {
        const piece = data.subarray(at, Math.min(at + 400_000, size));
        await Promise.all([wa.write([piece]), wb.write([piece])]);
      }
      await Promise.all([wa.verify(size), wb.verify(size)]);
      await Promise.all([wa.publish(), wb.publish()]);
      await Promise.all([wa.close(), wb.close()]);
      expect(published).toHaveLength(1);
      expect((await readAll(a, d))?.equals(data)).toBe(true);
      expect(await (await h()).leftovers()).toEqual([]);
    });

    it("lets another replica read a download in progress up to the mark its writer shared, and nothing once it is gone", async () => {
      const a = await open("a");
      const b = await open("b");
      expect(hasPartialReads(b)).toBe(true);
      if (!hasPartialReads(b)) return;
      const { data, d } = content(size);
      const w = await a.createWriter(d);
      await writeChunks(w, data, 512 * 1024);
      const mark = await (w.share as () => Promise<number>)();
      // Never past what was written; on a store with parts, at least every full part is readable.
      expect(mark).toBeLessThanOrEqual(size);
      expect(mark).toBeGreaterThan(0);
      const partial = await b.openPartial(d, w.locator as string);
      const back = Buffer.alloc(mark);
      for (let pos = 0; pos < mark; ) {
        const n = await (partial as NonNullable<typeof partial>).readInto(back.subarray(pos), pos);
        expect(n).toBeGreaterThan(0);
        pos += n;
      }
      expect(back.equals(data.subarray(0, mark))).toBe(true);
      await partial?.close();
      // A locator of another digest's download, or one that is not a locator, opens nothing.
      expect(await b.openPartial(content(10).d, w.locator as string)).toBeUndefined();
      expect(await b.openPartial(d, "../../blobs")).toBeUndefined();
      await w.cancel();
      await w.close();
      const gone = await b.openPartial(d, w.locator as string);
      expect(gone === undefined || (await gone.readInto(Buffer.alloc(10), 0)) === 0).toBe(true);
      await gone?.close();
      expect(await (await h()).leftovers()).toEqual([]);
    });

    it("keeps another replica's download when a replica starts, and clears its own leftovers", async () => {
      const a = await open("a");
      const { data, d } = content(size);
      const w = await a.createWriter(d);
      await writeChunks(w, data.subarray(0, 1000), 1000);
      // Replica b starts (and a crashed writer of its own is left from before).
      const b1 = await open("b");
      const { data: lost, d: lostDigest } = content(2000);
      const orphan = await b1.createWriter(lostDigest);
      await orphan.write([lost]);
      await open("b");
      await writeChunks(w, data.subarray(1000), 512 * 1024);
      await w.verify(size);
      await w.publish();
      await w.close();
      expect((await readAll(a, d))?.equals(data)).toBe(true);
      expect(await b1.statBlob(lostDigest)).toBeUndefined();
      // b's restart removed b's leftover; a's writer (published) left nothing either.
      expect(await (await h()).leftovers()).toEqual([]);
      await orphan.close();
    });

    it("stores manifests by digest, tags and repository links", async () => {
      const a = await open("a");
      const b = await open("b");
      const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST, n: randomBytes(8).toString("hex") }));
      const d = digestOf(body);
      await expectCode(a.putManifest(d, MANIFEST, Buffer.concat([body, Buffer.from(" ")])), "DIGEST_INVALID");
      expect(await a.getManifest(d)).toBeUndefined();
      await a.putManifest(d, MANIFEST, body);
      const got = await b.getManifest(d);
      expect(got?.mediaType).toBe(MANIFEST);
      expect(got?.body.equals(body)).toBe(true);
      const record = { digest: d.value, mediaType: MANIFEST, size: body.byteLength, checkedAt: 1234 };
      await a.putTag("registry.test", "team/app", "v1", record);
      await a.linkManifest("registry.test", "team/app", d);
      expect(await b.getTag("registry.test", "team/app", "v1")).toEqual(record);
      expect(await b.listTags("registry.test", "team/app")).toEqual(["v1"]);
      expect(await b.listRepositories()).toContainEqual({ upstream: "registry.test", name: "team/app" });
      expect(await b.linkedAt("registry.test", "team/app", "manifest", d)).toBeGreaterThan(Date.now() - 60_000);
      expect(await b.linkedAt("registry.test", "team/app", "blob", d)).toBeUndefined();
      await b.deleteTag("registry.test", "team/app", "v1");
      expect(await a.getTag("registry.test", "team/app", "v1")).toBeUndefined();
    });

    it(`${options.evictable ? "has" : "lacks"} the eviction capability (without it the server refuses cache.maxSize)`, async () => {
      expect(isEvictable(await open("a"))).toBe(options.evictable);
    });

    if (!options.evictable) return;
    it("evicts least recently used content, never what is open, in use, referenced or being written", async () => {
      const a = await open("a");
      const harness = await h();
      if (!isEvictable(a)) throw new Error("not evictable");
      const put = async (data: Buffer): Promise<Digest> => {
        const d = digestOf(data);
        const w = await a.createWriter(d);
        await w.write([data]);
        await w.verify(data.byteLength);
        await w.publish();
        await w.close();
        return d;
      };
      const layer = randomBytes(50_000);
      const layerDigest = await put(layer);
      const lone = await put(randomBytes(60_000));
      // Last uses are compared with this instant; a store may keep times to the second.
      await sleep(1_100);
      const recentSince = Date.now();
      await sleep(1_100);
      const recentData = randomBytes(70_000);
      await put(recentData);
      const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST, config: { digest: layerDigest.value }, layers: [] }));
      const manifest = digestOf(body);
      await a.putManifest(manifest, MANIFEST, body);
      await a.putTag("registry.test", "evict/me", "v1", { digest: manifest.value, mediaType: MANIFEST, size: body.byteLength, checkedAt: Date.now() });
      // A download in progress.
      const { data: inflight, d: inflightDigest } = content(40_000);
      const iw = await a.createWriter(inflightDigest);
      await iw.write([inflight.subarray(0, 20_000)]);

      const keep = await pinnedDigests(a, (_u, n) => n === "evict/me");
      const first = await evict(a, { target: 0, protectAfter: recentSince, keep });
      // Of this test's content, only the old blob nothing references: the layer is the pinned
      // manifest's, the other is recent (what earlier tests left is old too, and goes as well).
      const mine = new Set([layerDigest.value, lone.value, digestOf(recentData).value, manifest.value, inflightDigest.value]);
      expect(first.evicted.map((e) => e.digest).filter((d) => mine.has(d))).toEqual([lone.value]);
      expect(await a.statBlob(lone)).toBeUndefined();

      // A reader holding a blob open keeps reading it, whatever eviction does meanwhile.
      const reader = await a.openBlob(digestOf(recentData));
      if (!reader) throw new Error("recent blob missing");
      const second = await evict(a, { target: 0, protectAfter: Date.now() + 60_000, keep });
      const gone = second.evicted.map((e) => e.digest);
      expect(gone.includes(digestOf(recentData).value)).toBe(harness.openBlobs === "readable");
      expect(gone).not.toContain(layerDigest.value);
      expect(gone).not.toContain(manifest.value);
      const buf = Buffer.alloc(recentData.byteLength);
      let pos = 0;
      while (pos < buf.byteLength) {
        const n = await reader.readInto(buf.subarray(pos), pos);
        if (n <= 0) break;
        pos += n;
      }
      await reader.close();
      expect(buf.subarray(0, pos).equals(recentData)).toBe(true);
      // Once closed, a kept blob is evicted like any other.
      if (harness.openBlobs === "kept") expect((await evict(a, { target: 0, protectAfter: Date.now() + 60_000, keep })).evicted.map((e) => e.digest)).toEqual([digestOf(recentData).value]);
      // The download in progress finishes and publishes as if nothing happened.
      await iw.write([inflight.subarray(20_000)]);
      await iw.verify(40_000);
      await iw.publish();
      await iw.close();
      expect((await readAll(a, inflightDigest))?.equals(inflight)).toBe(true);
      expect((await readAll(a, layerDigest))?.equals(layer)).toBe(true);
      expect((await cacheUsage(a)).bytes).toBe(body.byteLength + layer.byteLength + 40_000);
    });

    it("keeps what another replica read within the grace, and evicts it once that use is older", async () => {
      const a = await open("a");
      const b = await open("b");
      if (!isEvictable(a)) throw new Error("not evictable");
      const { data, d } = content(30_000);
      const w = await a.createWriter(d);
      await w.write([data]);
      await w.verify();
      await w.publish();
      await w.close();
      await sleep(1_100);
      const before = Date.now();
      await sleep(1_100);
      // Replica b serves it: a read there is a use every replica's evictor sees.
      expect((await readAll(b, d))?.equals(data)).toBe(true);
      await (await h()).shareUses?.(b);
      expect((await evict(a, { target: 0, protectAfter: before })).evicted.map((e) => e.digest)).not.toContain(d.value);
      expect(await a.statBlob(d)).toBe(30_000);
      expect((await evict(a, { target: 0, protectAfter: Date.now() + 60_000 })).evicted.map((e) => e.digest)).toContain(d.value);
      expect(await b.statBlob(d)).toBeUndefined();
    });
  });
}
