// The pull-through core against a real upstream: Debian's docker-registry (CNCF distribution).
// Every "fewer requests" claim is counted from the upstream's own access log.
import { createHash } from "node:crypto";
import { readdir } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildImage, buildIndex, MediaType, type Image } from "../support/fixtures/image.js";
import { filesLayer, randomLayer, type Layer } from "../support/fixtures/layers.js";
import { pushBlob, pushImage, pushIndex } from "../support/fixtures/push.js";
import { uniqueImage } from "../support/fixtures/sets.js";
import { startTestMirror, type TestMirror } from "../support/mirror.js";
import { UpstreamRegistry } from "../support/registry.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";
import { eventually } from "../support/eventually.js";
import { startMirror } from "../../src/server.js";
import type { ConfigInput } from "../../src/config/schema.js";
import { TokenServer } from "../support/token-server.js";

const DOCKER_ACCEPT = [MediaType.dockerManifest, MediaType.dockerManifestList, MediaType.ociManifest, MediaType.ociIndex];
const BIG_LAYER_BYTES = 48 * 1024 * 1024;

let hub: UpstreamRegistry;
let ghcr: UpstreamRegistry;

beforeAll(async () => {
  hub = await UpstreamRegistry.start({ name: "upstream docker.io" });
  ghcr = await UpstreamRegistry.start({ name: "upstream ghcr.io" });
});

afterAll(async () => {
  await hub?.close();
  await ghcr?.close();
});

async function get(url: string, headers: Record<string, string | string[]> = {}, method: "GET" | "HEAD" = "GET") {
  const res = await request(url, { method, headers });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body };
}

/** GET a body without keeping it: its status, length and digest, hashed as it arrives. */
async function getHashed(url: string): Promise<{ status: number; bytes: number; digest: string }> {
  const res = await request(url);
  const hash = createHash("sha256");
  let bytes = 0;
  for await (const chunk of res.body) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).byteLength;
  }
  return { status: res.statusCode, bytes, digest: `sha256:${hash.digest("hex")}` };
}

/** node:http sends the path exactly as written; fetch and undici would normalise "%2e%2e" away. */
function rawRequest(base: string, method: string, path: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port, method, path }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on("error", reject);
    req.end();
  });
}

function sha256(b: Buffer): string {
  return `sha256:${createHash("sha256").update(b).digest("hex")}`;
}

/** Pull an image the way a client does: manifest by tag, then config and layers by digest. */
async function pull(mirror: TestMirror, repo: string, tag: string, image: Image, query = ""): Promise<string[]> {
  const caches: string[] = [];
  const m = await get(`${mirror.url}/v2/${repo}/manifests/${tag}${query}`, { accept: DOCKER_ACCEPT });
  expect(m.status, m.body.toString()).toBe(200);
  expect(m.body.equals(image.manifest.bytes)).toBe(true);
  caches.push(String(m.headers["x-mirror-cache"]));
  for (const blob of [image.config, ...image.layers]) {
    const b = await get(`${mirror.url}/v2/${repo}/blobs/${blob.digest}${query}`);
    expect(b.status).toBe(200);
    expect(sha256(b.body)).toBe(blob.digest);
    caches.push(String(b.headers["x-mirror-cache"]));
  }
  return caches;
}

