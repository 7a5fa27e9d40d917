// Private content stays private, against real parts: a private upstream (distribution with htpasswd),
// a public one (open distribution), and a mirror with client auth that lets anonymous clients pull
// the public one. Every "asked upstream" claim is counted in the upstream's own access log.
import { createHash } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMirror, type RunningMirror } from "../../src/server.js";
import { MediaType, type Image } from "../support/fixtures/image.js";
import { pushImage } from "../support/fixtures/push.js";
import { uniqueImage } from "../support/fixtures/sets.js";
import { eventually } from "../support/eventually.js";
import { writeHtpasswd } from "../support/htpasswd.js";
import { UpstreamRegistry } from "../support/registry.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

const ACCEPT = [MediaType.dockerManifest, MediaType.ociManifest].join(", ");
const ALICE = `Basic ${Buffer.from("alice:team-pass").toString("base64")}`;
const PRIVATE = "private.example";

async function get(url: string, authorization?: string, method: "GET" | "HEAD" = "GET") {
  const res = await request(url, { method, headers: { accept: ACCEPT, ...(authorization ? { authorization } : {}) } });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body, code: res.statusCode >= 400 && method === "GET" ? (JSON.parse(body.toString()) as { errors: { code: string }[] }).errors[0]?.code : undefined };
}
const sha256 = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

