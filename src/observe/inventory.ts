// What the cache holds, image by image: every cached tag with the bytes its image occupies and
// when it was last used. Reads the storage folder only (never writes, never touches a file's
// mtime), so `mirror-kit ls --storage` is safe beside a running mirror.
import { readFile, stat } from "node:fs/promises";
import { parseDigest, type Digest } from "../oci/digest.js";
import { FsStore } from "../store/fs-store.js";
import type { Layout } from "../store/layout.js";

export interface CachedTag {
  tag: string;
  digest: string;
  mediaType: string;
  /** Bytes in the cache for this image: its manifests and every blob they reference that is cached. */
  sizeBytes: number;
  /** When a client last read the image's manifest (ms since epoch; refreshed at most once a minute). */
  lastUsed: number;
  /** When upstream last confirmed the tag (ms since epoch). */
  checkedAt: number;
}

export interface CachedRepository {
  upstream: string;
  name: string;
  tags: CachedTag[];
}

export async function scanInventory(root: string): Promise<CachedRepository[]> {
  const store = FsStore.view(root);
  const sizes = new Map<string, number | undefined>();
  const out: CachedRepository[] = [];
  for (const repo of await store.listRepositories()) {
    const tags: CachedTag[] = [];
    for (const tag of await store.listTags(repo.upstream, repo.name)) {
      const record = await store.getTag(repo.upstream, repo.name, tag);
      if (!record) continue;
      const image = await measure(store.layout, parseDigest(record.digest), sizes);
      // A tag whose manifest was evicted is no longer cached content.
      if (!image) continue;
      tags.push({ tag, digest: record.digest, mediaType: record.mediaType, sizeBytes: image.bytes, lastUsed: image.usedAt, checkedAt: record.checkedAt });
    }
    if (tags.length > 0) out.push({ upstream: repo.upstream, name: repo.name, tags });
  }
  return out.sort((a, b) => `${a.upstream}/${a.name}`.localeCompare(`${b.upstream}/${b.name}`));
}

/** The cached bytes of a manifest (an index counts its cached children), or undefined when not cached. */
async function measure(layout: Layout, digest: Digest, sizes: Map<string, number | undefined>): Promise<{ bytes: number; usedAt: number } | undefined> {
  const path = layout.blob(digest);
  let body: string;
  let usedAt: number;
  try {
    [body, usedAt] = await Promise.all([readFile(path, "utf8"), stat(path).then((s) => s.mtimeMs)]);
  } catch {
    return undefined;
  }
  const counted = new Set<string>([digest.value]);
  let bytes = Buffer.byteLength(body);
  const add = async (d: unknown): Promise<void> => {
    if (typeof d !== "string" || counted.has(d)) return;
    counted.add(d);
    bytes += (await blobSize(layout, d, sizes)) ?? 0;
  };
  const doc = parseManifest(body);
  for (const r of [doc.config, ...(doc.layers ?? [])]) await add(r?.digest);
  for (const child of doc.manifests ?? []) {
    const cd = typeof child?.digest === "string" ? parseDigestOrUndefined(child.digest) : undefined;
    if (!cd || counted.has(cd.value)) continue;
    // An index's platforms that were never pulled are not here, and take no space.
    const childBody = await readFile(layout.blob(cd), "utf8").catch(() => undefined);
    if (childBody === undefined) continue;
    await add(cd.value);
    const c = parseManifest(childBody);
    for (const r of [c.config, ...(c.layers ?? [])]) await add(r?.digest);
  }
  return { bytes, usedAt };
}

interface ManifestDoc {
  config?: { digest?: unknown };
  layers?: { digest?: unknown }[];
  manifests?: { digest?: unknown }[];
}

function parseManifest(text: string): ManifestDoc {
  try {
    const doc = JSON.parse(text) as ManifestDoc;
    return typeof doc === "object" && doc !== null ? doc : {};
  } catch {
    return {};
  }
}

function parseDigestOrUndefined(value: string): Digest | undefined {
  try {
    return parseDigest(value);
  } catch {
    return undefined;
  }
}

async function blobSize(layout: Layout, value: string, sizes: Map<string, number | undefined>): Promise<number | undefined> {
  if (sizes.has(value)) return sizes.get(value);
  const d = parseDigestOrUndefined(value);
  const size = d ? await stat(layout.blob(d)).then((s) => s.size, () => undefined) : undefined;
  sizes.set(value, size);
  return size;
}