describe("pull-through against a real distribution registry", () => {
  let big: Layer;
  let bigImage: Image;
  let mirror: TestMirror;

  beforeAll(async () => {
    big = await randomLayer("data/big.bin", BIG_LAYER_BYTES);
    bigImage = buildImage({ layers: [big, await filesLayer({ "etc/id": "big\n" })] });
    await pushImage({ url: hub.url }, "library/big", bigImage, "1");
    mirror = await startTestMirror({ "docker.io": hub.url, "ghcr.io": ghcr.url });
  });
  afterAll(async () => {
    await mirror?.close();
  });

  it("makes exactly one upstream GET for 16 clients asking at once for the same uncached layer", async () => {
    await hub.settle();
    hub.reset();
    // Each body is hashed as it streams: 16 buffered copies of the layer (768 MiB) made this test
    // the machine's memory and GC benchmark on a loaded CI box, not the mirror's.
    const clients = await Promise.all(Array.from({ length: 16 }, () => getHashed(`${mirror.url}/v2/big/blobs/${big.digest}`)));
    for (const c of clients) expect(c).toEqual({ status: 200, bytes: big.size, digest: big.digest });
    await hub.settle();
    expect(hub.count({ method: "GET", pathIncludes: big.digest }), hub.log.describe()).toBe(1);
    expect(hub.count({ method: "HEAD", pathIncludes: big.digest })).toBe(0);
  });

  it("serves the cached layer again with zero upstream requests, and honours Range with 206", async () => {
    await hub.settle();
    hub.reset();
    const again = await get(`${mirror.url}/v2/library/big/blobs/${big.digest}`);
    expect(again.headers["x-mirror-cache"]).toBe("HIT");
    expect(sha256(again.body)).toBe(big.digest);
    const part = await get(`${mirror.url}/v2/library/big/blobs/${big.digest}`, { range: "bytes=1000-1999" });
    expect(part.status).toBe(206);
    expect(part.headers["content-range"]).toBe(`bytes 1000-1999/${big.size}`);
    expect(part.body.equals(big.bytes.subarray(1000, 2000))).toBe(true);
    const bad = await get(`${mirror.url}/v2/library/big/blobs/${big.digest}`, { range: `bytes=${big.size + 10}-` });
    expect(bad.status).toBe(416);
    expect(bad.headers["content-range"]).toBe(`bytes */${big.size}`);
    // Only the bytes unit is honoured: any other is ignored and the whole blob comes back.
    const items = await get(`${mirror.url}/v2/library/big/blobs/${big.digest}`, { range: "items=0-5" });
    expect([items.status, items.body.byteLength, items.headers["content-range"]]).toEqual([200, big.size, undefined]);
    // HEAD answers what GET would: 206 with Content-Range and the part's length, and no body.
    const head = await get(`${mirror.url}/v2/library/big/blobs/${big.digest}`, { range: "bytes=1000-1999" }, "HEAD");
    expect([head.status, head.headers["content-range"], head.headers["content-length"], head.body.byteLength]).toEqual([206, `bytes 1000-1999/${big.size}`, "1000", 0]);
    const headBad = await get(`${mirror.url}/v2/library/big/blobs/${big.digest}`, { range: `bytes=${big.size}-` }, "HEAD");
    expect([headBad.status, headBad.headers["content-range"]]).toEqual([416, `bytes */${big.size}`]);
    await hub.settle();
    expect(hub.log.describe()).toBe("(no requests)");
  });

  it("keeps filling the cache when the only client disconnects mid-layer, so the next pull is served from cache", async () => {
    const layer = await randomLayer("data/interrupted.bin", 24 * 1024 * 1024);
    await pushBlob({ url: hub.url }, "library/interrupted", layer);
    await hub.settle();
    hub.reset();
    const controller = new AbortController();
    const res = await request(`${mirror.url}/v2/library/interrupted/blobs/${layer.digest}`, { signal: controller.signal });
    expect(res.statusCode).toBe(200);
    // Read a little, then hang up like a killed `docker pull`.
    for await (const _chunk of res.body) break;
    controller.abort();
    // The fill goes on without the client; poll the cache until the blob is published.
    let cache: string | undefined;
    for (let i = 0; i < 200 && cache !== "HIT"; i++) {
      await new Promise((r) => setTimeout(r, 50));
      cache = String((await get(`${mirror.url}/v2/library/interrupted/blobs/${layer.digest}`, {}, "HEAD")).headers["x-mirror-cache"]);
    }
    const resumed = await get(`${mirror.url}/v2/library/interrupted/blobs/${layer.digest}`);
    expect(resumed.headers["x-mirror-cache"]).toBe("HIT");
    expect(sha256(resumed.body)).toBe(layer.digest);
    await hub.settle();
    expect(hub.count({ method: "GET", pathIncludes: layer.digest }), hub.log.describe()).toBe(1);
  });

  it("answers a Range request on a cold miss with 206 and still caches the whole layer", async () => {
    const layer = await randomLayer("data/ranged.bin", 4 * 1024 * 1024);
    await pushBlob({ url: hub.url }, "library/ranged", layer);
    await hub.settle();
    hub.reset();
    const part = await get(`${mirror.url}/v2/ranged/blobs/${layer.digest}`, { range: "bytes=3000000-3000099" });
    expect(part.status).toBe(206);
    expect(part.headers["x-mirror-cache"]).toBe("MISS");
    expect(part.body.equals(layer.bytes.subarray(3_000_000, 3_000_100))).toBe(true);
    let whole;
    for (let i = 0; i < 100; i++) {
      whole = await get(`${mirror.url}/v2/ranged/blobs/${layer.digest}`);
      if (whole.headers["x-mirror-cache"] === "HIT") break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(whole?.headers["x-mirror-cache"]).toBe("HIT");
    expect(sha256(whole?.body ?? Buffer.alloc(0))).toBe(layer.digest);
    await hub.settle();
    expect(hub.count({ method: "GET", pathIncludes: layer.digest })).toBe(1);
  });

  it("serves manifests byte for byte with upstream's media type and digest, for every manifest kind", async () => {
    const docker = await uniqueImage("docker");
    const oci = await uniqueImage("oci");
    const index = buildIndex([await uniqueImage("oci"), await uniqueImage("oci", { os: "linux", architecture: "arm64" })], "oci");
    const list = buildIndex([await uniqueImage("docker"), await uniqueImage("docker", { os: "linux", architecture: "arm64" })], "docker");
    await pushImage({ url: hub.url }, "kinds/docker", docker, "v1");
    await pushImage({ url: hub.url }, "kinds/oci", oci, "v1");
    await pushIndex({ url: hub.url }, "kinds/index", index, "v1");
    await pushIndex({ url: hub.url }, "kinds/list", list, "v1");
    for (const [repo, manifest] of [
      ["kinds/docker", docker.manifest],
      ["kinds/oci", oci.manifest],
      ["kinds/index", index.manifest],
      ["kinds/list", list.manifest],
    ] as const) {
      for (const accept of [DOCKER_ACCEPT, DOCKER_ACCEPT.join(", ")]) {
        const res = await get(`${mirror.url}/v2/${repo}/manifests/v1`, { accept });
        expect(res.status, repo).toBe(200);
        expect(res.body.equals(manifest.bytes), repo).toBe(true);
        expect(res.headers["content-type"], repo).toBe(manifest.mediaType);
        expect(res.headers["docker-content-digest"], repo).toBe(manifest.digest);
      }
      const byDigest = await get(`${mirror.url}/v2/${repo}/manifests/${manifest.digest}`, { accept: DOCKER_ACCEPT });
      expect(byDigest.body.equals(manifest.bytes)).toBe(true);
    }
    // A client that cannot read indexes gets the linux/amd64 image of a multi-arch tag, unchanged.
    const amd64 = list.images[0] as Image;
    const legacy = await get(`${mirror.url}/v2/kinds/list/manifests/v1`, { accept: MediaType.dockerManifest });
    expect(legacy.body.equals(amd64.manifest.bytes)).toBe(true);
    expect(legacy.headers["docker-content-digest"]).toBe(amd64.manifest.digest);
    const refused = await get(`${mirror.url}/v2/kinds/oci/manifests/v1`, { accept: MediaType.dockerManifest });
    expect(refused.status).toBe(404);
    expect(JSON.parse(refused.body.toString()).errors[0].code).toBe("MANIFEST_UNKNOWN");
  });

  it("routes ?ns= and host path prefixes to their upstream, and refuses upstreams it does not know", async () => {
    const image = await uniqueImage("oci");
    await pushImage({ url: ghcr.url }, "owner/tool", image, "2.0");
    await ghcr.settle();
    ghcr.reset();
    expect(await pull(mirror, "owner/tool", "2.0", image, "?ns=ghcr.io")).toEqual(["MISS", "MISS", "MISS", "MISS"]);
    expect(await pull(mirror, "ghcr.io/owner/tool", "2.0", image)).toEqual(["HIT", "HIT", "HIT", "HIT"]);
    await ghcr.settle();
    expect(ghcr.count({ kind: "blob", method: "GET" })).toBe(3);
    const hubCountBefore = hub.log.entries.length;
    for (const path of ["/v2/owner/tool/manifests/2.0?ns=evil.example", "/v2/evil.example/owner/tool/manifests/2.0"]) {
      const res = await get(`${mirror.url}${path}`);
      expect(res.status).toBe(403);
      expect(JSON.parse(res.body.toString()).errors[0].code).toBe("DENIED");
    }
    await hub.settle();
    expect(hub.log.entries.length).toBe(hubCountBefore);
  });

  it("lists what is cached in /v2/_catalog, and tags through tags/list", async () => {
    const catalog = JSON.parse((await get(`${mirror.url}/v2/_catalog`)).body.toString()) as { repositories: string[] };
    expect(catalog.repositories).toEqual(expect.arrayContaining(["kinds/docker", "kinds/list", "ghcr.io/owner/tool"]));
    const tags = JSON.parse((await get(`${mirror.url}/v2/kinds/docker/tags/list`)).body.toString()) as { tags: string[] };
    expect(tags.tags).toEqual(["v1"]);
  });

  it("rejects pushes and malformed requests with OCI errors, without contacting upstream", async () => {
    await hub.settle();
    hub.reset();
    const cases: [string, string, number, string][] = [
      ["POST", "/v2/library/x/blobs/uploads/", 405, "UNSUPPORTED"],
      ["PUT", "/v2/library/x/manifests/1", 405, "UNSUPPORTED"],
      ["DELETE", `/v2/library/x/blobs/sha256:${"a".repeat(64)}`, 405, "UNSUPPORTED"],
      ["GET", "/v2/library/x/blobs/sha256:123", 400, "DIGEST_INVALID"],
      ["GET", "/v2/library/x/manifests/-bad-", 400, "TAG_INVALID"],
      ["GET", "/v2/Library/X/manifests/1", 400, "NAME_INVALID"],
      ["GET", "/v2/library/%2e%2e/manifests/1", 400, "NAME_INVALID"],
      ["GET", "/v2/library/../../../etc/manifests/1", 400, "NAME_INVALID"],
      ["GET", "/v2/library/x/manifests/..%2f..%2fetc", 400, "TAG_INVALID"],
      ["GET", "/v2/nothing-here", 404, "UNSUPPORTED"],
      ["GET", "/favicon.ico", 404, "UNSUPPORTED"],
      ["POST", "/v3/", 404, "UNSUPPORTED"],
      ["GET", "/v2/_catalog?n=abc", 400, "PAGINATION_NUMBER_INVALID"],
      ["GET", "/v2/library/x/tags/list?n=-1", 400, "PAGINATION_NUMBER_INVALID"],
      ["GET", "/v2/library/x/tags/list?n=1.5", 400, "PAGINATION_NUMBER_INVALID"],
    ];
    for (const [method, path, status, code] of cases) {
      const res = await rawRequest(mirror.url, method, path);
      const body = JSON.parse(res.body) as { errors: { code: string }[] };
      expect([method, path, res.status, body.errors[0]?.code]).toEqual([method, path, status, code]);
    }
    await hub.settle();
    expect(hub.log.describe()).toBe("(no requests)");
  });
});

describe("tags: freshness window, HEAD-only revalidation, offline", () => {
  it("makes zero upstream requests for a warm pull inside the freshness window", async () => {
    const image = await uniqueImage("docker");
    await pushImage({ url: hub.url }, "library/warm", image, "1");
    const mirror = await startTestMirror({ "docker.io": hub.url }, { cache: { tagFreshness: "10m" } });
    try {
      expect(await pull(mirror, "warm", "1", image)).toEqual(["MISS", "MISS", "MISS", "MISS"]);
      await hub.settle();
      hub.reset();
      expect(await pull(mirror, "warm", "1", image)).toEqual(["HIT", "HIT", "HIT", "HIT"]);
      await hub.settle();
      expect(hub.log.describe()).toBe("(no requests)");
    } finally {
      await mirror.close();
    }
  });

  it("revalidates an expired tag with one HEAD and no GET, and follows a tag that moved", async () => {
    const v1 = await uniqueImage("docker");
    const v2 = await uniqueImage("docker");
    await pushImage({ url: hub.url }, "library/moving", v1, "latest");
    const mirror = await startTestMirror({ "docker.io": hub.url }, { cache: { tagFreshness: "0s" } });
    try {
      await pull(mirror, "moving", "latest", v1);
      await hub.settle();
      hub.reset();
      expect(await pull(mirror, "moving", "latest", v1)).toEqual(["REVALIDATED", "HIT", "HIT", "HIT"]);
      await hub.settle();
      expect(hub.log.describe()).toBe(`HEAD /v2/library/moving/manifests/latest 200`);

      await pushImage({ url: hub.url }, "library/moving", v2, "latest");
      await hub.settle();
      hub.reset();
      expect(await pull(mirror, "moving", "latest", v2)).toEqual(["MISS", "MISS", "MISS", "MISS"]);
      await hub.settle();
      // The changed tag costs one HEAD and one GET by digest, never a GET by tag.
      expect(hub.count({ kind: "manifest", method: "HEAD" })).toBe(1);
      expect(hub.count({ kind: "manifest", method: "GET", pathIncludes: v2.manifest.digest })).toBe(1);
      expect(hub.count({ kind: "manifest", method: "GET", pathIncludes: "/latest" })).toBe(0);
    } finally {
      await mirror.close();
    }
  });

  it("serves cached tags and digests when the upstream is down, and fails fast for what it never cached", async () => {
    const image = await uniqueImage("docker");
    const neverPulled = await uniqueImage("docker");
    const upstream = await UpstreamRegistry.start({ name: "upstream going offline" });
    const mirror = await startTestMirror({ "docker.io": upstream.url }, { cache: { tagFreshness: "0s" }, upstream: { breakerCooldown: "30s" } });
    try {
      await pushImage({ url: upstream.url }, "library/offline", image, "1");
      await pushImage({ url: upstream.url }, "library/offline", neverPulled, "2");
      await pull(mirror, "offline", "1", image);
      await upstream.stop();

      const m = await get(`${mirror.url}/v2/library/offline/manifests/1`, { accept: DOCKER_ACCEPT });
      expect([m.status, m.headers["x-mirror-cache"]]).toEqual([200, "STALE"]);
      expect(m.body.equals(image.manifest.bytes)).toBe(true);
      expect(await pull(mirror, "offline", "1", image)).toEqual(["STALE", "HIT", "HIT", "HIT"]);
      expect((await get(`${mirror.url}/v2/offline/manifests/${image.manifest.digest}`)).status).toBe(200);

      const started = performance.now();
      const missing = await get(`${mirror.url}/v2/library/offline/manifests/2`);
      expect(missing.status).toBe(503);
      expect(JSON.parse(missing.body.toString()).errors[0].code).toBe("UNAVAILABLE");
      // The circuit is open: no connect timeout is paid per request.
      expect(performance.now() - started).toBeLessThan(1_000);

      await upstream.start();
    } finally {
      await mirror.close();
      await upstream.close();
    }
  });

  it("passes a missing tag on as MANIFEST_UNKNOWN", async () => {
    const mirror = await startTestMirror({ "docker.io": hub.url });
    try {
      const res = await get(`${mirror.url}/v2/library/does-not-exist/manifests/1`);
      expect(res.status).toBe(404);
      expect(["MANIFEST_UNKNOWN", "NAME_UNKNOWN"]).toContain(JSON.parse(res.body.toString()).errors[0].code);
    } finally {
      await mirror.close();
    }
  });
});

describe("an upstream that requires credentials (distribution with htpasswd)", () => {
  it("pulls with the upstream's configured credentials and refuses without them", async () => {
    const upstream = await UpstreamRegistry.start({ name: "private upstream", basicAuth: { username: "robot", password: "pw-s3cret" } });
    const image = await uniqueImage("docker");
    const withCreds = await startTestMirror({ "docker.io": upstream.url });
    try {
      await pushImage({ url: upstream.url, headers: upstream.authHeader() }, "team/private", image, "1");
      const anonymous = await get(`${withCreds.url}/v2/team/private/manifests/1`);
      expect(anonymous.status).toBe(401);
      expect(JSON.parse(anonymous.body.toString()).errors[0].code).toBe("UNAUTHORIZED");
      // Every 401 carries a challenge: the mirror's own, never the upstream's realm.
      expect(anonymous.headers["www-authenticate"]).toBe('Basic realm="mirror-kit"');
    } finally {
      await withCreds.close();
    }
    const storage = await startMirrorWithCredentials(upstream.url);
    try {
      expect(await pull(storage, "team/private", "1", image)).toEqual(["MISS", "MISS", "MISS", "MISS"]);
      const metrics = (await get(`${storage.url}/metrics`)).body.toString();
      expect(metrics).not.toContain("pw-s3cret");
    } finally {
      await storage.close();
      await upstream.close();
    }
  });
});

describe("an upstream with bearer-token auth (distribution + a token server: the Docker Hub flow)", () => {
  it("fetches a token from a trusted realm with the configured credentials and reuses it per scope", async () => {
    const tokens = await TokenServer.start({ robot: "pw-s3cret" });
    const upstream = await UpstreamRegistry.start({
      name: "token upstream",
      tokenAuth: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.rootCertBundle },
    });
    const image = await uniqueImage("oci");
    // Pushing needs push rights, which this token server never grants; seed the storage with a
    // second, open registry sharing the same folder.
    const seeder = await UpstreamRegistry.start({ name: "seeder", shareStorageWith: upstream });
    // The realm is on another origin than the registry, so it must be named to receive credentials.
    const mirror = await startMirrorWithCredentials(upstream.url, { cache: { tagFreshness: "0s" } }, [tokens.realm]);
    try {
      await pushImage({ url: seeder.url }, "team/tokened", image, "1");
      expect(await pull(mirror, "team/tokened", "1", image)).toEqual(["MISS", "MISS", "MISS", "MISS"]);
      expect(await pull(mirror, "team/tokened", "1", image)).toEqual(["REVALIDATED", "HIT", "HIT", "HIT"]);
      const basic = `Basic ${Buffer.from("robot:pw-s3cret").toString("base64")}`;
      expect(tokens.requests.length).toBe(1);
      expect(tokens.requests[0]).toEqual({ authorization: basic, scope: "repository:team/tokened:pull", service: tokens.service });
      await upstream.settle();
      expect(upstream.count({ status: 401 })).toBe(1);
    } finally {
      await mirror.close();
      await seeder.close();
      await upstream.close();
      await tokens.close();
    }
  });
});

