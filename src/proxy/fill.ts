// One upstream download of one blob, shared by every client that wants it (single flight).
// Arriving bytes are copied into pooled slabs (slabs.ts) and kept there until they are on disk;
// readers get views of them, so clients stream at network speed; disk writes are batched behind
// them, and readers that fall behind (or join late) read it back from the store's writer
// (writer.readAt) into slabs of their own. The download (download.ts) is detached from the
// clients: it survives their disconnects, bounded by the orphan timeout.
import type { Hash } from "node:crypto";
import { type Digest, hasher } from "../oci/digest.js";
import { MirrorError, upstreamFault } from "../oci/errors.js";
import type { Logger } from "../observe/log.js";
import type { Metrics } from "../observe/metrics.js";
import type { BlobStore, BlobWriter } from "../store/store.js";
import type { UpstreamClient } from "../upstream/client.js";
import { asUnavailable, faultReason, isDiskFull, storageFault } from "../store/faults.js";
import type { StorageHealth } from "../store/health.js";
import { freeSpace, lacksRoom, ROOM_MARGIN } from "../store/space.js";
import { copyLeftover, type Leftover } from "../cluster/takeover.js";
import { download } from "./download.js";
import type { ThroughputFloor } from "./pace.js";
import { type Batch, batchOf, SLAB_SIZE, type Slab, takeSlab } from "./slabs.js";

/** Bytes received but not yet on disk before the download waits for the disk. */
const MAX_UNWRITTEN = 4 * 1024 * 1024;
/** Bytes already on disk that stay in memory for readers just behind the newest byte. */
const KEEP_WRITTEN = 2 * 1024 * 1024;
/** The most one reader takes from memory per batch (one corked socket write). */
const MAX_BATCH = 4 * 1024 * 1024;

export interface FillOptions {
  client: UpstreamClient;
  store: BlobStore;
  digest: Digest;
  name: string;
  maxResumes: number;
  /** Blob bodies below it count as failed (upstream.minThroughput over upstream.throughputWindow). */
  floor: ThroughputFloor;
  orphanTimeoutMs: number;
  /** The size a manifest or HEAD of this repository declared: the upstream may not send another. */
  expectedSize?: number;
  /** With no length from anywhere, a download is cut off past this many bytes (upstream.maxBlobSize). */
  maxBlobBytes: number;
  /** Told when a write fails with a storage fault (/healthz reports it). */
  health?: StorageHealth;
  metrics: Metrics;
  log: Logger;
  /** Another replica's download this one takes over: its bytes are copied, the rest asked with Range. */
  resume?: Leftover;
}

/** running: downloading; verified: all bytes checked, being made durable; then done or failed. */
type State = "running" | "verified" | "done" | "failed";

/** One client's hold on a fill: release it when the response is over, whatever happened. */
export interface FillReader {
  /**
   * Batches of consecutive bytes: everything available at once, so the socket gets one write per
   * batch. Release each batch once the socket has taken it (its slabs are then reused).
   */
  read(start: number, end: number | undefined, signal: AbortSignal): AsyncGenerator<Batch>;
  release(): void;
}

