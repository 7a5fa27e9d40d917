// The mirror on S3 storage (Ceph RGW) in front of a real distribution upstream: skopeo pulls
// through it, each blob is fetched upstream once, a second replica on the same bucket serves
// them with no upstream request, an S3 outage answers 503 and the mirror recovers with it.
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/observe/log.js";
import { startMirror, type RunningMirror } from "../../src/server.js";
import { digestOf } from "../../src/oci/digest.js";
import { openStore, type OpenedStore } from "../../src/store/open.js";
import type { PartialBlob, PartialReads } from "../../src/store/store.js";
import type { S3Spec } from "../../src/config/resolve.js";
import { CephRgw } from "../support/ceph-rgw.js";
import { skopeoCopy } from "../support/clients.js";
import { buildImage, type Image } from "../support/fixtures/image.js";
import { filesLayer, randomLayer } from "../support/fixtures/layers.js";
import { pushImage } from "../support/fixtures/push.js";
import { UpstreamRegistry } from "../support/registry.js";
import { eventually } from "../support/eventually.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

const MiB = 1024 * 1024;
let rgw: CephRgw;
let upstream: UpstreamRegistry;
let image: Image;
let work: string;
const mirrors: RunningMirror[] = [];
const bucket = `mk-mirror-${process.pid}`;

beforeAll(async () => {
  [rgw, upstream, work] = await Promise.all([CephRgw.start(), UpstreamRegistry.start({ name: "upstream" }), makeTempDir("mirror-s3")]);
  // 23 MiB of random data: five parts of 5 MiB, so the fill streams a multipart upload.
  image = buildImage({ layers: [await randomLayer("data/big.bin", 23 * MiB), await filesLayer({ "etc/mk-s3": `${bucket}\n` })] });
  await pushImage({ url: upstream.url }, "team/app", image, "1");
}, 300_000);

afterAll(async () => {
  for (const m of mirrors) await m.close(2_000);
  await Promise.all([rgw?.close(), upstream?.close(), work ? removeTempDir(work) : undefined]);
});

function s3(spool: string): { driver: "s3"; bucket: string; endpoint: string; accessKey: string; secretKey: string; forcePathStyle: boolean; secure: boolean; chunkSize: string; spool: string } {
  return { driver: "s3", bucket, endpoint: rgw.endpoint, accessKey: rgw.accessKey, secretKey: rgw.secretKey, forcePathStyle: true, secure: false, chunkSize: "5MB", spool };
}

async function replica(name: string): Promise<RunningMirror> {
  const m = await startMirror({
    listen: "127.0.0.1:0",
    storage: s3(join(work, `spool-${name}`)),
    replica: name,
    builtinUpstreams: false,
    defaultUpstream: "registry.test",
    upstreams: { "registry.test": { url: upstream.url } },
    logLevel: "silent",
  });
  mirrors.push(m);
  return m;
}

async function pulledLayers(dir: string): Promise<Buffer[]> {
  return Promise.all(image.layers.map((l) => readFile(join(dir, "blobs", "sha256", l.digest.slice("sha256:".length)))));
}

