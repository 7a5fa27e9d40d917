// The S3-compatible implementation of the cache (keys.ts documents the layout). Every replica may
// share the bucket: blobs are written once, records are whole objects, downloads in progress are
// named per replica. Evictable through its catalog (catalog.ts), last uses kept by use-log.ts.
import { join } from "node:path";
import { AbortMultipartUploadCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import type { S3Spec } from "../../config/resolve.js";
import { type Digest, digestOf, parseDigest } from "../../oci/digest.js";
import { MirrorError, upstreamFault } from "../../oci/errors.js";
import { isMediaType } from "../../oci/mediatypes.js";
import { isValidTag } from "../../oci/names.js";
import { StoreError } from "../errors.js";
import { makeDir } from "../faults.js";
import { AREA_SEPARATOR, ingestArea, isLeftover, sweepIngestDir } from "../ingest.js";
import type { ContentCatalog, LinkKind, OpenBlob, PartialBlob, PartialReads, RepositoryRef, Store, StoredManifest, TagRecord } from "../store.js";
import * as catalog from "./catalog.js";
import { createS3Client, describeTarget, ensureBucket, isNotFound, isPreconditionFailed, reason, type S3ClientOptions, unavailable } from "./client.js";
import { Keys } from "./keys.js";
import { listObjects } from "./list.js";
import { partSizeOf, S3PartialReader } from "./partial.js";
import { S3BlobReader } from "./reader.js";
import { UseLog } from "./use-log.js";
import { CLAIM_STALE_MS, S3BlobWriter, type S3WriterContext } from "./writer.js";

export interface S3StoreOptions extends S3ClientOptions {
  replica: string;
  /**
   * How often this replica writes its last uses (eviction order); default 15 s. `false`: reads are
   * not recorded and nothing is cleaned up at open (a command reading the bucket beside the mirror).
   */
  useFlushMs?: number | false;
}

const USE_FLUSH_MS = 15_000;

export class S3Store implements Store, ContentCatalog, PartialReads {
  /** Called with the size of every newly published blob or manifest. */
  onPublish: (size: number) => void = () => undefined;
  readonly keys: Keys;
  private readonly area: string;
  private readonly spoolDir: string;
  private readonly uses: UseLog;
  private readonly catalog: catalog.CatalogContext;
  /** Whether the server refused UploadPartCopy once (then every writer uploads parts instead). */
  private readonly noPartCopy = { value: false };
  onNotice: (message: string, fields: Record<string, unknown>) => void = () => undefined;

  private constructor(
    readonly client: S3Client,
    private readonly spec: S3Spec,
    private readonly replica: string,
    useFlushMs: number | false,
  ) {
    this.keys = new Keys(spec.rootDirectory);
    this.area = ingestArea(replica);
    this.spoolDir = join(spec.spool, "ingest");
    // Without flushing (a command beside the mirror) the log still reads the replicas' last uses.
    this.uses = new UseLog({ client, bucket: spec.bucket, keys: this.keys, area: this.area, flushMs: useFlushMs });
    this.catalog = { client, bucket: spec.bucket, keys: this.keys, uses: this.uses };
  }

  /** Connect, create the bucket when missing (unless told not to), and clear this replica's leftovers. */
  static async open(spec: S3Spec, options: S3StoreOptions): Promise<S3Store> {
    const flush = options.useFlushMs ?? USE_FLUSH_MS;
    const store = new S3Store(createS3Client(spec, options), spec, options.replica, flush);
    try {
      await ensureBucket(store.client, spec);
      await makeDir(store.spoolDir);
      if (flush !== false) {
        await sweepIngestDir(store.spoolDir, store.area);
        await store.sweepUploads();
        await store.uses.start();
      }
    } catch (err) {
      store.client.destroy();
      if (err instanceof StoreError) throw err;
      throw new StoreError(`cannot use S3 storage, ${describeTarget(spec)}: ${reason(err)}`, (err as NodeJS.ErrnoException).code, { cause: err });
    }
    return store;
  }

  async close(): Promise<void> {
    await this.uses.close();
    this.client.destroy();
  }

  listContent() {
    return catalog.listContent(this.catalog);
  }

  readContent(d: Digest): Promise<Buffer | undefined> {
    return this.getBytes(this.keys.blob(d), `reading ${d.value}`);
  }

  async deleteContent(d: Digest): Promise<void> {
    // Metadata first: a manifest without it is a miss, never a blob of unknown type.
    await this.remove(this.keys.manifestMeta(d), `removing ${d.value}`);
    await this.remove(this.keys.blob(d), `removing ${d.value}`);
    this.uses.forget([d.value]);
  }

  listLinks(upstream: string, name: string, kind: LinkKind) {
    return catalog.listLinks(this.catalog, upstream, name, kind);
  }

  unlink(upstream: string, name: string, kind: LinkKind, d: Digest): Promise<void> {
    return this.remove(this.keys.link(upstream, name, kind, d), `removing ${d.value} from ${name}`);
  }

  forget(gone: ReadonlySet<string>) {
    return catalog.forgetRemoved(this.catalog, gone);
  }

  /** Write this replica's recorded uses now (they are otherwise written every useFlushMs). */
  async flushUses(): Promise<void> {
    await this.uses.flush();
  }

  inUse(): ReadonlySet<string> {
    return this.uses.inUse();
  }

  /** Can the bucket be written now? A small object put and deleted (/healthz). */
  async probe(): Promise<void> {
    const Key = `${this.keys.ingest}${this.area}health`;
    await this.client.send(new PutObjectCommand({ Bucket: this.spec.bucket, Key, Body: "ok" }));
    await this.client.send(new DeleteObjectCommand({ Bucket: this.spec.bucket, Key })).catch(() => undefined);
  }

  async statBlob(d: Digest): Promise<number | undefined> {
    return (await this.head(this.keys.blob(d), `looking up ${d.value}`))?.size;
  }

  async openBlob(d: Digest): Promise<OpenBlob | undefined> {
    const head = await this.head(this.keys.blob(d), `looking up ${d.value}`);
    if (!head) return undefined;
    const uses = this.uses;
    uses.opened(d.value);
    return new S3BlobReader(this.client, this.spec.bucket, this.keys.blob(d), head.size, head.etag, () => uses.closed(d.value));
  }

  /** Another replica's download in progress, from its part objects (up to the mark it announced). */
  async openPartial(d: Digest, locator: string): Promise<PartialBlob | undefined> {
    const partSize = partSizeOf(d, locator);
    return partSize === undefined ? undefined : new S3PartialReader(this.client, this.spec.bucket, this.keys, locator, partSize);
  }

  createWriter(d: Digest): Promise<S3BlobWriter> {
    const ctx: S3WriterContext = {
      noPartCopy: this.noPartCopy,
      onNoPartCopy: (why) => this.onNotice("the object store does not copy parts server-side (UploadPartCopy): each part is uploaded twice, as an object other replicas read and into the blob's upload", { reason: why }),
      client: this.client,
      bucket: this.spec.bucket,
      keys: this.keys,
      area: this.area,
      replica: this.replica,
      chunkSize: this.spec.chunkSize,
      spoolDir: this.spoolDir,
      onPublish: (n) => {
        // Published now: a download that took longer than the eviction grace is not "old" (a
        // multipart object's LastModified is when its upload began).
        this.uses.touch(d.value);
        this.onPublish(n);
      },
    };
    return S3BlobWriter.create(ctx, d);
  }

  async getManifest(d: Digest): Promise<StoredManifest | undefined> {
    const metaText = await this.getText(this.keys.manifestMeta(d), `reading manifest ${d.value}`);
    if (metaText === undefined) return undefined;
    let mediaType: unknown;
    try {
      mediaType = (JSON.parse(metaText) as { mediaType?: unknown }).mediaType;
    } catch {
      return undefined;
    }
    if (typeof mediaType !== "string" || !isMediaType(mediaType)) return undefined;
    const body = await this.getBytes(this.keys.blob(d), `reading manifest ${d.value}`);
    if (!body) return undefined;
    this.uses.touch(d.value);
    return { mediaType, body };
  }

  async putManifest(d: Digest, mediaType: string, body: Uint8Array): Promise<void> {
    if (!isMediaType(mediaType)) throw upstreamFault("MANIFEST_INVALID", `manifest media type ${JSON.stringify(mediaType.slice(0, 100))} is not a media type; not cached`);
    const actual = digestOf(body, d.algorithm);
    if (actual.value !== d.value) throw upstreamFault("DIGEST_INVALID", `manifest content has digest ${actual.value}, expected ${d.value}; not cached`);
    // Metadata first: a blob without metadata is simply a miss, never a manifest of unknown type.
    await this.put(this.keys.manifestMeta(d), JSON.stringify({ mediaType }), `storing manifest ${d.value}`);
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.spec.bucket, Key: this.keys.blob(d), Body: body, IfNoneMatch: "*" }));
      this.uses.touch(d.value);
      this.onPublish(body.byteLength);
    } catch (err) {
      if (!isPreconditionFailed(err)) throw unavailable(err, `storing manifest ${d.value}`);
    }
  }

  async getTag(upstream: string, name: string, tag: string): Promise<TagRecord | undefined> {
    const text = await this.getText(this.keys.tag(upstream, name, tag), `reading tag ${tag}`);
    if (text === undefined) return undefined;
    try {
      const rec = JSON.parse(text) as Partial<TagRecord>;
      if (typeof rec.digest !== "string" || typeof rec.mediaType !== "string" || typeof rec.checkedAt !== "number") return undefined;
      parseDigest(rec.digest);
      return rec as TagRecord;
    } catch (err) {
      if (err instanceof SyntaxError || err instanceof MirrorError) return undefined;
      throw err;
    }
  }

  putTag(upstream: string, name: string, tag: string, record: TagRecord): Promise<void> {
    return this.put(this.keys.tag(upstream, name, tag), JSON.stringify(record), `storing tag ${tag}`);
  }

  deleteTag(upstream: string, name: string, tag: string): Promise<void> {
    return this.remove(this.keys.tag(upstream, name, tag), `removing tag ${tag}`);
  }

  async listTags(upstream: string, name: string): Promise<string[]> {
    const prefix = `${this.keys.repository(upstream, name)}_tags/`;
    const { keys } = await this.list(prefix);
    return keys
      .map((k) => k.key.slice(prefix.length))
      .filter((k) => k.endsWith(".json") && !k.includes("/"))
      .map((k) => k.slice(0, -5))
      .filter(isValidTag)
      .sort();
  }

  linkManifest(upstream: string, name: string, d: Digest): Promise<void> {
    return this.link(upstream, name, "manifest", d);
  }

  /** An empty object; writing it again refreshes its LastModified, which is when upstream last confirmed it. */
  link(upstream: string, name: string, kind: LinkKind, d: Digest): Promise<void> {
    return this.put(this.keys.link(upstream, name, kind, d), "", `recording ${d.value} in ${name}`);
  }

  async linkedAt(upstream: string, name: string, kind: LinkKind, d: Digest): Promise<number | undefined> {
    return (await this.head(this.keys.link(upstream, name, kind, d), `looking up ${d.value} in ${name}`))?.modified;
  }

  async listRepositories(): Promise<RepositoryRef[]> {
    const out: RepositoryRef[] = [];
    const root = this.keys.repositories;
    const walk = async (prefix: string, upstream: string, parts: string[]): Promise<void> => {
      const { prefixes } = await this.list(prefix, "/");
      const children = prefixes.map((p) => p.slice(prefix.length, -1));
      if (parts.length > 0 && (children.includes("_tags") || children.includes("_manifests"))) out.push({ upstream, name: parts.join("/") });
      for (const child of children) if (!child.startsWith("_")) await walk(`${prefix}${child}/`, upstream, [...parts, child]);
    };
    for (const p of (await this.list(root, "/")).prefixes) {
      const upstream = p.slice(root.length, -1);
      await walk(p, upstream, []);
    }
    return out;
  }

  /**
   * Abort this replica's multipart uploads and remove its part objects left by a crash (and other
   * replicas' untouched for hours), remove stale publish claims; other replicas' downloads in
   * progress are left alone (another replica may be streaming or taking them over).
   */
  private async sweepUploads(): Promise<void> {
    const { keys } = await this.list(this.keys.ingest);
    const now = Date.now();
    for (const entry of keys) {
      const name = entry.key.slice(this.keys.ingest.length);
      if (name.startsWith("claims/")) {
        if (now - entry.modified >= CLAIM_STALE_MS) await this.client.send(new DeleteObjectCommand({ Bucket: this.spec.bucket, Key: entry.key }));
        continue;
      }
      if (!name.includes(AREA_SEPARATOR) || !isLeftover(name, this.area, entry.modified, now)) continue;
      // A part of a download in progress (<locator>/<n>) is data, not an upload record.
      const marker = name.includes("/") ? undefined : await this.getText(entry.key, "reading an upload record").then((t) => (t ? (JSON.parse(t) as { key?: unknown; uploadId?: unknown }) : undefined)).catch(() => undefined);
      if (typeof marker?.key === "string" && typeof marker.uploadId === "string") {
        await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.spec.bucket, Key: marker.key, UploadId: marker.uploadId })).catch(() => undefined);
      }
      await this.client.send(new DeleteObjectCommand({ Bucket: this.spec.bucket, Key: entry.key }));
    }
  }

  private async head(Key: string, what: string): Promise<{ size: number; etag?: string; modified: number } | undefined> {
    try {
      const h = await this.client.send(new HeadObjectCommand({ Bucket: this.spec.bucket, Key }));
      return { size: h.ContentLength ?? 0, ...(h.ETag ? { etag: h.ETag } : {}), modified: h.LastModified?.getTime() ?? Date.now() };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw unavailable(err, what);
    }
  }

  private async getBytes(Key: string, what: string): Promise<Buffer | undefined> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.spec.bucket, Key }));
      return Buffer.from(await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw unavailable(err, what);
    }
  }

  private async getText(Key: string, what: string): Promise<string | undefined> {
    return (await this.getBytes(Key, what))?.toString("utf8");
  }

  private async put(Key: string, Body: string, what: string): Promise<void> {
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.spec.bucket, Key, Body }));
    } catch (err) {
      throw unavailable(err, what);
    }
  }

  private list(prefix: string, delimiter?: string) {
    return listObjects(this.client, this.spec.bucket, prefix, delimiter);
  }

  private async remove(Key: string, what: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.spec.bucket, Key }));
    } catch (err) {
      if (!isNotFound(err)) throw unavailable(err, what);
    }
  }
}