/** A slab of the window: blob bytes [pos, pos + len); only the newest one is still filling. */
interface Chunk {
  pos: number;
  slab: Slab;
  len: number;
}

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
  /** Bytes received from upstream (in memory or on disk). */
  private received = 0;
  /** In-memory slabs covering [window start, received): everything not yet on disk, plus a little. */
  private window: Chunk[] = [];
  private flushing: Promise<void> | undefined;
  /** The write round in progress (part of `flushing`). */
  private round: Promise<void> | undefined;
  /** A failed disk write: final for this fill (never retried upstream). */
  private writeError: MirrorError | undefined;
  /**
   * Set when the disk cannot take the blob (full, read-only, failing): the download goes on for the
   * clients attached, hashed here instead of by the writer, and nothing is stored.
   */
  private passthrough: { reason: string; hash: Hash } | undefined;
  /** Where each attached reader is: in pass-through, memory is freed only behind the slowest. */
  private readonly positions = new Map<symbol, number>();
  private progressWaiters: (() => void)[] = [];
  private waiters: (() => void)[] = [];
  private wakeScheduled = false;
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
        this.dropWindow();
        rejectReady(err);
        this.wake();
        throw err;
      },
    );
    // Every waiter handles the outcome itself; these keep an unobserved failure from crashing the process.
    this.ready.catch(() => undefined);
    this.done.catch(() => undefined).finally(() => this.maybeClose());
    // Bounded from the start: a requester that hangs up before reading must not leave it unbounded.
    this.armOrphanTimer();
  }

  /** The digest being downloaded. */
  get digest(): string {
    return this.o.digest.value;
  }

  /** The upstream this download comes from. */
  get upstream(): string {
    return this.o.client.name;
  }

  /** Which upstream repository this download comes from (a waiter for another one retries its own). */
  get source(): string {
    return `${this.o.client.name}|${this.o.name}`;
  }

  /** Every byte is here and checked (being made durable, or done): no upstream byte is pending. */
  get isVerified(): boolean {
    return this.state === "verified" || this.state === "done";
  }

  /** The blob is streamed without being stored (full or unwritable disk): nobody new may join. */
  get notStored(): string | undefined {
    return this.passthrough?.reason;
  }

  /** Still downloading or publishing: readers must go through the fill, not the store. */
  get isRunning(): boolean {
    return this.state === "running" || this.state === "verified";
  }

  /**
   * Where other replicas read this download, and how far (the writer's share(): bytes they can
   * read); undefined when it cannot be shared (a store without it, streaming past a full disk, over).
   */
  async shared(): Promise<{ locator: string; mark: number } | undefined> {
    const w = this.writer;
    if (!w?.locator || !w.share || this.passthrough || !this.isRunning) return undefined;
    return { locator: w.locator, mark: await w.share() };
  }

  /** Abort (server shutdown, orphan timeout): the temp file is discarded, nothing is published. */
  cancel(reason: string): void {
    this.abort.abort(new MirrorError("UNAVAILABLE", reason));
  }

  private async run(): Promise<void> {
    const { store, digest, client } = this.o;
    // Closes the race with a fill that published between the caller's look-up and this fill's creation.
    const cached = await store.statBlob(digest);
    if (cached !== undefined) {
      this.size = cached;
      this.alreadyCached = true;
      return;
    }
    let writer: BlobWriter | undefined;
    try {
      writer = await store.createWriter(digest);
      this.writer = writer;
    } catch (err) {
      // No room for even an empty file: stream it through. Other faults (read-only, permissions)
      // are answered 503 now, before any header went out.
      if (!isDiskFull(err)) throw asUnavailable(err);
      this.startPassthrough(faultReason(err), err);
    }
    const resume = this.o.resume;
    if (resume && writer && !this.passthrough) {
      try {
        this.received = await copyLeftover(resume, writer, this.abort.signal);
        this.o.log.info({ digest: digest.value, from: resume.locator, at: this.received }, "taking over another replica's download: its bytes copied, the rest asked of upstream with Range");
      } catch (err) {
        await writer.cancel();
        await writer.close();
        if (this.abort.signal.aborted) throw err;
        // A leftover that cannot be read is no reason to fail: download it all, in a fresh writer.
        this.o.log.warn({ digest: digest.value, from: resume.locator, err: (err as Error).message }, "cannot read another replica's download to take it over; downloading from the first byte");
        this.received = 0;
        try {
          writer = this.writer = await store.createWriter(digest);
        } catch (e) {
          throw asUnavailable(e);
        }
      }
      // Readers joined meanwhile (a follower of the dead replica here) can have those bytes now.
      this.wake();
    } else await resume?.partial.close().catch(() => undefined);
    this.o.metrics.activeFills.inc();
    const events = this.o.metrics.events;
    const started = Date.now();
    let ok = false;
    events.emit("fillStart", { digest: digest.value, upstream: client.name, name: this.o.name });
    const free = this.passthrough ? undefined : await freeSpace(store);
    try {
      const body = download({
        client,
        digest,
        name: this.o.name,
        maxResumes: this.o.maxResumes,
        floor: this.o.floor,
        signal: this.abort.signal,
        metrics: this.o.metrics,
        log: this.o.log,
        startAt: this.received,
        onStart: async (announced) => {
          const expected = this.o.expectedSize;
          if (announced !== undefined && expected !== undefined && announced !== expected) {
            throw upstreamFault("SIZE_INVALID", `upstream ${client.name} announced ${announced} bytes for ${digest.value}, but the manifest says ${expected}; not cached`);
          }
          this.size = announced ?? expected;
          // Known before any header goes out: a blob the disk cannot hold is streamed, said so.
          // Only a short disk costs an await here (eviction); the body is read at once otherwise.
          if (this.size !== undefined && !this.passthrough && free !== undefined && free < this.size + ROOM_MARGIN) {
            const short = await lacksRoom(store, this.size);
            if (short) this.startPassthrough(short);
          }
          this.resolveReady();
        },
      });
      for await (const batch of body) {
        this.receive(batch);
        if (this.writeError) throw this.writeError;
        if (this.passthrough) await this.slowestReaderNear();
        else if (this.received - (writer as BlobWriter).written > MAX_UNWRITTEN) await this.roomToRead(writer as BlobWriter);
      }
      await this.flushed();
      if (this.passthrough) {
        this.finishPassthrough();
        ok = true;
        return;
      }
      writer = writer as BlobWriter;
      await writer.verify(this.size);
      // Every byte is checked: readers may have the last one now, while it is made durable.
      this.state = "verified";
      this.wake();
      await writer.publish();
      this.o.log.debug({ upstream: client.name, digest: digest.value, size: writer.written }, "blob cached");
      ok = true;
    } catch (err) {
      await this.flushing?.catch(() => undefined);
      await writer?.cancel();
      throw err;
    } finally {
      this.o.metrics.activeFills.dec();
      events.emit("fillEnd", { digest: digest.value, upstream: client.name, ok, bytes: this.received, ms: Date.now() - started });
    }
  }

  /**
   * Stop writing: what is on disk stays readable through the open handle (the file itself is
   * removed, so its space comes back once the last reader is done), the rest is hashed here.
   */
  private startPassthrough(reason: string, err?: unknown): void {
    const writer = this.writer;
    const hash = writer ? writer.takeHash() : hasher(this.o.digest.algorithm);
    // The window covers every byte not on disk: hash those, in order.
    for (const b of this.views(writer?.written ?? 0, this.received, Number.MAX_SAFE_INTEGER).buffers) hash.update(b);
    this.passthrough = { reason, hash };
    if (err !== undefined) this.o.health?.report(err);
    void writer?.cancel();
    this.o.log.warn({ digest: this.o.digest.value, reason }, "blob streamed to the client without being stored");
  }

  /** Size and digest checked in memory; the clients get the last byte, nothing is published. */
  private finishPassthrough(): void {
    const { digest } = this.o;
    const actual = (this.passthrough as { hash: Hash }).hash.digest("hex");
    if (this.size !== undefined && this.size !== this.received) {
      throw upstreamFault("SIZE_INVALID", `upstream sent ${this.received} bytes for ${digest.value}, expected ${this.size}`);
    }
    if (actual !== digest.hex) throw upstreamFault("DIGEST_INVALID", `upstream content for ${digest.value} has digest ${digest.algorithm}:${actual}`);
    this.state = "verified";
    this.wake();
  }

  /** Pass-through keeps in memory what the slowest client has not read: wait for it to catch up. */
  private async slowestReaderNear(): Promise<void> {
    for (;;) {
      if (this.readers === 0) throw new MirrorError("UNAVAILABLE", `no client left for ${this.o.digest.value}, which cannot be stored: ${this.notStored}`);
      if (this.received - this.slowestPosition() <= MAX_UNWRITTEN) return;
      await new Promise<void>((resolve) => this.progressWaiters.push(resolve));
    }
  }

  private slowestPosition(): number {
    let min = this.received;
    for (const p of this.positions.values()) min = Math.min(min, p);
    return min;
  }

  /** A reader moved (or left): in pass-through, free what every reader is past, and go on. */
  private progressed(): void {
    if (!this.passthrough) return;
    const behind = Math.max(this.writer?.written ?? 0, Math.min(this.slowestPosition(), this.received - KEEP_WRITTEN));
    let drop = 0;
    while (drop < this.window.length - 1) {
      const c = this.window[drop] as Chunk;
      if (c.pos + c.len > behind) break;
      drop++;
    }
    if (drop > 0) for (const c of this.window.splice(0, drop)) c.slab.unref();
    const waiters = this.progressWaiters;
    this.progressWaiters = [];
    for (const w of waiters) w();
  }

  /**
   * Take chunks from upstream: copied into the window's slabs (the chunks themselves are dropped
   * at once, so the allocator reuses them for the next socket reads); readers can have them at
   * once, the disk gets them in batches. Counted once per batch, not per chunk.
   */
  private receive(batch: readonly Buffer[]): void {
    let bytes = 0;
    for (const buf of batch) bytes += buf.byteLength;
    if (this.size !== undefined && this.received + bytes > this.size) {
      throw upstreamFault("SIZE_INVALID", `upstream sent more than the ${this.size} bytes expected for ${this.o.digest.value}; cut off, not cached`);
    }
    // No length from the answer, a manifest or a HEAD: an endless body must not fill ingest/.
    if (this.size === undefined && this.received + bytes > this.o.maxBlobBytes) {
      throw upstreamFault("SIZE_INVALID", `upstream sent no length for ${this.o.digest.value} and more than upstream.maxBlobSize (${this.o.maxBlobBytes} bytes); cut off, not cached`);
    }
    for (const buf of batch) {
      for (let at = 0; at < buf.byteLength; ) {
        let last = this.window[this.window.length - 1];
        if (!last || last.len === SLAB_SIZE) {
          last = { pos: this.received, slab: takeSlab(), len: 0 };
          this.window.push(last);
        }
        const n = buf.copy(last.slab.buf, last.len, at);
        last.len += n;
        at += n;
        this.received += n;
      }
      if (this.passthrough) this.passthrough.hash.update(buf);
    }
    this.o.metrics.upstreamBytes.inc({ upstream: this.o.client.name }, bytes);
    this.o.metrics.events.emit("fillProgress", { digest: this.o.digest.value, received: this.received, size: this.size });
    if (!this.passthrough) this.flushing ??= this.flush();
    this.wake();
  }

  /**
   * Write what has accumulated, one vectored write per round, until nothing is left. The window
   * covers every unwritten byte, and a slab is only trimmed once written, so the views stay valid.
   */
  private async flush(): Promise<void> {
    const writer = this.writer as BlobWriter;
    try {
      while (writer.written < this.received && !this.writeError && !this.passthrough) {
        this.round = writer.write(this.views(writer.written, this.received, Number.MAX_SAFE_INTEGER).buffers);
        await this.round;
        this.trimWindow(writer.written);
      }
    } catch (err) {
      // The client's body is already on its way: a disk that cannot take it must not cut it off.
      if (storageFault(err)) {
        this.startPassthrough(faultReason(err), err);
        return;
      }
      // A failing disk is not a network problem: asking upstream again would not help.
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      this.writeError = new MirrorError("UNAVAILABLE", `cache storage failed while writing ${this.o.digest.value}: ${code}`, undefined, { cause: err });
      this.o.log.error({ digest: this.o.digest.value, err: code }, "cache write failed; download abandoned");
    } finally {
      this.flushing = undefined;
    }
  }

  /**
   * Too much is not on disk yet: wait for write rounds to land, one at a time, so upstream is read
   * again as soon as one has (not only once the disk has caught up completely).
   */
  private async roomToRead(writer: BlobWriter): Promise<void> {
    // A failed round has set writeError, or switched to pass-through, by the time this wakes.
    while (this.flushing && this.round && this.received - writer.written > MAX_UNWRITTEN && !this.writeError) await this.round.catch(() => undefined);
    if (this.writeError) throw this.writeError;
  }

  private async flushed(): Promise<void> {
    while (this.flushing) await this.flushing;
    if (this.writeError) throw this.writeError;
  }

  /** Drop in-memory slabs that are on disk and far enough behind the newest byte. */
  private trimWindow(written: number): void {
    let drop = 0;
    while (drop < this.window.length - 1) {
      const c = this.window[drop] as Chunk;
      if (c.pos + c.len > written || this.received - (c.pos + c.len) < KEEP_WRITTEN) break;
      drop++;
    }
    if (drop > 0) for (const c of this.window.splice(0, drop)) c.slab.unref();
  }

  /** Let every window slab go (the fill is over; readers hold references of their own). */
  private dropWindow(): void {
    for (const c of this.window.splice(0)) c.slab.unref();
  }

  /** Views of the window's bytes [pos, stop), at most `limit` bytes, without taking references. */
  private views(pos: number, stop: number, limit: number): { buffers: Buffer[]; slabs: Slab[] } {
    const buffers: Buffer[] = [];
    const slabs: Slab[] = [];
    let at = pos;
    for (const c of this.window) {
      const cEnd = c.pos + c.len;
      if (cEnd <= at) continue;
      if (c.pos >= stop || at - pos >= limit) break;
      const piece = c.slab.buf.subarray(at - c.pos, Math.min(c.len, stop - c.pos));
      buffers.push(piece);
      slabs.push(c.slab);
      at += piece.byteLength;
    }
    return { buffers, slabs };
  }

  /** A reader registered now, synchronously, so the fill cannot finish and close the file first. */
  reader(): FillReader {
    this.attach();
    const id = Symbol("reader");
    this.positions.set(id, 0);
    let released = false;
    return {
      read: (start, end, signal) => this.read(start, end, signal, id),
      release: () => {
        if (released) return;
        released = true;
        this.positions.delete(id);
        this.detach();
        this.progressed();
      },
    };
  }

  /**
   * Stream bytes [start, end] to one client as they arrive. The final byte is held back until the
   * digest is verified, so a client never sees a complete body for content that fails verification.
   */
  private async *read(start: number, end: number | undefined, signal: AbortSignal, id: symbol): AsyncGenerator<Batch> {
    // A generator parked on an await cannot be returned from outside, so a client that hangs up
    // while the upstream stalls would never detach; the signal wakes it instead.
    const onAbort = () => this.wake();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      let pos = start;
      this.positions.set(id, pos);
      for (;;) {
        if (signal.aborted) return;
        if (this.state === "failed") throw this.error;
        const verified = this.state !== "running";
        const available = verified ? this.received : Math.max(0, this.received - 1);
        const stop = end === undefined ? available : Math.min(available, end + 1);
        if (pos < stop) {
          const batch = await this.slice(pos, stop);
          for (const b of batch.buffers) pos += b.byteLength;
          yield batch;
          this.positions.set(id, pos);
          this.progressed();
          continue;
        }
        if (verified && (end === undefined ? pos >= this.received : pos > end)) return;
        await new Promise<void>((resolve) => this.waiters.push(resolve));
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Bytes from pos (up to stop): views of the window's slabs when still there (no copy, one
   * reference per slab), else read from the temp file into a slab of the reader's own.
   */
  private async slice(pos: number, stop: number): Promise<Batch> {
    const first = this.window[0];
    if (first && pos >= first.pos) {
      const { buffers, slabs } = this.views(pos, stop, MAX_BATCH);
      if (buffers.length > 0) {
        for (const s of slabs) s.ref();
        return batchOf(buffers, slabs);
      }
    }
    // Behind the window means on disk: the window always covers what is not written yet.
    const len = Math.min(stop - pos, SLAB_SIZE);
    const writer = this.writer;
    if (!writer || pos >= writer.written) throw new MirrorError("UNKNOWN", `bytes at ${pos} of ${this.o.digest.value} are neither in memory nor on disk`);
    const slab = takeSlab();
    try {
      const bytesRead = await writer.readAt(slab.buf, pos, len);
      if (bytesRead <= 0) throw new MirrorError("UNKNOWN", "cache file shorter than recorded");
      return batchOf([slab.buf.subarray(0, bytesRead)], [slab]);
    } catch (err) {
      slab.unref();
      throw err;
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
    // Nobody is waiting, but finishing the download is what makes an interrupted pull resumable.
    if (this.readers === 0 && this.isRunning) this.armOrphanTimer();
    this.maybeClose();
  }

  private armOrphanTimer(): void {
    if (this.orphanTimer) clearTimeout(this.orphanTimer);
    this.orphanTimer = setTimeout(() => this.cancel(`download abandoned: no client for ${this.o.orphanTimeoutMs} ms`), this.o.orphanTimeoutMs);
    this.orphanTimer.unref();
  }

  private maybeClose(): void {
    if (this.readers === 0 && !this.isRunning) {
      if (this.orphanTimer) clearTimeout(this.orphanTimer);
      this.dropWindow();
      void this.writer?.close();
    }
  }

  /**
   * Wake waiting readers once per turn of the event loop, not once per chunk: the chunks that
   * arrived meanwhile then go to each client as one batch, one socket write instead of many.
   */
  private wake(): void {
    if (this.wakeScheduled) return;
    this.wakeScheduled = true;
    setImmediate(() => {
      this.wakeScheduled = false;
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w();
    });
  }
}
