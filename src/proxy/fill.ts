// One upstream download of one blob, shared by every client that wants it (single flight).
// Bytes go to a temp file as they arrive; readers tail that file, so every waiter streams at once.
// The download is detached from the clients: it survives their disconnects (bounded by the orphan
// timeout) and resumes with a Range request when the upstream connection drops.
import { Buffer } from "node:buffer";
import type { Digest } from "../oci/digest.js";
import { MirrorError } from "../oci/errors.js";
import type { Logger } from "../observe/log.js";
import type { Metrics } from "../observe/metrics.js";
import type { BlobStore } from "../store/store.js";
import type { BlobWriter } from "../store/writer.js";
import { ensureOk, headerString, type UpstreamClient, type UpstreamResponse } from "../upstream/client.js";
import { UpstreamError } from "../upstream/errors.js";

const READ_CHUNK = 256 * 1024;

export interface FillOptions {
  client: UpstreamClient;
  store: BlobStore;
  digest: Digest;
  name: string;
  maxResumes: number;
  orphanTimeoutMs: number;
  metrics: Metrics;
  log: Logger;
}

type State = "running" | "done" | "failed";

export class BlobFill {
  /** Settles once the size is known (or the blob turned out to be cached already), or on failure. */
  readonly ready: Promise<void>;
  /** Settles when the blob is published, or with the failure every reader sees. */
  readonly done: Promise<void>;
  size: number | undefined;
  /** The blob was published by the time this fill started; serve it from the store. */
  alreadyCached = false;

  private state: State = "running";
  private error: unknown;
  private writer: BlobWriter | undefined;
  private waiters: (() => void)[] = [];
  private readers = 0;
  private orphanTimer: NodeJS.Timeout | undefined;
  private readonly abort = new AbortController();
  private resolveReady!: () => void;

