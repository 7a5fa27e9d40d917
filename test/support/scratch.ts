// Temporary directories for one test run, removed even when a daemon left mounts behind.
// Short paths on purpose: unix socket paths under them must stay below 108 bytes.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "./process.js";

export async function makeTempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `mk-${prefix}-`));
}

/**
 * Removes a temp dir. A dockerd killed mid-way leaves overlay and netns mounts below its
 * data root; unmounting them first keeps `rm` from failing with EBUSY and leaking the dir.
 */
export async function removeTempDir(dir: string): Promise<void> {
  const mounts = (await readFile("/proc/self/mountinfo", "utf8"))
    .split("\n")
    .map((line) => line.split(" ")[4])
    .filter((mountPoint): mountPoint is string => !!mountPoint && mountPoint.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const mountPoint of mounts) {
    await run("umount", ["-l", mountPoint], { allowFailure: true });
  }
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}
