// The S3-compatible implementation of the cache (keys.ts documents the layout). Every replica may
// share the bucket: blobs are written once, records are whole objects, downloads in progress are
// named per replica. No eviction: a bucket's lifecycle rules are the way to bound it.
import { join } from "node:path";
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import type { S3Spec } from "../../config/resolve.js";
import { type Digest, digestOf, parseDigest } from "../../oci/digest.js";
import { MirrorError, upstreamFault } from "../../oci/errors.js";
import { isMediaType } from "../../oci/mediatypes.js";
import { isValidTag } from "../../oci/names.js";
import { StoreError } from "../errors.js";
import { makeDir } from "../faults.js";
import { AREA_SEPARATOR, ingestArea, isLeftover, sweepIngestDir } from "../ingest.js";
import type { LinkKind, OpenBlob, RepositoryRef, Store, StoredManifest, TagRecord } from "../store.js";
import { createS3Client, describeTarget, ensureBucket, isNotFound, isPreconditionFailed, reason, type S3ClientOptions, unavailable } from "./client.js";
import { Keys } from "./keys.js";
import { S3BlobReader } from "./reader.js";
import { CLAIM_STALE_MS, S3BlobWriter, type S3WriterContext } from "./writer.js";

export interface S3StoreOptions extends S3ClientOptions {
  replica: string;
}

export class S3Store implements Store {
  /** Called with the size of every newly published blob or manifest. */
  onPublish: (size: number) => void = () => undefined;
  readonly keys: Keys;
  private readonly area: string;
  private readonly spoolDir: string;

  private constructor(
    readonly client: S3Client,
    private readonly spec: S3Spec,
    private readonly replica: string,
  ) {
    this.keys = new Keys(spec.rootDirectory);
    this.area = ingestArea(replica);
    this.spoolDir = join(spec.spool, "ingest");
  }

  /** Connect, create the bucket when missing (unless told not to), and clear this replica's leftovers. */
  static async open(spec: S3Spec, options: S3StoreOptions): Promise<S3Store> {
    const store = new S3Store(createS3Client(spec, options), spec, options.replica);
    try {
      await ensureBucket(store.client, spec);
      await makeDir(store.spoolDir);
      await sweepIngestDir(store.spoolDir, store.area);
      await store.sweepUploads();
    } catch (err) {
      store.client.destroy();
      if (err instanceof StoreError) throw err;
      throw new StoreError(`cannot use S3 storage, ${describeTarget(spec)}: ${reason(err)}`, (err as NodeJS.ErrnoException).code, { cause: err });
    }
    return store;
  }

  async close(): Promise<void> {
    this.client.destroy();
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
    return new S3BlobReader(this.client, this.spec.bucket, this.keys.blob(d), head.size, head.etag);
  }

  createWriter(d: Digest): Promise<S3BlobWriter> {
    const ctx: S3WriterContext = {
      client: this.client,
      bucket: this.spec.bucket,
      keys: this.keys,
      area: this.area,
      replica: this.replica,
      chunkSize: this.spec.chunkSize,
      spoolDir: this.spoolDir,
      onPublish: (n) => this.onPublish(n),
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
    return body ? { mediaType, body } : undefined;
  }

  async putManifest(d: Digest, mediaType: string, body: Uint8Array): Promise<void> {
    if (!isMediaType(mediaType)) throw upstreamFault("MANIFEST_INVALID", `manifest media type ${JSON.stringify(mediaType.slice(0, 100))} is not a media type; not cached`);
    const actual = digestOf(body, d.algorithm);
    if (actual.value !== d.value) throw upstreamFault("DIGEST_INVALID", `manifest content has digest ${actual.value}, expected ${d.value}; not cached`);
    // Metadata first: a blob without metadata is simply a miss, never a manifest of unknown type.
    await this.put(this.keys.manifestMeta(d), JSON.stringify({ mediaType }), `storing manifest ${d.value}`);
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.spec.bucket, Key: this.keys.blob(d), Body: body, IfNoneMatch: "*" }));
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

  async deleteTag(upstream: string, name: string, tag: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.spec.bucket, Key: this.keys.tag(upstream, name, tag) }));
    } catch (err) {
      if (!isNotFound(err)) throw unavailable(err, `removing tag ${tag}`);
    }
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
   * Abort this replica's multipart uploads left by a crash (and other replicas' untouched for
   * hours), remove stale publish claims; other replicas' uploads in progress are left alone.
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
      const marker = await this.getText(entry.key, "reading an upload record").then((t) => (t ? (JSON.parse(t) as { key?: unknown; uploadId?: unknown }) : undefined)).catch(() => undefined);
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

  /** Every key under `prefix` (with `delimiter`: only the next level, as common prefixes). */
  private async list(Prefix: string, Delimiter?: string): Promise<{ keys: { key: string; modified: number }[]; prefixes: string[] }> {
    const keys: { key: string; modified: number }[] = [];
    const prefixes: string[] = [];
    let ContinuationToken: string | undefined;
    try {
      do {
        const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.spec.bucket, Prefix, ...(Delimiter ? { Delimiter } : {}), ...(ContinuationToken ? { ContinuationToken } : {}) }));
        for (const o of page.Contents ?? []) if (o.Key) keys.push({ key: o.Key, modified: o.LastModified?.getTime() ?? 0 });
        for (const p of page.CommonPrefixes ?? []) if (p.Prefix) prefixes.push(p.Prefix);
        ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (ContinuationToken);
    } catch (err) {
      throw unavailable(err, `listing ${Prefix}`);
    }
    return { keys, prefixes };
  }
}