describe("the mirror on S3 storage (Ceph RGW) with a distribution upstream", () => {
  it("pulls with skopeo through one replica, one upstream GET per blob for four concurrent clients", async () => {
    const a = await replica("a");
    const host = new URL(a.url).host;
    await Promise.all([0, 1, 2, 3].map((i) => skopeoCopy(`${host}/team/app:1`, join(work, `pull-a-${i}`))));
    for (let i = 0; i < 4; i++) {
      const layers = await pulledLayers(join(work, `pull-a-${i}`));
      layers.forEach((bytes, n) => expect(bytes.equals(image.layers[n]!.bytes), `client ${i} layer ${n}`).toBe(true));
    }
    await upstream.settle();
    for (const blob of [...image.layers, image.config]) {
      expect(upstream.count({ method: "GET", pathIncludes: `/blobs/${blob.digest}` }), upstream.log.describe()).toBe(1);
    }
    // Published in the bucket, whole: the store a second replica opens has it. The clients had the
    // last byte once it was verified; the upload's completion may follow a moment later.
    const view = await openStore({ ...(await resolvedSpec()), spool: join(work, "spool-view") }, { replica: "view" });
    try {
      for (const layer of image.layers) {
        expect(await eventually(() => view.statBlob(digestOf(layer.bytes)), (n) => n !== undefined, 20_000)).toBe(layer.bytes.byteLength);
      }
    } finally {
      await view.close();
    }
  });

  it("serves a second replica on the same bucket with no upstream blob request", async () => {
    const b = await replica("b");
    upstream.reset();
    await skopeoCopy(`${new URL(b.url).host}/team/app:1`, join(work, "pull-b"));
    const layers = await pulledLayers(join(work, "pull-b"));
    layers.forEach((bytes, n) => expect(bytes.equals(image.layers[n]!.bytes)).toBe(true));
    await upstream.settle();
    expect(upstream.count({ kind: "blob" }), upstream.log.describe()).toBe(0);
    // A Range request is a ranged GET on the object.
    const res = await fetch(`${b.url}/v2/team/app/blobs/${image.layers[0]!.digest}`, { headers: { range: "bytes=10485760-10485859" } });
    expect(res.status).toBe(206);
    expect(Buffer.from(await res.arrayBuffer()).equals(image.layers[0]!.bytes.subarray(10485760, 10485860))).toBe(true);
  });

  it("answers 503 while the object store is down, and serves again once it is back", async () => {
    const b = mirrors[1] as RunningMirror;
    const path = `${b.url}/v2/team/app/blobs/${image.layers[1]!.digest}`;
    await rgw.gatewayDown();
    try {
      const res = await fetch(path);
      expect(res.status).toBe(503);
      expect(((await res.json()) as { errors: { code: string; message: string }[] }).errors[0]).toMatchObject({ code: "UNAVAILABLE", message: expect.stringContaining("object storage") });
      const health = await fetch(`${b.url}/healthz`);
      expect(health.status).toBe(503);
      // Nothing reached upstream: the blob is cached, the store is what is missing.
      await upstream.settle();
      expect(upstream.count({ kind: "blob" })).toBe(0);
    } finally {
      await rgw.gatewayUp();
    }
    // Recovery needs nothing from anyone: the next requests find the gateway again (within seconds:
    // the client's pooled connections to the old process fail first).
    const back = await eventually(
      async () => {
        const res = await fetch(path);
        return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
      },
      (r) => r.status === 200,
      30_000,
    );
    expect(back.status).toBe(200);
    expect(back.body.equals(image.layers[1]!.bytes)).toBe(true);
    expect((await eventually(() => fetch(`${b.url}/healthz`).then((r) => r.status), (s) => s === 200, 10_000))).toBe(200);
  });

  it("never logs the secret key, at debug level or when S3 refuses the credentials", async () => {
    const lines: string[] = [];
    const logger = createLogger("debug", { write: (line: string) => void lines.push(line) });
    const c = await startMirror(
      { listen: "127.0.0.1:0", storage: s3(join(work, "spool-c")), replica: "c", builtinUpstreams: false, defaultUpstream: "registry.test", upstreams: { "registry.test": { url: upstream.url } }, logLevel: "debug" },
      { logger },
    );
    mirrors.push(c);
    const res = await fetch(`${c.url}/v2/team/app/blobs/${image.config.digest}`);
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    expect(lines.join("\n")).toContain(`s3 bucket ${bucket} at ${rgw.endpoint}`);
    expect(lines.join("\n")).not.toContain(rgw.secretKey);
    const wrong = `${rgw.secretKey}-wrong`;
    const refused = await startMirror({ listen: "127.0.0.1:0", storage: { ...s3(join(work, "spool-d")), secretKey: wrong }, replica: "d", builtinUpstreams: false, defaultUpstream: "registry.test", upstreams: { "registry.test": { url: upstream.url } }, logLevel: "silent" }).then(
      (m) => (mirrors.push(m), undefined),
      (err: Error) => err,
    );
    expect(refused?.message).toMatch(new RegExp(`cannot use S3 storage, bucket ${bucket} at ${rgw.endpoint}: .*HTTP 403`));
    expect(refused?.message).not.toContain(wrong);
  });

  it("streams parts into the bucket while a blob is still being written, readable by another replica", async () => {
    const store = await openStore({ ...(await resolvedSpec()), spool: join(work, "spool-w") }, { replica: "w" });
    const other = await openStore({ ...(await resolvedSpec()), spool: join(work, "spool-x") }, { replica: "x" });
    try {
      const data = randomBytes(12 * MiB);
      const d = digestOf(data);
      const w = await store.createWriter(d);
      await w.write([data]);
      // Nothing published yet, but the two full 5 MiB parts become objects in the bucket (one put at a time).
      expect(await store.statBlob(d)).toBeUndefined();
      expect(await eventually(() => (w.share as () => Promise<number>)(), (n) => n === 10 * MiB, 20_000)).toBe(10 * MiB);
      const partial = await (other as OpenedStore & PartialReads).openPartial(d, w.locator as string);
      const back = Buffer.alloc(10 * MiB);
      for (let pos = 0; pos < back.byteLength; ) pos += await (partial as PartialBlob).readInto(back.subarray(pos), pos);
      expect(back.equals(data.subarray(0, 10 * MiB))).toBe(true);
      await w.verify(data.byteLength);
      await w.publish();
      await w.close();
      // Published from those parts (copied server-side), and the parts are gone.
      expect(await store.statBlob(d)).toBe(12 * MiB);
      expect(await (partial as PartialBlob).readInto(Buffer.alloc(10), 0)).toBe(0);
      await partial?.close();
      const blob = await other.openBlob(d);
      const whole = Buffer.alloc(12 * MiB);
      for (let pos = 0; pos < whole.byteLength; ) pos += await (blob as NonNullable<typeof blob>).readInto(whole.subarray(pos), pos);
      await blob?.close();
      expect(whole.equals(data)).toBe(true);
    } finally {
      await store.close();
      await other.close();
    }
  });
});

/** The spec the mirrors run with, as resolveConfig makes it. */
async function resolvedSpec(): Promise<S3Spec> {
  return (mirrors[0] as RunningMirror).config.store as S3Spec;
}
