// Progress of a download in progress, announced through Redis by the replica holding its lease:
// where its bytes are (the writer's locator) and how many other replicas can read (the mark), so
// they stream it to their own clients (follow.ts) and take it over from there (takeover.ts).
import type { Logger } from "../observe/log.js";
import type { Coordinator, SharedFailure } from "./coordinator.js";

export type Announcement =
  | { state: "running"; locator: string; mark: number; size?: number }
  /** failure: what the holder's own clients saw (absent: nothing a waiter should answer with). */
  | { state: "failed"; failure?: SharedFailure }
  | { state: "published" };

/** How often the holder looks at its download's progress (and announces it when it moved). */
export const ANNOUNCE_MS = 100;
/** A running announcement outlives its holder by this much, so that a takeover finds its leftover. */
const RUNNING_TTL_MS = 10 * 60 * 1000;
/** An announcement that did not move is put again this often, so it lapses only with its holder. */
const REFRESH_MS = 60 * 1000;
/** A final state is needed only by followers looking now. */
const FINAL_TTL_MS = 30 * 1000;

/** What the announcer needs of a download (BlobFill). */
export interface AnnouncedFill {
  readonly size: number | undefined;
  readonly done: Promise<void>;
  shared(): Promise<{ locator: string; mark: number } | undefined>;
}

export function announcementKey(fillKey: string): string {
  return `fill:${fillKey}`;
}

/**
 * Announce `fill`'s progress under `key` until it settles; resolves once its final state is
 * announced (the caller releases the lease only then, so a replica taking it sees that state).
 */
export function announce(coordinator: Coordinator, key: string, fill: AnnouncedFill, failureOf: (err: unknown) => SharedFailure | undefined, log: Logger): Promise<void> {
  let last = 0;
  let lastPut = 0;
  let busy = false;
  const put = (a: Announcement, ttlMs: number) => coordinator.put(key, JSON.stringify(a), ttlMs);
  const tick = async () => {
    if (busy) return;
    busy = true;
    try {
      const shared = await fill.shared();
      if (!shared || (shared.mark <= last && Date.now() - lastPut < REFRESH_MS)) return;
      last = shared.mark;
      lastPut = Date.now();
      await put({ state: "running", ...shared, ...(fill.size !== undefined ? { size: fill.size } : {}) }, RUNNING_TTL_MS);
    } catch (err) {
      // The writer closed under us (the fill ended): the final state follows.
      log.debug({ key, err: (err as Error).message }, "progress not announced");
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void tick(), ANNOUNCE_MS);
  timer.unref();
  return fill.done.then(
    () => {
      clearInterval(timer);
      return put({ state: "published" }, FINAL_TTL_MS);
    },
    (err: unknown) => {
      clearInterval(timer);
      const failure = failureOf(err);
      // Our own shutdown says nothing about the blob: the leftover stays announced for a takeover.
      return failure ? put({ state: "failed", failure }, FINAL_TTL_MS) : undefined;
    },
  );
}

/** The announcement under `key`, checked field by field (it came over the network). */
export async function readAnnouncement(coordinator: Coordinator, key: string): Promise<Announcement | undefined> {
  const text = await coordinator.get(key);
  if (!text) return undefined;
  let a: Partial<{ state: unknown; locator: unknown; mark: unknown; size: unknown; failure: Partial<SharedFailure> }>;
  try {
    a = JSON.parse(text) as typeof a;
  } catch {
    return undefined;
  }
  if (a.state === "published") return { state: "published" };
  if (a.state === "failed") {
    const f = a.failure;
    const ok = f && typeof f.source === "string" && typeof f.code === "string" && typeof f.status === "number" && typeof f.message === "string";
    return { state: "failed", ...(ok ? { failure: f as SharedFailure } : {}) };
  }
  if (a.state !== "running" || typeof a.locator !== "string" || !isCount(a.mark) || (a.size !== undefined && !isCount(a.size))) return undefined;
  return { state: "running", locator: a.locator, mark: a.mark, ...(a.size !== undefined ? { size: a.size } : {}) };
}

function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}