/** startTestMirror takes upstream URLs only; this one carries the upstream's credentials. */
async function startMirrorWithCredentials(url: string, extra: Partial<ConfigInput> = {}, tokenRealms: string[] = []): Promise<TestMirror> {
  const dir = await makeTempDir("mirror-creds");
  const running = await startMirror({
    listen: "127.0.0.1:0",
    storage: dir,
    builtinUpstreams: false,
    // These suites test the upstream side; who may read through the mirror is test/integration/private.test.ts's.
    upstreams: { "docker.io": { url, username: "robot", password: "pw-s3cret", tokenRealms, access: "anonymous" } },
    logLevel: "silent",
    ...extra,
  });
  return {
    url: running.url,
    host: new URL(running.url).host,
    storage: dir,
    async close() {
      await running.close(1_000);
      await removeTempDir(dir);
    },
  };
}

describe("a size-capped cache", () => {
  it("stays under its cap by evicting the least recently used images, which are fetched again when wanted", async () => {
    const images = [await uniqueImage("docker"), await uniqueImage("docker"), await uniqueImage("docker"), await uniqueImage("docker")];
    const imageBytes = images[0]!.manifest.size + images[0]!.config.size + images[0]!.layers.reduce((n, l) => n + l.size, 0);
    for (const [i, image] of images.entries()) await pushImage({ url: hub.url }, `capped/app${i}`, image, "1");
    const cap = Math.floor(imageBytes * 2.5);
    const mirror = await startTestMirror({ "docker.io": hub.url }, { cache: { maxSize: cap, evictionGrace: "0s", tagFreshness: "10m" } });
    try {
      for (const [i, image] of images.entries()) {
        await pull(mirror, `capped/app${i}`, "1", image);
        await new Promise((r) => setTimeout(r, 20));
      }
      let size = Number.POSITIVE_INFINITY;
      for (let i = 0; i < 100 && size > cap; i++) {
        await new Promise((r) => setTimeout(r, 50));
        const text = (await get(`${mirror.url}/metrics`)).body.toString();
        size = Number(/^mirrorkit_cache_size_bytes (\d+)/m.exec(text)?.[1] ?? Number.POSITIVE_INFINITY);
      }
      expect(size).toBeLessThanOrEqual(cap);
      await hub.settle();
      hub.reset();
      // The most recent image is whole in the cache; the oldest was evicted whole and comes back.
      expect(await pull(mirror, "capped/app3", "1", images[3]!)).toEqual(["HIT", "HIT", "HIT", "HIT"]);
      await hub.settle();
      expect(hub.log.describe()).toBe("(no requests)");
      expect(await pull(mirror, "capped/app0", "1", images[0]!)).toEqual(["MISS", "MISS", "MISS", "MISS"]);
    } finally {
      await mirror.close();
    }
  });
});

describe("cache layout", () => {
  it("stores a layer shared by two repositories once", async () => {
    const shared = await randomLayer("data/shared.bin", 256 * 1024);
    const a = buildImage({ layers: [shared, await filesLayer({ a: "a" })] });
    const b = buildImage({ layers: [shared, await filesLayer({ b: "b" })] });
    await pushImage({ url: hub.url }, "team/a", a, "1");
    await pushImage({ url: hub.url }, "team/b", b, "1");
    const mirror = await startTestMirror({ "docker.io": hub.url });
    try {
      await hub.settle();
      hub.reset();
      await pull(mirror, "team/a", "1", a);
      await pull(mirror, "team/b", "1", b);
      await hub.settle();
      expect(hub.count({ method: "GET", pathIncludes: shared.digest })).toBe(1);
      const hex = shared.digest.slice("sha256:".length);
      // Clients get the last byte once it is verified; the fsync and rename into place follow.
      const ingest = await eventually(() => readdir(join(mirror.storage, "ingest")), (e) => e.length === 0);
      expect(ingest).toEqual([]);
      expect(await readdir(join(mirror.storage, "blobs", "sha256", hex.slice(0, 2)))).toContain(hex);
    } finally {
      await mirror.close();
    }
  });
});