describe("private content stays private", () => {
  let secret: UpstreamRegistry;
  let hub: UpstreamRegistry;
  let work: string;
  let mirror: RunningMirror;
  let image: Image;
  let shared: Image;
  const started: RunningMirror[] = [];

  async function start(extra: Record<string, unknown> = {}): Promise<RunningMirror> {
    const m = await startMirror({
      listen: "127.0.0.1:0",
      storage: await makeTempDir("private-mirror"),
      builtinUpstreams: false,
      defaultUpstream: "docker.io",
      upstreams: {
        "docker.io": { url: hub.url },
        // Credentials, so access defaults to authenticated.
        [PRIVATE]: { url: secret.url, username: "robot", password: "robot-pass" },
      },
      auth: { htpasswd: { realm: "team", path: join(work, "htpasswd") }, anonymousPull: true },
      logLevel: "silent",
      ...extra,
    });
    started.push(m);
    return m;
  }

  beforeAll(async () => {
    work = await makeTempDir("private");
    await writeHtpasswd(join(work, "htpasswd"), { alice: "team-pass" });
    secret = await UpstreamRegistry.start({ name: "private upstream", basicAuth: { username: "robot", password: "robot-pass" } });
    hub = await UpstreamRegistry.start({ name: "public upstream" });
    image = await uniqueImage("docker");
    shared = await uniqueImage("docker");
    await pushImage({ url: secret.url, headers: secret.authHeader() }, "team/secret", image, "1");
    // The same image is public too, under another name on the public upstream.
    await pushImage({ url: secret.url, headers: secret.authHeader() }, "team/shared", shared, "1");
    await pushImage(hub, "library/shared", shared, "1");
    mirror = await start();
  });

  afterAll(async () => {
    for (const m of started) await m.close(1_000);
    await secret?.close();
    await hub?.close();
    if (work) await removeTempDir(work);
  });

  it("refuses anonymous clients the private upstream (401 with the challenge) and serves a logged-in user", async () => {
    for (const path of [`/v2/${PRIVATE}/team/secret/manifests/1`, `/v2/${PRIVATE}/team/secret/blobs/${image.layers[0]!.digest}`, `/v2/${PRIVATE}/team/secret/tags/list`, `/v2/team/secret/manifests/1?ns=${PRIVATE}`]) {
      const res = await get(`${mirror.url}${path}`);
      expect(res.status, path).toBe(401);
      expect(res.headers["www-authenticate"]).toBe('Basic realm="team"');
    }
    const m = await get(`${mirror.url}/v2/${PRIVATE}/team/secret/manifests/1`, ALICE);
    expect(m.status).toBe(200);
    expect(m.body.equals(image.manifest.bytes)).toBe(true);
    for (const blob of [image.config, ...image.layers]) {
      const b = await get(`${mirror.url}/v2/${PRIVATE}/team/secret/blobs/${blob.digest}`, ALICE);
      expect(sha256(b.body)).toBe(blob.digest);
    }
    // Now cached: still refused to anonymous clients.
    expect((await get(`${mirror.url}/v2/${PRIVATE}/team/secret/manifests/${image.manifest.digest}`)).status).toBe(401);
    expect((await get(`${mirror.url}/v2/${PRIVATE}/team/secret/blobs/${image.layers[0]!.digest}`)).status).toBe(401);
  });

  it("does not serve the cached private content by digest under another repository's name", async () => {
    await get(`${mirror.url}/v2/${PRIVATE}/team/secret/manifests/1`, ALICE);
    hub.reset();
    secret.reset();
    const digests = [image.manifest.digest, image.config.digest, ...image.layers.map((l) => l.digest)];
    for (const [i, d] of digests.entries()) {
      const kind = i === 0 ? "manifests" : "blobs";
      // Anonymous, under a public repository: the public upstream is asked, says 404, nothing is served.
      const anon = await get(`${mirror.url}/v2/library/anything/${kind}/${d}`);
      expect(anon.status, d).toBe(404);
      expect(anon.code).toBe(i === 0 ? "MANIFEST_UNKNOWN" : "BLOB_UNKNOWN");
      expect((await get(`${mirror.url}/v2/library/anything/${kind}/${d}`, undefined, "HEAD")).status).toBe(404);
      // Logged in, under another repository of the private upstream: that repository is asked, and does not hold it.
      const other = await get(`${mirror.url}/v2/${PRIVATE}/team/other/${kind}/${d}`, ALICE);
      expect(other.status, d).toBe(404);
    }
    await hub.settle();
    await secret.settle();
    expect(hub.count({ method: "HEAD", pathIncludes: "/v2/library/anything/" })).toBe(digests.length * 2);
    expect(hub.count({ method: "GET" })).toBe(0);
    expect(secret.count({ method: "HEAD", pathIncludes: "/v2/team/other/", status: 404 })).toBe(digests.length);
  });

  it("hides the private repositories from anonymous clients in /v2/_catalog", async () => {
    await get(`${mirror.url}/v2/library/shared/manifests/1`);
    const anon = JSON.parse((await get(`${mirror.url}/v2/_catalog`)).body.toString()) as { repositories: string[] };
    const alice = JSON.parse((await get(`${mirror.url}/v2/_catalog`, ALICE)).body.toString()) as { repositories: string[] };
    expect(anon.repositories).toEqual(["library/shared"]);
    expect(alice.repositories).toEqual(["library/shared", `${PRIVATE}/team/secret`]);
  });

  it("stores shared content once: a public repository holding the same layers is served them without downloading again", async () => {
    const m = await start();
    await get(`${m.url}/v2/${PRIVATE}/team/shared/manifests/1`, ALICE);
    for (const blob of [shared.config, ...shared.layers]) await get(`${m.url}/v2/${PRIVATE}/team/shared/blobs/${blob.digest}`, ALICE);
    hub.reset();
    const manifest = await get(`${m.url}/v2/library/shared/manifests/1`);
    expect(manifest.status).toBe(200);
    for (const blob of [shared.config, ...shared.layers]) {
      const b = await get(`${m.url}/v2/library/shared/blobs/${blob.digest}`);
      expect(b.status).toBe(200);
      expect(b.headers["x-mirror-cache"]).toBe("HIT");
      expect(sha256(b.body)).toBe(blob.digest);
    }
    await hub.settle();
    // The public manifest named the layers, so no HEAD and no GET was needed for them.
    expect(hub.count({ kind: "blob" })).toBe(0);
    // A verified blob is served as a HIT while its publication (fsync, rename) may still be under way.
    const copiesOf = (files: string[], digest: string) => files.filter((p) => p.endsWith(digest.slice(7)));
    const stored = await eventually(
      () => readdir(join(m.config.storage, "blobs", "sha256"), { recursive: true }),
      (files) => shared.layers.every((blob) => copiesOf(files, blob.digest).length > 0),
    );
    for (const blob of shared.layers) expect(copiesOf(stored, blob.digest)).toHaveLength(1);
  });

  it("cache.maxAge: content older than that is confirmed upstream with one HEAD, and served stale when upstream is down", async () => {
    const m = await start({ cache: { maxAge: "1s" } });
    const layer = shared.layers[0]!.digest;
    await get(`${m.url}/v2/library/shared/manifests/1`);
    expect((await get(`${m.url}/v2/library/shared/blobs/${layer}`)).status).toBe(200);
    hub.reset();
    expect((await get(`${m.url}/v2/library/shared/blobs/${layer}`)).status).toBe(200);
    await hub.settle();
    expect(hub.count()).toBe(0);
    await new Promise((r) => setTimeout(r, 1_200));
    const again = await get(`${m.url}/v2/library/shared/blobs/${layer}`);
    expect(sha256(again.body)).toBe(layer);
    await hub.settle();
    expect(hub.count({ method: "HEAD", pathIncludes: layer })).toBe(1);
    expect(hub.count({ method: "GET", pathIncludes: layer })).toBe(0);
    await new Promise((r) => setTimeout(r, 1_200));
    await hub.stop();
    try {
      const stale = await get(`${m.url}/v2/library/shared/blobs/${layer}`);
      expect(stale.status).toBe(200);
      expect(sha256(stale.body)).toBe(layer);
    } finally {
      await hub.start();
    }
  });
});
