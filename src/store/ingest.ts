// Ingest areas: each replica names its downloads in progress `<replica>~…`, so replicas sharing a
// store remove only their own leftovers of a crash (and others' that nobody has touched for hours).
import { readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";

/** Between a replica's name and the rest of an ingest name; never part of a replica name. */
export const AREA_SEPARATOR = "~";

/** Another replica's ingest entry untouched this long is a leftover of a crash (live ones are written every few seconds). */
export const STALE_INGEST_MS = 6 * 60 * 60 * 1000;

/** The name prefix of a replica's ingest area (names are checked where configured: config/schema.ts). */
export function ingestArea(replica: string): string {
  return `${replica.replace(/[^A-Za-z0-9._-]/g, "_")}${AREA_SEPARATOR}`;
}

/** Whether an ingest entry is to be removed when replica `area` starts. */
export function isLeftover(name: string, area: string, modifiedMs: number | undefined, now = Date.now()): boolean {
  // Entries of the single-replica layout (no area prefix) predate replicas: leftovers too.
  if (name.startsWith(area) || !name.includes(AREA_SEPARATOR)) return true;
  return modifiedMs !== undefined && now - modifiedMs >= STALE_INGEST_MS;
}

/** Remove the leftovers in a local ingest folder (isLeftover). */
export async function sweepIngestDir(dir: string, area: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  for (const name of names) {
    const path = join(dir, name);
    const mine = name.startsWith(area) || !name.includes(AREA_SEPARATOR);
    const modified = mine ? undefined : await stat(path).then((s) => s.mtimeMs, () => undefined);
    if (mine || isLeftover(name, area, modified)) await rm(path, { recursive: true, force: true });
  }
}
