// The S3 store's BlobWriter: bytes go to a local spool file (hashed; readAt serves late readers)
// and, part by part as they arrive, into objects under this replica's ingest name, which other
// replicas read while the download goes on (S3Store.openPartial). Publish happens once per digest
// across replicas: small blobs by a conditional PUT (If-None-Match: *), larger ones, after taking a
// claim the same way, by completing a multipart upload each part was copied into server-side
// (UploadPartCopy) as soon as it was in the bucket.
import { randomBytes } from "node:crypto";
import type { Hash } from "node:crypto";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
} from "@aws-sdk/client-s3";
import type { Digest } from "../../oci/digest.js";
import type { BlobWriter } from "../store.js";
import { FsBlobWriter } from "../writer.js";
import { isNotFound, isPreconditionFailed, reason, unavailable } from "./client.js";
import type { Keys } from "./keys.js";

/** A claim older than this belongs to a replica that died while completing: it may be taken over. */
export const CLAIM_STALE_MS = 5 * 60 * 1000;
/** How long a replica that lost the claim waits for the winner's object to appear. */
const WINNER_WAIT_MS = 30_000;

export interface S3WriterContext {
  client: S3Client;
  bucket: string;
  keys: Keys;
  /** This replica's ingest name prefix (ingest.ts). */
  area: string;
  replica: string;
  chunkSize: number;
  /** Local folder for spool files. */
  spoolDir: string;
  onPublish: (size: number) => void;
  /**
   * Set once the server refused UploadPartCopy (shared by the store's writers): parts are then
   * uploaded into the multipart upload as well, from the spool.
   */
  noPartCopy?: { value: boolean };
  /** Told once when that happens (the store logs it). */
  onNoPartCopy?: (why: string) => void;
}

interface Upload {
  uploadId: string;
  marker: string;
  /** Parts copied into it so far, in order. */
  parts: { PartNumber: number; ETag: string }[];
}

export class S3BlobWriter implements BlobWriter {
  /** The multipart upload to the blob's key that the parts are copied into, from the first part on. */
  private upload: Upload | undefined;
  /** Bytes [0, uploaded) are in part objects (being put or done). */
  private uploaded = 0;
  /** Bytes [0, shared) are in part objects that are done: other replicas can read them. */
  private shared = 0;
  /** Part objects put so far (numbered from 1). */
  private parts = 0;
  private inflight: Promise<void> | undefined;
  /** The part object being put (share() waits for it, not for its copy into the upload). */
  private putting: Promise<void> | undefined;
  private failure: unknown;
  private closed = false;

  private constructor(
    private readonly spool: FsBlobWriter,
    private readonly ctx: S3WriterContext,
    /** This download's name under the replica's ingest prefix; its parts are objects below it. */
    readonly locator: string,
  ) {}

  static async create(ctx: S3WriterContext, digest: Digest): Promise<S3BlobWriter> {
    // The spool is never published itself (its final path is never linked): this writer publishes to S3.
    const spool = await FsBlobWriter.create(ctx.spoolDir, `${ctx.area}${digest.hex.slice(0, 16)}`, digest, "", () => undefined);
    // The part size is in the name: a replica configured with another chunkSize still finds each byte.
    const locator = `${ctx.area}${digest.hex.slice(0, 16)}-${randomBytes(8).toString("hex")}-${ctx.chunkSize}`;
    return new S3BlobWriter(spool, ctx, locator);
  }

  /** Bytes other replicas can read now: the parts already in the bucket (the one being put is awaited, not its copy). */
  async share(): Promise<number> {
    await this.putting;
    return this.shared;
  }

  get digest(): Digest {
    return this.spool.digest;
  }

  get written(): number {
    return this.spool.written;
  }

  async write(chunks: readonly Buffer[]): Promise<void> {
    if (this.failure) throw this.failure;
    await this.spool.write(chunks);
    await this.pump(false);
  }

  readAt(buffer: Buffer, position: number, length?: number): Promise<number> {
    return this.spool.readAt(buffer, position, length);
  }

  takeHash(): Hash {
    return this.spool.takeHash();
  }

  async verify(expectedSize?: number): Promise<void> {
    try {
      await this.spool.verify(expectedSize);
    } catch (err) {
      await this.cancel();
      throw err;
    }
  }

