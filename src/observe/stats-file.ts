// The all-time figures, kept in <storage>/stats.json so a restart does not reset them: traffic
// totals and how often each image was pulled. A missing or unreadable file starts from zero.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import writeFileAtomic from "write-file-atomic";
import { emptyTraffic, type Traffic } from "./traffic.js";

export interface ImageUse {
  pulls: number;
  /** ms since epoch. */
  lastPull: number;
}

export interface PersistedStats {
  /** When counting started (ms since epoch): the first start on this storage folder. */
  since: number;
  totals: Traffic;
  /** By image reference (upstream/name:tag). */
  images: Record<string, ImageUse>;
}

/** Images remembered for "most used"; past it the least pulled are forgotten. */
export const MAX_REMEMBERED_IMAGES = 500;

export function statsPath(storage: string): string {
  return join(storage, "stats.json");
}

export async function loadStats(storage: string, now = Date.now()): Promise<{ stats: PersistedStats; problem?: string }> {
  let text: string;
  try {
    text = await readFile(statsPath(storage), "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { stats: fresh(now), ...(code === "ENOENT" ? {} : { problem: `cannot read ${statsPath(storage)}: ${code}` }) };
  }
  try {
    const raw = JSON.parse(text) as Partial<PersistedStats>;
    const totals = emptyTraffic();
    for (const key of Object.keys(totals) as (keyof Traffic)[]) {
      const v = raw.totals?.[key];
      if (typeof v === "number" && Number.isFinite(v) && v >= 0) totals[key] = v;
    }
    const images: Record<string, ImageUse> = Object.create(null) as Record<string, ImageUse>;
    for (const [ref, use] of Object.entries(raw.images ?? {})) {
      if (typeof use?.pulls === "number" && typeof use.lastPull === "number") images[ref] = { pulls: use.pulls, lastPull: use.lastPull };
    }
    return { stats: { since: typeof raw.since === "number" ? raw.since : now, totals, images } };
  } catch {
    return { stats: fresh(now), problem: `${statsPath(storage)} is not valid JSON; all-time figures start again from zero` };
  }
}

export async function saveStats(storage: string, stats: PersistedStats): Promise<void> {
  await writeFileAtomic(statsPath(storage), `${JSON.stringify(stats)}\n`);
}

function fresh(now: number): PersistedStats {
  return { since: now, totals: emptyTraffic(), images: Object.create(null) as Record<string, ImageUse> };
}
