// The filesystem store's ContentCatalog: published content listed from blobs/ (a file's mtime is
// its last use) and manifests/, deletions metadata first, repository links and tags pointing at it.
import { readdir, readFile, rm, rmdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { type Digest, parseDigest } from "../oci/digest.js";
import type { Layout } from "./layout.js";
import type { ContentEntry, LinkKind } from "./store.js";

export async function listContent(layout: Layout): Promise<ContentEntry[]> {
  const out: ContentEntry[] = [];
  const root = join(layout.root, "blobs");
  for (const algorithm of await list(root)) {
    for (const prefix of await list(join(root, algorithm))) {
      for (const hex of await list(join(root, algorithm, prefix))) {
        if (!isDigest(`${algorithm}:${hex}`)) continue; // not ours: never listed, so never deleted
        const s = await stat(join(root, algorithm, prefix, hex)).catch(() => undefined);
        if (s?.isFile()) out.push({ digest: `${algorithm}:${hex}`, size: s.size, usedAt: s.mtimeMs, manifest: false });
      }
    }
  }
  const manifests = new Set<string>();
  const meta = join(layout.root, "manifests");
  for (const algorithm of await list(meta)) {
    for (const prefix of await list(join(meta, algorithm))) {
      for (const file of await list(join(meta, algorithm, prefix))) manifests.add(`${algorithm}:${file.replace(/\.json$/, "")}`);
    }
  }
  for (const e of out) e.manifest = manifests.has(e.digest);
  return out;
}

/** Published bytes, read without refreshing the file's mtime (its last use). */
export async function readContent(layout: Layout, d: Digest): Promise<Buffer | undefined> {
  return readFile(layout.blob(d)).catch(() => undefined);
}

export async function deleteContent(layout: Layout, d: Digest): Promise<void> {
  // Metadata first: a manifest without it is a miss, never a blob of unknown type.
  await rm(layout.manifestMeta(d), { force: true });
  await rm(layout.blob(d), { force: true });
}

function linkDir(layout: Layout, upstream: string, name: string, kind: LinkKind): string {
  return join(layout.repository(upstream, name), kind === "manifest" ? "_manifests" : "_layers");
}

export async function listLinks(layout: Layout, upstream: string, name: string, kind: LinkKind): Promise<string[]> {
  const dir = linkDir(layout, upstream, name, kind);
  const out: string[] = [];
  for (const algorithm of await list(dir)) for (const hex of await list(join(dir, algorithm))) out.push(`${algorithm}:${hex}`);
  return out;
}

export async function unlink(layout: Layout, upstream: string, name: string, kind: LinkKind, d: Digest): Promise<void> {
  await rm(join(linkDir(layout, upstream, name, kind), d.algorithm, d.hex), { force: true });
}

/**
 * After content was deleted: remove the tags that point at it and every repository link to it
 * (_manifests and _layers), so no repository claims to hold what is gone.
 */
export async function forgetRemoved(layout: Layout, gone: ReadonlySet<string>): Promise<void> {
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await list(dir)) {
      const path = join(dir, entry);
      if (entry === "_tags") {
        for (const tag of await list(path)) {
          const rec = await readFile(join(path, tag), "utf8").then((t) => JSON.parse(t) as { digest?: string }, () => undefined);
          if (rec?.digest && gone.has(rec.digest)) await rm(join(path, tag), { force: true });
        }
      } else if (entry === "_manifests" || entry === "_layers") {
        for (const algorithm of await list(path)) {
          for (const hex of await list(join(path, algorithm))) {
            if (gone.has(`${algorithm}:${hex}`)) await rm(join(path, algorithm, hex), { force: true });
          }
        }
      } else if (!entry.startsWith("_")) {
        await walk(path);
      }
    }
  };
  await walk(layout.repositoriesDir);
  await removeEmptyFolders(layout.repositoriesDir);
}

/**
 * Remove the folders under repositories/ that hold nothing any more (a repository whose last tag and
 * links went), deepest first; `root` itself stays. rmdir removes only an empty folder, so a tag or
 * link written meanwhile keeps its folder (and the store recreates a folder removed under a write).
 */
export async function removeEmptyFolders(root: string): Promise<void> {
  const tidy = async (dir: string): Promise<boolean> => {
    let empty = true;
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (!entry.isDirectory() || !(await tidy(join(dir, entry.name)))) empty = false;
    }
    if (!empty || dir === root) return false;
    return rmdir(dir).then(
      () => true,
      () => false, // not empty after all (written meanwhile), or already gone
    );
  };
  await tidy(root);
}

function isDigest(value: string): boolean {
  try {
    parseDigest(value);
    return true;
  } catch {
    return false;
  }
}

async function list(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}
