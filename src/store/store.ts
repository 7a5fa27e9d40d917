// The cache's interfaces: small, so a second backend (object storage, memory) could implement them.
import type { Hash } from "node:crypto";
import type { Digest } from "../oci/digest.js";

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
  /**
   * Where other replicas read this writer's bytes while it writes (PartialReads.openPartial); absent
   * when the store cannot offer that.
   */
  readonly locator?: string;
  /**
   * Make the bytes written so far readable by other replicas through `locator`; resolves with how
   * many are (the progress mark, never past a byte another replica could not read yet).
   */
  share?(): Promise<number>;
}

/**
 * Optional capability of a BlobStore shared by replicas: a download in progress in one replica is
 * readable by the others (they stream it to their clients, or take it over when it stops), up to
 * the mark its writer's share() announced. Only what is below the mark is ever read.
 */
export interface PartialReads {
  /** Another writer's bytes so far, by the locator it announced; undefined when gone (published or cancelled). */
  openPartial(d: Digest, locator: string): Promise<PartialBlob | undefined>;
}

export interface PartialBlob {
  /** Read into `buffer` from `position`; returns the bytes read (fewer than asked past what was written). */
  readInto(buffer: Buffer, position: number): Promise<number>;
  close(): Promise<void>;
}

export function hasPartialReads(store: object): store is PartialReads {
  return typeof (store as Partial<PartialReads>).openPartial === "function";
}

/** One published blob or manifest, as eviction, `rm` and `prune` see it. */
export interface ContentEntry {
  digest: string;
  size: number;
  /** When it was last read or written (ms since epoch); eviction takes the least recent first. */
  usedAt: number;
  /** It has manifest metadata (its references keep other content). */
  manifest: boolean;
}

/**
 * What a backend lists and deletes so that one eviction policy (evict.ts), `rm` and `prune`
 * (remove.ts) and the inventory work on any store.
 */
export interface ContentCatalog {
  listContent(): Promise<ContentEntry[]>;
  /** Published bytes, read without counting as a use (eviction reading a manifest's references). */
  readContent(d: Digest): Promise<Buffer | undefined>;
  /** Delete published content: its manifest metadata first, then its bytes. Absent is no error. */
  deleteContent(d: Digest): Promise<void>;
  /** The digests repository `name` of `upstream` links as `kind`. */
  listLinks(upstream: string, name: string, kind: LinkKind): Promise<string[]>;
  unlink(upstream: string, name: string, kind: LinkKind, d: Digest): Promise<void>;
  /** Remove every tag that points at, and every repository link to, content in `gone`. */
  forget(gone: ReadonlySet<string>): Promise<void>;
  /** Digests this process is reading right now: eviction keeps them whatever their last use. */
  inUse?(): ReadonlySet<string>;
}

export type CatalogStore = Store & ContentCatalog;

/**
 * A store with a catalog can evict under a size cap (evict.ts runs the one policy over it); a store
 * without one refuses a configured cache.maxSize at start.
 */
export function isEvictable(store: object): store is CatalogStore {
  const s = store as Partial<ContentCatalog>;
  return typeof s.listContent === "function" && typeof s.deleteContent === "function" && typeof s.forget === "function" && typeof s.readContent === "function";
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
