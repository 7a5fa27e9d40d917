// The cache commands on S3 storage (Ceph RGW), through the built CLI with the mirror's own config
// file: `ls` lists what a mirror on the bucket cached, `export` writes it out and `import` puts it into
// another bucket, which a second mirror then serves with no upstream request; `rm` and `prune` remove
// from the bucket by the size cap's rules (never a shared layer or a pinned image); the dashboard's
// cache usage is the bucket's. Upstream requests are counted in the upstream's own access log.
import { HeadBucketCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMirror, type RunningMirror } from "../../src/server.js";
import type { StatusV1 } from "../../src/observe/status-types.js";
import { CephRgw } from "../support/ceph-rgw.js";
import { pullImage } from "../support/cluster.js";
import { buildImage, type Image } from "../support/fixtures/image.js";
import { filesLayer, randomLayer } from "../support/fixtures/layers.js";
import { pushImage } from "../support/fixtures/push.js";
import { requireTools } from "../support/preflight.js";
import { run } from "../support/process.js";
import { UpstreamRegistry } from "../support/registry.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

const BIN = join(import.meta.dirname, "..", "..", "dist", "cli", "main.js");
const cli = (args: string[]) => run(process.execPath, [BIN, ...args], { timeoutMs: 100_000, allowFailure: true, env: { PATH: process.env.PATH ?? "" } });

let rgw: CephRgw;
let hub: UpstreamRegistry;
let work: string;
let admin: S3Client;
const mirrors: RunningMirror[] = [];
const images = new Map<string, Image>();

function storage(bucket: string, spool: string) {
  return { driver: "s3" as const, bucket, endpoint: rgw.endpoint, accessKey: rgw.accessKey, secretKey: rgw.secretKey, forcePathStyle: true, secure: false, spool };
}

/** A mirror config file on `bucket`, as an operator writes it (prune spares its pin). */
async function configFile(name: string, bucket: string): Promise<string> {
  const file = join(work, `${name}.yaml`);
  await writeFile(file, stringify({ storage: storage(bucket, join(work, `spool-${name}-cli`)), cache: { rules: [{ match: "docker.io/library/mk-pinned:*", pin: true }] } }));
  return file;
}

async function mirrorOn(name: string, bucket: string): Promise<RunningMirror> {
  const m = await startMirror({ listen: "127.0.0.1:0", storage: storage(bucket, join(work, `spool-${name}`)), replica: name, builtinUpstreams: false, defaultUpstream: "docker.io", upstreams: { "docker.io": { url: hub.url } }, logLevel: "silent",
    // Its use log reaches the bucket every 500 ms (a quarter of the grace), so prune sees a read at once.
    cache: { evictionGrace: "2s" } });
  mirrors.push(m);
  return m;
}

