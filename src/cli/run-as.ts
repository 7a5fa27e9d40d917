// The container image starts serve as root so it can give the storage folder to the service user
// (a host folder Docker created is root's), then drops to that uid for good, as official images do.
import { access, constants, lstat, lchown, mkdir, readdir, realpath } from "node:fs/promises";
import { join } from "node:path";
import type { Env } from "../config/load.js";
import { ConfigError } from "../config/schema.js";

/** "UID:GID" in MIRROR_KIT_RUN_AS (the image sets 10001:10001); nothing happens unless running as root. */
export function parseRunAs(raw: string): { uid: number; gid: number } {
  const m = /^(\d+):(\d+)$/.exec(raw.trim());
  if (!m) throw new ConfigError(`MIRROR_KIT_RUN_AS: expected UID:GID such as 10001:10001, got ${JSON.stringify(raw)}`);
  return { uid: Number(m[1]), gid: Number(m[2]) };
}

/** How the storage folder is named in messages: the host folder behind the mount when it is known. */
export function storageName(storage: string, env: Env): string {
  const host = env.MIRROR_KIT_STORAGE_HOST_PATH;
  return host ? `${host} (mounted at ${storage})` : storage;
}

export async function dropPrivileges(storage: string, env: Env, extraDirs: string[] = []): Promise<void> {
  if (!env.MIRROR_KIT_RUN_AS || process.getuid?.() !== 0) return;
  const { uid, gid } = parseRunAs(env.MIRROR_KIT_RUN_AS);
  let shown = storageName(storage, env);
  for (const dir of [storage, ...extraDirs]) {
    try {
      await mkdir(dir, { recursive: true });
      // The image's default ./mirror-kit-data is a symlink to the volume: own what it points at.
      const real = await realpath(dir);
      if (dir === storage) shown = storageName(real, env);
      const top = await lstat(real);
      // A folder already ours is left alone: a large cache is not walked on every start.
      if (top.uid !== uid || top.gid !== gid) await chownTree(real, uid, gid);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      throw new Error(`cannot give ${dir === storage ? `storage folder ${shown}` : `folder ${dir}`} to uid ${uid}: ${code}${code === "EROFS" ? " (mounted read-only)" : ""}`, { cause: err });
    }
  }
  process.setgroups?.([gid]);
  process.setgid?.(gid);
  process.setuid?.(uid);
  try {
    await access(storage, constants.W_OK | constants.X_OK);
  } catch (err) {
    throw new Error(`cannot use storage folder ${shown}: not writable by uid ${uid} (${(err as NodeJS.ErrnoException).code})`, { cause: err });
  }
}

async function chownTree(path: string, uid: number, gid: number): Promise<void> {
  await lchown(path, uid, gid);
  const info = await lstat(path);
  if (!info.isDirectory()) return;
  for (const entry of await readdir(path)) await chownTree(join(path, entry), uid, gid);
}
