// The referrers API through the mirror, with a real distribution 2.8 upstream (which has no referrers
// API): artifacts pushed with a `subject`, plus the tag-schema fallback index (sha256-<hex>) that
// clients such as oras keep when the registry lacks the API. The mirror answers from the fallback,
// filters by artifactType, caches the list (counted at the upstream) and serves it with the upstream
// stopped. A second mirror chained to the first reads the list through the first one's referrers
// API: the API path, against a server that has it. Upstream requests come from its access log.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FsStore } from "../../src/store/fs-store.js";
import { parseDigest } from "../../src/oci/digest.js";
import { buildImage, MediaType, type Blob, type Image } from "../support/fixtures/image.js";
import { randomLayer, sha256 } from "../support/fixtures/layers.js";
import { pushBlob, pushImage, pushManifest } from "../support/fixtures/push.js";
import { startTestMirror, type TestMirror } from "../support/mirror.js";
import { requireTools } from "../support/preflight.js";
import { UpstreamRegistry } from "../support/registry.js";

const SBOM = "application/vnd.example.sbom.v1+json";
const SIGNATURE = "application/vnd.example.signature.v1+json";
const EMPTY = { bytes: Buffer.from("{}"), digest: sha256(Buffer.from("{}")), size: 2, mediaType: "application/vnd.oci.empty.v1+json" };

function json(content: unknown, mediaType: string): Blob {
  const bytes = Buffer.from(JSON.stringify(content));
  return { bytes, digest: sha256(bytes), size: bytes.length, mediaType };
}

/** An OCI 1.1 artifact manifest (image manifest + artifactType) whose subject is `subject`. */
function artifact(subject: Blob, artifactType: string, payload: Blob): Blob {
  return json(
    {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      artifactType,
      config: { mediaType: EMPTY.mediaType, digest: EMPTY.digest, size: EMPTY.size },
      layers: [{ mediaType: payload.mediaType, digest: payload.digest, size: payload.size }],
      subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    },
    MediaType.ociManifest,
  );
}

function descriptor(m: Blob, artifactType: string) {
  return { mediaType: m.mediaType, digest: m.digest, size: m.size, artifactType };
}

interface ReferrersBody {
  mediaType: string;
  manifests: { digest: string; artifactType?: string }[];
}

async function referrers(mirror: TestMirror, repo: string, subject: string, query = ""): Promise<{ status: number; headers: Headers; body: ReferrersBody }> {
  const res = await fetch(`${mirror.url}/v2/${repo}/referrers/${subject}${query}`);
  return { status: res.status, headers: res.headers, body: (await res.json()) as ReferrersBody };
}

