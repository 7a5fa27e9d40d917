// Which store a cache command (ls, rm, prune, refresh, export, import) works on, opened beside a
// running mirror: --storage DIR (a folder), else the storage of the mirror's own configuration
// (--config FILE or $MIRROR_KIT_CONFIG, and the environment as `serve` reads it): a folder or a bucket.
import { join } from "node:path";
import { loadConfig, type Env } from "../config/load.js";
import type { StoreSpec } from "../config/resolve.js";
import { FreshnessPolicy } from "../proxy/freshness.js";
import { FsStore } from "../store/fs-store.js";
import { openStore } from "../store/open.js";
import { describeTarget } from "../store/s3/target.js";
import type { CatalogStore } from "../store/store.js";

export interface StorageArgs {
  /** A cache folder; beats the configuration's storage. */
  storage?: string;
  /** The mirror's config file; default $MIRROR_KIT_CONFIG. */
  config?: string;
}

export interface CacheStorage {
  store: CatalogStore & { close(): Promise<void> };
  /** The store for messages: the folder, or the bucket and its endpoint (never a credential). */
  where: string;
  /** The configuration's cache.rules pins (prune spares them). */
  pinned: (upstream: string, name: string, tag: string) => boolean;
  /** Where an archive is unpacked before import: beside the cache (its folder or the S3 spool). */
  importDir: string;
}

/**
 * Open the store a command names. "read" changes nothing (no folder or bucket created, no use
 * recorded); "write" may create them, as the mirror would. Neither clears anyone's downloads in progress.
 */
export async function openCacheStorage(a: StorageArgs, env: Env, mode: "read" | "write"): Promise<CacheStorage> {
  const { config } = await loadConfig({ ...(a.config ? { file: a.config } : {}), env, ...(a.storage !== undefined ? { flags: { storage: a.storage } } : {}) });
  const policy = new FreshnessPolicy(config.tagRules, config.semverTagsImmutable);
  const pinned = (upstream: string, name: string, tag: string) => policy.pinned(upstream, name, tag);
  const spec: StoreSpec = config.store;
  if (spec.driver === "filesystem") {
    const store = mode === "read" ? FsStore.view(spec.root) : await FsStore.open(spec.root, { shared: true });
    return { store, where: spec.root, pinned, importDir: store.tempDir };
  }
  const store = await openStore(mode === "read" ? { ...spec, createBucket: false } : spec, { replica: `${config.replica}-cli-${process.pid}`, useFlushMs: false });
  return { store, where: `S3 ${describeTarget(spec)}`, pinned, importDir: join(spec.spool, `import-${process.pid}`) };
}

/** Run `fn` on the store, closing it afterwards (an S3 client holds sockets open). */
export async function withCacheStorage<T>(a: StorageArgs, env: Env, mode: "read" | "write", fn: (s: CacheStorage) => Promise<T>): Promise<T> {
  const s = await openCacheStorage(a, env, mode);
  try {
    return await fn(s);
  } finally {
    await s.store.close();
  }
}

export const storageOptions = {
  storage: { type: "string", describe: "the cache folder (default: the configuration's storage; safe while a mirror runs on it)" },
  config: { type: "string", describe: "the mirror's config file: its storage (a folder or an S3 bucket) and its cache.rules pins (env MIRROR_KIT_CONFIG; REGISTRY_STORAGE_S3_* as serve reads them)" },
} as const;

/** The storage flags of a parsed command line, as the run* functions take them. */
export function storageFrom(a: Record<string, unknown>): StorageArgs {
  return { ...(typeof a.storage === "string" ? { storage: a.storage } : {}), ...(typeof a.config === "string" ? { config: a.config } : {}) };
}