  async publish(): Promise<void> {
    const { client, bucket, keys } = this.ctx;
    const key = keys.blob(this.digest);
    const size = this.written;
    if (!this.upload && size < this.ctx.chunkSize) {
      // Small: one conditional PUT is upload and publish at once.
      const body = Buffer.allocUnsafe(size);
      if ((await this.spool.readAt(body, 0, size)) !== size) throw new Error("spool file shorter than written");
      try {
        await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentLength: size, IfNoneMatch: "*" }));
      } catch (err) {
        if (!isPreconditionFailed(err)) throw unavailable(err, `publishing ${this.digest.value}`);
        return this.lost();
      }
      return this.published(size);
    }
    await this.pump(true);
    if (this.failure) throw this.failure;
    if (await exists(client, bucket, key)) return this.lost();
    if (!(await this.claim())) return this.lost(true);
    // The winner removes its claim once its object is complete: a claim taken after that must
    // look again, or a replica that checked before the winner completed would publish a second time.
    if (await exists(client, bucket, key)) {
      await this.unclaim();
      return this.lost();
    }
    const upload = this.upload as Upload;
    try {
      // If-None-Match here too, for servers that honour it on completion (AWS); the claim covers those that do not.
      await client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: upload.uploadId, MultipartUpload: { Parts: upload.parts }, IfNoneMatch: "*" }));
    } catch (err) {
      await this.unclaim();
      if (isPreconditionFailed(err)) return this.lost();
      throw unavailable(err, `publishing ${this.digest.value}`);
    }
    this.upload = undefined;
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: upload.marker })).catch(() => undefined);
    await this.unclaim();
    await this.removeParts();
    return this.published(size);
  }

  async cancel(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.inflight?.catch(() => undefined);
    const upload = this.upload;
    this.upload = undefined;
    if (upload) {
      const { client, bucket, keys } = this.ctx;
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: keys.blob(this.digest), UploadId: upload.uploadId })).catch(() => undefined);
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: upload.marker })).catch(() => undefined);
    }
    await this.removeParts();
    await this.spool.cancel();
  }

  private partKey(n: number): string {
    return this.ctx.keys.part(this.locator, n);
  }

  /** Remove the part objects (published, or given up): a replica following them then reads the blob or fails. */
  private async removeParts(): Promise<void> {
    const { client, bucket } = this.ctx;
    const count = this.parts;
    this.parts = 0;
    this.shared = 0;
    for (let n = 1; n <= count; n++) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: this.partKey(n) })).catch(() => undefined);
  }

  close(): Promise<void> {
    return this.spool.close();
  }

  private async published(size: number): Promise<void> {
    this.closed = true;
    await this.spool.cancel();
    this.ctx.onPublish(size);
  }

  /** Another writer published (or is completing) this digest: discard ours, once theirs is visible. */
  private async lost(waitForWinner = false): Promise<void> {
    await this.cancel();
    if (!waitForWinner) return;
    const deadline = Date.now() + WINNER_WAIT_MS;
    while (Date.now() < deadline && !(await exists(this.ctx.client, this.ctx.bucket, this.ctx.keys.blob(this.digest)).catch(() => false))) {
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /**
   * Upload every full part written so far; with `final`, the rest too. One part in flight at a
   * time, its upload overlapping the next part's download; a writer more than two parts ahead waits.
   */
  private async pump(final: boolean): Promise<void> {
    for (;;) {
      if (this.failure) throw this.failure;
      const pending = this.written - this.uploaded;
      const full = pending >= this.ctx.chunkSize;
      if (!full && !(final && pending > 0)) break;
      if (this.inflight) {
        if (!final && pending < 2 * this.ctx.chunkSize) break;
        await this.inflight.catch(() => undefined);
        continue;
      }
      const start = this.uploaded;
      const length = full ? this.ctx.chunkSize : pending;
      this.uploaded += length;
      this.inflight = this.uploadPart(start, length).then(
        () => {
          this.inflight = undefined;
          // The next full part goes up at once, not at the next write.
          if (!this.closed) this.pump(false).catch(() => undefined);
        },
        (err: unknown) => {
          this.inflight = undefined;
          this.failure = unavailable(err, `uploading ${this.digest.value}`);
        },
      );
    }
    if (final) {
      await this.inflight;
      if (this.failure) throw this.failure;
    }
  }

  /**
   * Put bytes [start, start + length) as the next part object (other replicas may read it then), and
   * copy it server-side into the blob's multipart upload at once, so that publishing is only the
   * completion: no byte crosses the network twice, and the publish does not wait for copies.
   */
  private async uploadPart(start: number, length: number): Promise<void> {
    const { client, bucket, keys } = this.ctx;
    const n = this.parts + 1;
    // Set before the first await: share() right after the write that started this part must wait
    // for it (reading the spool first left a window where share() saw no part in flight and said 0).
    const put = this.putPart(n, start, length);
    this.putting = put.then(
      () => undefined,
      () => undefined,
    );
    const body = await put;
    const upload = (this.upload ??= await this.begin());
    const Key = keys.blob(this.digest);
    if (!this.ctx.noPartCopy?.value) {
      try {
        const res = await client.send(new UploadPartCopyCommand({ Bucket: bucket, Key, UploadId: upload.uploadId, PartNumber: n, CopySource: copySource(bucket, this.partKey(n)) }));
        upload.parts.push({ PartNumber: n, ETag: res.CopyPartResult?.ETag as string });
        return;
      } catch (err) {
        if (!refusesPartCopy(err) || !this.ctx.noPartCopy) throw err;
        // A server without UploadPartCopy (or a policy refusing it): the part's bytes go up again.
        this.ctx.noPartCopy.value = true;
        this.ctx.onNoPartCopy?.(reason(err));
      }
    }
    const res = await client.send(new UploadPartCommand({ Bucket: bucket, Key, UploadId: upload.uploadId, PartNumber: n, Body: body, ContentLength: length }));
    upload.parts.push({ PartNumber: n, ETag: res.ETag as string });
  }

  /** Put bytes [start, start + length) of the spool as part object n; other replicas may read it from then on. */
  private async putPart(n: number, start: number, length: number): Promise<Buffer> {
    const { client, bucket } = this.ctx;
    const body = Buffer.allocUnsafe(length);
    if ((await this.spool.readAt(body, start, length)) !== length) throw new Error("spool file shorter than written");
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: this.partKey(n), Body: body, ContentLength: length }));
    this.parts = n;
    this.shared = start + length;
    return body;
  }

  /** Start the multipart upload and record it under this replica's name, so a restart can abort it. */
  private async begin(): Promise<Upload> {
    const { client, bucket, keys, area } = this.ctx;
    const key = keys.blob(this.digest);
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    const marker = `${keys.ingest}${area}${this.digest.hex.slice(0, 16)}-${randomBytes(8).toString("hex")}`;
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: marker, Body: JSON.stringify({ key, uploadId: UploadId }), ContentType: "application/json" }));
    return { uploadId: UploadId as string, marker, parts: [] };
  }

  /** Take the publish claim for this digest; a stale one (its replica died completing) is taken over. */
  private async claim(): Promise<boolean> {
    const { client, bucket, keys } = this.ctx;
    const Key = keys.claim(this.digest);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await client.send(new PutObjectCommand({ Bucket: bucket, Key, Body: this.ctx.replica, IfNoneMatch: "*" }));
        return true;
      } catch (err) {
        if (!isPreconditionFailed(err)) throw unavailable(err, `publishing ${this.digest.value}`);
      }
      const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key })).catch(() => undefined);
      if (head?.LastModified && Date.now() - head.LastModified.getTime() < CLAIM_STALE_MS) return false;
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key })).catch(() => undefined);
    }
    return false;
  }

  private async unclaim(): Promise<void> {
    await this.ctx.client.send(new DeleteObjectCommand({ Bucket: this.ctx.bucket, Key: this.ctx.keys.claim(this.digest) })).catch(() => undefined);
  }
}

export async function exists(client: S3Client, bucket: string, key: string): Promise<boolean> {
  try {
    await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** x-amz-copy-source: the bucket and the key, each path segment URL-encoded. */
function copySource(bucket: string, key: string): string {
  return `${bucket}/${key.split("/").map(encodeURIComponent).join("/")}`;
}

/**
 * An answer saying this server will not copy parts (501, or a 4xx such as NotImplemented or
 * AccessDenied on the copy source), as opposed to one that is down (5xx): that is retried as an upload.
 */
export function refusesPartCopy(err: unknown): boolean {
  const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return status === 501 || (status !== undefined && status >= 400 && status < 500 && status !== 404);
}