  constructor(private readonly o: FillOptions) {
    let rejectReady!: (err: unknown) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      this.resolveReady = resolve;
      rejectReady = reject;
    });
    this.done = this.run().then(
      () => {
        this.state = "done";
        this.resolveReady();
        this.wake();
      },
      (err: unknown) => {
        this.state = "failed";
        this.error = err;
        rejectReady(err);
        this.wake();
        throw err;
      },
    );
    // Every waiter handles the outcome itself; these keep an unobserved failure from crashing the process.
    this.ready.catch(() => undefined);
    this.done.catch(() => undefined).finally(() => this.maybeClose());
  }

  get isRunning(): boolean {
    return this.state === "running";
  }

  /** Abort (server shutdown, orphan timeout): the temp file is discarded, nothing is published. */
  cancel(reason: string): void {
    this.abort.abort(new MirrorError("UNAVAILABLE", reason));
  }

  private async run(): Promise<void> {
    const { store, digest, client, name } = this.o;
    // Closes the race with a fill that published between the caller's stat and this fill's creation.
    const cached = await store.statBlob(digest);
    if (cached !== undefined) {
      this.size = cached;
      this.alreadyCached = true;
      return;
    }
    const writer = await store.createWriter(digest);
    this.writer = writer;
    this.o.metrics.activeFills.inc();
    try {
      let resumes = 0;
      for (;;) {
        let res: UpstreamResponse | undefined;
        try {
          res = await this.request(writer);
          for await (const chunk of res.body) {
            await writer.write(chunk as Buffer);
            this.o.metrics.upstreamBytes.inc({ upstream: client.name }, (chunk as Buffer).byteLength);
            if (this.size !== undefined && writer.written > this.size) {
              throw new MirrorError("SIZE_INVALID", `upstream sent more than the ${this.size} bytes it announced for ${digest.value}`);
            }
            this.wake();
          }
          break;
        } catch (err) {
          res?.body.destroy();
          if (this.abort.signal.aborted) throw this.abort.signal.reason;
          if (!this.resumable(err, res) || resumes >= this.o.maxResumes) throw err;
          resumes++;
          this.o.metrics.fillResumes.inc({ upstream: client.name });
          this.o.log.warn({ upstream: client.name, digest: digest.value, at: writer.written, attempt: resumes, err: String((err as Error).message ?? err) }, "blob download interrupted; resuming with a Range request");
          await delay(Math.min(2_000, 100 * 2 ** resumes), this.abort.signal);
        }
      }
      // Verification happens here, before the last byte is released to any reader.
      await writer.commit(this.size);
      this.o.log.debug({ upstream: client.name, digest: digest.value, size: writer.written }, "blob cached");
    } catch (err) {
      await writer.cancel();
      throw err;
    } finally {
      this.o.metrics.activeFills.dec();
    }
  }

  /** GET the blob, or the rest of it with a Range request when part is already written. */
  private async request(writer: BlobWriter): Promise<UpstreamResponse> {
    const { client, digest, name } = this.o;
    const offset = writer.written;
    const headers: Record<string, string> = offset > 0 ? { range: `bytes=${offset}-` } : {};
    const res = await client.fetch("GET", `${name}/blobs/${digest.value}`, { headers, scope: `repository:${name}:pull`, signal: this.abort.signal });
    if (offset > 0 && res.statusCode === 206) {
      const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(headerString(res.headers["content-range"]) ?? "");
      if (range && Number(range[1]) === offset) return res;
      res.body.destroy();
      throw new MirrorError("UNAVAILABLE", `upstream ${client.name} answered a resume with an unexpected Content-Range`);
    }
    await ensureOk(client.name, res, `blob ${digest.value}`);
    // A 200 to a Range request is the whole blob again: start over rather than append.
    if (offset > 0) await writer.reset();
    if (this.size === undefined) {
      const length = Number(headerString(res.headers["content-length"]));
      if (Number.isSafeInteger(length) && length >= 0 && res.statusCode === 200) this.size = length;
      this.resolveReady();
    }
    return res;
  }

  /** Resume only when a response was streaming and the trouble was the connection, not an answer. */
  private resumable(err: unknown, res: UpstreamResponse | undefined): boolean {
    if (err instanceof MirrorError) return false;
    if (err instanceof UpstreamError) return err.failure === "unreachable" && this.writer !== undefined && this.writer.written > 0;
    return res !== undefined;
  }

  /**
   * Stream bytes [start, end] to one client as they arrive. The final byte is held back until the
   * digest is verified, so a client never sees a complete body for content that fails verification.
   */
  async *read(start: number, end: number | undefined, signal: AbortSignal): AsyncGenerator<Buffer> {
    this.attach();
    // A generator parked on an await cannot be returned from outside, so a client that hangs up
    // while the upstream stalls would never detach; the signal wakes it instead.
    const onAbort = () => this.wake();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      let pos = start;
      for (;;) {
        if (signal.aborted) return;
        const writer = this.writer;
        if (this.state === "failed") throw this.error;
        const written = writer?.written ?? 0;
        const available = this.state === "done" ? written : Math.max(0, written - 1);
        const stop = end === undefined ? available : Math.min(available, end + 1);
        if (writer && pos < stop) {
          const len = Math.min(stop - pos, READ_CHUNK);
          const buf = Buffer.allocUnsafe(len);
          const { bytesRead } = await writer.handle.read(buf, 0, len, pos);
          if (bytesRead <= 0) throw new MirrorError("UNKNOWN", "cache file shorter than recorded");
          pos += bytesRead;
          yield bytesRead === len ? buf : buf.subarray(0, bytesRead);
          continue;
        }
        if (this.state === "done" && (end === undefined ? pos >= written : pos > end)) return;
        await new Promise<void>((resolve) => this.waiters.push(resolve));
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      this.detach();
    }
  }

  private attach(): void {
    this.readers++;
    if (this.orphanTimer) {
      clearTimeout(this.orphanTimer);
      this.orphanTimer = undefined;
    }
  }

  private detach(): void {
    this.readers--;
    if (this.readers === 0 && this.state === "running") {
      // Nobody is waiting, but finishing the download is what makes an interrupted pull resumable.
      this.orphanTimer = setTimeout(() => this.cancel(`download abandoned: no client for ${this.o.orphanTimeoutMs} ms`), this.o.orphanTimeoutMs);
      this.orphanTimer.unref();
    }
    this.maybeClose();
  }

  private maybeClose(): void {
    if (this.readers === 0 && this.state !== "running") {
      if (this.orphanTimer) clearTimeout(this.orphanTimer);
      void this.writer?.close();
    }
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      reject(signal.reason);
    }, { once: true });
  });
}
