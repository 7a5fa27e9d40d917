import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LocalCoordinator } from "../cluster/coordinator.js";
import { readAnnouncement } from "../cluster/progress.js";
import { digestOf } from "../oci/digest.js";
import { FsStore } from "./fs-store.js";

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe("a download in progress read by another replica on the same folder", () => {
  it("reads another writer's bytes up to its shared mark, by the locator it announced", async () => {
    const root = await mkdtemp(join(tmpdir(), "mk-partial-"));
    dirs.push(root);
    const [a, b] = [await FsStore.open(root, { replica: "a" }), await FsStore.open(root, { replica: "b" })];
    const bytes = randomBytes(100_000);
    const d = digestOf(bytes);
    const w = await a.createWriter(d);
    await w.write([bytes.subarray(0, 60_000)]);
    expect(await w.share()).toBe(60_000);
    const partial = await b.openPartial(d, w.locator);
    const buf = Buffer.alloc(60_000);
    expect(await partial?.readInto(buf, 0)).toBe(60_000);
    expect(buf.equals(bytes.subarray(0, 60_000))).toBe(true);
    await partial?.close();
    await w.cancel();
    await w.close();
    expect(await b.openPartial(d, w.locator)).toBeUndefined();
  });

  it.each([["../../etc/passwd"], ["a~0123456789abcdef-0123456789abcdef/../x"], ["stats.json"], ["a~ffffffffffffffff-0123456789abcdef"], [""]])("opens nothing for the locator %j (not this digest's ingest file)", async (locator) => {
    const root = await mkdtemp(join(tmpdir(), "mk-partial-"));
    dirs.push(root);
    const store = await FsStore.open(root, { replica: "a" });
    const d = digestOf(Buffer.from("x"));
    await writeFile(join(root, "stats.json"), "{}");
    expect(await store.openPartial(d, locator)).toBeUndefined();
  });
});

describe("announcements read from Redis", () => {
  it.each([
    [{ state: "running", locator: "a~1", mark: 10, size: 20 }, { state: "running", locator: "a~1", mark: 10, size: 20 }],
    [{ state: "running", locator: "a~1", mark: -1 }, undefined],
    [{ state: "running", mark: 10 }, undefined],
    [{ state: "published" }, { state: "published" }],
    [{ state: "failed", failure: { source: "s", code: "DIGEST_INVALID", status: 502, message: "m" } }, { state: "failed", failure: { source: "s", code: "DIGEST_INVALID", status: 502, message: "m" } }],
    [{ state: "failed", failure: { code: 1 } }, { state: "failed" }],
    [{ state: "paused" }, undefined],
  ])("%j is read as %j", async (value, expected) => {
    const c = new LocalCoordinator();
    await c.put("k", JSON.stringify(value), 10_000);
    expect(await readAnnouncement(c, "k")).toEqual(expected);
  });

  it("reads text that is not JSON as no announcement", async () => {
    const c = new LocalCoordinator();
    await c.put("k", "{not json", 10_000);
    expect(await readAnnouncement(c, "k")).toBeUndefined();
  });
});
