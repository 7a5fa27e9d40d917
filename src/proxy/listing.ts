// tags/list (upstream first, cached tags when upstream is unavailable) and _catalog (what is cached).
import { MirrorError, upstreamFault } from "../oci/errors.js";
import type { MirrorConfig } from "../config/resolve.js";
import type { TagStore } from "../store/store.js";
import { ensureOk, headerString, readLimited, type UpstreamClient } from "../upstream/client.js";
import { UpstreamError } from "../upstream/errors.js";
import type { Target } from "./route.js";
import type { Upstreams } from "./upstreams.js";

export interface Listing {
  body: unknown;
  /** RFC 5988 Link to the next page, already pointing at this mirror. */
  link?: string;
  cache: "MISS" | "STALE";
}

/** The largest tag list read from upstream (distribution's own limit for a response body is similar). */
export const LIST_BODY_LIMIT = 16 * 1024 * 1024;
/** Page size asked for when a client's unpaginated list is bigger than that: clients follow the Link. */
export const TAG_PAGE = 10_000;

export async function listTags(target: Target, query: URLSearchParams, upstreams: Upstreams, store: TagStore): Promise<Listing> {
  const client = upstreams.client(target.upstream);
  const n = pageSize(query);
  const last = query.get("last");
  try {
    const first = await fetchTags(client, target, n, last);
    if (first !== "too-big") return { ...first, ...linkFor(first.link, target, query.get("ns")), cache: "MISS" };
    // Too big to hold in one answer: serve it in pages (Link rel="next"), as distribution does with ?n=.
    if (n === undefined) {
      const page = await fetchTags(client, target, TAG_PAGE, last);
      if (page !== "too-big" && page.link) return { ...page, ...linkFor(page.link, target, query.get("ns")), cache: "MISS" };
    }
    throw upstreamFault("UNAVAILABLE", `upstream ${client.name} sent a tag list for ${target.name} larger than ${LIST_BODY_LIMIT} bytes and would not page it; ask for pages with ?n=`);
  } catch (err) {
    if (err instanceof UpstreamError && err.temporary()) {
      const tags = await store.listTags(target.upstream.name, target.name);
      if (tags.length > 0) return { body: { name: target.name, tags }, cache: "STALE" };
    }
    if (err instanceof UpstreamError) throw err.toMirrorError("NAME_UNKNOWN");
    throw err;
  }
}

async function fetchTags(client: UpstreamClient, target: Target, n: number | undefined, last: string | null): Promise<{ body: unknown; link: string | undefined } | "too-big"> {
  const upstreamQuery = new URLSearchParams();
  if (n !== undefined) upstreamQuery.set("n", String(n));
  if (last !== null) upstreamQuery.set("last", last);
  const qs = upstreamQuery.toString();
  // Headers and body under one deadline: a trickling list must not hold the client past it.
  const read = await client.exchange("tags/list", async (signal) => {
    const res = await client.fetch("GET", `${target.name}/tags/list${qs ? `?${qs}` : ""}`, { scope: `repository:${target.name}:pull`, signal });
    await ensureOk(client.name, res, "tags/list");
    try {
      return { res, text: (await readLimited(res, LIST_BODY_LIMIT)).toString("utf8") };
    } catch (err) {
      if (err instanceof RangeError) return "too-big" as const;
      throw new UpstreamError(client.name, "unreachable", `tags/list: ${(err as Error).message}`, undefined, undefined, { cause: err });
    }
  });
  if (read === "too-big") return read;
  const { res, text } = read;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const tags = (body as { tags?: unknown } | undefined)?.tags;
  if (typeof body !== "object" || body === null || !(tags === null || (Array.isArray(tags) && tags.every((t) => typeof t === "string")))) {
    throw upstreamFault("UNAVAILABLE", `upstream ${client.name} sent an invalid tag list for ${target.name}`);
  }
  return { body, link: headerString(res.headers.link) };
}

function linkFor(upstreamLink: string | undefined, target: Target, ns: string | null): { link?: string } {
  const link = rewriteLink(upstreamLink, target, ns);
  return link ? { link } : {};
}

/** ?n= as distribution reads it: absent, or a non-negative integer; anything else is the client's error. */
function pageSize(query: URLSearchParams): number | undefined {
  const raw = query.get("n");
  if (raw === null) return undefined;
  if (!/^\d{1,9}$/.test(raw)) throw new MirrorError("PAGINATION_NUMBER_INVALID", `n must be a non-negative integer, got ${JSON.stringify(raw.slice(0, 20))}`);
  return Number(raw);
}

/** The rel="next" target of an upstream's Link header (RFC 8288), resolved against a placeholder origin. */
export function nextLinkTarget(link: string | undefined): URL | undefined {
  const m = link ? /<([^>]*)>\s*;\s*rel="?next"?/.exec(link) : null;
  if (!m) return undefined;
  try {
    return new URL(m[1] as string, "http://upstream.invalid");
  } catch {
    return undefined;
  }
}

/** Upstream Link headers name upstream paths; point the next page back at this mirror. */
function rewriteLink(link: string | undefined, target: Target, ns: string | null): string | undefined {
  const next = nextLinkTarget(link);
  if (!next) return undefined;
  const params = new URLSearchParams();
  for (const key of ["n", "last"]) {
    const v = next.searchParams.get(key);
    if (v !== null) params.set(key, v);
  }
  if (ns !== null) params.set("ns", ns);
  return `</v2/${target.clientName}/tags/list?${params.toString()}>; rel="next"`;
}

/** Cached repositories, named as a client would pull them through this mirror. */
export async function catalog(
  query: URLSearchParams,
  store: TagStore,
  config: MirrorConfig,
  /** Whether the client may see repositories of this upstream (private ones are hidden from anonymous clients). */
  visible: (upstream: string) => boolean = () => true,
): Promise<{ body: { repositories: string[] }; link?: string }> {
  const repos = (await store.listRepositories())
    .filter((r) => visible(r.upstream))
    .map((r) => (r.upstream === config.defaultUpstream.name ? r.name : `${r.upstream}/${r.name}`))
    .sort();
  const last = query.get("last");
  const n = pageSize(query);
  const start = last === null ? 0 : repos.findIndex((r) => r > last);
  const from = start < 0 ? repos.length : start;
  const page = n === undefined ? repos.slice(from) : repos.slice(from, from + n);
  const more = n !== undefined && from + n < repos.length && page.length > 0;
  const link = more ? `</v2/_catalog?n=${n}&last=${encodeURIComponent(page[page.length - 1] as string)}>; rel="next"` : undefined;
  return { body: { repositories: page }, ...(link ? { link } : {}) };
}
