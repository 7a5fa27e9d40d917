// One blob GET from an upstream that survives dropped connections: the body as a stream of chunk
// batches, resumed with a Range request from the last byte received. Errors in the consumer are not
// the upstream's: they end the download (the generator is returned), they are never retried.
import type { Readable } from "node:stream";
import type { Digest } from "../oci/digest.js";
import { MirrorError, upstreamFault } from "../oci/errors.js";
import type { Logger } from "../observe/log.js";
import type { Metrics } from "../observe/metrics.js";
import { ensureOk, headerString, type UpstreamClient, type UpstreamResponse } from "../upstream/client.js";
import { UpstreamError } from "../upstream/errors.js";
import { type ThroughputFloor, watchPace } from "./pace.js";

export interface DownloadOptions {
  client: UpstreamClient;
  digest: Digest;
  /** Repository name upstream. */
  name: string;
  maxResumes: number;
  /** Below it a body counts as failed: cut off, then resumed (maxResumes) or failed. */
  floor: ThroughputFloor;
  signal: AbortSignal;
  metrics: Metrics;
  log: Logger;
  /** Told the blob's size (or that it is unknown) once the first answer arrived. */
  onStart(size: number | undefined): void | Promise<void>;
  /**
   * Bytes the caller already has (taken over from another replica's download): the first request
   * asks for the rest with Range, and the size told is still the whole blob's. Default 0.
   */
  startAt?: number;
}

/**
 * Chunks queued from upstream before the body is paused (the consumer is busy with the disk or the
 * hash); the socket then waits in the kernel's buffers.
 */
const QUEUE_HIGH_WATER = 2 * 1024 * 1024;

/**
 * The chunks of a body as they arrive, taken in batches: everything that came while the consumer
 * was busy, in one array, so a busy consumer pays one await for many chunks, not one per chunk.
 * 'data' events rather than the stream's async iterator, which joins buffered chunks (a copy of
 * every byte). Bytes that arrived before an error are still handed out; the error comes next.
 */
class BodyBatches {
  private queue: Buffer[] = [];
  private queued = 0;
  private paused = false;
  private ended = false;
  private failure: unknown;
  private wake: (() => void) | undefined;

  /** `skip`: bytes at the start the consumer already has (an upstream that ignored Range). */
  constructor(
    private readonly body: Readable,
    private skip: number,
  ) {
    body.on("data", (chunk: Buffer) => this.push(chunk));
    body.once("end", () => {
      this.ended = true;
      this.signal();
    });
    body.once("error", (err) => {
      this.failure ??= err;
      this.signal();
    });
    // Destroyed without an error (undici aborted it): not an end, a truncated body.
    body.once("close", () => {
      if (!this.ended) this.failure ??= Object.assign(new Error("upstream body closed before its end"), { code: "UND_ERR_SOCKET" });
      this.signal();
    });
  }

  private push(chunk: Buffer): void {
    if (this.skip > 0) {
      if (this.skip >= chunk.byteLength) {
        this.skip -= chunk.byteLength;
        return;
      }
      chunk = chunk.subarray(this.skip);
      this.skip = 0;
    }
    this.queue.push(chunk);
    this.queued += chunk.byteLength;
    if (this.queued >= QUEUE_HIGH_WATER && !this.paused) {
      this.paused = true;
      this.body.pause();
    }
    this.signal();
  }

