// Proof with real processes on object storage: three `mirror-kit serve` replicas share one Ceph RGW
// bucket and one Debian redis-server, in front of a real distribution upstream behind a slow link.
// Counted at the upstream's access log: clients (skopeo) spread over the replicas cause one GET per
// blob; SIGKILL of the downloading replica hands the download to another and nothing partial is ever
// in the bucket; a Redis restart is ridden out; the gateway stopped answers 503 and the replicas
// recover with it; a replica started later serves cached blobs with no request.
import { GetObjectCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CephRgw } from "../support/ceph-rgw.js";
import { skopeoCopy } from "../support/clients.js";
import { getBlob, pushTwoLayers } from "../support/cluster.js";
import { eventually } from "../support/eventually.js";
import type { Image } from "../support/fixtures/image.js";
import { requireTools } from "../support/preflight.js";
import { RedisServer } from "../support/redis-server.js";
import { UpstreamRegistry } from "../support/registry.js";
import { Replica } from "../support/replica.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";
import { PacedLink } from "../support/paced-link.js";

// Slow enough that a 12 MiB layer takes seconds: a replica can be killed mid-download.
const LINK_BYTES_PER_SEC = 3 * 1024 * 1024;

let upstream: UpstreamRegistry;
let link: PacedLink;
let redis: RedisServer;
let rgw: CephRgw;
let admin: S3Client;
let dir: string;
/** What the replicas logged about leases and upstream requests: the story behind a count. */
const why = () => JSON.stringify(replicas.flatMap((r) => r.logged(/lease lost|taking over|resum|upstream request|redis/).map((l) => ({ r: r.name, msg: l.msg, url: l.url, time: l.time })))).slice(0, 6000);
const bucket = `mk-replicas-${process.pid}`;
const replicas: Replica[] = [];

async function startReplica(name: string): Promise<Replica> {
  const r = await Replica.start(name, dir, {
    storage: { driver: "s3", bucket, endpoint: rgw.endpoint, accessKey: rgw.accessKey, secretKey: rgw.secretKey, forcePathStyle: true, secure: false, chunkSize: "5MB", spool: join(dir, `spool-${name}`) },
    defaultUpstream: "docker.io",
    upstreams: { "docker.io": { url: link.url } },
    // Longer than the folder suite's 2 s: with Ceph's daemons beside three replicas on a loaded
    // machine, a replica's renewal timer can starve past 2 s, and a lapsed lease is (rightly) taken over.
    redis: { addr: redis.addr, lease: "5s" },
  });
  replicas.push(r);
  return r;
}

/** Every published blob in the bucket matches its name: nothing partial or wrong is visible. */
async function publishedBlobsAreWhole(): Promise<string[]> {
  const out: string[] = [];
  const page = await admin.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: "blobs/" }));
  for (const o of page.Contents ?? []) {
    const hex = (o.Key as string).split("/").pop() as string;
    const res = await admin.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key }));
    const actual = createHash("sha256").update(await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray()).digest("hex");
    expect(actual).toBe(hex);
    out.push(`sha256:${hex}`);
  }
  return out;
}

beforeAll(async () => {
  requireTools(["skopeo", "redis-server", "docker-registry"]);
  [upstream, redis, rgw, dir] = await Promise.all([UpstreamRegistry.start({ name: "upstream" }), RedisServer.start(), CephRgw.start(), makeTempDir("replicas-s3")]);
  admin = new S3Client({ endpoint: rgw.endpoint, region: "us-east-1", forcePathStyle: true, credentials: { accessKeyId: rgw.accessKey, secretAccessKey: rgw.secretKey } });
  link = await PacedLink.start(upstream.url, LINK_BYTES_PER_SEC);
  // Each under its own replica name: a replica starting aborts only its own multipart uploads.
  for (const name of ["a", "b", "c"]) await startReplica(name);
}, 300_000);

afterAll(async () => {
  for (const r of replicas) await r.stop();
  admin?.destroy();
  await link?.close();
  await upstream?.close();
  await redis?.stop();
  await rgw?.close();
  if (dir) await removeTempDir(dir);
});

