// The buffers of the data path: fixed-size slabs shared by every fill and blob response, reused
// instead of allocated per chunk. A slab goes back to the pool only when no view of it is in use;
// memory the pool does not keep, or keeps idle for a while, goes back to the system at once.
import { Buffer } from "node:buffer";

/**
 * 256 KiB: large enough for few syscalls and socket writes per MiB, small enough that a hundred
 * concurrent responses holding one each stay in tens of MiB.
 */
export const SLAB_SIZE = 256 * 1024;
/** Idle slabs kept for reuse (4 MiB); the memory of any more is returned at once. */
const MAX_IDLE = 16;
/** After this long without a slab being taken, the idle ones give their memory back too. */
const IDLE_RETURN_MS = 1_000;

/** ES2024's resizable ArrayBuffer (the project's lib is ES2023). */
interface ResizableArrayBuffer extends ArrayBuffer {
  resize(byteLength: number): void;
}

/**
 * Slab memory is a resizable ArrayBuffer: V8 maps its pages itself and unmaps them when it shrinks
 * to 0, so a slab the data path no longer needs costs no resident memory, whatever the garbage
 * collector does. Measured why: with a fresh buffer per upstream chunk (64 KiB) and per disk read,
 * glibc's heap held 71 MiB after 16 cold clients, and 39 MiB of buffers old enough to be promoted
 * were never collected while the server sat idle; pooled slabs from malloc still left glibc's heap
 * 12 MiB larger after 16 cold clients than before them (freed slabs between live allocations).
 */
export class Slab {
  private refs = 1;
  /** The slab's bytes (replaced when its memory comes back after having been returned). */
  buf: Buffer;
  private readonly memory: ResizableArrayBuffer;

  constructor() {
    this.memory = new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ResizableArrayBuffer)(SLAB_SIZE, { maxByteLength: SLAB_SIZE });
    this.buf = Buffer.from(this.memory, 0, SLAB_SIZE);
  }

  /** Give the memory back to the system; the slab is unusable until revive(). */
  shrink(): void {
    this.memory.resize(0);
  }

  /** Memory again (zeroed pages, mapped as they are touched) after shrink(). */
  revive(): void {
    if (this.memory.byteLength === SLAB_SIZE) return;
    this.memory.resize(SLAB_SIZE);
    this.buf = Buffer.from(this.memory, 0, SLAB_SIZE);
  }

  /** One more holder (a window, a socket write in flight). */
  ref(): this {
    this.refs++;
    return this;
  }

  /** A holder is done; the last one returns the slab to the pool. */
  unref(): void {
    // Reuse while a view is still being written would send another blob's bytes: fail loudly.
    if (this.refs <= 0) throw new Error("slab released more often than it was taken");
    this.refs--;
    if (this.refs === 0) release(this);
  }
}

const idle: Slab[] = [];
let lastTaken = 0;
let returnTimer: NodeJS.Timeout | undefined;

/** A slab with one reference (the caller's); its content is whatever it held before (or zeros). */
export function takeSlab(): Slab {
  lastTaken = Date.now();
  const s = idle.pop();
  if (s) {
    s.revive();
    s.ref();
    return s;
  }
  return new Slab();
}

function release(s: Slab): void {
  if (idle.length >= MAX_IDLE) {
    s.shrink();
    return;
  }
  idle.push(s);
  returnTimer ??= setTimeout(returnIdle, IDLE_RETURN_MS).unref();
}

/** The pool sat unused for IDLE_RETURN_MS: its slabs keep their place but give their memory back. */
function returnIdle(): void {
  returnTimer = undefined;
  const quiet = Date.now() - lastTaken;
  if (quiet < IDLE_RETURN_MS) {
    returnTimer = setTimeout(returnIdle, IDLE_RETURN_MS - quiet).unref();
    return;
  }
  for (const s of idle) s.shrink();
}

/** Slabs currently idle in the pool (tests and metrics). */
export function idleSlabs(): number {
  return idle.length;
}

/** Buffers for one consumer plus the call that lets their slabs go (once, after the last write). */
export interface Batch {
  buffers: Buffer[];
  release(): void;
}

/** A batch holding one reference on each slab in `slabs`. */
export function batchOf(buffers: Buffer[], slabs: Slab[]): Batch {
  let released = false;
  return {
    buffers,
    release: () => {
      if (released) return;
      released = true;
      for (const s of slabs) s.unref();
    },
  };
}