  private signal(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** The next chunks (at least one), or undefined at the body's end; `waiting` is told before it waits. */
  async next(waiting: () => void): Promise<Buffer[] | undefined> {
    while (this.queue.length === 0) {
      if (this.failure !== undefined) throw this.failure;
      if (this.ended) return undefined;
      waiting();
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    const batch = this.queue;
    this.queue = [];
    this.queued = 0;
    if (this.paused) {
      this.paused = false;
      this.body.resume();
    }
    return batch;
  }
}

export async function* download(o: DownloadOptions): AsyncGenerator<Buffer[]> {
  let received = o.startAt ?? 0;
  let size: number | undefined;
  let resumes = 0;
  let started = false;
  /** Set when the pace meter cut the body off: that, not undici's "aborted", is the failure. */
  let slow: UpstreamError | undefined;
  /** Past the parent mirror: it sent this blob below the floor, the upstream itself sends the rest. */
  let direct = false;
  for (;;) {
    // Everything announced is here (the connection dropped after the last byte): nothing to resume.
    if (size !== undefined && received === size && received > 0) return;
    let res: UpstreamResponse | undefined;
    try {
      const answer = await request(o, received, direct);
      if (answer === undefined) {
        // A taken-over download that already had every byte: upstream confirmed the size (416 */size).
        if (!started) await o.onStart(received);
        return;
      }
      res = answer.res;
      if (!started) {
        started = true;
        size = wholeSize(res);
        await o.onStart(size);
      }
      // The request's own signal was the deadline's, which ends with the headers; the download's
      // signal (orphan timeout, shutdown) must still be able to stop the body.
      const body = res.body;
      const stop = () => body.destroy(o.signal.reason as Error);
      o.signal.addEventListener("abort", stop, { once: true });
      // Aborted between the answer and here (orphan timeout, shutdown): the listener came too late.
      if (o.signal.aborted) stop();
      const tooSlow = (why: string) => new UpstreamError(o.client.name, "timeout", `blob ${o.digest.value}: ${why}`);
      const pace = watchPace(o.floor, (why) => body.destroy((slow = tooSlow(why))));
      const { meter } = pace;
      let ended = false;
      try {
        const batches = new BodyBatches(body, answer.skip);
        // Only the wait in next() counts for the floor: while suspended at the yield, readers and the disk hold it.
        const waiting = () => meter.waiting();
        for (;;) {
          const batch = await batches.next(waiting);
          if (batch === undefined) {
            ended = true;
            break;
          }
          let bytes = 0;
          for (const chunk of batch) bytes += chunk.byteLength;
          const why = meter.arrived(bytes);
          if (why) throw (slow = tooSlow(why));
          received += bytes;
          yield batch;
        }
      } finally {
        pace.stop();
        o.signal.removeEventListener("abort", stop);
        // Left early (the consumer stopped: too long a body, a failed write): close the connection,
        // as for-await would have.
        if (!ended) body.destroy();
      }
      return;
    } catch (err) {
      res?.body.destroy();
      if (o.signal.aborted) throw o.signal.reason;
      // Only a connection that failed after bytes arrived is resumed; an answer (4xx, 5xx) is final.
      // A body below the throughput floor is retried even from its first byte (its headers came).
      const belowFloor = slow !== undefined;
      const failed = slow ?? err;
      const connection =
        belowFloor ||
        (failed instanceof UpstreamError ? (failed.failure === "unreachable" || failed.failure === "timeout") && received > 0 : !(failed instanceof MirrorError) && res !== undefined);
      slow = undefined;
      // Another source is not a retry of this one: no resume spent, no backoff (once per download).
      if (belowFloor && !direct && o.client.hasOtherSource) {
        direct = true;
        o.metrics.fillResumes.inc({ upstream: o.client.name });
        o.log.warn({ upstream: o.client.name, digest: o.digest.value, at: received, err: (failed as Error).message }, "blob from the parent mirror below the throughput floor; continuing from the upstream itself");
        continue;
      }
      if (!connection || resumes >= o.maxResumes) throw failed;
      resumes++;
      o.metrics.fillResumes.inc({ upstream: o.client.name });
      o.log.warn({ upstream: o.client.name, digest: o.digest.value, at: received, attempt: resumes, err: String((failed as Error).message ?? failed) }, "blob download interrupted; resuming with a Range request");
      await delay(Math.min(2_000, 100 * 2 ** resumes), o.signal);
    }
  }
}

/**
 * GET the blob, or the rest of it from `offset`; undefined when upstream says there is no rest
 * (416 for a range starting at the blob's end). `skip`: leading bytes of the body the caller
 * already has (an upstream that answered a Range request with the whole blob).
 */
async function request(o: DownloadOptions, offset: number, direct: boolean): Promise<{ res: UpstreamResponse; skip: number } | undefined> {
  const { client, digest, name } = o;
  const headers: Record<string, string> = offset > 0 ? { range: `bytes=${offset}-` } : {};
  // The breaker is for the registry's health; a download's own retries must not trip it, nor be
  // stopped by it, or one dropped connection would cost the whole download.
  // The deadline covers the answer's headers only: the body's pace is the throughput floor's matter.
  const res = await client.exchange(`blob ${digest.value}`, (signal) => client.fetch("GET", `${name}/blobs/${digest.value}`, { headers, scope: `repository:${name}:pull`, signal, breaker: false, direct }), o.signal);
  if (offset === 0) {
    await ensureOk(client.name, res, `blob ${digest.value}`);
    return { res, skip: 0 };
  }
  if (res.statusCode === 416 && headerString(res.headers["content-range"]) === `bytes */${offset}`) {
    res.body.destroy();
    return undefined;
  }
  if (res.statusCode === 206) {
    const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(headerString(res.headers["content-range"]) ?? "");
    if (range && Number(range[1]) === offset) return { res, skip: 0 };
    res.body.destroy();
    throw upstreamFault("UNAVAILABLE", `upstream ${client.name} answered a resume with an unexpected Content-Range`);
  }
  await ensureOk(client.name, res, `blob ${digest.value}`);
  // A 200 to a Range request is the whole blob again: skip what we already have (the same
  // content-addressed bytes; verification at the end proves it).
  return { res, skip: offset };
}

/** The whole blob's size from an answer: a 206's Content-Range total, else the Content-Length of a 200. */
function wholeSize(res: UpstreamResponse): number | undefined {
  if (res.statusCode === 206) {
    const total = /\/(\d+)$/.exec(headerString(res.headers["content-range"]) ?? "")?.[1];
    return total === undefined ? undefined : Number(total);
  }
  const length = Number(headerString(res.headers["content-length"]));
  return Number.isSafeInteger(length) && length >= 0 ? length : undefined;
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
