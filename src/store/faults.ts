// Storage faults: the errno codes that mean "the cache folder cannot be written" (permissions, a
// read-only or full file system, a failing disk), reported as 503 with what happened, never a 500.
import { mkdir, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { MirrorError } from "../oci/errors.js";

const FAULTS: Readonly<Record<string, string>> = {
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EROFS: "read-only file system",
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  EIO: "input/output error",
};

/** The errno code when err is a storage fault, else undefined. */
export function storageFault(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code !== undefined && Object.hasOwn(FAULTS, code) ? code : undefined;
}

/** A full disk: the one fault where streaming without storing still serves the client. */
export function isDiskFull(err: unknown): boolean {
  const code = storageFault(err);
  return code === "ENOSPC" || code === "EDQUOT";
}

/** How a storage fault reads in logs, /healthz and error bodies: "EROFS (read-only file system)". */
export function describeFault(code: string): string {
  return `${code} (${FAULTS[code] ?? "storage error"})`;
}

/** The client's answer for a request that failed because the cache could not be written. */
export function storageUnavailable(err: unknown, code: string): MirrorError {
  return new MirrorError("UNAVAILABLE", `the mirror's cache storage cannot be written: ${describeFault(code)}`, undefined, { cause: err });
}

/** The reason a fault gives for streaming a blob without storing it. */
export function faultReason(err: unknown): string {
  return `cache storage cannot be written: ${describeFault(storageFault(err) ?? "EIO")}`;
}

/** A storage fault as the client's 503; anything else unchanged. */
export function asUnavailable(err: unknown): unknown {
  const code = storageFault(err);
  return code ? storageUnavailable(err, code) : err;
}

/**
 * mkdir -p that reports the real fault. Node's recursive mkdir answers ENOENT when a folder cannot be
 * made for another reason (measured with a FUSE file system failing with EIO: it stats the folder
 * after the failed mkdir and reports that), which would hide a failing disk behind a 500.
 */
export async function makeDir(path: string): Promise<void> {
  try {
    await mkdir(path, { recursive: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    await makeEach(path);
  }
}

/** Each missing folder from the top down, one mkdir at a time: the one that fails says why. */
async function makeEach(path: string): Promise<void> {
  const parent = dirname(path);
  if (parent !== path && !(await exists(parent))) await makeEach(parent);
  try {
    await mkdir(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}
