// One blob GET from an upstream that survives dropped connections: the body as a stream of chunks,
// resumed with a Range request from the last byte received. Errors in the consumer are not the
// upstream's: they end the download (the generator is returned), they are never retried.
import type { Digest } from "../oci/digest.js";
import { MirrorError, upstreamFault } from "../oci/errors.js";
import type { Logger } from "../observe/log.js";
import type { Metrics } from "../observe/metrics.js";
import { ensureOk, headerString, type UpstreamClient, type UpstreamResponse } from "../upstream/client.js";
import { UpstreamError } from "../upstream/errors.js";
import { PaceMeter, type ThroughputFloor } from "./pace.js";

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
}

export async function* download(o: DownloadOptions): AsyncGenerator<Buffer> {
  let received = 0;
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
      res = await request(o, received, direct);
      if (res === undefined) return;
      if (!started) {
        started = true;
        const length = Number(headerString(res.headers["content-length"]));
        size = Number.isSafeInteger(length) && length >= 0 ? length : undefined;
        await o.onStart(size);
      }
      // The request's own signal was the deadline's, which ends with the headers; the download's
      // signal (orphan timeout, shutdown) must still be able to stop the body.
      const body = res.body;
      const stop = () => body.destroy(o.signal.reason as Error);
      o.signal.addEventListener("abort", stop, { once: true });
      // Aborted between the answer and here (orphan timeout, shutdown): the listener came too late.
      if (o.signal.aborted) stop();
      const meter = new PaceMeter(o.floor);
      const tooSlow = (why: string) => new UpstreamError(o.client.name, "timeout", `blob ${o.digest.value}: ${why}`);
      // A body that sends nothing at all is judged too, without waiting for undici's idle timeout.
      const timer = setInterval(() => {
        const why = meter.tick();
        if (why) body.destroy((slow = tooSlow(why)));
      }, Math.max(100, Math.min(1_000, o.floor.windowMs / 4)));
      timer.unref();
      let ended = false;
      try {
        const chunks = body[Symbol.asyncIterator]();
        for (;;) {
          // Only this wait counts for the floor: while suspended at the yield, readers and the disk hold it.
          meter.waiting();
          const next = await chunks.next();
          if (next.done) {
            ended = true;
            break;
          }
          const chunk = next.value as Buffer;
          const why = meter.arrived(chunk.byteLength);
          if (why) throw (slow = tooSlow(why));
          received += chunk.byteLength;
          yield chunk;
        }
      } finally {
        clearInterval(timer);
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
      const failed = slow ?? err;
      const connection =
        failed === slow ||
        (failed instanceof UpstreamError ? (failed.failure === "unreachable" || failed.failure === "timeout") && received > 0 : !(failed instanceof MirrorError) && res !== undefined);
      const belowFloor = failed === slow;
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
 * (416 for a range starting at the blob's end).
 */
async function request(o: DownloadOptions, offset: number, direct: boolean): Promise<UpstreamResponse | undefined> {
  const { client, digest, name } = o;
  const headers: Record<string, string> = offset > 0 ? { range: `bytes=${offset}-` } : {};
  // The breaker is for the registry's health; a download's own retries must not trip it, nor be
  // stopped by it, or one dropped connection would cost the whole download.
  // The deadline covers the answer's headers only: the body's pace is the throughput floor's matter.
  const res = await client.exchange(`blob ${digest.value}`, (signal) => client.fetch("GET", `${name}/blobs/${digest.value}`, { headers, scope: `repository:${name}:pull`, signal, breaker: false, direct }), o.signal);
  if (offset === 0) {
    await ensureOk(client.name, res, `blob ${digest.value}`);
    return res;
  }
  if (res.statusCode === 416 && headerString(res.headers["content-range"]) === `bytes */${offset}`) {
    res.body.destroy();
    return undefined;
  }
  if (res.statusCode === 206) {
    const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(headerString(res.headers["content-range"]) ?? "");
    if (range && Number(range[1]) === offset) return res;
    res.body.destroy();
    throw upstreamFault("UNAVAILABLE", `upstream ${client.name} answered a resume with an unexpected Content-Range`);
  }
  await ensureOk(client.name, res, `blob ${digest.value}`);
  // A 200 to a Range request is the whole blob again: skip what we already have (the same
  // content-addressed bytes; verification at the end proves it).
  return skipPrefix(res, offset);
}

/** A body minus its first `skip` bytes (an upstream that ignored our Range header). */
function skipPrefix(res: UpstreamResponse, skip: number): UpstreamResponse {
  const source = res.body;
  let left = skip;
  const body = (async function* () {
    for await (const chunk of source) {
      const buf = chunk as Buffer;
      if (left >= buf.byteLength) {
        left -= buf.byteLength;
        continue;
      }
      yield left > 0 ? buf.subarray(left) : buf;
      left = 0;
    }
  })();
  return { ...res, body: Object.assign(body, { destroy: () => source.destroy() }) as unknown as UpstreamResponse["body"] };
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
