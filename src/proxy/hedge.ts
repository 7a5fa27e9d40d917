// A client reading another repository's download of the same blob (one download per upstream and
// digest), moved to its own repository's source when that download crawls, stalls or fails.
import type { Digest } from "../oci/digest.js";
import { hasher } from "../oci/digest.js";
import { MirrorError } from "../oci/errors.js";
import type { Logger } from "../observe/log.js";
import type { OpenBlob } from "../store/store.js";
import type { BlobFill, FillReader } from "./fill.js";
import { type ThroughputFloor, watchPace } from "./pace.js";
import { type Batch, batchOf, SLAB_SIZE, takeSlab } from "./slabs.js";

/**
 * How long a joiner judges the shared download's pace before it gives up on it: the floor's window,
 * at most this. The download's own floor judges over the full window and then resumes from the same
 * repository, which may be the hostile one; a client of another repository need not wait for that.
 */
const JOINER_PATIENCE_MS = 5_000;

/** The joiner's patience under this floor: its window, at most JOINER_PATIENCE_MS. */
export function joinerPatience(floor: ThroughputFloor): number {
  return Math.min(floor.windowMs, JOINER_PATIENCE_MS);
}

/** The bytes of this client's own source: its repository's download, or the published blob. */
export interface OwnSource {
  reader: FillReader;
  size: number | undefined;
}

export interface HedgeOptions {
  /** Another repository's download of this digest from the same upstream, not yet verified. */
  shared: BlobFill;
  /** Joined or started only when the shared download lets this client down. */
  own: () => Promise<OwnSource>;
  digest: Digest;
  floor: ThroughputFloor;
  log: Logger;
}

/**
 * Reads the shared download while it keeps the floor over the joiner's patience of waiting on it;
 * below it, or when it fails, the rest comes from this client's own source. The bytes already sent
 * came from the other download: they are compared with the own source's before it continues, and
 * the own source holds its last byte until it is verified, so the client never gets a complete
 * body that does not match the digest.
 */
export function hedgedReader(o: HedgeOptions): FillReader {
  let current = o.shared.reader();
  let released = false;
  return {
    async *read(start: number, end: number | undefined, signal: AbortSignal): AsyncGenerator<Batch> {
      const seen = hasher(o.digest.algorithm);
      const stop = new AbortController();
      const onAbort = () => stop.abort();
      signal.addEventListener("abort", onAbort, { once: true });
      let pos = start;
      let why: string | undefined;
      let finished = false;
      // A shared download that sends nothing at all is judged too, between its chunks.
      const pace = watchPace({ bytesPerSecond: o.floor.bytesPerSecond, windowMs: joinerPatience(o.floor) }, (slow) => {
        if (o.shared.isVerified) return;
        why ??= slow;
        stop.abort();
      });
      const { meter } = pace;
      const batches = current.read(start, end, stop.signal);
      try {
        for (;;) {
          meter.waiting();
          const next = await batches.next();
          if (next.done) {
            finished = !stop.signal.aborted;
            break;
          }
          let n = 0;
          for (const b of next.value.buffers) {
            seen.update(b);
            n += b.byteLength;
          }
          pos += n;
          const slow = meter.arrived(n);
          if (slow && !o.shared.isVerified) why ??= slow;
          yield next.value;
          if (why) break;
        }
      } catch (err) {
        if (signal.aborted) throw err;
        // The other repository's failure (a lying body, its resumes spent) says nothing about this one.
        why = `it failed: ${(err as Error).message}`;
      } finally {
        pace.stop();
        signal.removeEventListener("abort", onAbort);
        await batches.return(undefined);
      }
      if (finished || signal.aborted || why === undefined) return;
      o.log.warn({ digest: o.digest.value, at: pos, reason: why }, "another repository's download of this blob let a client down; it continues from its own repository");
      const own = await o.own();
      const previous = current;
      current = own.reader;
      previous.release();
      if (released) {
        own.reader.release();
        return;
      }
      if (own.size !== undefined && o.shared.size !== undefined && own.size !== o.shared.size) {
        throw new MirrorError("UNAVAILABLE", `${o.digest.value} is ${own.size} bytes from this repository but was announced as ${o.shared.size}; cut off`);
      }
      if (pos > start) {
        const same = (await hashOf(own.reader, start, pos, o.digest.algorithm, signal)) === seen.digest("hex");
        if (signal.aborted) return;
        if (!same) throw new MirrorError("UNAVAILABLE", `the bytes another repository's download sent for ${o.digest.value} differ from this repository's; cut off`);
      }
      yield* own.reader.read(pos, end, signal);
    },
    release() {
      if (released) return;
      released = true;
      current.release();
    },
  };
}

/**
 * The hash of `reader`'s bytes [start, pos): what the own source has where the client was already
 * sent the other download's. A running download's read of a range ends only once it is verified,
 * so this stops at pos instead of waiting for the read to end.
 */
async function hashOf(reader: FillReader, start: number, pos: number, algorithm: Digest["algorithm"], signal: AbortSignal): Promise<string> {
  const hash = hasher(algorithm);
  let read = start;
  for await (const batch of reader.read(start, pos - 1, signal)) {
    for (const b of batch.buffers) {
      hash.update(b);
      read += b.byteLength;
    }
    batch.release();
    if (read >= pos) break;
  }
  return hash.digest("hex");
}

/** A published blob as a FillReader (the own source turned out to be cached meanwhile). */
export function cachedReader(blob: OpenBlob): FillReader {
  let released = false;
  return {
    async *read(start: number, end: number | undefined, signal: AbortSignal): AsyncGenerator<Batch> {
      const last = Math.min(end ?? blob.size - 1, blob.size - 1);
      for (let pos = start; pos <= last && !signal.aborted; ) {
        const slab = takeSlab();
        let n: number;
        try {
          n = await blob.readInto(slab.buf.subarray(0, Math.min(SLAB_SIZE, last - pos + 1)), pos);
          if (n <= 0) throw new MirrorError("UNKNOWN", "cache file shorter than recorded");
        } catch (err) {
          slab.unref();
          throw err;
        }
        pos += n;
        yield batchOf([slab.buf.subarray(0, n)], [slab]);
      }
    },
    release() {
      if (released) return;
      released = true;
      void blob.close().catch(() => undefined);
    },
  };
}
