// The filesystem implementation of the cache (layout.ts documents the tree).
// Small records are written to ingest/ then renamed into place, so a crash never leaves half a file.
import { randomBytes } from "node:crypto";
import { type FileHandle, open, readdir, readFile, rename, rm, stat, statfs, utimes, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname, join } from "node:path";
import { type Digest, digestOf, parseDigest } from "../oci/digest.js";
import { MirrorError, upstreamFault } from "../oci/errors.js";
import { isMediaType } from "../oci/mediatypes.js";
import { isValidTag } from "../oci/names.js";
import { Layout } from "./layout.js";
import type { ContentCatalog, LinkKind, OpenBlob, PartialBlob, PartialReads, RepositoryRef, Store, StoredManifest, TagRecord } from "./store.js";
import * as catalog from "./fs-catalog.js";
import { FsBlobWriter } from "./writer.js";
import { StoreError } from "./errors.js";
import { makeDir } from "./faults.js";
import { ingestArea, sweepIngestDir } from "./ingest.js";


// Reads refresh a blob's mtime, which eviction treats as "last used"; at most once a minute per
// blob, so a busy cache does not turn every hit into a metadata write.
const TOUCH_INTERVAL_MS = 60_000;
const TOUCH_MEMORY = 50_000;

export interface FsStoreOptions {
  /**
   * A running mirror may be using the folder (mirror-kit import): nothing in ingest/ is removed,
   * and this process writes under a name of its own. Default false.
   */
  shared?: boolean;
  /** This process's name among the replicas sharing the folder (its ingest area). Default: the host name. */
  replica?: string;
}

/**
 * An ingest file's name as writers make them (`<replica>~<hex>-<random>`): a locator announced
 * through Redis is opened only when it is one, so no value there can reach outside ingest/.
 */
const INGEST_NAME = /^[A-Za-z0-9._-]{1,200}~[0-9a-f]{16}-[0-9a-f]{16}$/;

export class FsStore implements Store, ContentCatalog, PartialReads {
  readonly layout: Layout;
  /** Called with the size of every newly published blob or manifest (eviction keeps its total). */
  onPublish: (size: number) => void = () => undefined;
  /** Evict at least this many bytes (set when a size cap is configured). */
  makeRoom: ((bytes: number) => Promise<void>) | undefined;
  private readonly touched = new Map<string, number>();

  private constructor(
    root: string,
    /** Prefix of this process's files in ingest/: its own ingest area. */
    private readonly area: string,
    /** Reads count as uses (refresh mtime); off for a view, which must change nothing. */
    private readonly touches = true,
  ) {
    this.layout = new Layout(root);
  }

  /** A store over a folder another process may be using (`mirror-kit ls`): read only, nothing created or removed. */
  static view(root: string): FsStore {
    return new FsStore(root, ingestArea(`view-${process.pid}-${randomBytes(4).toString("hex")}`), false);
  }

  /**
   * Open (creating) a store. Each replica writes its downloads under its own name in ingest/, and
   * removes only its own leftovers of a crash (plus other names' files untouched for hours): a
   * replica starting never deletes another's downloads in progress.
   */
  static async open(root: string, options: FsStoreOptions = {}): Promise<FsStore> {
    const area = options.shared ? ingestArea(`shared-${process.pid}-${randomBytes(4).toString("hex")}`) : ingestArea(options.replica ?? hostname());
    const store = new FsStore(root, area);
    try {
      await makeDir(store.layout.ingestDir);
      if (!options.shared) await sweepIngestDir(store.layout.ingestDir, area);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      throw new StoreError(`cannot use storage folder ${root}: ${code}${code === "EACCES" ? " (not writable by this user)" : ""}`, code, { cause: err });
    }
    return store;
  }

