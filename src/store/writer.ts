// The filesystem's BlobWriter: a temp file in this replica's ingest area, hashed as it is written,
// published (once, by hard link) only when size and digest match. readAt serves what is written so far.
import { randomBytes } from "node:crypto";
import { type FileHandle, link, open, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { Hash } from "node:crypto";
import { type Digest, hasher } from "../oci/digest.js";
import { upstreamFault } from "../oci/errors.js";
import { makeDir } from "./faults.js";
import type { BlobWriter } from "./store.js";

export class FsBlobWriter implements BlobWriter {
  private hash: Hash;
  private _written = 0;
  private closed = false;

  private constructor(
    readonly digest: Digest,
    readonly tempPath: string,
    private readonly finalPath: string,
    private readonly handle: FileHandle,
    private readonly onPublish: (size: number) => void,
  ) {
    this.hash = hasher(digest.algorithm);
  }

  /** `prefix` names the temp file in `ingestDir` (the replica's ingest area, a digest prefix). */
  static async create(ingestDir: string, prefix: string, digest: Digest, finalPath: string, onPublish: (size: number) => void = () => undefined): Promise<FsBlobWriter> {
    await makeDir(ingestDir);
    const tempPath = join(ingestDir, `${prefix}-${randomBytes(8).toString("hex")}`);
    const handle = await open(tempPath, "w+");
    return new FsBlobWriter(digest, tempPath, finalPath, handle, onPublish);
  }

  get written(): number {
    return this._written;
  }

  /** The temp file's name in the ingest folder: other replicas on the same folder read it (FsStore.openPartial). */
  get locator(): string {
    return basename(this.tempPath);
  }

  /**
   * Everything written so far on the storage itself (fdatasync): on a network file system another
   * host then reads these bytes, not what this host still caches.
   */
  async share(): Promise<number> {
    const mark = this._written;
    await this.handle.datasync();
    return mark;
  }

  /**
   * Append chunks in one vectored write; the hash follows the bytes in order. The chunks are hashed
   * here while the thread pool writes them (measured: the disk and the hash one after the other
   * held the download up); a failed write puts the hash back to what is on disk.
   */
  async write(chunks: readonly Buffer[]): Promise<void> {
    const before = this.hash.copy();
    const writing = this.writeAll(chunks.filter((c) => c.byteLength > 0), this._written);
    for (const c of chunks) this.hash.update(c);
    try {
      this._written = await writing;
    } catch (err) {
      this.hash = before;
      throw err;
    }
  }

  /** writev until every byte is on disk; the position after the last one. */
  private async writeAll(chunks: Buffer[], position: number): Promise<number> {
    let pending = chunks;
    while (pending.length > 0) {
      const { bytesWritten } = await this.handle.writev(pending, position);
      position += bytesWritten;
      // A short write leaves the tail of the batch for the next round.
      let skip = bytesWritten;
      while (pending.length > 0 && skip >= (pending[0] as Buffer).byteLength) skip -= (pending.shift() as Buffer).byteLength;
      if (skip > 0 && pending.length > 0) pending = [(pending[0] as Buffer).subarray(skip), ...pending.slice(1)];
    }
    return position;
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

  async readAt(buffer: Buffer, position: number, length = buffer.byteLength): Promise<number> {
    const len = Math.min(length, buffer.byteLength, this._written - position);
    if (len <= 0) return 0;
    return (await this.handle.read(buffer, 0, len, position)).bytesRead;
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

  /**
   * Make verified content durable, then visible: fsync first, so a crash never publishes a torn
   * file; then a hard link, which fails when the name exists, so of two writers of one digest
   * (replicas on one folder, two upstreams' fills) exactly one publishes and counts the size.
   */
  async publish(): Promise<void> {
    await this.handle.sync();
    await makeDir(dirname(this.finalPath));
    const published = await publishOnce(this.tempPath, this.finalPath);
    if (!published) {
      // Published by the other writer: the same verified bytes, so that copy stays.
      await this.cancel();
      return;
    }
    this.closed = true;
    await rm(this.tempPath, { force: true });
    this.onPublish(this._written);
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

/** File systems without hard links (some FUSE and SMB mounts) answer these; rename is their publish. */
const NO_LINKS = new Set(["ENOTSUP", "EOPNOTSUPP", "ENOSYS", "EXDEV", "EPERM"]);

/** Put `temp` at `final` unless something is there already; false when it was. */
async function publishOnce(temp: string, final: string): Promise<boolean> {
  try {
    await link(temp, final);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "";
    if (code === "EEXIST") return false;
    if (!NO_LINKS.has(code)) throw err;
  }
  if (await stat(final).then((s) => s.isFile(), () => false)) return false;
  await rename(temp, final);
  return true;
}
