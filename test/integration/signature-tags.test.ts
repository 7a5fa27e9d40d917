// A signature in the tag schema through the mirror, with a real client: the cosign-format
// `sha256-<hex>.sig` tag beside an image in a real distribution upstream (as cosign and
// containers/image write it); skopeo copies it through the mirror, then again with the upstream
// stopped, byte for byte. The signature is written by the test and skopeo only copies it: Debian 12's
// skopeo, podman and buildah are built with sigstore signing AND verification disabled ("Debian-local
// change: sigstore disabled"), and no cosign, oras, crane or regctl is packaged.
import { createHash, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildImage, MediaType, type Blob, type Image } from "../support/fixtures/image.js";
import { randomLayer } from "../support/fixtures/layers.js";
import { pushBlob, pushImage, pushManifest } from "../support/fixtures/push.js";
import { startTestMirror, type TestMirror } from "../support/mirror.js";
import { requireTools } from "../support/preflight.js";
import { run } from "../support/process.js";
import { UpstreamRegistry } from "../support/registry.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

const SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json";

function blobOf(bytes: Buffer, mediaType: string): Blob {
  return { bytes, digest: `sha256:${createHash("sha256").update(bytes).digest("hex")}`, size: bytes.length, mediaType };
}

/**
 * The signature artifact cosign and containers/image store under sha256-<hex>.sig: an OCI manifest
 * whose layer is the simple-signing payload and whose annotation is its ECDSA signature.
 */
function sigstoreSignature(signed: Blob, identity: string, key: KeyObject): { config: Blob; payload: Blob; manifest: Blob } {
  const payload = blobOf(
    Buffer.from(JSON.stringify({ critical: { identity: { "docker-reference": identity }, image: { "docker-manifest-digest": signed.digest }, type: "cosign container image signature" }, optional: {} })),
    SIMPLE_SIGNING,
  );
  const config = blobOf(Buffer.from(JSON.stringify({ architecture: "", os: "", config: {}, rootfs: { type: "layers", diff_ids: [payload.digest] } })), "application/vnd.oci.image.config.v1+json");
  const manifest = blobOf(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
        layers: [{ mediaType: SIMPLE_SIGNING, digest: payload.digest, size: payload.size, annotations: { "dev.cosignproject.cosign/signature": sign("sha256", payload.bytes, key).toString("base64") } }],
      }),
    ),
    MediaType.ociManifest,
  );
  return { config, payload, manifest };
}

describe("a sigstore signature tag through the mirror, copied by skopeo", () => {
  let hub: UpstreamRegistry;
  let mirror: TestMirror;
  let work: string;
  let image: Image;
  const repo = "library/mk-sigstore";
  const identity = `docker.io/${repo}:1`;

  const sigTag = () => `sha256-${image.manifest.digest.slice(7)}.sig`;
  let signature: { manifest: Blob };

  /** skopeo copy of the .sig tag through the mirror into an OCI layout; the copied manifest's digest. */
  async function copySignature(dest: string): Promise<{ code: number; stderr: string; digest?: string }> {
    const r = await run(
      "skopeo",
      ["--policy", join(work, "policy.json"), "copy", "--src-tls-verify=false", "--src-no-creds", `docker://${mirror.host}/${repo}:${sigTag()}`, `oci:${join(work, dest)}:sig`],
      { timeoutMs: 100_000, allowFailure: true, env: { ...process.env, CONTAINERS_REGISTRIES_CONF: join(work, "registries.conf") } },
    );
    if (r.code !== 0) return r;
    const index = JSON.parse(await readFile(join(work, dest, "index.json"), "utf8")) as { manifests: { digest: string }[] };
    return { ...r, digest: index.manifests[0]?.digest };
  }

  beforeAll(async () => {
    requireTools(["docker-registry", "skopeo"]);
    work = await makeTempDir("sigstore");
    await writeFile(join(work, "registries.conf"), "unqualified-search-registries = []\n");
    hub = await UpstreamRegistry.start({ name: "upstream docker.io" });
    mirror = await startTestMirror({ "docker.io": hub.url }, { cache: { tagFreshness: "10m" } });
    await writeFile(join(work, "policy.json"), JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
    image = buildImage({ format: "oci", layers: [await randomLayer("signed.bin", 16 * 1024)] });
    await pushImage(hub, repo, image, "1");
    const key = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const sig = sigstoreSignature(image.manifest, identity, key.privateKey);
    signature = sig;
    await pushBlob(hub, repo, sig.config);
    await pushBlob(hub, repo, sig.payload);
    await pushManifest(hub, repo, `sha256-${image.manifest.digest.slice(7)}.sig`, sig.manifest);
  });

  afterAll(async () => {
    await mirror?.close();
    await hub?.close();
    if (work) await removeTempDir(work);
  });

  it("skopeo copies the signature tag through the mirror, byte for byte, and the mirror caches it", async () => {
    await hub.settle();
    hub.reset();
    const r = await copySignature("online");
    expect(r.code, r.stderr).toBe(0);
    expect(r.digest).toBe(signature.manifest.digest);
    await hub.settle();
    expect(hub.count({ kind: "manifest", pathIncludes: `/manifests/${sigTag()}` })).toBeGreaterThan(0);
  });

  it("with the upstream stopped, skopeo still copies the signature from the mirror's cache", async () => {
    await hub.stop();
    try {
      const r = await copySignature("offline");
      expect(r.code, r.stderr).toBe(0);
      expect(r.digest).toBe(signature.manifest.digest);
    } finally {
      await hub.start();
    }
  });
});
