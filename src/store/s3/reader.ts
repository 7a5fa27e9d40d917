// A published blob read from S3: one ranged GET streamed for consecutive reads (a response, a
// Range request), a new one only when a read jumps. If-Match pins the object that was opened.
import type { Readable } from "node:stream";
import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import type { OpenBlob } from "../store.js";
import { unavailable } from "./client.js";

export class S3BlobReader implements OpenBlob {
  private body: Readable | undefined;
  private chunks: AsyncIterator<Buffer> | undefined;
  /** Blob position of the next byte the open body yields (after `leftover`). */
  private bodyPos = -1;
  private leftover: Buffer | undefined;

  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly key: string,
    readonly size: number,
    private readonly etag: string | undefined,
    /** Told once when the reader closes (the store's use log counts open readers). */
    private onClose: () => void = () => undefined,
  ) {}

  async readInto(buffer: Buffer, position: number): Promise<number> {
    if (position >= this.size || buffer.byteLength === 0) return 0;
    if (!this.chunks || position !== this.bodyPos) await this.reopen(position);
    let filled = 0;
    while (filled < buffer.byteLength) {
      let chunk = this.leftover;
      this.leftover = undefined;
      if (!chunk) {
        let next: IteratorResult<Buffer>;
        try {
          next = await (this.chunks as AsyncIterator<Buffer>).next();
        } catch (err) {
          this.drop();
          throw unavailable(err, `reading ${this.key}`);
        }
        if (next.done) break;
        chunk = next.value;
      }
      const n = chunk.copy(buffer, filled);
      filled += n;
      if (n < chunk.byteLength) this.leftover = chunk.subarray(n);
    }
    this.bodyPos = position + filled;
    return filled;
  }

  async close(): Promise<void> {
    this.drop();
    const done = this.onClose;
    this.onClose = () => undefined;
    done();
  }

  private async reopen(position: number): Promise<void> {
    this.drop();
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key, Range: `bytes=${position}-`, ...(this.etag ? { IfMatch: this.etag } : {}) }));
      this.body = res.Body as Readable;
    } catch (err) {
      throw unavailable(err, `reading ${this.key}`);
    }
    this.chunks = this.body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    this.bodyPos = position;
  }

  private drop(): void {
    this.body?.destroy();
    this.body = undefined;
    this.chunks = undefined;
    this.leftover = undefined;
    this.bodyPos = -1;
  }
}
