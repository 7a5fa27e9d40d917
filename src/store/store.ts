// The cache's interfaces: small, so a second backend (object storage, memory) could implement them.
import type { Digest } from "../oci/digest.js";
import type { BlobWriter } from "./writer.js";

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
