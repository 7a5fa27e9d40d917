// Proof with real processes that replicas stream a download in progress from the shared store and
// take it over with Range: three `mirror-kit serve` replicas, Debian's redis-server, a real
// distribution upstream behind a paced link, counted at the registry's access log. A client of a
// replica that is not downloading receives bytes before the blob is published; SIGKILL of the
// downloading replica hands the rest to another replica, which asks upstream with Range.
import { createHash, randomBytes } from "node:crypto";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { HeadObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ConfigInput } from "../../src/config/schema.js";
import { CephRgw } from "../support/ceph-rgw.js";
import { eventually } from "../support/eventually.js";
import { FakeUpstream } from "../support/fake-upstream.js";
import { buildImage } from "../support/fixtures/image.js";
import { filesLayer, randomLayer } from "../support/fixtures/layers.js";
import { pushImage } from "../support/fixtures/push.js";
import { PacedLink } from "../support/paced-link.js";
import { requireTools } from "../support/preflight.js";
import { RedisServer } from "../support/redis-server.js";
import { UpstreamRegistry } from "../support/registry.js";
import { Replica } from "../support/replica.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

// 20 MiB at 4 MiB/s: about 5 s upstream, long enough to join, measure and kill mid-download; what
// the link's socket buffers hold (a few MiB) stays small beside the blob in the upstream's byte count.
const LINK_BYTES_PER_SEC = 4 * 1024 * 1024;
const LAYER_BYTES = 20 * 1024 * 1024;

let upstream: UpstreamRegistry;
let link: PacedLink;
let redis: RedisServer;
/** A hostile upstream (the only fake here): a blob whose bytes do not match its digest, sent slowly. */
let liar: FakeUpstream;
// More than two 5 MB parts: on S3 too, followers are streaming it when the digest fails.
const LIE_BYTES = 12 * 1024 * 1024;
const lie = randomBytes(LIE_BYTES);
const lieDigest = `sha256:${createHash("sha256").update("what the manifest said").digest("hex")}`;
let dir: string;
const replicas: Replica[] = [];

/** One client's GET of a blob, watched as it streams: when the first byte came, how many so far. */
interface Stream {
  /** Since the request was sent. */
  firstByteMs: Promise<number>;
  /** performance.now() when the first byte came, and when the body ended. */
  firstByteAt: Promise<number>;
  endedAt: Promise<number>;
  received(): number;
  result: Promise<{ status: number; bytes: number; sha: string } | { error: string; bytes: number }>;
}

function streamBlob(url: string, repo: string, digest: string): Stream {
  const started = performance.now();
  let bytes = 0;
  let first!: (at: number) => void;
  const firstByteAt = new Promise<number>((r) => (first = r));
  const firstByteMs = firstByteAt.then((at) => at - started);
  const result = (async () => {
    const hash = createHash("sha256");
    try {
      const res = await fetch(`${url}/v2/${repo}/blobs/${digest}`);
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        if (bytes === 0) first(performance.now());
        bytes += chunk.byteLength;
        hash.update(chunk);
      }
      return { status: res.status, bytes, sha: `sha256:${hash.digest("hex")}` };
    } catch (err) {
      return { error: String((err as Error).cause ?? err), bytes };
    }
  })();
  const endedAt = result.then(() => performance.now());
  return { firstByteMs, firstByteAt, endedAt, received: () => bytes, result };
}

/** Where the replicas keep the cache: its config for one replica, and whether a blob is published in it. */
interface Backend {
  start(dir: string): Promise<void>;
  storage(dir: string, replica: string): ConfigInput["storage"];
  published(dir: string, digest: string): Promise<boolean>;
  close(): Promise<void>;
}

const sharedFolder: Backend = {
  start: async () => undefined,
  storage: (d) => join(d, "store"),
  published: (d, digest) => stat(join(d, "store", "blobs", "sha256", digest.slice(7, 9), digest.slice(7))).then(() => true, () => false),
  close: async () => undefined,
};

