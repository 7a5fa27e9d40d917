// When content in an S3 store was last used, without an S3 write per hit: each replica keeps the
// digests it read in memory and writes them, at most every flushMs, as one object of its own
// (keys.ts: usage/<replica>.json); eviction merges every replica's object with the blobs' LastModified.
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { STALE_INGEST_MS } from "../ingest.js";
import { isNotFound } from "./client.js";
import type { Keys } from "./keys.js";
import { listObjects } from "./list.js";

export interface UseLogOptions {
  client: S3Client;
  bucket: string;
  keys: Keys;
  /** This replica's ingest area name: its object is usage/<area>.json. */
  area: string;
  /**
   * How often last uses are written (when there are new ones). Shorter than the eviction grace, so
   * another replica's evictor sees a read before the grace of that read is over. `false`: a command
   * beside the mirror, which only reads the replicas' logs (records nothing, folds nothing).
   */
  flushMs: number | false;
}

export class UseLog {
  /** This replica's last use of each digest (ms since epoch). */
  private readonly used = new Map<string, number>();
  /** Readers open on this replica, per digest: each flush marks them used now. */
  private readonly open = new Map<string, number>();
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private readonly key: string;

  constructor(private readonly o: UseLogOptions) {
    this.key = o.keys.usageOf(o.area);
  }

  /** Take back what this replica recorded before a restart, and start writing. */
  async start(): Promise<void> {
    if (this.o.flushMs === false) return;
    for (const [d, at] of await this.read(this.key)) this.used.set(d, at);
    this.timer = setInterval(() => void this.flush().catch(() => undefined), this.o.flushMs);
    this.timer.unref();
  }

  touch(digest: string): void {
    if (this.o.flushMs === false) return;
    this.used.set(digest, Date.now());
    this.dirty = true;
  }

  /** A reader opened `digest`: it counts as used until closed (and is never evicted meanwhile). */
  opened(digest: string): void {
    if (this.o.flushMs === false) return;
    this.open.set(digest, (this.open.get(digest) ?? 0) + 1);
    this.touch(digest);
  }

  closed(digest: string): void {
    if (this.o.flushMs === false) return;
    const n = (this.open.get(digest) ?? 1) - 1;
    if (n <= 0) this.open.delete(digest);
    else this.open.set(digest, n);
    this.touch(digest);
  }

  inUse(): ReadonlySet<string> {
    return new Set(this.open.keys());
  }

  /** Write this replica's last uses if there is anything new (one PUT, however many hits). */
  flush(): Promise<void> {
    if (this.o.flushMs === false) return Promise.resolve();
    this.flushing ??= (async () => {
      const now = Date.now();
      for (const d of this.open.keys()) this.used.set(d, now);
      if (!this.dirty && this.open.size === 0) return;
      this.dirty = false;
      try {
        await this.o.client.send(new PutObjectCommand({ Bucket: this.o.bucket, Key: this.key, Body: JSON.stringify(Object.fromEntries(this.used)), ContentType: "application/json" }));
      } catch (err) {
        this.dirty = true;
        throw err;
      }
    })().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  /**
   * Every replica's last uses, merged (the latest wins). A replica's object nobody has written for
   * hours belongs to a replica that is gone: its uses are folded into this one's and it is removed.
   */
  async lastUses(): Promise<Map<string, number>> {
    const merged = new Map(this.used);
    const now = Date.now();
    for (const entry of (await listObjects(this.o.client, this.o.bucket, this.o.keys.usage)).keys) {
      if (entry.key === this.key || !entry.key.endsWith(".json")) continue;
      const theirs = await this.read(entry.key);
      for (const [d, at] of theirs) if (at > (merged.get(d) ?? 0)) merged.set(d, at);
      if (this.o.flushMs !== false && now - entry.modified >= STALE_INGEST_MS) {
        for (const [d, at] of theirs) if (at > (this.used.get(d) ?? 0)) this.used.set(d, at);
        this.dirty = true;
        await this.o.client.send(new DeleteObjectCommand({ Bucket: this.o.bucket, Key: entry.key })).catch(() => undefined);
      }
    }
    return merged;
  }

  /** Content that was deleted needs no last use any more. */
  forget(gone: Iterable<string>): void {
    for (const d of gone) if (this.used.delete(d)) this.dirty = true;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    if (this.o.flushMs !== false) await this.flush().catch(() => undefined);
  }

  private async read(Key: string): Promise<Map<string, number>> {
    try {
      const res = await this.o.client.send(new GetObjectCommand({ Bucket: this.o.bucket, Key }));
      const doc = JSON.parse(await (res.Body as { transformToString(): Promise<string> }).transformToString()) as Record<string, unknown>;
      return new Map(Object.entries(doc).filter((e): e is [string, number] => typeof e[1] === "number"));
    } catch (err) {
      // Missing, or not ours to understand: no last uses from it (blobs fall back to LastModified).
      if (isNotFound(err) || err instanceof SyntaxError) return new Map();
      throw err;
    }
  }
}