describe("referrers through the mirror", () => {
  let hub: UpstreamRegistry;
  let team: TestMirror;
  let laptop: TestMirror;
  let image: Image;
  let sbom: Blob;
  let signature: Blob;
  let lonely: Image;
  const repo = "library/mk-signed";

  beforeAll(async () => {
    requireTools(["docker-registry"]);
    hub = await UpstreamRegistry.start({ name: "upstream docker.io" });
    image = buildImage({ format: "oci", layers: [await randomLayer("app.bin", 16 * 1024)] });
    lonely = buildImage({ format: "oci", layers: [await randomLayer("lonely.bin", 16 * 1024)] });
    await pushImage(hub, repo, image, "1");
    await pushImage(hub, repo, lonely, "2");
    const sbomDoc = json({ packages: ["busybox"], run: Math.random() }, "application/spdx+json");
    const sigDoc = json({ signed: image.manifest.digest, run: Math.random() }, "application/vnd.example.sig");
    sbom = artifact(image.manifest, SBOM, sbomDoc);
    signature = artifact(image.manifest, SIGNATURE, sigDoc);
    for (const b of [EMPTY, sbomDoc, sigDoc]) await pushBlob(hub, repo, b);
    // distribution 2.8 stores artifacts with a subject as plain manifests (by digest) ...
    await pushManifest(hub, repo, sbom.digest, sbom);
    await pushManifest(hub, repo, signature.digest, signature);
    // ... and, having no referrers API, the pushing client keeps the fallback index under sha256-<hex>.
    const fallback = json({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [descriptor(sbom, SBOM), descriptor(signature, SIGNATURE)] }, MediaType.ociIndex);
    await pushManifest(hub, repo, `sha256-${image.manifest.digest.slice(7)}`, fallback);
    team = await startTestMirror({ "docker.io": hub.url }, { cache: { tagFreshness: "10m" } });
    laptop = await startTestMirror({ "docker.io": team.url }, { cache: { tagFreshness: "10m" } });
  });

  afterAll(async () => {
    await laptop?.close();
    await team?.close();
    await hub?.close();
  });

  it("distribution 2.8 itself has no referrers API (so the fallback is what is being proven)", async () => {
    const res = await fetch(`${hub.url}/v2/${repo}/referrers/${image.manifest.digest}`);
    await res.arrayBuffer();
    expect(res.status).toBe(404);
  });

  it("answers the referrers API from the upstream's tag-schema fallback, as an OCI index", async () => {
    await hub.settle();
    hub.reset();
    const r = await referrers(team, repo, image.manifest.digest);
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe(MediaType.ociIndex);
    expect(r.headers.get("x-mirror-cache")).toBe("MISS");
    expect(r.headers.get("x-mirror-referrers-source")).toBe("tag-schema");
    expect(r.body.mediaType).toBe(MediaType.ociIndex);
    expect(r.body.manifests.map((m) => m.digest).sort()).toEqual([sbom.digest, signature.digest].sort());
    await hub.settle();
    expect(hub.count({ pathIncludes: `/referrers/${image.manifest.digest}` })).toBe(1);
    expect(hub.count({ kind: "manifest", pathIncludes: `/manifests/sha256-${image.manifest.digest.slice(7)}` })).toBeGreaterThan(0);
  });

  it("filters by artifactType and says so in OCI-Filters-Applied", async () => {
    const r = await referrers(team, repo, image.manifest.digest, `?artifactType=${encodeURIComponent(SBOM)}`);
    expect(r.status).toBe(200);
    expect(r.headers.get("oci-filters-applied")).toBe("artifactType");
    expect(r.body.manifests).toEqual([descriptor(sbom, SBOM)]);
    const unfiltered = await referrers(team, repo, image.manifest.digest);
    expect(unfiltered.headers.get("oci-filters-applied")).toBeNull();
  });

  it("serves a cached list within the freshness window without asking upstream", async () => {
    await hub.settle();
    hub.reset();
    const r = await referrers(team, repo, image.manifest.digest);
    expect(r.headers.get("x-mirror-cache")).toBe("HIT");
    expect(r.body.manifests).toHaveLength(2);
    await hub.settle();
    expect(hub.count({})).toBe(0);
  });

  it("answers an empty index for a subject nothing refers to", async () => {
    const r = await referrers(team, repo, lonely.manifest.digest);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] });
  });

  it("serves the referrer manifests themselves by digest, byte for byte", async () => {
    const res = await fetch(`${team.url}/v2/${repo}/manifests/${sbom.digest}`, { headers: { accept: MediaType.ociManifest } });
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(sbom.bytes)).toBe(true);
  });

  it("a mirror chained to this one reads the list through its referrers API", async () => {
    await hub.settle();
    hub.reset();
    const r = await referrers(laptop, repo, image.manifest.digest, `?artifactType=${encodeURIComponent(SIGNATURE)}`);
    expect(r.status).toBe(200);
    expect(r.headers.get("x-mirror-referrers-source")).toBe("api");
    expect(r.body.manifests).toEqual([descriptor(signature, SIGNATURE)]);
    // The team mirror answered from its cache: the real upstream saw nothing.
    await hub.settle();
    expect(hub.count({})).toBe(0);
  });

  it("refuses an artifactType that is not a media type", async () => {
    const res = await fetch(`${team.url}/v2/${repo}/referrers/${image.manifest.digest}?artifactType=${encodeURIComponent("a b\r\n")}`);
    await res.arrayBuffer();
    expect(res.status).toBe(404);
  });

  it("with the upstream stopped, serves the cached list stale once its window has passed", async () => {
    await hub.stop();
    try {
      // As `mirror-kit refresh` does: the record is marked unconfirmed, so the next request asks upstream.
      const store = await FsStore.open(team.storage, { shared: true });
      const key = `-referrers-sha256-${image.manifest.digest.slice(7)}`;
      const record = await store.getTag("docker.io", repo, key);
      expect(record).toBeDefined();
      await store.putTag("docker.io", repo, key, { ...record!, checkedAt: 0 });
      const r = await referrers(team, repo, image.manifest.digest);
      expect(r.status).toBe(200);
      expect(r.headers.get("x-mirror-cache")).toBe("STALE");
      expect(r.body.manifests.map((m) => m.digest).sort()).toEqual([sbom.digest, signature.digest].sort());
      // Nothing cached for this subject: no list to serve, a clear 503 rather than a made-up empty one.
      const unknown = await fetch(`${team.url}/v2/${repo}/referrers/${parseDigest(sha256("never")).value}`);
      await unknown.arrayBuffer();
      expect(unknown.status).toBe(503);
    } finally {
      await hub.start();
    }
  });
});
