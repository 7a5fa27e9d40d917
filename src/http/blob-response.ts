// Writing a blob answer: headers, Range (206/416), and a body from the cache or from a fill in
// progress. A body that cannot be completed is cut off, never ended as if it were whole.
import type { IncomingMessage, ServerResponse } from "node:http";
import { once } from "node:events";
import rangeParser from "range-parser";
import type { Digest } from "../oci/digest.js";
import { MirrorError } from "../oci/errors.js";
import type { Metrics } from "../observe/metrics.js";
import type { BlobSource } from "../proxy/blobs.js";
import { type Batch, SLAB_SIZE, type Slab, takeSlab } from "../proxy/slabs.js";
import type { OpenBlob } from "../store/store.js";

/** The headers of every blob answer, GET and HEAD alike, so the two never drift apart. */
export function setBlobHeaders(res: ServerResponse, digest: Digest, hit: boolean, length: number | undefined): void {
  res.setHeader("content-type", "application/octet-stream");
  res.setHeader("docker-content-digest", digest.value);
  res.setHeader("etag", `"${digest.value}"`);
  res.setHeader("accept-ranges", "bytes");
  res.setHeader("x-mirror-cache", hit ? "HIT" : "MISS");
  if (length !== undefined) res.setHeader("content-length", String(length));
}

export async function sendBlob(req: IncomingMessage, res: ServerResponse, digest: Digest, source: BlobSource, metrics: Metrics): Promise<void> {
  try {
    return await send(req, res, digest, source, metrics);
  } finally {
    // A cache source holds an open file, a fill source a reader; both are let go on every path.
    if (source.kind === "cache") await source.blob.close().catch(() => undefined);
    else source.reader.release();
  }
}

export interface ByteRange {
  status: 200 | 206;
  start: number;
  end: number;
  contentRange?: string;
}

/**
 * What a Range header asks of a `size`-byte blob, for GET and HEAD alike. Only the bytes unit is
 * honoured: another unit (items=0-5), a malformed header or several ranges get the whole blob (200),
 * as RFC 9110 14.2 allows; a byte range that cannot be satisfied is a 416 with Content-Range.
 */
export function byteRange(header: string | undefined, size: number): ByteRange {
  const whole: ByteRange = { status: 200, start: 0, end: size - 1 };
  if (!header) return whole;
  const ranges = rangeParser(size, header, { combine: true });
  if (ranges === -2) return whole;
  if (ranges !== -1 && ranges.type !== "bytes") return whole;
  if (ranges === -1) {
    // range-parser has no unit for an unsatisfiable answer: only a bytes= header is refused.
    if (!/^\s*bytes=/i.test(header)) return whole;
    throw new MirrorError("RANGE_INVALID", `range ${header.slice(0, 60)} not satisfiable for a ${size}-byte blob`, undefined, { headers: { "content-range": `bytes */${size}` } });
  }
  if (ranges.length !== 1) return whole;
  const { start, end } = ranges[0]!;
  return { status: 206, start, end, contentRange: `bytes ${start}-${end}/${size}` };
}

async function send(req: IncomingMessage, res: ServerResponse, digest: Digest, source: BlobSource, metrics: Metrics): Promise<void> {
  const size = source.size;
  let start = 0;
  let end: number | undefined = size === undefined ? undefined : size - 1;
  if (size !== undefined) {
    const range = byteRange(req.headers.range, size);
    ({ start, end } = range);
    res.statusCode = range.status;
    if (range.contentRange) res.setHeader("content-range", range.contentRange);
  } else {
    res.statusCode = 200;
  }
  const hit = source.kind === "cache" || source.verified;
  setBlobHeaders(res, digest, hit, end === undefined ? undefined : end - start + 1);
  // Streamed past a full or unwritable disk: the whole blob, but the next pull downloads it again.
  if (source.kind === "fill" && source.notStored) res.setHeader("x-mirror-stored", "no");
  metrics.cacheResults.inc({ kind: "blob", result: hit ? "hit" : "miss" });
  const hangup = new AbortController();
  if (source.kind === "cache") await sendFile(source.blob, start, end ?? source.size - 1, res, hangup, metrics);
  else await pump(source.reader.read(start, end, hangup.signal), hangup, res, metrics);
}

