// A running `mirror-kit serve` leaves its real URL in a per-user runtime folder, so `mirror-kit
// healthcheck` (a separate process, e.g. Docker's HEALTHCHECK) finds the port serve's flags chose.
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface ServeRecord {
  pid: number;
  url: string;
  /** With mutual TLS the probe shows the server's own certificate as its client certificate. */
  tls?: { certFile: string; keyFile: string; clientAuth: boolean };
}

/** MIRROR_KIT_RUN_DIR, or a folder of this user's under the temp folder. */
export function runDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.MIRROR_KIT_RUN_DIR ?? join(tmpdir(), `mirror-kit-${process.getuid?.() ?? "user"}`);
}

/** Best effort: a read-only /tmp only means healthcheck falls back to resolving the configuration. */
export async function recordServe(url: string, tls: ServeRecord["tls"], dir = runDir()): Promise<{ remove(): Promise<void> }> {
  const file = join(dir, `serve-${process.pid}.json`);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFile(file, JSON.stringify({ pid: process.pid, url, ...(tls ? { tls } : {}) } satisfies ServeRecord));
  } catch {
    return { remove: async () => undefined };
  }
  return { remove: () => rm(file, { force: true }) };
}

/** Records of serve processes that are still alive (a crashed one leaves a stale file behind). */
export async function liveServeRecords(dir = runDir()): Promise<ServeRecord[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const records: ServeRecord[] = [];
  for (const name of names.filter((n) => /^serve-\d+\.json$/.test(n)).sort()) {
    const record = await readFile(join(dir, name), "utf8").then((t) => JSON.parse(t) as ServeRecord, () => null);
    if (record && typeof record.url === "string" && Number.isInteger(record.pid) && alive(record.pid)) records.push(record);
  }
  return records;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM"; // exists, owned by someone else
  }
}
