import { mkdtemp, readdir, rm, utimes } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { digestOf, type Digest } from "../oci/digest.js";
import { evict, pinnedDigests, SizeCap } from "./evict.js";
import { FsStore } from "./fs-store.js";

const MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function store(): Promise<FsStore> {
  const dir = await mkdtemp(join(tmpdir(), "mk-evict-"));
  dirs.push(dir);
  return FsStore.open(dir);
}

async function blob(s: FsStore, content: string, usedAt: number): Promise<Digest> {
  const data = Buffer.from(content);
  const d = digestOf(data);
  const w = await s.createWriter(d);
  await w.write([data]);
  await w.verify();
  await w.publish();
  await w.close();
  await utimes(s.layout.blob(d), new Date(usedAt), new Date(usedAt));
  return d;
}

async function image(s: FsStore, tag: string, layers: Digest[], usedAt: number): Promise<Digest> {
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST, config: { digest: layers[0]?.value }, layers: layers.slice(1).map((l) => ({ digest: l.value })) }));
  const d = digestOf(body);
  await s.putManifest(d, MANIFEST, body);
  await utimes(s.layout.blob(d), new Date(usedAt), new Date(usedAt));
  await s.putTag("docker.io", "library/app", tag, { digest: d.value, mediaType: MANIFEST, size: body.byteLength, checkedAt: usedAt });
  await s.linkManifest("docker.io", "library/app", d);
  return d;
}

const T0 = Date.parse("2026-01-01T00:00:00Z");
const minutes = (n: number) => T0 + n * 60_000;

