// Another replica's download in progress on S3, read from its part objects (S3BlobWriter puts each
// part under its ingest name as it completes): the bytes below the mark its writer announced.
import type { S3Client } from "@aws-sdk/client-s3";
import type { Digest } from "../../oci/digest.js";
import type { PartialBlob } from "../store.js";
import { isNotFound } from "./client.js";
import type { Keys } from "./keys.js";
import { S3BlobReader } from "./reader.js";

/**
 * A writer's locator as S3BlobWriter makes them (`<replica>~<hex16>-<random>-<part size>`): one
 * announced through Redis is read only when it is one, for this digest, so no value there can
 * reach keys outside ingest/.
 */
const LOCATOR = /^[A-Za-z0-9._-]{1,200}~([0-9a-f]{16})-[0-9a-f]{16}-(\d{7,11})$/;
/** S3's smallest part. */
const MIN_PART = 5 * 1024 * 1024;

/** The part size a locator names, or undefined when it is not a locator of `d`'s download. */
export function partSizeOf(d: Digest, locator: string): number | undefined {
  const m = LOCATOR.exec(locator);
  if (!m || m[1] !== d.hex.slice(0, 16)) return undefined;
  const size = Number(m[2]);
  return Number.isSafeInteger(size) && size >= MIN_PART ? size : undefined;
}

export class S3PartialReader implements PartialBlob {
  /** The part being read: consecutive reads share one streamed GET (S3BlobReader). */
  private current: { n: number; reader: S3BlobReader } | undefined;

  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly keys: Keys,
    private readonly locator: string,
    private readonly partSize: number,
  ) {}

  /** Reads within one part at a time; 0 once a part is gone (published or cancelled: the caller looks again). */
  async readInto(buffer: Buffer, position: number): Promise<number> {
    const n = Math.floor(position / this.partSize) + 1;
    const within = position - (n - 1) * this.partSize;
    if (this.current?.n !== n) {
      await this.current?.reader.close();
      this.current = { n, reader: new S3BlobReader(this.client, this.bucket, this.keys.part(this.locator, n), this.partSize, undefined) };
    }
    const want = Math.min(buffer.byteLength, this.partSize - within);
    try {
      return await this.current.reader.readInto(want === buffer.byteLength ? buffer : buffer.subarray(0, want), within);
    } catch (err) {
      if (isNotFound((err as Error).cause)) return 0;
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.current?.reader.close();
    this.current = undefined;
  }
}