describe("three replica processes, one Ceph RGW bucket, one Redis", () => {
  let pulled: Image;

  it("cause one upstream GET per blob when clients pull the same image through every replica at once", async () => {
    pulled = await pushTwoLayers(upstream, "library/team", 6 * 1024 * 1024);
    await upstream.settle();
    upstream.reset();
    const out = await makeTempDir("skopeo-out");
    try {
      await Promise.all(replicas.slice(0, 3).map((r, i) => skopeoCopy(`${new URL(r.url).host}/library/team:v1`, join(out, `oci-${i}`))));
    } finally {
      await removeTempDir(out);
    }
    await upstream.settle();
    for (const blob of [pulled.config, ...pulled.layers]) {
      expect({ blob: blob.digest, gets: upstream.count({ method: "GET", pathIncludes: blob.digest }) }, why()).toEqual({ blob: blob.digest, gets: 1 });
    }
    expect(await publishedBlobsAreWhole()).toEqual(expect.arrayContaining([pulled.config.digest, ...pulled.layers.map((l) => l.digest)]));
  }, 240_000);

  it("finish a download elsewhere when the downloading replica is SIGKILLed, with nothing partial in the bucket", async () => {
    const img = await pushTwoLayers(upstream, "library/killed", 12 * 1024 * 1024);
    const layer = img.layers[0]?.digest as string;
    await upstream.settle();
    upstream.reset();
    const [a, b, c] = replicas as [Replica, Replica, Replica];
    const first = getBlob(a.url, "library/killed", layer);
    await eventually(async () => a.logged(/upstream request/).some((l) => String(l.url).includes(layer)), (seen) => seen, 20_000);
    const second = getBlob(b.url, "library/killed", layer);
    const third = getBlob(c.url, "library/killed", layer);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await publishedBlobsAreWhole()).not.toContain(layer);
    await a.kill();
    const broken = await first;
    expect("error" in broken || broken.sha !== layer).toBe(true);
    expect(await second).toEqual({ status: 200, sha: layer });
    expect(await third).toEqual({ status: 200, sha: layer });
    expect([...b.logged(/taking over a download/), ...c.logged(/taking over a download/)], why()).toHaveLength(1);
    expect(await publishedBlobsAreWhole()).toContain(layer);
    await upstream.settle();
    // The killed download and the one that took over.
    expect(upstream.count({ method: "GET", pathIncludes: layer })).toBe(2);
  }, 240_000);

  it("ride out a Redis restart: healthz degraded, cached blobs served, then coordinated again", async () => {
    const [, b, c] = replicas as [Replica, Replica, Replica];
    const cached = pulled.layers[0]?.digest as string;
    await redis.kill();
    for (const r of [b, c]) {
      const h = await eventually(async () => (await fetch(`${r.url}/healthz`)).json() as Promise<{ status: string; redis?: string }>, (v) => v.status === "degraded", 15_000);
      expect(h.redis).toMatch(/unreachable/);
      expect(await getBlob(r.url, "library/team", cached)).toEqual({ status: 200, sha: cached });
    }
    await redis.start();
    for (const r of [b, c]) {
      expect(await eventually(async () => (await fetch(`${r.url}/healthz`)).json() as Promise<{ status: string }>, (v) => v.status === "ok", 20_000)).toEqual({ status: "ok" });
    }
    const img = await pushTwoLayers(upstream, "library/after", 1024 * 1024);
    const layer = img.layers[0]?.digest as string;
    await upstream.settle();
    upstream.reset();
    const results = await Promise.all([b, c, b, c].map((r) => getBlob(r.url, "library/after", layer)));
    for (const r of results) expect(r).toEqual({ status: 200, sha: layer });
    await upstream.settle();
    expect(upstream.count({ method: "GET", pathIncludes: layer })).toBe(1);
  }, 180_000);

  it("answer 503 while the gateway is stopped, within a bound, and serve again once it is back", async () => {
    const [, b, c] = replicas as [Replica, Replica, Replica];
    const cached = pulled.layers[0]?.digest as string;
    await upstream.settle();
    upstream.reset();
    await rgw.gatewayDown();
    try {
      for (const r of [b, c]) {
        const started = Date.now();
        const res = await fetch(`${r.url}/v2/library/team/blobs/${cached}`);
        expect(res.status).toBe(503);
        expect(((await res.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe("UNAVAILABLE");
        expect(Date.now() - started).toBeLessThan(20_000);
        expect((await fetch(`${r.url}/healthz`)).status).toBe(503);
      }
      // The store is what is missing, not the blob: nothing went upstream for it.
      await upstream.settle();
      expect(upstream.count({ pathIncludes: cached })).toBe(0);
    } finally {
      await rgw.gatewayUp();
    }
    for (const r of [b, c]) {
      const back = await eventually(() => getBlob(r.url, "library/team", cached), (v) => "status" in v && v.status === 200, 60_000);
      expect(back).toEqual({ status: 200, sha: cached });
      expect(await eventually(() => fetch(`${r.url}/healthz`).then((x) => x.status), (s) => s === 200, 20_000)).toBe(200);
    }
  }, 240_000);

  it("serve cached blobs from a replica started later, with no upstream request", async () => {
    const d = await startReplica("d");
    await upstream.settle();
    upstream.reset();
    for (const blob of [pulled.config, ...pulled.layers]) {
      expect(await getBlob(d.url, "library/team", blob.digest)).toEqual({ status: 200, sha: blob.digest });
    }
    await upstream.settle();
    expect(upstream.count({})).toBe(0);
  }, 120_000);
});
