// The fixture image: one large incompressible layer, a small config and a schema 2 manifest,
// pushed to the upstream with the Distribution push API, streamed from disk (never held in memory).
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, rm } from "node:fs/promises";
import { join } from "node:path";
import { request } from "undici";

const CHUNK = 4 * 1024 * 1024;

export const REPOSITORY = "mirrorkit/bench"; // two segments: no docker.io "library/" rewrite on either proxy
export const TAG = "latest";
export const MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json";

/** Write `size` random bytes to a file, hashing as we go. Random data: nothing in the path can compress it. */
async function writeRandomFile(path, size) {
  const hash = createHash("sha256");
  const fh = await open(path, "w");
  try {
    for (let left = size; left > 0; ) {
      const chunk = randomBytes(Math.min(CHUNK, left));
      hash.update(chunk);
      await fh.write(chunk);
      left -= chunk.byteLength;
    }
  } finally {
    await fh.close();
  }
  return `sha256:${hash.digest("hex")}`;
}

async function expectStatus(res, want, what) {
  if (res.statusCode === want) return;
  const text = (await res.body.text()).slice(0, 500);
  throw new Error(`${what}: upstream answered ${res.statusCode}, expected ${want}: ${text}`);
}

/** Monolithic push: POST an upload session, then PUT the whole body with ?digest=. */
async function pushBlob(base, dispatcher, repository, { digest, size, body }) {
  const start = await request(`${base}/v2/${repository}/blobs/uploads/`, { method: "POST", dispatcher });
  await expectStatus(start, 202, `start upload of ${digest}`);
  await start.body.dump();
  const location = new URL(start.headers.location, base);
  location.searchParams.set("digest", digest);
  const put = await request(location, {
    method: "PUT",
    dispatcher,
    headers: { "content-type": "application/octet-stream", "content-length": String(size) },
    body,
  });
  await expectStatus(put, 201, `finish upload of ${digest}`);
  await put.body.dump();
}

/**
 * Build and push the fixture; returns what the workloads need to request and verify. `layer` is
 * an existing file to push (a real tar.gz for `docker pull`, with its uncompressed digest as
 * diffId); without it, `blobBytes` of random data.
 */
export async function pushFixture({ upstreamUrl, scratchDir, blobBytes, dispatcher, repository = REPOSITORY, layer }) {
  const layerPath = layer?.path ?? join(scratchDir, `layer-${blobBytes}.bin`);
  const layerDigest = layer ? layer.digest : await writeRandomFile(layerPath, blobBytes);
  const layerSize = layer ? layer.size : blobBytes;
  await pushBlob(upstreamUrl, dispatcher, repository, { digest: layerDigest, size: layerSize, body: createReadStream(layerPath) });
  // The upstream has its own copy now; the local file would only cost disk space.
  await rm(layerPath, { force: true });

  const diffId = layer?.diffId ?? layerDigest;
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [diffId] }, config: {} }));
  const configDigest = `sha256:${createHash("sha256").update(config).digest("hex")}`;
  await pushBlob(upstreamUrl, dispatcher, repository, { digest: configDigest, size: config.byteLength, body: config });

  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MANIFEST_TYPE,
    config: { mediaType: "application/vnd.docker.container.image.v1+json", size: config.byteLength, digest: configDigest },
    layers: [{ mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", size: layerSize, digest: layerDigest }],
  }));
  const manifestDigest = `sha256:${createHash("sha256").update(manifest).digest("hex")}`;
  const put = await request(`${upstreamUrl}/v2/${repository}/manifests/${TAG}`, {
    method: "PUT",
    dispatcher,
    headers: { "content-type": MANIFEST_TYPE },
    body: manifest,
  });
  await expectStatus(put, 201, "push manifest");
  await put.body.dump();
  return { repository, layerDigest, layerSize, manifestDigest };
}
