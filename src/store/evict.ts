// Keeping the cache under its size cap: least recently used first, and never a blob that a kept
// manifest still references, so eviction cannot leave an image half there (distribution#2367).
import { readdir, readFile, rm, rmdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { parseDigest } from "../oci/digest.js";
import type { Layout } from "./layout.js";
import type { Evictable } from "./store.js";

interface Entry {
  digest: string;
  size: number;
  usedAt: number;
  /** Digests this blob references when it is a manifest or an index. */
  children: string[];
  manifest: boolean;
}

export interface EvictionReport {
  sizeBefore: number;
  sizeAfter: number;
  evicted: { digest: string; size: number }[];
}

export interface EvictOptions {
  /** Evict down to this many bytes. */
  target: number;
  /** Nothing used more recently than this (ms since epoch) is evicted: it belongs to a pull in progress. */
  protectAfter: number;
  /** Manifests never evicted (pinned tags); what they reference stays with them. */
  keep?: ReadonlySet<string>;
}

export async function evict(layout: Layout, options: EvictOptions): Promise<EvictionReport> {
  const entries = await scanBlobs(layout);
  const byDigest = new Map(entries.map((e) => [e.digest, e]));
  await readReferences(layout, byDigest);
  const refs = new Map<string, number>();
  for (const e of entries) for (const c of e.children) refs.set(c, (refs.get(c) ?? 0) + 1);

  const sizeBefore = entries.reduce((n, e) => n + e.size, 0);
  let size = sizeBefore;
  const evicted: { digest: string; size: number }[] = [];
  const gone = new Set<string>();
  const oldestFirst = [...entries].sort((a, b) => a.usedAt - b.usedAt);
  // Evicting a manifest frees its layers only for later candidates, so repeat until nothing moves.
  for (let progress = true; progress && size > options.target; ) {
    progress = false;
    for (const e of oldestFirst) {
      if (size <= options.target) break;
      if (gone.has(e.digest) || e.usedAt > options.protectAfter || (refs.get(e.digest) ?? 0) > 0 || options.keep?.has(e.digest)) continue;
      if (e.manifest) {
        // Metadata first: a manifest without it is a miss, never a blob of unknown type.
        await rm(layout.manifestMeta(parseDigest(e.digest)), { force: true });
        for (const c of e.children) refs.set(c, (refs.get(c) ?? 1) - 1);
      }
      await rm(layout.blob(parseDigest(e.digest)), { force: true });
      gone.add(e.digest);
      evicted.push({ digest: e.digest, size: e.size });
      size -= e.size;
      progress = true;
    }
  }
  if (gone.size > 0) await forgetRemoved(layout, gone);
  return { sizeBefore, sizeAfter: size, evicted };
}

/** Bytes and count of published content (blobs and manifests), as eviction sees it. */
export async function cacheUsage(layout: Layout): Promise<{ bytes: number; objects: number }> {
  const entries = await scanBlobs(layout);
  return { bytes: entries.reduce((n, e) => n + e.size, 0), objects: entries.length };
}

async function scanBlobs(layout: Layout): Promise<Entry[]> {
  const out: Entry[] = [];
  const root = join(layout.root, "blobs");
  for (const algorithm of await list(root)) {
    for (const prefix of await list(join(root, algorithm))) {
      for (const hex of await list(join(root, algorithm, prefix))) {
        const s = await stat(join(root, algorithm, prefix, hex)).catch(() => undefined);
        if (s?.isFile()) out.push({ digest: `${algorithm}:${hex}`, size: s.size, usedAt: s.mtimeMs, children: [], manifest: false });
      }
    }
  }
  return out;
}

/** Fill in the children of every cached manifest (config, layers, index entries). */
async function readReferences(layout: Layout, entries: Map<string, Entry>): Promise<void> {
  const root = join(layout.root, "manifests");
  for (const algorithm of await list(root)) {
    for (const prefix of await list(join(root, algorithm))) {
      for (const file of await list(join(root, algorithm, prefix))) {
        const entry = entries.get(`${algorithm}:${file.replace(/\.json$/, "")}`);
        if (!entry) continue;
        entry.manifest = true;
        try {
          const doc = JSON.parse(await readFile(layout.blob(parseDigest(entry.digest)), "utf8")) as {
            config?: { digest?: unknown };
            layers?: { digest?: unknown }[];
            manifests?: { digest?: unknown }[];
          };
          const refs = [doc.config, ...(doc.layers ?? []), ...(doc.manifests ?? [])];
          entry.children = refs.map((r) => r?.digest).filter((d): d is string => typeof d === "string");
        } catch {
          // An unreadable manifest references nothing; it is evicted like any other blob.
        }
      }
    }
  }
}

/**
 * After content was deleted: remove the tags that point at it and every repository link to it
 * (_manifests and _layers), so no repository claims to hold what is gone, then the folders this
 * left empty.
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

/** Digests of the tags `pinned` selects: walked from repositories/<upstream>/<name…>/_tags. */
export async function pinnedDigests(layout: Layout, pinned: (upstream: string, name: string, tag: string) => boolean): Promise<Set<string>> {
  const out = new Set<string>();
  const walk = async (upstream: string, dir: string, parts: string[]): Promise<void> => {
    for (const entry of await list(dir)) {
      if (entry === "_tags") {
        for (const file of await list(join(dir, entry))) {
          const tag = file.replace(/\.json$/, "");
          if (!pinned(upstream, parts.join("/"), tag)) continue;
          const rec = await readFile(join(dir, entry, file), "utf8").then((t) => JSON.parse(t) as { digest?: unknown }, () => undefined);
          if (typeof rec?.digest === "string") out.add(rec.digest);
        }
      } else if (!entry.startsWith("_")) {
        await walk(upstream, join(dir, entry), [...parts, entry]);
      }
    }
  };
  for (const upstream of await list(layout.repositoriesDir)) await walk(upstream, join(layout.repositoriesDir, upstream), []);
  return out;
}

async function list(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

/**
 * Runs eviction when the cache grows past its cap: after publishes that cross it, and once at start.
 * One run at a time; a publish during a run is caught by the next one. A run that cannot get under
 * the cap because what is left was used too recently runs again once that grace has passed.
 */
export class SizeCap {
  private size: number | undefined;
  private running: Promise<number> | undefined;
  private again = false;
  private retryTimer: NodeJS.Timeout | undefined;
  /** What runs again after the grace (the cluster's lease-holding run when replicas share the store). */
  rerun: () => unknown = () => this.trigger();

  constructor(
    private readonly store: Evictable,
    private readonly maxBytes: number,
    private readonly report: (r: EvictionReport) => void,
    private readonly onError: (err: unknown) => void,
    /** Pulls in progress keep what they touched this recently. */
    private readonly protectMs = 120_000,
    /** Tags never evicted (cache.rules pin), asked before every run since tags change. */
    private readonly pinned?: (upstream: string, name: string, tag: string) => boolean,
  ) {}

  get bytes(): number | undefined {
    return this.size;
  }

  /** Count a newly published blob; evict when the cap is crossed. */
  published(bytes: number): void {
    if (this.size !== undefined) this.size += bytes;
    if (this.size === undefined || this.size > this.maxBytes) void this.trigger();
  }

  /** Evict least recently used content until `bytes` more fit under the current size (a blob that would not fit on disk). */
  async makeRoom(bytes: number): Promise<void> {
    await this.trigger();
    const target = Math.max(0, (this.size ?? 0) - bytes);
    // Pinned tags stay pinned when room is made too.
    const keep = this.pinned ? await this.store.pinnedDigests(this.pinned) : undefined;
    const r = await this.store.evict({ target, protectAfter: Date.now() - this.protectMs, ...(keep ? { keep } : {}) });
    this.size = r.sizeAfter;
    this.report(r);
  }

  /** Run (or join the run in progress); resolves with the bytes it freed. */
  trigger(): Promise<number> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      let freed = 0;
      do {
        this.again = false;
        try {
          const keep = this.pinned ? await this.store.pinnedDigests(this.pinned) : undefined;
          const r = await this.store.evict({ target: Math.floor(this.maxBytes * 0.9), protectAfter: Date.now() - this.protectMs, ...(keep ? { keep } : {}) });
          this.size = r.sizeAfter;
          freed += r.sizeBefore - r.sizeAfter;
          this.report(r);
        } catch (err) {
          this.onError(err);
        }
      } while (this.again && (this.size ?? 0) > this.maxBytes);
      if ((this.size ?? 0) > this.maxBytes && !this.retryTimer) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          void this.rerun();
        }, this.protectMs + 1_000);
        this.retryTimer.unref();
      }
      return freed;
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** No more runs (the mirror is stopping). */
  stop(): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.rerun = () => undefined;
  }
}
