// The cache's interfaces: small, so a second backend (object storage, memory) could implement them.
import type { Hash } from "node:crypto";
import type { Digest } from "../oci/digest.js";
import type { EvictionReport, EvictOptions } from "./evict.js";

export interface BlobStore {
  /** Size of a published blob, or undefined when absent. */
  statBlob(d: Digest): Promise<number | undefined>;
  /**
   * Open a published blob for reading, or undefined when absent. Once open, the content stays
   * readable even if eviction removes the blob meanwhile.
   */
  openBlob(d: Digest): Promise<OpenBlob | undefined>;
  /** A writer whose content becomes visible only on a verified commit. */
  createWriter(d: Digest): Promise<BlobWriter>;
}

/** Optional capability of a BlobStore: it knows its free space and can make room by evicting. */
export interface SpaceAware {
  freeBytes(): Promise<number>;
  makeRoom?(bytes: number): Promise<void>;
}

/**
 * One blob being written (distribution's FileWriter with Commit/Cancel): nothing is visible until
 * publish, which only follows a verify that checked size and digest of every byte written.
 */
export interface BlobWriter {
  readonly digest: Digest;
  /** Bytes written so far (readAt can read all of them). */
  readonly written: number;
  /** Append chunks in order; the writer hashes them as they go. */
  write(chunks: readonly Buffer[]): Promise<void>;
  /** Read back bytes already written, into `buffer` from `position`; returns the bytes read. */
  readAt(buffer: Buffer, position: number, length?: number): Promise<number>;
  /** Check size and digest of everything written; on mismatch the writer is cancelled and this throws. */
  verify(expectedSize?: number): Promise<void>;
  /**
   * Make verified content durable, then visible to every reader of the store. When another writer
   * published the same digest first, this one is discarded and the published copy stays.
   */
  publish(): Promise<void>;
  /**
   * Discard everything written; nothing is left behind in the store. What was written stays
   * readable through readAt until close (readers of a fill that stopped storing). Safe more than
   * once and after publish.
   */
  cancel(): Promise<void>;
  /**
   * Hand over the hash of what is written so far and stop hashing (a store that cannot take the
   * rest: the caller hashes the remainder itself and cancels).
   */
  takeHash(): Hash;
  /** Release resources once no reader needs readAt any more (after publish or cancel). */
  close(): Promise<void>;
}

/**
 * Optional capability of a store: it can evict least recently used content under a size cap. A
 * store without it refuses a configured cache.maxSize at start.
 */
export interface Evictable {
  evict(options: EvictOptions): Promise<EvictionReport>;
  /** Bytes and count of published content, as eviction counts it. */
  usage(): Promise<{ bytes: number; objects: number }>;
  /** Digests of the manifests the tags selected by `pinned` point at (never evicted). */
  pinnedDigests(pinned: (upstream: string, name: string, tag: string) => boolean): Promise<Set<string>>;
}

export function isEvictable(store: object): store is Evictable {
  const s = store as Partial<Evictable>;
  return typeof s.evict === "function" && typeof s.usage === "function" && typeof s.pinnedDigests === "function";
}

export interface OpenBlob {
  size: number;
  /** Read into `buffer` from `position`; returns the bytes read (fewer than asked only at the end). */
  readInto(buffer: Buffer, position: number): Promise<number>;
  close(): Promise<void>;
}

export interface StoredManifest {
  mediaType: string;
  body: Buffer;
}

export interface ManifestStore {
  getManifest(d: Digest): Promise<StoredManifest | undefined>;
  /** Verifies the digest of body before anything is published. */
  putManifest(d: Digest, mediaType: string, body: Uint8Array): Promise<void>;
}

export interface TagRecord {
  digest: string;
  mediaType: string;
  size: number;
  /** When upstream last confirmed this tag (ms since epoch). */
  checkedAt: number;
}

export interface RepositoryRef {
  upstream: string;
  name: string;
}

export interface TagStore {
  getTag(upstream: string, name: string, tag: string): Promise<TagRecord | undefined>;
  putTag(upstream: string, name: string, tag: string, record: TagRecord): Promise<void>;
  deleteTag(upstream: string, name: string, tag: string): Promise<void>;
  listTags(upstream: string, name: string): Promise<string[]>;
  linkManifest(upstream: string, name: string, d: Digest): Promise<void>;
  listRepositories(): Promise<RepositoryRef[]>;
}

/** What a repository is known to hold: content is shared, what is served under a name is not. */
export type LinkKind = "manifest" | "blob";

export interface LinkStore {
  /** Record, or refresh to now, that upstream confirmed repository `name` holds `d`. */
  link(upstream: string, name: string, kind: LinkKind, d: Digest): Promise<void>;
  /** When upstream last confirmed it (ms since epoch), or undefined when never. */
  linkedAt(upstream: string, name: string, kind: LinkKind, d: Digest): Promise<number | undefined>;
}

export type Store = BlobStore & ManifestStore & TagStore & LinkStore;
