// A blob being written: a temp file in ingest/, hashed as it is written, published by rename
// only when size and digest match. Readers may read what is written so far (for streaming fills).
import { randomBytes } from "node:crypto";
import { type FileHandle, mkdir, open, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Hash } from "node:crypto";
import { type Digest, hasher } from "../oci/digest.js";
import { upstreamFault } from "../oci/errors.js";

export class BlobWriter {
  private hash: Hash;
  private _written = 0;
  private closed = false;

  private constructor(
    readonly digest: Digest,
    readonly tempPath: string,
    private readonly finalPath: string,
    readonly handle: FileHandle,
    private readonly onPublish: (size: number) => void,
  ) {
    this.hash = hasher(digest.algorithm);
  }

  static async create(ingestDir: string, digest: Digest, finalPath: string, onPublish: (size: number) => void = () => undefined): Promise<BlobWriter> {
    await mkdir(ingestDir, { recursive: true });
    const tempPath = join(ingestDir, `${digest.hex.slice(0, 16)}-${randomBytes(8).toString("hex")}`);
    const handle = await open(tempPath, "w+");
    return new BlobWriter(digest, tempPath, finalPath, handle, onPublish);
  }

  get written(): number {
    return this._written;
  }

  /** Append chunks in one vectored write; the hash follows the bytes in order. */
  async write(chunks: readonly Buffer[]): Promise<void> {
    let pending = chunks.filter((c) => c.byteLength > 0);
    let position = this._written;
    while (pending.length > 0) {
      const { bytesWritten } = await this.handle.writev(pending, position);
      position += bytesWritten;
      // A short write leaves the tail of the batch for the next round.
      let skip = bytesWritten;
      while (pending.length > 0 && skip >= (pending[0] as Buffer).byteLength) skip -= (pending.shift() as Buffer).byteLength;
      if (skip > 0 && pending.length > 0) pending = [(pending[0] as Buffer).subarray(skip), ...pending.slice(1)];
    }
    for (const c of chunks) this.hash.update(c);
    this._written = position;
  }

  /**
   * Hand over the hash of what is written so far and stop writing (a disk that cannot take the
   * rest: the caller hashes the remainder itself).
   */
  takeHash(): Hash {
    const hash = this.hash;
    this.hash = hasher(this.digest.algorithm);
    return hash;
  }

  /** Start over (an upstream answered a Range request with the whole body). */
  async reset(): Promise<void> {
    await this.handle.truncate(0);
    this.hash = hasher(this.digest.algorithm);
    this._written = 0;
  }

  /** Check size and digest of everything written. On mismatch the temp file is removed. */
  async verify(expectedSize?: number): Promise<void> {
    const actual = this.hash.digest("hex");
    if (expectedSize !== undefined && expectedSize !== this._written) {
      await this.cancel();
      throw upstreamFault("SIZE_INVALID", `upstream sent ${this._written} bytes for ${this.digest.value}, expected ${expectedSize}`);
    }
    if (actual !== this.digest.hex) {
      await this.cancel();
      throw upstreamFault("DIGEST_INVALID", `upstream content for ${this.digest.value} has digest ${this.digest.algorithm}:${actual}; not cached`);
    }
  }

  /** Make verified content durable, then visible: fsync before rename, so a crash never publishes a torn file. */
  async publish(): Promise<void> {
    await this.handle.sync();
    await mkdir(dirname(this.finalPath), { recursive: true });
    // Another upstream's fill may have published the same content meanwhile (fills are per
    // upstream): same bytes, so keep that one and do not count the size twice.
    const existing = await stat(this.finalPath).catch(() => undefined);
    if (existing?.isFile() && existing.size === this._written) {
      await this.cancel();
      return;
    }
    await rename(this.tempPath, this.finalPath);
    this.closed = true;
    this.onPublish(this._written);
  }

  async commit(expectedSize?: number): Promise<void> {
    await this.verify(expectedSize);
    await this.publish();
  }

  /** Discard the temp file. Safe to call more than once and after commit. */
  async cancel(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await rm(this.tempPath, { force: true });
  }

  /** Close the handle once no reader needs it (it stays readable after rename). */
  async close(): Promise<void> {
    await this.handle.close().catch(() => undefined);
  }
}
