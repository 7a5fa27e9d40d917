// What the cache holds, image by image: every cached tag with the bytes its image occupies and
// when it was last used. Reads through the store's catalog only (never writes, never counts as a
// use), so `mirror-kit ls` is safe beside a running mirror, on a folder or a bucket.
import { parseDigest, type Digest } from "../oci/digest.js";
import type { CatalogStore, ContentEntry } from "../store/store.js";

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

export async function scanInventory(store: CatalogStore): Promise<CachedRepository[]> {
  const content = new Map((await store.listContent()).map((e) => [e.digest, e]));
  const out: CachedRepository[] = [];
  for (const repo of await store.listRepositories()) {
    const tags: CachedTag[] = [];
    for (const tag of await store.listTags(repo.upstream, repo.name)) {
      const record = await store.getTag(repo.upstream, repo.name, tag);
      if (!record) continue;
      const image = await measure(store, parseDigest(record.digest), content);
      // A tag whose manifest was evicted is no longer cached content.
      if (!image) continue;
      tags.push({ tag, digest: record.digest, mediaType: record.mediaType, sizeBytes: image.bytes, lastUsed: image.usedAt, checkedAt: record.checkedAt });
    }
    if (tags.length > 0) out.push({ upstream: repo.upstream, name: repo.name, tags });
  }
  return out.sort((a, b) => `${a.upstream}/${a.name}`.localeCompare(`${b.upstream}/${b.name}`));
}

/** The cached bytes of a manifest (an index counts its cached children), or undefined when not cached. */
async function measure(store: CatalogStore, digest: Digest, content: Map<string, ContentEntry>): Promise<{ bytes: number; usedAt: number } | undefined> {
  const entry = content.get(digest.value);
  const body = entry ? await store.readContent(digest).then((b) => b?.toString("utf8"), () => undefined) : undefined;
  if (!entry || body === undefined) return undefined;
  const counted = new Set<string>([digest.value]);
  let bytes = entry.size;
  const add = (d: unknown): void => {
    if (typeof d !== "string" || counted.has(d)) return;
    counted.add(d);
    bytes += content.get(d)?.size ?? 0;
  };
  const doc = parseManifest(body);
  for (const r of [doc.config, ...(doc.layers ?? [])]) add(r?.digest);
  for (const child of doc.manifests ?? []) {
    const cd = typeof child?.digest === "string" ? parseDigestOrUndefined(child.digest) : undefined;
    // An index's platforms that were never pulled are not here, and take no space.
    if (!cd || counted.has(cd.value) || !content.has(cd.value)) continue;
    const childBody = await store.readContent(cd).then((b) => b?.toString("utf8"), () => undefined);
    if (childBody === undefined) continue;
    add(cd.value);
    const c = parseManifest(childBody);
    for (const r of [c.config, ...(c.layers ?? [])]) add(r?.digest);
  }
  return { bytes, usedAt: entry.usedAt };
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
