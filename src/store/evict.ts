// Keeping the cache under its size cap, for any store that lists its content (ContentCatalog):
// least recently used first, never a blob that a kept manifest still references, so eviction
// cannot leave an image half there (distribution#2367), never a pinned image, never what is being read.
import { parseDigest } from "../oci/digest.js";
import type { CatalogStore, ContentEntry } from "./store.js";

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

// A manifest's references never change (it is named by its digest): read once per store.
const referenceMemo = new WeakMap<object, Map<string, string[]>>();

/** The digests a manifest or index references (config, layers, index entries); [] when unreadable. */
export async function referencesOf(store: CatalogStore, digest: string): Promise<string[]> {
  let memo = referenceMemo.get(store);
  if (!memo) referenceMemo.set(store, (memo = new Map()));
  const known = memo.get(digest);
  if (known) return known;
  let refs: string[] = [];
  try {
    const body = await store.readContent(parseDigest(digest));
    if (body === undefined) return [];
    const doc = JSON.parse(body.toString("utf8")) as { config?: { digest?: unknown }; layers?: { digest?: unknown }[]; manifests?: { digest?: unknown }[] };
    refs = [doc.config, ...(doc.layers ?? []), ...(doc.manifests ?? [])].map((r) => r?.digest).filter((d): d is string => typeof d === "string");
  } catch {
    // An unreadable manifest references nothing; it is evicted like any other blob.
  }
  if (memo.size >= 100_000) memo.clear();
  memo.set(digest, refs);
  return refs;
}

export async function evict(store: CatalogStore, options: EvictOptions): Promise<EvictionReport> {
  const entries = await store.listContent();
  const inUse = store.inUse?.() ?? new Set<string>();
  const children = new Map<string, string[]>();
  for (const e of entries) if (e.manifest) children.set(e.digest, await referencesOf(store, e.digest));
  const refs = new Map<string, number>();
  for (const list of children.values()) for (const c of list) refs.set(c, (refs.get(c) ?? 0) + 1);

  const sizeBefore = entries.reduce((n, e) => n + e.size, 0);
  let size = sizeBefore;
  const evicted: { digest: string; size: number }[] = [];
  const gone = new Set<string>();
  const byDigest = new Map(entries.map((e) => [e.digest, e]));
  const evictable = (e: ContentEntry) =>
    !gone.has(e.digest) && e.usedAt <= options.protectAfter && (refs.get(e.digest) ?? 0) === 0 && !options.keep?.has(e.digest) && !inUse.has(e.digest);
  const remove = async (e: ContentEntry): Promise<void> => {
    // Metadata goes first (deleteContent): a manifest without it is a miss, never a blob of unknown type.
    await store.deleteContent(parseDigest(e.digest));
    gone.add(e.digest);
    evicted.push({ digest: e.digest, size: e.size });
    size -= e.size;
    // The image goes whole: what only this manifest referenced goes with it, past the target too.
    // Left behind, an orphaned layer would outlive newer images though nothing cached can use it.
    for (const c of children.get(e.digest) ?? []) {
      refs.set(c, (refs.get(c) ?? 1) - 1);
      const child = byDigest.get(c);
      if (child && evictable(child)) await remove(child);
    }
  };
  const oldestFirst: ContentEntry[] = [...entries].sort((a, b) => a.usedAt - b.usedAt);
  for (const e of oldestFirst) {
    if (size <= options.target) break;
    if (evictable(e)) await remove(e);
  }
  if (gone.size > 0) await store.forget(gone);
  return { sizeBefore, sizeAfter: size, evicted };
}

/** Bytes and count of published content (blobs and manifests), as eviction sees it. */
export async function cacheUsage(store: CatalogStore): Promise<{ bytes: number; objects: number }> {
  const entries = await store.listContent();
  return { bytes: entries.reduce((n, e) => n + e.size, 0), objects: entries.length };
}

/** Digests of the tags `pinned` selects. */
export async function pinnedDigests(store: CatalogStore, pinned: (upstream: string, name: string, tag: string) => boolean): Promise<Set<string>> {
  const out = new Set<string>();
  for (const repo of await store.listRepositories()) {
    for (const tag of await store.listTags(repo.upstream, repo.name)) {
      if (!pinned(repo.upstream, repo.name, tag)) continue;
      const rec = await store.getTag(repo.upstream, repo.name, tag);
      if (rec) out.add(rec.digest);
    }
  }
  return out;
}

/**
 * Runs eviction when the cache grows past its cap: after publishes that cross it, and once at start.
 * One run at a time; a publish during a run is caught by the next one. A run that cannot get under
 * the cap because what is left was used too recently runs again once that grace has passed.
 */
export class SizeCap {
  private size: number | undefined;
  /** Every byte ever published here: what a scan could not see is the difference across it. */
  private publishedTotal = 0;
  private running: Promise<number> | undefined;
  private again = false;
  private retryTimer: NodeJS.Timeout | undefined;
  /** What runs again after the grace (the cluster's lease-holding run when replicas share the store). */
  rerun: () => unknown = () => this.trigger();

  constructor(
    private readonly store: CatalogStore,
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
    this.publishedTotal += bytes;
    if (this.size !== undefined) this.size += bytes;
    if (this.size === undefined || this.size > this.maxBytes) void this.trigger();
  }

  /** Evict least recently used content until `bytes` more fit under the current size (a blob that would not fit on disk). */
  async makeRoom(bytes: number): Promise<void> {
    await this.trigger();
    await this.evictTo(Math.max(0, (this.size ?? 0) - bytes));
  }

  /**
   * One eviction down to `target`, pinned tags kept (asked now: tags change), reported. The size
   * becomes the scan's figure plus what was published while it ran (the scan may have listed before
   * it landed). An overcount costs one more scan; an undercount would let the cache outgrow its cap
   * unnoticed, since only publishes past the cap start a run.
   */
  private async evictTo(target: number): Promise<EvictionReport> {
    const keep = this.pinned ? await pinnedDigests(this.store, this.pinned) : undefined;
    const before = this.publishedTotal;
    const r = await evict(this.store, { target, protectAfter: Date.now() - this.protectMs, ...(keep ? { keep } : {}) });
    this.size = r.sizeAfter + (this.publishedTotal - before);
    this.report(r);
    return r;
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
          const r = await this.evictTo(Math.floor(this.maxBytes * 0.9));
          freed += r.sizeBefore - r.sizeAfter;
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
