// How the terminal commands (status, ls, doctor) read a running mirror's API: one GET with a
// bounded wait, credentials taken from the URL (https://user:pass@host) as a Basic header, and an
// error that says what to check.
import { Buffer } from "node:buffer";
import { MirrorKitError } from "../errors.js";

export const DEFAULT_MIRROR = "http://127.0.0.1:5000";
const TIMEOUT_MS = 10_000;

/** A running mirror's API could not be read: unreachable, refused, or not mirror-kit. */
export class MirrorApiError extends MirrorKitError {
  override readonly name = "MirrorApiError";
  constructor(message: string) {
    super("MK_MIRROR_API", message);
  }
}

/** The base URL without credentials, and the Authorization header they make. */
export function mirrorEndpoint(mirror: string): { base: URL; authorization?: string } {
  let base: URL;
  try {
    base = new URL(mirror);
  } catch {
    throw new MirrorApiError(`--mirror: expected a URL such as ${DEFAULT_MIRROR}, got ${JSON.stringify(mirror)}`);
  }
  if (base.protocol !== "http:" && base.protocol !== "https:") throw new MirrorApiError(`--mirror: expected an http:// or https:// URL, got ${JSON.stringify(mirror)}`);
  const user = decodeURIComponent(base.username);
  const pass = decodeURIComponent(base.password);
  base.username = "";
  base.password = "";
  return { base, ...(user ? { authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}` } : {}) };
}

/** The mirror's URL as it may be printed: never with credentials. */
export function shownMirror(mirror: string): string {
  try {
    return mirrorEndpoint(mirror).base.origin;
  } catch {
    return mirror;
  }
}

export async function getJson<T>(mirror: string, path: string): Promise<T> {
  const { base, authorization } = mirrorEndpoint(mirror);
  const url = new URL(path, base);
  let res: Response;
  try {
    res = await fetch(url, { headers: authorization ? { authorization } : {}, signal: AbortSignal.timeout(TIMEOUT_MS) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = (err as Error).name === "TimeoutError" ? `no answer within ${TIMEOUT_MS / 1000} s` : (cause?.code ?? cause?.message ?? (err as Error).message);
    throw new MirrorApiError(`cannot reach the mirror at ${base.origin}: ${why} (is it running? pass --mirror URL)`);
  }
  if (res.status === 401) throw new MirrorApiError(`the mirror at ${base.origin} wants credentials: pass --mirror ${base.protocol}//USER:PASSWORD@${base.host}`);
  if (res.status !== 200) throw new MirrorApiError(`the mirror at ${base.origin} answered ${res.status} for ${url.pathname} (a mirror-kit older than this command, or not mirror-kit?)`);
  try {
    return (await res.json()) as T;
  } catch {
    throw new MirrorApiError(`the mirror at ${base.origin} sent something that is not JSON for ${url.pathname}`);
  }
}
