// Taking over another replica's download: the bytes it had written (up to the mark it announced)
// are copied into this replica's writer, which hashes them like any other, and the rest is asked
// of upstream with Range. Nothing is trusted: the digest of the whole is checked before publishing.
import type { BlobWriter, PartialBlob } from "../store/store.js";

/** Copied per read: large enough for few syscalls, small enough to be nothing beside a fill's window. */
const COPY_CHUNK = 1024 * 1024;

/** What a dead holder left: its bytes so far, readable up to `mark`. */
export interface Leftover {
  partial: PartialBlob;
  mark: number;
  /** The replica-side name of it, for the log. */
  locator: string;
}

/**
 * Copy [0, mark) of `from` into `writer` (which hashes it); returns the bytes copied, fewer than
 * the mark when the leftover turned out shorter (the rest then comes from upstream too).
 */
export async function copyLeftover(from: Leftover, writer: BlobWriter, signal: AbortSignal): Promise<number> {
  const buf = Buffer.allocUnsafe(Math.min(COPY_CHUNK, Math.max(1, from.mark)));
  let pos = 0;
  try {
    while (pos < from.mark && !signal.aborted) {
      const want = Math.min(buf.byteLength, from.mark - pos);
      const n = await from.partial.readInto(want === buf.byteLength ? buf : buf.subarray(0, want), pos);
      if (n <= 0) break;
      // write() has stored and hashed the bytes when it resolves: the buffer is reused after.
      await writer.write([buf.subarray(0, n)]);
      pos += n;
    }
  } finally {
    await from.partial.close().catch(() => undefined);
  }
  if (signal.aborted) throw signal.reason;
  return pos;
}