// Serving cached layers is the hot path: large reads, into pooled slabs reused once the socket has
// taken them. A fresh buffer per read made the garbage collector the bottleneck (measured: 40% of
// a warm GET's CPU after a busy fill), which is why this is not a plain file stream.
let activeFileResponses = 0;

/**
 * Slabs one response keeps in flight: a few while responses are few (reading ahead of the socket),
 * one each when many run at once, so a hundred clients cost tens of MiB, not hundreds.
 */
function slabsPerResponse(active: number): number {
  if (active <= 4) return 4;
  if (active <= 16) return 2;
  return 1;
}

/** A cached blob's bytes [start, end] to one client. */
async function sendFile(blob: OpenBlob, start: number, end: number, res: ServerResponse, hangup: AbortController, metrics: Metrics): Promise<void> {
  activeFileResponses++;
  const count = Math.min(slabsPerResponse(activeFileResponses), Math.ceil((end - start + 1) / SLAB_SIZE));
  const free: Slab[] = Array.from({ length: count }, takeSlab);
  // Slabs in a socket write come back through its callback; once the response is over, the
  // callback hands them to the pool instead.
  let finished = false;
  let wake: (() => void) | undefined;
  const onClose = () => {
    hangup.abort();
    wake?.();
  };
  res.once("close", onClose);
  try {
    for (let pos = start; pos <= end; ) {
      while (free.length === 0 && !hangup.signal.aborted) await new Promise<void>((r) => (wake = r));
      if (hangup.signal.aborted) throw prematureClose();
      const slab = free.pop() as Slab;
      let n: number;
      try {
        const want = Math.min(SLAB_SIZE, end - pos + 1);
        n = await blob.readInto(want === SLAB_SIZE ? slab.buf : slab.buf.subarray(0, want), pos);
      } catch (err) {
        free.push(slab);
        throw err;
      }
      if (n <= 0) {
        free.push(slab);
        throw new MirrorError("UNKNOWN", "cached blob shorter than its size");
      }
      pos += n;
      const ok = res.write(slab.buf.subarray(0, n), () => {
        if (finished) return slab.unref();
        free.push(slab);
        wake?.();
      });
      metrics.servedBytes.inc({ source: "cache" }, n);
      metrics.events.emit("served", { kind: "blob", source: "cache", bytes: n });
      if (!ok && !hangup.signal.aborted) await once(res, "drain", { signal: hangup.signal }).catch(() => undefined);
    }
    res.end();
  } finally {
    res.off("close", onClose);
    finished = true;
    for (const s of free.splice(0)) s.unref();
    activeFileResponses--;
  }
}

/**
 * Copy a fill's batches of bytes to one client: each batch goes out corked, as one socket write,
 * and the client's pace is respected (drain). A client that hangs up ends the loop, not the download.
 */
async function pump(batches: AsyncIterable<Batch>, hangup: AbortController, res: ServerResponse, metrics: Metrics): Promise<void> {
  const onClose = () => hangup.abort();
  res.once("close", onClose);
  try {
    for await (const batch of batches) {
      let bytes = 0;
      let ok = true;
      res.cork();
      const last = batch.buffers.length - 1;
      // Callbacks run in order: the last one means the socket has taken the whole batch.
      batch.buffers.forEach((b, i) => {
        bytes += b.byteLength;
        ok = res.write(b, i === last ? () => batch.release() : undefined);
      });
      res.uncork();
      metrics.servedBytes.inc({ source: "upstream" }, bytes);
      metrics.events.emit("served", { kind: "blob", source: "upstream", bytes });
      if (!ok && !hangup.signal.aborted) await once(res, "drain", { signal: hangup.signal }).catch(() => undefined);
      if (hangup.signal.aborted) throw prematureClose();
    }
    res.end();
  } finally {
    res.off("close", onClose);
  }
}

function prematureClose(): Error {
  return Object.assign(new Error("client closed the connection"), { code: "ERR_STREAM_PREMATURE_CLOSE" });
}
