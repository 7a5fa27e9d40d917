// Removing images from a cache folder on purpose (`mirror-kit rm`): the tag and the repository's
// links go, then whatever only that image used — its manifests, config and layers — while anything
// another kept tag or manifest still references stays. Metadata before content, as eviction does;
// no repository link (_manifests, _layers) is left pointing at deleted content.
import { readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { parseDigest, type Digest } from "../oci/digest.js";
import { indexEntries } from "../oci/mediatypes.js";
import { forgetRemoved, removeEmptyFolders } from "./evict.js";
import type { FsStore } from "./fs-store.js";

export interface RemoveReport {
  /** Tags (or digest references) that were removed. */
  references: string[];
  /** Manifests and blobs deleted because nothing kept references them any more. */
  deleted: number;
}

/** Digests of a manifest and everything it references that is in the cache (index children too). */
async function closure(store: FsStore, root: string, out = new Set<string>()): Promise<Set<string>> {
  if (out.has(root)) return out;
  out.add(root);
  const m = await store.getManifest(parseDigest(root));
  if (!m) return out;
  for (const child of indexEntries(m.body)) await closure(store, child.digest, out);
  try {
    const doc = JSON.parse(m.body.toString("utf8")) as { config?: { digest?: unknown }; layers?: { digest?: unknown }[] };
    for (const d of [doc.config, ...(doc.layers ?? [])]) if (typeof d?.digest === "string") out.add(d.digest);
  } catch {
    // Not JSON: references nothing.
  }
  return out;
}

async function links(store: FsStore, upstream: string, name: string): Promise<string[]> {
  const dir = join(store.layout.repository(upstream, name), "_manifests");
  const out: string[] = [];
  for (const algorithm of await readdir(dir).catch(() => [] as string[])) {
    for (const hex of await readdir(join(dir, algorithm)).catch(() => [] as string[])) out.push(`${algorithm}:${hex}`);
  }
  return out;
}

/**
 * Remove `tag` (or every reference to `digest`) of upstream/name. Returns undefined when the cache
 * holds no such image.
 */
export async function removeImage(store: FsStore, upstream: string, name: string, ref: { tag?: string; digest?: string }): Promise<RemoveReport | undefined> {
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
    await rm(store.layout.manifestLink(upstream, name, parseDigest(d)), { force: true });
    await rm(store.layout.blobLink(upstream, name, parseDigest(d)), { force: true });
  }

  // What every other repository still holds (tags and links) keeps its content.
  const kept = await referenced(store);
  if (removed.size === 0 && references.length === 0) return undefined;
  let deleted = 0;
  const gone = new Set<string>();
  for (const value of removed) {
    if (kept.has(value)) continue;
    const d: Digest = parseDigest(value);
    await rm(store.layout.manifestMeta(d), { force: true });
    const existed = (await store.statBlob(d)) !== undefined;
    await rm(store.layout.blob(d), { force: true });
    gone.add(value);
    if (existed) deleted++;
  }
  // Other repositories may hold a layer link to deleted content (a blob fetched by digest alone).
  // Either way the repository's own folder goes once nothing is left in it: ls would list it.
  if (gone.size > 0) await forgetRemoved(store.layout, gone);
  else await removeEmptyFolders(store.layout.repositoriesDir);
  return { references, deleted };
}

/** Everything some repository still reaches: its tags and manifest links, and all they reference. */
export async function referenced(store: FsStore): Promise<Set<string>> {
  const kept = new Set<string>();
  for (const repo of await store.listRepositories()) {
    const roots = await links(store, repo.upstream, repo.name);
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
 * fetched by digest alone), except what was used after `protectAfter`: a pull may be in progress.
 */
export async function pruneUnreferenced(store: FsStore, protectAfter: number): Promise<{ deleted: number; bytes: number }> {
  const kept = await referenced(store);
  const root = join(store.layout.root, "blobs");
  const gone = new Set<string>();
  let bytes = 0;
  for (const algorithm of await readdir(root).catch(() => [] as string[])) {
    for (const prefix of await readdir(join(root, algorithm)).catch(() => [] as string[])) {
      for (const hex of await readdir(join(root, algorithm, prefix)).catch(() => [] as string[])) {
        const value = `${algorithm}:${hex}`;
        if (kept.has(value)) continue;
        let d: Digest;
        try {
          d = parseDigest(value);
        } catch {
          continue; // not ours: never delete what we cannot name
        }
        const s = await stat(store.layout.blob(d)).catch(() => undefined);
        if (!s?.isFile() || s.mtimeMs > protectAfter) continue;
        await rm(store.layout.manifestMeta(d), { force: true });
        await rm(store.layout.blob(d), { force: true });
        gone.add(value);
        bytes += s.size;
      }
    }
  }
  if (gone.size > 0) await forgetRemoved(store.layout, gone);
  return { deleted: gone.size, bytes };
}