  async statBlob(d: Digest): Promise<number | undefined> {
    try {
      const s = await stat(this.layout.blob(d));
      return s.isFile() ? s.size : undefined;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async openBlob(d: Digest): Promise<OpenBlob | undefined> {
    let handle: FileHandle;
    try {
      handle = await open(this.layout.blob(d), "r");
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    try {
      const { size } = await handle.stat();
      this.touch(d);
      return {
        size,
        readInto: async (buffer, position) => (await handle.read(buffer, 0, buffer.byteLength, position)).bytesRead,
        close: () => handle.close(),
      };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /** Another replica's download in progress on this folder (its writer's locator), read up to its mark. */
  async openPartial(d: Digest, locator: string): Promise<PartialBlob | undefined> {
    if (!INGEST_NAME.test(locator) || !locator.slice(locator.indexOf("~") + 1).startsWith(d.hex.slice(0, 16))) return undefined;
    let handle: FileHandle;
    try {
      handle = await open(join(this.layout.ingestDir, locator), "r");
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    return {
      readInto: async (buffer, position) => (await handle.read(buffer, 0, buffer.byteLength, position)).bytesRead,
      close: () => handle.close(),
    };
  }

  /** Free bytes on the file system holding the cache (statfs). */
  async freeBytes(): Promise<number> {
    const s = await statfs(this.layout.ingestDir);
    return s.bavail * s.bsize;
  }

  createWriter(d: Digest): Promise<FsBlobWriter> {
    return FsBlobWriter.create(this.layout.ingestDir, `${this.area}${d.hex.slice(0, 16)}`, d, this.layout.blob(d), (size) => this.onPublish(size));
  }

  /** Can the folder be written now? A probe file in this replica's area, made durable and removed (/healthz). */
  async probe(): Promise<void> {
    const file = join(this.layout.ingestDir, `${this.area}health-${randomBytes(6).toString("hex")}`);
    try {
      await makeDir(this.layout.ingestDir);
      await writeFile(file, "ok", { flush: true });
    } finally {
      await rm(file, { force: true }).catch(() => undefined);
    }
  }

  /** Nothing to release: every file handle belongs to a writer or an open blob. */
  async close(): Promise<void> {}

  /** A folder for temporary files of this process (bundle import), inside its ingest area. */
  get tempDir(): string {
    return join(this.layout.ingestDir, `${this.area}tmp`);
  }

  listContent() {
    return catalog.listContent(this.layout);
  }

  readContent(d: Digest) {
    return catalog.readContent(this.layout, d);
  }

  deleteContent(d: Digest) {
    return catalog.deleteContent(this.layout, d);
  }

  listLinks(upstream: string, name: string, kind: LinkKind) {
    return catalog.listLinks(this.layout, upstream, name, kind);
  }

  unlink(upstream: string, name: string, kind: LinkKind, d: Digest) {
    return catalog.unlink(this.layout, upstream, name, kind, d);
  }

  forget(gone: ReadonlySet<string>) {
    return catalog.forgetRemoved(this.layout, gone);
  }

  /** Mark a blob as used now (best effort: a failed touch only makes eviction less precise). */
  private touch(d: Digest): void {
    if (!this.touches) return;
    const now = Date.now();
    if ((this.touched.get(d.value) ?? 0) > now - TOUCH_INTERVAL_MS) return;
    if (this.touched.size >= TOUCH_MEMORY) this.touched.clear();
    this.touched.set(d.value, now);
    const t = new Date(now);
    utimes(this.layout.blob(d), t, t).catch(() => undefined);
  }

  async getManifest(d: Digest): Promise<StoredManifest | undefined> {
    let meta: { mediaType?: unknown };
    try {
      meta = JSON.parse(await readFile(this.layout.manifestMeta(d), "utf8")) as { mediaType?: unknown };
    } catch (err) {
      if (isNotFound(err) || err instanceof SyntaxError) return undefined;
      throw err;
    }
    // A type that could not go out as a header (a control character) is a miss, never a 500 on every pull.
    if (typeof meta.mediaType !== "string" || !isMediaType(meta.mediaType)) return undefined;
    try {
      const body = await readFile(this.layout.blob(d));
      this.touch(d);
      return { mediaType: meta.mediaType, body };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async putManifest(d: Digest, mediaType: string, body: Uint8Array): Promise<void> {
    if (!isMediaType(mediaType)) throw upstreamFault("MANIFEST_INVALID", `manifest media type ${JSON.stringify(mediaType.slice(0, 100))} is not a media type; not cached`);
    const actual = digestOf(body, d.algorithm);
    if (actual.value !== d.value) {
      throw upstreamFault("DIGEST_INVALID", `manifest content has digest ${actual.value}, expected ${d.value}; not cached`);
    }
    // Metadata first: a blob without metadata is simply a miss, never a manifest of unknown type.
    await this.atomicWrite(this.layout.manifestMeta(d), JSON.stringify({ mediaType }));
    if ((await this.statBlob(d)) === undefined) {
      await this.atomicWrite(this.layout.blob(d), body);
      this.onPublish(body.byteLength);
    }
  }

  async getTag(upstream: string, name: string, tag: string): Promise<TagRecord | undefined> {
    try {
      const rec = JSON.parse(await readFile(this.layout.tag(upstream, name, tag), "utf8")) as Partial<TagRecord>;
      if (typeof rec.digest !== "string" || typeof rec.mediaType !== "string" || typeof rec.checkedAt !== "number") return undefined;
      parseDigest(rec.digest);
      return rec as TagRecord;
    } catch (err) {
      if (isNotFound(err) || err instanceof SyntaxError || err instanceof MirrorError) return undefined;
      throw err;
    }
  }

  async putTag(upstream: string, name: string, tag: string, record: TagRecord): Promise<void> {
    await this.atomicWrite(this.layout.tag(upstream, name, tag), JSON.stringify(record));
  }

  async deleteTag(upstream: string, name: string, tag: string): Promise<void> {
    await rm(this.layout.tag(upstream, name, tag), { force: true });
  }

  async listTags(upstream: string, name: string): Promise<string[]> {
    const entries = await readdirOrEmpty(this.layout.tagsDir(upstream, name));
    return entries
      .filter((e) => e.endsWith(".json"))
      .map((e) => e.slice(0, -5))
      .filter(isValidTag)
      .sort();
  }

  linkManifest(upstream: string, name: string, d: Digest): Promise<void> {
    return this.link(upstream, name, "manifest", d);
  }

  async link(upstream: string, name: string, kind: LinkKind, d: Digest): Promise<void> {
    const path = kind === "manifest" ? this.layout.manifestLink(upstream, name, d) : this.layout.blobLink(upstream, name, d);
    const now = new Date();
    try {
      await utimes(path, now, now);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      // An empty file is there or not: no temp file or fsync needed. Lost in a crash, it costs one HEAD.
      await intoFolder(path, () => writeFile(path, ""));
    }
  }

  async linkedAt(upstream: string, name: string, kind: LinkKind, d: Digest): Promise<number | undefined> {
    const path = kind === "manifest" ? this.layout.manifestLink(upstream, name, d) : this.layout.blobLink(upstream, name, d);
    try {
      return (await stat(path)).mtimeMs;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async listRepositories(): Promise<RepositoryRef[]> {
    const out: RepositoryRef[] = [];
    for (const upstream of await readdirOrEmpty(this.layout.repositoriesDir)) {
      const walk = async (dir: string, parts: string[]): Promise<void> => {
        const entries = await readdirOrEmpty(dir);
        if (parts.length > 0 && (entries.includes("_tags") || entries.includes("_manifests"))) {
          out.push({ upstream, name: parts.join("/") });
        }
        for (const entry of entries) {
          if (!entry.startsWith("_")) await walk(join(dir, entry), [...parts, entry]);
        }
      };
      await walk(join(this.layout.repositoriesDir, upstream), []);
    }
    return out;
  }

  private async atomicWrite(path: string, data: string | Uint8Array): Promise<void> {
    const temp = join(this.layout.ingestDir, `${this.area}rec-${randomBytes(8).toString("hex")}`);
    try {
      // ingest/ is recreated on demand: a storage folder emptied under a running mirror must not
      // turn every later miss into an error.
      await makeDir(this.layout.ingestDir);
      await writeFile(temp, data, { flush: true });
      await intoFolder(path, () => rename(temp, path));
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }
}

function isNotFound(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "ENOTDIR";
}

/**
 * Create `path`'s folder, then write. rm and prune remove repository folders they leave empty, so
 * the folder can vanish between the two steps: then it is made again (a few times, as each race
 * needs a removal landing in that gap).
 */
async function intoFolder(path: string, write: () => Promise<void>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    await makeDir(dirname(path));
    try {
      return await write();
    } catch (err) {
      if (!isNotFound(err) || attempt === 3) throw err;
    }
  }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (isNotFound(err)) return [];
    throw err;
  }
}
