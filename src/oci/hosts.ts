// Registry host names and NAME=URL upstream specs: the one parser of each, shared by `serve`
// (flags, MIRROR_KIT_UPSTREAMS, request routing) and `init` (generator flags), so both agree.

/**
 * A registry host as image references name it: DNS labels, optional port. Hosts are
 * case-insensitive (RFC 4343); the parsed form is lower case, so "GHCR.io" and "ghcr.io" are one.
 */
const REGISTRY_HOST = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::[0-9]{1,5})?$/i;

/** Keys that would reach Object.prototype when used as a property name (prototype pollution). */
export const PROTOTYPE_KEYS: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);

/** The lower-cased host, or undefined when `raw` is not a registry host (or is a prototype key). */
export function parseRegistryHost(raw: string): string | undefined {
  if (!REGISTRY_HOST.test(raw)) return undefined;
  const host = raw.toLowerCase();
  return PROTOTYPE_KEYS.has(host) ? undefined : host;
}

/** A first path component that names a registry rather than a Docker Hub namespace: a dot, a port or localhost. */
export function looksLikeRegistryHost(host: string): boolean {
  return host.includes(".") || host.includes(":") || host === "localhost";
}

export type UpstreamSpec = { ok: true; name: string; url: string } | { ok: false; reason: string };

/**
 * `NAME=URL` (`--upstream`, MIRROR_KIT_UPSTREAMS): NAME a registry host, URL http(s) without
 * credentials, query or fragment (credentials go in the config file's username/password). The URL
 * comes back without trailing slashes. The reason never repeats the value: it may hold a password.
 */
export function parseUpstreamSpec(raw: string): UpstreamSpec {
  const eq = raw.indexOf("=");
  if (eq <= 0) return { ok: false, reason: "expected NAME=URL (e.g. ghcr.io=https://ghcr.io)" };
  const name = parseRegistryHost(raw.slice(0, eq));
  if (name === undefined) return { ok: false, reason: `NAME must be a registry host such as ghcr.io or registry.local:5000, got ${JSON.stringify(redactUserinfo(raw.slice(0, eq)).slice(0, 100))}` };
  let url: URL;
  try {
    url = new URL(raw.slice(eq + 1));
  } catch {
    return { ok: false, reason: `${name}: expected an http:// or https:// URL` };
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return { ok: false, reason: `${name}: expected an http:// or https:// URL` };
  if (url.username || url.password) return { ok: false, reason: `${name}: the URL must not carry credentials (use username/password in the config file)` };
  if (url.search || url.hash) return { ok: false, reason: `${name}: the URL must not have a query or fragment` };
  return { ok: true, name, url: url.href.replace(/\/+$/, "") };
}

/**
 * A URL-ish string with its user:password@ masked, for messages that quote what a user gave. Works
 * on strings that do not parse as URLs too (a password with a space or a second "@").
 */
export function redactUserinfo(text: string): string {
  const start = text.indexOf("//");
  if (start < 0) return text;
  const rest = text.slice(start + 2);
  const end = rest.search(/[/?#]/);
  const authority = end < 0 ? rest : rest.slice(0, end);
  const at = authority.lastIndexOf("@");
  return at < 0 ? text : `${text.slice(0, start + 2)}***${rest.slice(at)}`;
}
