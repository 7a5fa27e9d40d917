// tags/list (upstream first, cached tags when upstream is unavailable) and _catalog (what is cached).
import { MirrorError } from "../oci/errors.js";
import type { MirrorConfig } from "../config/resolve.js";
import type { TagStore } from "../store/store.js";
import { ensureOk, headerString, readLimited } from "../upstream/client.js";
import { UpstreamError } from "../upstream/errors.js";
import type { Target } from "./route.js";
import type { Upstreams } from "./upstreams.js";

export interface Listing {
  body: unknown;
  /** RFC 5988 Link to the next page, already pointing at this mirror. */
  link?: string;
  cache: "MISS" | "STALE";
}

const LIST_BODY_LIMIT = 16 * 1024 * 1024;

export async function listTags(target: Target, query: URLSearchParams, upstreams: Upstreams, store: TagStore): Promise<Listing> {
  const client = upstreams.client(target.upstream);
  const upstreamQuery = new URLSearchParams();
  for (const key of ["n", "last"]) {
    const v = query.get(key);
    if (v !== null) upstreamQuery.set(key, v);
  }
  const qs = upstreamQuery.toString();
  try {
    const res = await client.fetch("GET", `${target.name}/tags/list${qs ? `?${qs}` : ""}`, { scope: `repository:${target.name}:pull` });
    await ensureOk(client.name, res, "tags/list");
    const body = JSON.parse((await readLimited(res, LIST_BODY_LIMIT)).toString("utf8")) as unknown;
    const link = rewriteLink(headerString(res.headers.link), target, query.get("ns"));
    return { body, ...(link ? { link } : {}), cache: "MISS" };
  } catch (err) {
    if (err instanceof UpstreamError && err.temporary()) {
      const tags = await store.listTags(target.upstream.name, target.name);
      if (tags.length > 0) return { body: { name: target.name, tags }, cache: "STALE" };
    }
    if (err instanceof UpstreamError) throw err.toMirrorError("NAME_UNKNOWN");
    if (err instanceof SyntaxError) throw new MirrorError("UNAVAILABLE", `upstream ${client.name} sent an invalid tag list`);
    throw err;
  }
}

/** Upstream Link headers name upstream paths; point the next page back at this mirror. */
function rewriteLink(link: string | undefined, target: Target, ns: string | null): string | undefined {
  const m = link ? /<([^>]*)>\s*;\s*rel="?next"?/.exec(link) : null;
  if (!m) return undefined;
  let next: URL;
  try {
    next = new URL(m[1] as string, "http://upstream.invalid");
  } catch {
    return undefined;
  }
  const params = new URLSearchParams();
  for (const key of ["n", "last"]) {
    const v = next.searchParams.get(key);
    if (v !== null) params.set(key, v);
  }
  if (ns !== null) params.set("ns", ns);
  return `</v2/${target.clientName}/tags/list?${params.toString()}>; rel="next"`;
}

/** Cached repositories, named as a client would pull them through this mirror. */
export async function catalog(query: URLSearchParams, store: TagStore, config: MirrorConfig): Promise<{ body: { repositories: string[] }; link?: string }> {
  const repos = (await store.listRepositories())
    .map((r) => (r.upstream === config.defaultUpstream.name ? r.name : `${r.upstream}/${r.name}`))
    .sort();
  const last = query.get("last");
  const nRaw = query.get("n");
  const n = nRaw === null ? undefined : Number(nRaw);
  if (n !== undefined && (!Number.isInteger(n) || n < 0)) throw new MirrorError("UNSUPPORTED", "n must be a non-negative integer");
  const start = last === null ? 0 : repos.findIndex((r) => r > last);
  const from = start < 0 ? repos.length : start;
  const page = n === undefined ? repos.slice(from) : repos.slice(from, from + n);
  const more = n !== undefined && from + n < repos.length && page.length > 0;
  const link = more ? `</v2/_catalog?n=${n}&last=${encodeURIComponent(page[page.length - 1] as string)}>; rel="next"` : undefined;
  return { body: { repositories: page }, ...(link ? { link } : {}) };
}
