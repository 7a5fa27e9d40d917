// What the replica cluster suites share, whatever the store: an image of two layers pushed to the
// upstream (one of random data of a chosen size), an image pulled through a mirror as a client
// would, and a blob read through a replica with its digest.
import { createHash } from "node:crypto";
import { expect } from "vitest";
import { buildImage, type Image } from "./fixtures/image.js";
import { filesLayer, randomLayer } from "./fixtures/layers.js";
import { pushImage } from "./fixtures/push.js";
import type { UpstreamRegistry } from "./registry.js";

/** Push `repo:v1`: a layer of `bigBytes` random bytes and a small one naming the repository. */
export async function pushTwoLayers(upstream: UpstreamRegistry, repo: string, bigBytes: number): Promise<Image> {
  const img = buildImage({ layers: [await randomLayer("data/big.bin", bigBytes), await filesLayer({ "etc/id": `${repo}-${Date.now()}\n` })] });
  await pushImage({ url: upstream.url }, repo, img, "v1");
  return img;
}

/** GET a blob through a replica: its status and the digest of the body, or the error of a broken response. */
export async function getBlob(url: string, repo: string, digest: string): Promise<{ status: number; sha: string } | { error: string }> {
  try {
    const res = await fetch(`${url}/v2/${repo}/blobs/${digest}`);
    const body = Buffer.from(await res.arrayBuffer());
    return { status: res.status, sha: `sha256:${createHash("sha256").update(body).digest("hex")}` };
  } catch (err) {
    return { error: String((err as Error).cause ?? err) };
  }
}

/** Pull `repo:tag` through a mirror: the manifest, then every blob, each answered 200. */
export async function pullImage(url: string, repo: string, tag: string, image: Image): Promise<void> {
  const m = await fetch(`${url}/v2/${repo}/manifests/${tag}`, { headers: { accept: image.manifest.mediaType } });
  expect(m.status).toBe(200);
  await m.arrayBuffer();
  for (const b of [image.config, ...image.layers]) {
    const res = await fetch(`${url}/v2/${repo}/blobs/${b.digest}`);
    expect(res.status).toBe(200);
    await res.arrayBuffer();
  }
}