/** Published content in a bucket: digest -> bytes. */
async function blobs(bucket: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const page = await admin.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: "blobs/" }));
  for (const o of page.Contents ?? []) {
    const [, algorithm, , hex] = (o.Key as string).split("/");
    out.set(`${algorithm}:${hex}`, o.Size ?? 0);
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const digestsOf = (img: Image) => [img.manifest.digest, img.config.digest, ...img.layers.map((l) => l.digest)];

beforeAll(async () => {
  requireTools(["docker-registry"]);
  [rgw, hub, work] = await Promise.all([CephRgw.start(), UpstreamRegistry.start({ name: "upstream docker.io" }), makeTempDir("cache-s3")]);
  admin = new S3Client({ endpoint: rgw.endpoint, region: "us-east-1", forcePathStyle: true, credentials: { accessKeyId: rgw.accessKey, secretAccessKey: rgw.secretKey } });
  const shared = await randomLayer("shared.bin", 64 * 1024);
  images.set("mk-a", buildImage({ layers: [shared, await randomLayer("a.bin", 48 * 1024)] }));
  images.set("mk-b", buildImage({ layers: [shared, await filesLayer({ "etc/b": "b\n" })] }));
  images.set("mk-pinned", buildImage({ layers: [await randomLayer("p.bin", 32 * 1024)] }));
  for (const [repo, img] of images) await pushImage(hub, `library/${repo}`, img, "1");
}, 300_000);

afterAll(async () => {
  for (const m of mirrors) await m.close(2_000);
  admin?.destroy();
  await Promise.all([rgw?.close(), hub?.close()]);
  if (work) await removeTempDir(work);
});

describe("ls, export, import, rm and prune on an S3 bucket (Ceph RGW)", () => {
  const bucket = `mk-cache-${process.pid}`;
  let config: string;
  let mirror: RunningMirror;
  const img = (repo: string) => images.get(repo) as Image;

  it("lists what a mirror on the bucket cached, and the dashboard counts the bucket's bytes", async () => {
    mirror = await mirrorOn("a", bucket);
    for (const repo of images.keys()) await pullImage(mirror.url, `library/${repo}`, "1", img(repo));
    config = await configFile("a", bucket);
    const ls = await cli(["ls", "--config", config, "--json"]);
    expect(ls.code, ls.stderr).toBe(0);
    const repos = JSON.parse(ls.stdout) as { name: string; tags: { tag: string; digest: string; sizeBytes: number }[] }[];
    expect(repos.map((r) => r.name).sort()).toEqual(["library/mk-a", "library/mk-b", "library/mk-pinned"]);
    const stored = await blobs(bucket);
    const a = repos.find((r) => r.name === "library/mk-a")?.tags[0];
    expect(a?.digest).toBe(img("mk-a").manifest.digest);
    expect(a?.sizeBytes).toBe(digestsOf(img("mk-a")).reduce((n, d) => n + (stored.get(d) ?? 0), 0));
    // The status API (the dashboard) shows the bucket's size, not the local spool's.
    const status = (await (await fetch(`${mirror.url}/api/v1/status`)).json()) as StatusV1;
    expect(status.cache.sizeBytes).toBe([...stored.values()].reduce((n, v) => n + v, 0));
    expect(status.cache.objects).toBe(stored.size);
    const listed = (await (await fetch(`${mirror.url}/api/v1/repositories`)).json()) as { repositories: { name: string }[] };
    expect(listed.repositories.map((r) => r.name)).toContain("library/mk-pinned");
  }, 120_000);

  it("exports from the bucket and imports into another, which a mirror serves with no upstream request", async () => {
    const tar = join(work, "mk-a.tar");
    const out = await cli(["export", "--config", config, "-o", tar, "mk-a:1"]);
    expect(out.code, out.stderr).toBe(0);
    const other = `mk-import-${process.pid}`;
    const otherConfig = await configFile("b", other);
    const imported = await cli(["import", "--config", otherConfig, tar]);
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stdout).toContain("docker.io/library/mk-a:1");
    expect(new Set((await blobs(other)).keys())).toEqual(new Set(digestsOf(img("mk-a"))));
    const second = await mirrorOn("b", other);
    await hub.settle();
    hub.reset();
    await pullImage(second.url, "library/mk-a", "1", img("mk-a"));
    await hub.settle();
    expect(hub.count({ pathIncludes: "mk-a" })).toBe(0);
  }, 120_000);

  it("rm takes an image out of the bucket, and a layer another image shares stays", async () => {
    const r = await cli(["rm", "--config", config, "mk-a:1"]);
    expect(r.code, r.stderr).toBe(0);
    const stored = await blobs(bucket);
    expect(stored.has(img("mk-a").manifest.digest)).toBe(false);
    expect(stored.has(img("mk-a").layers[1]?.digest as string)).toBe(false);
    for (const d of digestsOf(img("mk-b"))) expect(stored.has(d), d).toBe(true);
    const ls = JSON.parse((await cli(["ls", "--config", config, "--json"])).stdout) as { name: string }[];
    expect(ls.map((x) => x.name).sort()).toEqual(["library/mk-b", "library/mk-pinned"]);
  }, 60_000);

  it("prune --older-than removes what was not used for that long by any replica, never a pinned image", async () => {
    // Everything in the bucket becomes older than 10 s; then a client reads mk-b through the mirror.
    // (10 s: the CLI itself may take seconds to start on a loaded machine, and its clock runs meanwhile.)
    await sleep(10_500);
    await pullImage(mirror.url, "library/mk-b", "1", img("mk-b"));
    await sleep(1_000);
    // That read is in the mirror's use log, not in the objects' LastModified: prune reads the log.
    const kept = await cli(["prune", "--config", config, "--older-than", "10s"]);
    expect(kept.code, kept.stderr).toBe(0);
    let stored = await blobs(bucket);
    for (const d of [...digestsOf(img("mk-b")), ...digestsOf(img("mk-pinned"))]) expect(stored.has(d), d).toBe(true);
    await sleep(10_500);
    const r = await cli(["prune", "--config", config, "--older-than", "10s"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/pruned [1-9]\d* object\(s\)/);
    stored = await blobs(bucket);
    for (const d of digestsOf(img("mk-pinned"))) expect(stored.has(d), d).toBe(true);
    for (const d of digestsOf(img("mk-b"))) expect(stored.has(d), d).toBe(false);
    const ls = JSON.parse((await cli(["ls", "--config", config, "--json"])).stdout) as { name: string }[];
    expect(ls.map((x) => x.name)).toEqual(["library/mk-pinned"]);
  }, 90_000);

  it("names a bucket that does not exist, and does not create it to list it", async () => {
    const missing = await configFile("missing", `mk-missing-${process.pid}`);
    const r = await cli(["ls", "--config", missing]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`mk-missing-${process.pid}`);
    expect(r.stderr).not.toContain(rgw.secretKey);
    const head = await admin.send(new HeadBucketCommand({ Bucket: `mk-missing-${process.pid}` })).then(() => 200, (err: { $metadata?: { httpStatusCode?: number } }) => err.$metadata?.httpStatusCode);
    expect(head).toBe(404);
  }, 60_000);
});
