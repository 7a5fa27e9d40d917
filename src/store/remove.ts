// Removing images from a cache on purpose (`mirror-kit rm`, `prune --unused`), for any store that
// lists its content: the tag and the repository's links go, then whatever only that image used — its
// manifests, config and layers — while anything another kept tag or manifest still references
// stays. Metadata before content, as eviction does; no repository link (_manifests, _layers) is left
// pointing at deleted content, and a folder store loses the repository folders left empty.
import { parseDigest } from "../oci/digest.js";
import { indexEntries } from "../oci/mediatypes.js";
import type { CatalogStore } from "./store.js";

export interface RemoveReport {
  /** Tags (or digest references) that were removed. */
  references: string[];
  /** Manifests and blobs deleted because nothing kept references them any more. */
  deleted: number;
}

/** Digests of a manifest and everything it references that is in the cache (index children too). */
async function closure(store: CatalogStore, root: string, out = new Set<string>()): Promise<Set<string>> {
  if (out.has(root)) return out;
  out.add(root);
  // Read without counting as a use: `rm` and `prune` must not make what they walk look recent.
  const body = await store.readContent(parseDigest(root)).catch(() => undefined);
  if (!body) return out;
  for (const child of indexEntries(body)) await closure(store, child.digest, out);
  try {
    const doc = JSON.parse(body.toString("utf8")) as { config?: { digest?: unknown }; layers?: { digest?: unknown }[] };
    for (const d of [doc.config, ...(doc.layers ?? [])]) if (typeof d?.digest === "string") out.add(d.digest);
  } catch {
    // Not JSON: references nothing.
  }
  return out;
}

/**
 * Remove `tag` (or every reference to `digest`) of upstream/name. Returns undefined when the cache
 * holds no such image.
 */
export async function removeImage(store: CatalogStore, upstream: string, name: string, ref: { tag?: string; digest?: string }): Promise<RemoveReport | undefined> {
  let roots: string[];
  const references: string[] = [];
  if (ref.digest) {
    roots = [ref.digest];
    for (const tag of await store.listTags(upstream, name)) {
      if ((await store.getTag(upstream, name, tag))?.digest === ref.digest) {
        await store.deleteTag(upstream, name, tag);
        references.push(`${upstream}/${name}:${tag}`);
      }
    }
    references.push(`${upstream}/${name}@${ref.digest}`);
  } else {
    const tag = ref.tag ?? "latest";
    const record = await store.getTag(upstream, name, tag);
    if (!record) return undefined;
    await store.deleteTag(upstream, name, tag);
    roots = [record.digest];
    references.push(`${upstream}/${name}:${tag}`);
  }
  // The repository keeps its links only for manifests another of its tags still points at.
  const stillTagged = new Set<string>();
  for (const tag of await store.listTags(upstream, name)) {
    const d = (await store.getTag(upstream, name, tag))?.digest;
    if (d) for (const x of await closure(store, d)) stillTagged.add(x);
  }
  const removed = new Set<string>();
  for (const r of roots) await closure(store, r, removed);
  for (const d of removed) {
    if (stillTagged.has(d)) continue;
    await store.unlink(upstream, name, "manifest", parseDigest(d));
    await store.unlink(upstream, name, "blob", parseDigest(d));
  }

  // What every other repository still holds (tags and links) keeps its content.
  const kept = await referenced(store);
  if (removed.size === 0 && references.length === 0) return undefined;
  let deleted = 0;
  const gone = new Set<string>();
  for (const value of removed) {
    if (kept.has(value)) continue;
    const d = parseDigest(value);
    const existed = (await store.statBlob(d)) !== undefined;
    await store.deleteContent(d);
    gone.add(value);
    if (existed) deleted++;
  }
  // Other repositories may hold a layer link to deleted content (a blob fetched by digest alone).
  await store.forget(gone);
  return { references, deleted };
}

/** Everything some repository still reaches: its tags and manifest links, and all they reference. */
export async function referenced(store: CatalogStore): Promise<Set<string>> {
  const kept = new Set<string>();
  for (const repo of await store.listRepositories()) {
    const roots = await store.listLinks(repo.upstream, repo.name, "manifest");
    for (const tag of await store.listTags(repo.upstream, repo.name)) {
      const d = (await store.getTag(repo.upstream, repo.name, tag))?.digest;
      if (d) roots.push(d);
    }
    for (const d of roots) await closure(store, d, kept);
  }
  return kept;
}

/**
 * Delete what no repository reaches any more (blobs of images that were removed or evicted, layers
 * fetched by digest alone), except what was used after `protectAfter` or is being read: a pull may
 * be in progress.
 */
export async function pruneUnreferenced(store: CatalogStore, protectAfter: number): Promise<{ deleted: number; bytes: number }> {
  const kept = await referenced(store);
  const inUse = store.inUse?.() ?? new Set<string>();
  const gone = new Set<string>();
  let bytes = 0;
  for (const e of await store.listContent()) {
    if (kept.has(e.digest) || e.usedAt > protectAfter || inUse.has(e.digest)) continue;
    await store.deleteContent(parseDigest(e.digest));
    gone.add(e.digest);
    bytes += e.size;
  }
  await store.forget(gone);
  return { deleted: gone.size, bytes };
}
