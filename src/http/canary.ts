// mirror-kit doctor's canary: a tiny image the mirror serves itself under a reserved name, so a
// daemon's pull of it succeeds from the mirror and never goes to an upstream, nor falls back to one.
import { createHash } from "node:crypto";
import type { ServerResponse } from "node:http";
import { gzipSync } from "node:zlib";
import { MirrorError } from "../oci/errors.js";
import { MediaType } from "../oci/mediatypes.js";
import type { Reference } from "../oci/names.js";

/**
 * `mirror-kit doctor` pulls <prefix><16 hex> through a Docker engine. Only an official-image name
 * (library/, which no user can push to) is reserved, so no real repository is ever shadowed; the
 * mirror answers it from memory, and the pull proves the engine asked the mirror.
 */
export const CANARY_PREFIX = "mirror-kit-canary-";
const CANARY = /^(?:library\/)?mirror-kit-canary-[0-9a-f]{16}$/;

export function isCanary(name: string): boolean {
  return CANARY.test(name);
}

interface Content {
  mediaType: string;
  digest: string;
  body: Buffer;
}

const content = (mediaType: string, body: Buffer): Content => ({ mediaType, digest: `sha256:${createHash("sha256").update(body).digest("hex")}`, body });
const descriptor = (c: Content) => ({ mediaType: c.mediaType, digest: c.digest, size: c.body.byteLength });

// The one layer is an empty tar (its two zero end blocks): nothing is unpacked.
const EMPTY_TAR = Buffer.alloc(1024);
const LAYER = content("application/vnd.oci.image.layer.v1.tar+gzip", gzipSync(EMPTY_TAR));
const DIFF_ID = `sha256:${createHash("sha256").update(EMPTY_TAR).digest("hex")}`;
// Every platform an engine may run on, so each picks its own entry of the index and no engine
// refuses the canary as made for another architecture.
const PLATFORMS: { architecture: string; variant?: string }[] = [
  { architecture: "amd64" },
  { architecture: "arm64", variant: "v8" },
  { architecture: "arm", variant: "v7" },
  { architecture: "arm", variant: "v6" },
  { architecture: "386" },
  { architecture: "ppc64le" },
  { architecture: "s390x" },
  { architecture: "riscv64" },
];

const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const images = PLATFORMS.map((p) => {
  const platform = { ...p, os: "linux" };
  const config = content("application/vnd.oci.image.config.v1+json", json({ ...platform, config: { Labels: { "io.mirror-kit.canary": "served by the mirror itself; mirror-kit doctor removes it" } }, rootfs: { type: "layers", diff_ids: [DIFF_ID] } }));
  const manifest = content(MediaType.ociManifest, json({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: descriptor(config), layers: [descriptor(LAYER)] }));
  return { platform, config, manifest };
});
const INDEX = content(MediaType.ociIndex, json({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: images.map((i) => ({ ...descriptor(i.manifest), platform: i.platform })) }));

const MANIFESTS = new Map([INDEX, ...images.map((i) => i.manifest)].map((c) => [c.digest, c]));
const BLOBS = new Map([LAYER, ...images.map((i) => i.config)].map((c) => [c.digest, c]));

/** The canary's manifest: the index for any tag, or the index or a platform's manifest by digest. */
export function serveCanaryManifest(res: ServerResponse, reference: Reference, headOnly: boolean): void {
  const found = reference.kind === "tag" ? INDEX : MANIFESTS.get(reference.digest.value);
  if (!found) throw new MirrorError("MANIFEST_UNKNOWN", "the canary has no such manifest");
  send(res, found, headOnly);
}

export function serveCanaryBlob(res: ServerResponse, digest: string, headOnly: boolean): void {
  const found = BLOBS.get(digest);
  if (!found) throw new MirrorError("BLOB_UNKNOWN", "the canary has no such blob");
  send(res, found, headOnly);
}

function send(res: ServerResponse, c: Content, headOnly: boolean): void {
  res.statusCode = 200;
  res.setHeader("content-type", c.mediaType);
  res.setHeader("content-length", String(c.body.byteLength));
  res.setHeader("docker-content-digest", c.digest);
  res.setHeader("etag", `"${c.digest}"`);
  // Served by the mirror itself: a HIT for the client; the status model leaves it out of the traffic figures.
  res.setHeader("x-mirror-cache", "HIT");
  res.end(headOnly ? undefined : c.body);
}
