// Streaming another replica's download in progress: a client of this replica gets the bytes as they
// land in the shared store, read up to the mark the holder announced and hashed here from the first
// byte on; the blob's last byte goes out only once that hash matches the digest, so a holder that
// dies or a digest that fails leaves this client with a broken body, never a short success.
import { type Digest, hasher } from "../oci/digest.js";
import { type ErrorCode, MirrorError, upstreamFault } from "../oci/errors.js";
import type { FillReader } from "../proxy/fill.js";
import { type Batch, batchOf, SLAB_SIZE, takeSlab } from "../proxy/slabs.js";
import type { BlobStore, OpenBlob, PartialBlob, PartialReads } from "../store/store.js";
import type { Announcement } from "./progress.js";

/** No new byte for this long: the store is looked at whatever the announcement says. */
const STORE_LOOK_MS = 1_000;

export interface FollowOptions {
  store: BlobStore & PartialReads;
  digest: Digest;
  /** The repository this client asked under: a holder's failure for another one is not its answer. */
  source: string;
  /** The holder's latest announcement (it changes hands when another replica takes the download over). */
  announcement(): Promise<Announcement | undefined>;
  /** This replica's own download of it (it took the download over): joined rather than read back. */
  local(): { reader(): FillReader } | undefined;
  /** How often to look again when no new byte is readable. */
  pollMs: number;
  /** No new byte for this long ends the body as broken (the holder died and nobody took over). */
  stallMs: number;
  /** The size the holder announced, when it knows it. */
  size: number | undefined;
}

/** A FillReader over another replica's download (BlobSource kind "fill", never verified up front). */
export function followReader(o: FollowOptions): FillReader {
  return { read: (start, end, signal) => follow(o, start, end, signal), release: () => undefined };
}

async function* follow(o: FollowOptions, start: number, end: number | undefined, signal: AbortSignal): AsyncGenerator<Batch> {
  const hash = hasher(o.digest.algorithm);
  // Read (and hashed) from the first byte whatever the range asked: only the whole can be verified.
  let pos = 0;
  let size = o.size;
  let partial: { locator: string; blob: PartialBlob } | undefined;
  let published: OpenBlob | undefined;
  // One open of the published blob, whoever asks first (the loop, or the watcher below).
  let opening: Promise<OpenBlob | undefined> | undefined;
  const openPublished = (): Promise<OpenBlob | undefined> =>
    (opening ??= o.store.openBlob(o.digest).then((b) => {
      if (!b) opening = undefined;
      else published ??= b;
      return b;
    }));
  // A slow client holds this generator at a yield while the holder publishes (and removes its
  // parts): the published blob is opened as soon as it is announced, so that eviction counts this
  // reader (stores keep what is open) before the client comes back for the rest.
  let watching = false;
  const watcher = setInterval(() => {
    if (published || watching) return;
    watching = true;
    o.announcement()
      .then((a) => (a?.state === "published" ? openPublished() : undefined))
      .catch(() => undefined)
      .finally(() => (watching = false));
  }, Math.max(50, 2 * o.pollMs));
  watcher.unref();
  let moved = Date.now();
  try {
    for (;;) {
      if (signal.aborted) return;
      const local = o.local();
      if (local) {
        // This replica took it over: its fill has every byte (copied from where this read) and verifies the whole.
        const r = local.reader();
        try {
          yield* r.read(Math.max(pos, start), end, signal);
        } finally {
          r.release();
        }
        return;
      }
      let avail = 0;
      if (!published) {
        const a = await o.announcement();
        if (a?.state === "failed" && a.failure && a.failure.source === o.source) {
          throw new MirrorError(a.failure.code as ErrorCode, a.failure.message);
        }
        if (a?.state === "running") {
          size ??= a.size;
          if (partial?.locator !== a.locator) {
            await partial?.blob.close();
            const blob = await o.store.openPartial(o.digest, a.locator);
            partial = blob ? { locator: a.locator, blob } : undefined;
          }
          if (partial) avail = a.mark;
        }
        // Published (or its file already gone because it was): the rest from the store. Looked for
        // too when nothing moved for a while: a holder that lost Redis publishes without saying so.
        if (!partial || a?.state !== "running" || Date.now() - moved > STORE_LOOK_MS) await openPublished();
      }
      if (published) {
        if (size !== undefined && published.size !== size) throw upstreamFault("SIZE_INVALID", `${o.digest.value} was published with ${published.size} bytes, ${size} were announced`);
        size = avail = published.size;
      }
      const from = published ?? partial?.blob;
      if (from && pos < avail) {
        const slab = takeSlab();
        let n: number;
        try {
          n = await from.readInto(slab.buf.subarray(0, Math.min(SLAB_SIZE, avail - pos)), pos);
          if (n <= 0 && published) throw new MirrorError("UNKNOWN", `${o.digest.value} in the store is shorter than its size`);
        } catch (err) {
          slab.unref();
          throw err;
        }
        if (n > 0) {
          const piece = slab.buf.subarray(0, n);
          hash.update(piece);
          const at = pos;
          pos += n;
          moved = Date.now();
          if (size !== undefined && pos === size && hash.digest("hex") !== o.digest.hex) {
            slab.unref();
            throw upstreamFault("DIGEST_INVALID", `content of ${o.digest.value} streamed from another replica does not match its digest`);
          }
          // The part of [at, pos) the client asked for.
          const a = Math.max(at, start);
          const b = end === undefined ? pos : Math.min(pos, end + 1);
          if (a < b) yield batchOf([piece.subarray(a - at, b - at)], [slab]);
          else slab.unref();
          if ((end !== undefined && pos > end) || (size !== undefined && pos >= size)) return;
          continue;
        }
        slab.unref();
      }
      if (Date.now() - moved > o.stallMs) {
        throw new MirrorError("UNAVAILABLE", `the download of ${o.digest.value} another replica was doing made no progress for ${Math.round(o.stallMs / 1000)} s`);
      }
      await sleep(o.pollMs, signal);
    }
  } finally {
    clearInterval(watcher);
    await partial?.blob.close().catch(() => undefined);
    const last = await opening?.catch(() => undefined);
    await (published ?? last)?.close().catch(() => undefined);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