describe("eviction under a size cap", () => {
  it("evicts the least recently used image whole, and keeps layers a kept image still uses", async () => {
    const s = await store();
    const shared = await blob(s, "shared-base-layer".repeat(100), minutes(1)); // oldest blob of all
    const oldCfg = await blob(s, "old-config", minutes(2));
    const oldLayer = await blob(s, "old-layer".repeat(200), minutes(2));
    const old = await image(s, "old", [oldCfg, shared, oldLayer], minutes(3));
    const newCfg = await blob(s, "new-config", minutes(10));
    const newLayer = await blob(s, "new-layer".repeat(200), minutes(10));
    const fresh = await image(s, "new", [newCfg, shared, newLayer], minutes(11));

    const r = await evict(s, { target: 1, protectAfter: minutes(100) });
    // Everything goes eventually when the target is tiny; order is what matters here.
    expect(r.evicted.map((e) => e.digest).indexOf(shared.value)).toBeGreaterThan(r.evicted.map((e) => e.digest).indexOf(fresh.value));
    expect(r.evicted.map((e) => e.digest).indexOf(old.value)).toBeLessThan(r.evicted.map((e) => e.digest).indexOf(fresh.value));
    expect(await s.getTag("docker.io", "library/app", "old")).toBeUndefined();
  });

  it("stops at the target and leaves no kept manifest without its layers", async () => {
    const s = await store();
    const shared = await blob(s, "x".repeat(4000), minutes(1));
    const a1 = await blob(s, "a".repeat(3000), minutes(2));
    const a = await image(s, "a", [a1, shared], minutes(2));
    const b1 = await blob(s, "b".repeat(3000), minutes(5));
    const b = await image(s, "b", [b1, shared], minutes(5));
    const before = (await evict(s, { target: Number.MAX_SAFE_INTEGER, protectAfter: 0 })).sizeBefore;

    const r = await evict(s, { target: before - 3000, protectAfter: minutes(100) });
    expect(r.sizeAfter).toBeLessThanOrEqual(before - 3000);
    // Image a (least recently used) is gone; b and the layer it shares with a are whole.
    expect(await s.getManifest(a)).toBeUndefined();
    expect(await s.getTag("docker.io", "library/app", "a")).toBeUndefined();
    expect(await s.getManifest(b)).toBeDefined();
    for (const d of [b1, shared]) expect(await s.statBlob(d)).toBeDefined();
    expect(await s.getTag("docker.io", "library/app", "b")).toBeDefined();
    expect(await readdir(join(s.layout.repositoriesDir, "docker.io", "library", "app", "_manifests", "sha256"))).toEqual([b.hex]);
  });

  it("never evicts what was used inside the grace period", async () => {
    const s = await store();
    const recent = await blob(s, "recent".repeat(1000), minutes(50));
    const r = await evict(s, { target: 0, protectAfter: minutes(40) });
    expect(r.evicted).toEqual([]);
    expect(await s.statBlob(recent)).toBe(6000);
  });

  it("refreshes a blob's last use when it is read", async () => {
    const s = await store();
    const d = await blob(s, "read-me".repeat(10), minutes(1));
    const open = await s.openBlob(d);
    await open?.readInto(Buffer.alloc(open.size), 0);
    await open?.close();
    await new Promise((r) => setTimeout(r, 50));
    const r = await evict(s, { target: 0, protectAfter: Date.now() - 60_000 });
    expect(r.evicted).toEqual([]);
  });

  it("never evicts a pinned image, nor the layers it references, however old", async () => {
    const s = await store();
    const layer = await blob(s, "pinned-layer".repeat(300), minutes(1));
    const cfg = await blob(s, "pinned-config", minutes(1));
    const pinned = await image(s, "22", [cfg, layer], minutes(1));
    const otherLayer = await blob(s, "other".repeat(300), minutes(50));
    const other = await image(s, "other", [otherLayer], minutes(50));
    const keep = await pinnedDigests(s, (_u, name, tag) => name === "library/app" && tag === "22");
    expect([...keep]).toEqual([pinned.value]);
    const r = await evict(s, { target: 0, protectAfter: minutes(100), keep });
    expect(r.evicted.map((e) => e.digest)).toContain(other.value);
    for (const d of [pinned, layer, cfg]) expect(await s.statBlob(d), d.value).toBeDefined();
    expect(await s.getTag("docker.io", "library/app", "22")).toBeDefined();
  });

  it("evicts an image whole: its own layers go with its manifest even past the target", async () => {
    const s = await store();
    const big = await blob(s, "big".repeat(2000), minutes(1));
    const small = await blob(s, "small-layer", minutes(1));
    const a = await image(s, "a", [big, small], minutes(2));
    const b1 = await blob(s, "b".repeat(500), minutes(5));
    const b = await image(s, "b", [b1], minutes(5));
    const before = (await evict(s, { target: Number.MAX_SAFE_INTEGER, protectAfter: 0 })).sizeBefore;

    // Freeing the big layer alone reaches the target; the small one belongs to nothing cached then.
    const r = await evict(s, { target: before - 6000, protectAfter: minutes(100) });
    expect(r.evicted.map((e) => e.digest).sort()).toEqual([a.value, big.value, small.value].sort());
    for (const d of [b, b1]) expect(await s.statBlob(d)).toBeDefined();
  });
});

describe("the size cap", () => {
  it("counts what is published while a run scans, so the cache cannot outgrow the cap unnoticed", async () => {
    const s = await store();
    const d = await blob(s, "x".repeat(1000), minutes(1));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let scans = 0;
    // The scan lists the store, then a publish lands before the run ends.
    const slow = Object.assign(Object.create(s) as FsStore, {
      listContent: async () => {
        const entries = await s.listContent();
        if (scans++ === 0) await gate;
        return entries;
      },
    });
    const cap = new SizeCap(slow, 1_000_000, () => undefined, (err) => { throw err; }, 0);
    const run = cap.trigger();
    await new Promise((r) => setTimeout(r, 20));
    cap.published(5_000);
    release();
    await run;
    expect(await s.statBlob(d)).toBe(1000);
    // 1000 bytes scanned plus the 5000 the scan could not see.
    expect(cap.bytes).toBe(6_000);
  });
});