/** One bucket on Ceph RGW; each replica spools locally. 5 MB parts: a 20 MiB blob streams in four. */
function cephRgw(): Backend {
  let rgw: CephRgw | undefined;
  let admin: S3Client | undefined;
  const bucket = `stream-${process.pid}`;
  return {
    start: async () => {
      rgw = await CephRgw.start();
      admin = new S3Client({ endpoint: rgw.endpoint, region: "us-east-1", forcePathStyle: true, credentials: { accessKeyId: rgw.accessKey, secretAccessKey: rgw.secretKey } });
    },
    storage: (d, replica) => {
      const r = rgw as CephRgw;
      return { driver: "s3", bucket, endpoint: r.endpoint, accessKey: r.accessKey, secretKey: r.secretKey, forcePathStyle: true, secure: false, chunkSize: "5MB", spool: join(d, `spool-${replica}`) };
    },
    published: (_d, digest) =>
      (admin as S3Client).send(new HeadObjectCommand({ Bucket: bucket, Key: `blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}` })).then(
        () => true,
        () => false,
      ),
    close: async () => {
      admin?.destroy();
      await rgw?.close();
    },
  };
}

describe.each([
  ["a shared folder", sharedFolder],
  ["Ceph RGW", cephRgw()],
])("replicas on %s", (_backend, backend) => {
  const blobPath = (digest: string) => backend.published(dir, digest);

  async function startReplica(name: string): Promise<Replica> {
    const storage = backend.storage(dir, name);
    const r = await Replica.start(name, dir, { storage, defaultUpstream: "docker.io", upstreams: { "docker.io": { url: link.url }, "liar.test": { url: liar.url } }, redis: { addr: redis.addr, lease: "2s" } });
    replicas.push(r);
    return r;
  }

  async function push(repo: string): Promise<{ layer: string; size: number }> {
    const img = buildImage({ layers: [await randomLayer("data/big.bin", LAYER_BYTES), await filesLayer({ "etc/id": `${repo}\n` })] });
    await pushImage({ url: upstream.url }, repo, img, "v1");
    await upstream.settle();
    upstream.reset();
    return { layer: img.layers[0]?.digest as string, size: img.layers[0]?.size as number };
  }

  beforeAll(async () => {
    requireTools(["redis-server", "docker-registry"]);
    [upstream, redis, dir] = await Promise.all([UpstreamRegistry.start({ name: "upstream" }), RedisServer.start(), makeTempDir("cluster-stream")]);
    link = await PacedLink.start(upstream.url, LINK_BYTES_PER_SEC);
    await backend.start(dir);
    liar = await FakeUpstream.start();
    liar.on(/\/blobs\//, async (req, res) => {
      res.writeHead(200, { "content-length": String(LIE_BYTES), "content-type": "application/octet-stream" });
      if (req.method === "HEAD") return void res.end();
      // About 2.5 s: followers are reading it when the digest fails.
      for (let at = 0; at < LIE_BYTES && !res.destroyed; at += 256 * 1024) {
        res.write(lie.subarray(at, at + 256 * 1024));
        await new Promise((r) => setTimeout(r, 50));
      }
      res.end();
    });
    for (const name of ["a", "b", "c"]) await startReplica(name);
  }, 90_000);

  afterAll(async () => {
    for (const r of replicas.splice(0)) await r.stop();
    await backend.close();
    await link?.close();
    await liar?.close();
    await upstream?.close();
    await redis?.stop();
    if (dir) await removeTempDir(dir);
  });

  it("stream a download in progress to clients of the other replicas before it is published, with one upstream GET", async () => {
    const { layer, size } = await push("library/streamed");
    const [a, b, c] = replicas as [Replica, Replica, Replica];
    const holder = streamBlob(a.url, "library/streamed", layer);
    await eventually(async () => a.logged(/upstream request/).some((l) => String(l.url).includes(layer)), (seen) => seen, 20_000);
    // Cold for b and c: neither has a byte of it, neither downloads it.
    const followers = [streamBlob(b.url, "library/streamed", layer), streamBlob(c.url, "library/streamed", layer)];
    const firstBytes = await Promise.all(followers.map((f) => f.firstByteMs));
    const publishedAtFirstByte = await blobPath(layer);
    const holderFirst = await holder.firstByteMs;
    const results = await Promise.all([holder.result, ...followers.map((f) => f.result)]);
    console.log(`cold first-byte latency through a replica that is not downloading (${_backend}): ${firstBytes.map((ms) => `${Math.round(ms)} ms`).join(", ")}; through the downloading replica: ${Math.round(holderFirst)} ms; blob ${size} bytes over a ${LINK_BYTES_PER_SEC / 1024 / 1024} MiB/s link`);
    expect(publishedAtFirstByte).toBe(false);
    for (const r of results) expect(r).toEqual({ status: 200, bytes: expect.any(Number), sha: layer });
    // Not waiting for the publish: the first byte came while the download was still going on.
    const holderEnded = await holder.endedAt;
    for (const f of followers) expect(await f.firstByteAt).toBeLessThan(holderEnded);
    await upstream.settle();
    expect(upstream.count({ method: "GET", pathIncludes: layer })).toBe(1);
  }, 120_000);

  it("take over a SIGKILLed download with a Range request: every client gets the verified blob or a broken body", async () => {
    const { layer, size } = await push("library/taken");
    const [a, b, c] = replicas as [Replica, Replica, Replica];
    const holder = streamBlob(a.url, "library/taken", layer);
    await eventually(async () => a.logged(/upstream request/).some((l) => String(l.url).includes(layer)), (seen) => seen, 20_000);
    const followers = [streamBlob(b.url, "library/taken", layer), streamBlob(c.url, "library/taken", layer)];
    // Killed once its clients have a good part of the blob, well before the end.
    await eventually(async () => Math.min(...followers.map((f) => f.received())), (n) => n > size / 3, 20_000);
    const atKill = followers.map((f) => f.received());
    await a.kill();
    const killedClient = await holder.result;
    // The killed replica's client sees a broken body, never a complete one.
    expect("error" in killedClient || killedClient.sha !== layer).toBe(true);
    const results = await Promise.all(followers.map((f) => f.result));
    if (results.some((r) => "error" in r)) for (const r of [b, c]) console.log(r.name, r.proc.lines.filter((l) => /warn|error|taking|lease|progress|follow|"level":(40|50)/.test(l)).join("\n"));
    for (const r of results) expect(r).toEqual({ status: 200, bytes: expect.any(Number), sha: layer });
    // The followers verified the last byte themselves; the publish may finish a moment later.
    expect(await eventually(() => blobPath(layer), (p) => p, 20_000)).toBe(true);
    const takeovers = [...b.logged(/taking over another replica's download/), ...c.logged(/taking over another replica's download/)];
    expect(takeovers).toHaveLength(1);
    const at = Number(takeovers[0]?.at);
    expect(at).toBeGreaterThan(0);
    await upstream.settle();
    const gets = upstream.log.entries.filter((e) => e.method === "GET" && e.path.includes(layer));
    const sent = gets.reduce((n, e) => n + e.bytes, 0);
    console.log(`takeover after SIGKILL (${_backend}): followers had ${atKill.join(", ")} bytes at the kill; resumed at ${at} of ${size} bytes; upstream GETs ${gets.map((e) => `${e.status} ${e.bytes} bytes`).join(", ")} = ${sent} bytes (${(sent / size).toFixed(2)} blobs)`);
    expect(gets.map((e) => e.status)).toEqual([200, 206]);
    // The second GET carried only the rest, from at least what the followers had when the holder died.
    expect(gets[1]?.bytes).toBe(size - at);
    expect(at).toBeGreaterThanOrEqual(Math.max(...atKill));
  }, 120_000);

  it("cut off the body of every replica's client when the digest of a download in progress fails", async () => {
    const [b, c] = replicas.filter((r) => r.proc.running) as [Replica, Replica];
    const holder = streamBlob(b.url, "liar.test/app", lieDigest);
    await eventually(async () => b.logged(/upstream request/).some((l) => String(l.url).includes(lieDigest)), (seen) => seen, 20_000);
    const follower = streamBlob(c.url, "liar.test/app", lieDigest);
    const started = Date.now();
    const results = await Promise.all([holder.result, follower.result]);
    console.log(`a digest that fails (${_backend}): ${results.map((r) => ("error" in r ? `broken after ${r.bytes} bytes` : `status ${r.status} after ${r.bytes} bytes`)).join("; ")}`);
    // Both had bytes of it streaming, and both see a broken body, never a success.
    for (const r of results) expect(r).toEqual({ error: expect.any(String), bytes: expect.any(Number) });
    for (const r of results) expect(r.bytes).toBeGreaterThan(0);
    for (const r of results) expect(r.bytes).toBeLessThan(LIE_BYTES);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(await blobPath(lieDigest)).toBe(false);
    expect(liar.count("GET", lieDigest)).toBe(1);
  }, 60_000);
});
