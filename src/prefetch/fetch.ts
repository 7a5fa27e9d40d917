// Warming a running mirror: each image's manifests (only the requested platforms of an index) and
// blobs are pulled THROUGH the mirror, so it caches them exactly as a client's pull would. A blob the
// mirror already holds is skipped after a HEAD, which is what makes an interrupted prefetch resume.
import pLimit from "p-limit";
import { Agent, type Dispatcher } from "undici";
import { isIndexType } from "../oci/mediatypes.js";
import { platformName, selectPlatforms, type Platform } from "../oci/platform.js";
import { parseImageReference, referenceOf } from "../oci/reference.js";
import { MirrorClient, type Descriptor, type Mirror } from "./mirror-client.js";

export type { Mirror, Platform };

export type PrefetchEvent =
  | { kind: "image-sized"; ref: string; blobs: number; bytes: number }
  | { kind: "bytes"; ref: string; bytes: number }
  | { kind: "blob-done"; ref: string; digest: string; size: number; cached: boolean }
  | { kind: "image-done"; ref: string; result: ImageResult };

export interface ImageResult {
  ref: string;
  ok: boolean;
  error?: string;
  blobs: number;
  /** Bytes the mirror sent now (not already cached). */
  fetchedBytes: number;
  /** Blobs the mirror already had. */
  cachedBlobs: number;
  platforms: string[];
}

export interface PrefetchOptions {
  mirror: Mirror;
  /** Empty: every platform of an index. */
  platforms: readonly Platform[];
  /** Blob downloads at once, over all images. */
  concurrency: number;
  onEvent?: (e: PrefetchEvent) => void;
}

export async function prefetch(refs: readonly string[], o: PrefetchOptions): Promise<ImageResult[]> {
  const agent = new Agent({ connect: o.mirror.ca ? { ca: o.mirror.ca } : {}, connections: Math.max(4, o.concurrency * 2) });
  const limit = pLimit(Math.max(1, o.concurrency));
  try {
    return await Promise.all(refs.map((r) => prefetchImage(r, o, agent, limit)));
  } finally {
    await agent.close();
  }
}

async function prefetchImage(value: string, o: PrefetchOptions, agent: Dispatcher, limit: ReturnType<typeof pLimit>): Promise<ImageResult> {
  const result: ImageResult = { ref: value, ok: false, blobs: 0, fetchedBytes: 0, cachedBlobs: 0, platforms: [] };
  try {
    const ref = parseImageReference(value);
    const client = new MirrorClient(o.mirror, ref, agent);
    const top = await client.manifest(referenceOf(ref));
    const images: { platform: string; body: Record<string, unknown> }[] = [];
    if (isIndexType(top.mediaType)) {
      const chosen = selectPlatforms(top.body, o.platforms);
      for (const e of chosen) {
        const child = await client.manifest(e.digest);
        images.push({ platform: platformName(e.platform), body: JSON.parse(child.body.toString("utf8")) as Record<string, unknown> });
      }
    } else {
      images.push({ platform: "single", body: JSON.parse(top.body.toString("utf8")) as Record<string, unknown> });
    }
    result.platforms = images.map((i) => i.platform);
    const blobs = new Map<string, Descriptor>();
    for (const { body } of images) {
      const layers = Array.isArray(body.layers) ? (body.layers as Descriptor[]) : [];
      for (const d of [body.config as Descriptor | undefined, ...layers]) {
        // Foreign (non-distributable) layers live elsewhere; a registry does not serve them.
        if (d && typeof d.digest === "string" && !Array.isArray(d.urls)) blobs.set(d.digest, d);
      }
    }
    result.blobs = blobs.size;
    o.onEvent?.({ kind: "image-sized", ref: value, blobs: blobs.size, bytes: [...blobs.values()].reduce((n, d) => n + (d.size ?? 0), 0) });
    await Promise.all(
      [...blobs.values()].map((d) =>
        limit(async () => {
          const { cached, bytes } = await client.blob(d, (n) => o.onEvent?.({ kind: "bytes", ref: value, bytes: n }));
          if (cached) result.cachedBlobs++;
          else result.fetchedBytes += bytes;
          o.onEvent?.({ kind: "blob-done", ref: value, digest: d.digest, size: d.size, cached });
        }),
      ),
    );
    result.ok = true;
  } catch (err) {
    result.error = (err as Error).message;
  }
  o.onEvent?.({ kind: "image-done", ref: value, result });
  return result;
}

