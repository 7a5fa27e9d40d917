// The OCI referrers API through the mirror: the upstream's own API when it has one, else the
// tag-schema fallback (the index tagged sha256-<hex>); cached per subject, served stale when offline.
import { type Digest, digestOf, parseDigest } from "../oci/digest.js";
import { MirrorError, upstreamFault } from "../oci/errors.js";
import { isIndexType, isMediaType, MediaType } from "../oci/mediatypes.js";
import type { Logger } from "../observe/log.js";
import type { ManifestStore, TagStore } from "../store/store.js";
import { ensureOk, headerString, readLimited, type UpstreamClient } from "../upstream/client.js";
import { UpstreamError } from "../upstream/errors.js";
import { nextLinkTarget } from "./listing.js";
import type { CacheResult, ManifestService } from "./manifests.js";
import type { Target } from "./route.js";
import type { Upstreams } from "./upstreams.js";

/** One entry of a referrers list: the descriptor of a manifest whose `subject` is the asked digest. */
export interface ReferrerDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  [key: string]: unknown;
}

export interface ReferrersAnswer {
  /** An OCI image index whose manifests are the referrers (filtered when `filtered`). */
  body: Buffer;
  /** artifactType was applied (the OCI-Filters-Applied header says so). */
  filtered: boolean;
  /** Where the list came from: the upstream's referrers API, or its tag-schema fallback. */
  source: "api" | "tag-schema";
  cache: CacheResult;
}

export interface ReferrersServiceOptions {
  store: ManifestStore & TagStore;
  upstreams: Upstreams;
  /** Resolves the fallback tag, with the manifests' own caching, freshness and stale rules. */
  manifests: ManifestService;
  log: Logger;
  manifestMaxBytes: number;
  now?: () => number;
}

/** Pages of an upstream's referrers list followed at most (each up to manifestMaxBytes). */
const MAX_PAGES = 16;

/**
 * The cached list lives in the tag store under a key no tag can spell (tags start with a word
 * character), so every store backend keeps it without a new method and no tag listing shows it.
 * The list itself is stored as an index manifest: eviction then keeps the referrers it names.
 */
export function referrersKey(subject: Digest): string {
  return `-referrers-${subject.algorithm}-${subject.hex}`;
}

/** The OCI 1.1 fallback tag for a subject: sha256:abc… → sha256-abc… */
export function fallbackTag(subject: Digest): string {
  return `${subject.algorithm}-${subject.hex}`;
}

export class ReferrersService {
  private readonly flights = new Map<string, Promise<{ entries: ReferrerDescriptor[]; source: ReferrersAnswer["source"]; cache: CacheResult }>>();
  private readonly now: () => number;

  constructor(private readonly o: ReferrersServiceOptions) {
    this.now = o.now ?? Date.now;
  }

  async get(target: Target, subject: Digest, artifactType: string | undefined): Promise<ReferrersAnswer> {
    if (artifactType !== undefined && !isMediaType(artifactType)) {
      throw new MirrorError("UNSUPPORTED", `artifactType must be a media type such as application/vnd.example+json, got ${JSON.stringify(artifactType.slice(0, 100))}`, undefined, { status: 404 });
    }
    const key = `${target.upstream.name}|${target.name}|${subject.value}`;
    let flight = this.flights.get(key);
    if (!flight) {
      flight = this.resolve(target, subject).finally(() => this.flights.delete(key));
      this.flights.set(key, flight);
    }
    const list = await flight;
    const entries = artifactType === undefined ? list.entries : list.entries.filter((e) => e.artifactType === artifactType);
    return { body: indexOf(entries), filtered: artifactType !== undefined, source: list.source, cache: list.cache };
  }

  private async resolve(target: Target, subject: Digest): Promise<{ entries: ReferrerDescriptor[]; source: ReferrersAnswer["source"]; cache: CacheResult }> {
    const up = target.upstream.name;
    const key = referrersKey(subject);
    const record = await this.o.store.getTag(up, target.name, key);
    const cached = record ? await this.cachedList(record.digest) : undefined;
    // Signatures and SBOMs are added after an image is pushed: the list is revalidated like a tag.
    if (record && cached && record.checkedAt > 0 && this.now() - record.checkedAt < target.upstream.tagFreshnessMs) {
      return { ...cached, cache: "HIT" };
    }
    const client = this.o.upstreams.client(target.upstream);
    if (cached && client.isOffline()) return this.stale(target, subject, cached, "upstream offline (circuit open)");
    let fresh: { entries: ReferrerDescriptor[]; source: ReferrersAnswer["source"] };
    try {
      const api = await this.fromApi(client, target, subject);
      fresh = api ? { entries: api, source: "api" } : { entries: await this.fromFallbackTag(target, subject), source: "tag-schema" };
    } catch (err) {
      if (cached && ((err instanceof UpstreamError && err.temporary()) || (err instanceof MirrorError && (err.upstreamFault || err.code === "UNAVAILABLE")))) {
        return this.stale(target, subject, cached, (err as Error).message);
      }
      throw err instanceof UpstreamError ? err.toMirrorError("MANIFEST_UNKNOWN") : err;
    }
    const body = storedListOf(fresh.entries, fresh.source);
    const digest = digestOf(body);
    await this.o.store.putManifest(digest, MediaType.ociIndex, body);
    await this.o.store.putTag(up, target.name, key, { digest: digest.value, mediaType: MediaType.ociIndex, size: body.byteLength, checkedAt: this.now() });
    const changed = record?.digest !== undefined && record.digest !== digest.value;
    return { ...fresh, cache: record === undefined || changed || !cached ? "MISS" : "REVALIDATED" };
  }

  /** The upstream's referrers API, every page; undefined when the upstream has no such API (404). */
  private fromApi(client: UpstreamClient, target: Target, subject: Digest): Promise<ReferrerDescriptor[] | undefined> {
    // Every page, bodies included, under the upstream's one total deadline: a trickling page must
    // not hold the flight (and every client waiting on it) past it.
    return client.exchange(`referrers ${subject.value}`, (signal) => this.pages(client, target, subject, signal));
  }

  private async pages(client: UpstreamClient, target: Target, subject: Digest, signal: AbortSignal): Promise<ReferrerDescriptor[] | undefined> {
    const entries: ReferrerDescriptor[] = [];
    let path = `${target.name}/referrers/${subject.value}`;
    for (let page = 0; page < MAX_PAGES; page++) {
      const res = await client.fetch("GET", path, { headers: { accept: MediaType.ociIndex }, scope: `repository:${target.name}:pull`, signal });
      // A registry with the API answers 200 even when nothing refers to the subject (OCI 1.1);
      // 404 is how one without it answers (distribution 2.8: no such route).
      if (page === 0 && res.statusCode === 404) {
        await res.body.dump({ limit: 64 * 1024 }).catch(() => res.body.destroy());
        return undefined;
      }
      await ensureOk(client.name, res, "referrers");
      let body: Buffer;
      try {
        body = await readLimited(res, this.o.manifestMaxBytes);
      } catch (err) {
        if (err instanceof RangeError) throw upstreamFault("MANIFEST_INVALID", `upstream ${client.name} sent a referrers page larger than ${this.o.manifestMaxBytes} bytes; not cached`);
        throw new UpstreamError(client.name, "unreachable", `referrers: ${(err as Error).message}`, undefined, undefined, { cause: err });
      }
      entries.push(...parseList(body, `upstream ${client.name}'s referrers answer for ${target.name}@${subject.value}`));
      const next = nextPage(headerString(res.headers.link), target.name, subject);
      if (!next) return entries;
      path = next;
    }
    throw upstreamFault("MANIFEST_INVALID", `upstream ${client.name} sent more than ${MAX_PAGES} referrers pages for ${target.name}@${subject.value}; not cached`);
  }

  /** The tag-schema fallback: the index clients keep under tag sha256-<hex>; none is an empty list. */
  private async fromFallbackTag(target: Target, subject: Digest): Promise<ReferrerDescriptor[]> {
    const tag = fallbackTag(subject);
    let answer;
    try {
      answer = await this.o.manifests.get(target, { kind: "tag", tag }, [MediaType.ociIndex, MediaType.dockerManifestList]);
    } catch (err) {
      if (err instanceof MirrorError && (err.code === "MANIFEST_UNKNOWN" || err.code === "NAME_UNKNOWN")) return [];
      throw err;
    }
    if (!isIndexType(answer.mediaType)) {
      this.o.log.warn({ upstream: target.upstream.name, name: target.name, tag, mediaType: answer.mediaType }, "referrers fallback tag is not an index; treated as no referrers");
      return [];
    }
    return parseList(answer.body, `the referrers fallback tag ${target.name}:${tag}`);
  }

  private async cachedList(digest: string): Promise<{ entries: ReferrerDescriptor[]; source: ReferrersAnswer["source"] } | undefined> {
    let d: Digest;
    try {
      d = parseDigest(digest);
    } catch {
      return undefined;
    }
    const m = await this.o.store.getManifest(d);
    if (!m) return undefined;
    try {
      const doc = JSON.parse(m.body.toString("utf8")) as { annotations?: Record<string, unknown> };
      const source = doc.annotations?.[SOURCE_ANNOTATION] === "api" ? "api" : "tag-schema";
      return { entries: parseList(m.body, "the cached referrers list"), source };
    } catch {
      return undefined;
    }
  }

  private stale(target: Target, subject: Digest, cached: { entries: ReferrerDescriptor[]; source: ReferrersAnswer["source"] }, reason: string) {
    this.o.log.warn({ upstream: target.upstream.name, name: target.name, subject: subject.value, reason }, "serving cached referrers while upstream is unavailable");
    return { ...cached, cache: "STALE" as const };
  }
}

/** Where a cached list came from, kept in the stored index (never served: clients get indexOf). */
const SOURCE_ANNOTATION = "io.mirror-kit.referrers.source";

function storedListOf(entries: readonly ReferrerDescriptor[], source: ReferrersAnswer["source"]): Buffer {
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: entries, annotations: { [SOURCE_ANNOTATION]: source } }));
}

/** The referrers response: an image index of descriptors (OCI distribution-spec 1.1). */
function indexOf(entries: readonly ReferrerDescriptor[]): Buffer {
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: entries }));
}

/** The descriptors of an index body, each checked; anything malformed refuses the whole answer. */
export function parseList(body: Uint8Array, what: string): ReferrerDescriptor[] {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(body).toString("utf8"));
  } catch {
    throw upstreamFault("MANIFEST_INVALID", `${what} is not JSON; not cached`);
  }
  const manifests = (doc as { manifests?: unknown } | null)?.manifests;
  if (typeof doc !== "object" || doc === null || !(manifests === undefined || manifests === null || Array.isArray(manifests))) {
    throw upstreamFault("MANIFEST_INVALID", `${what} is not an image index; not cached`);
  }
  const out: ReferrerDescriptor[] = [];
  for (const m of (manifests as unknown[] | null | undefined) ?? []) {
    const e = m as Partial<ReferrerDescriptor> | null;
    const ok =
      typeof e === "object" && e !== null &&
      typeof e.mediaType === "string" && isMediaType(e.mediaType) &&
      typeof e.digest === "string" && /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(e.digest) &&
      typeof e.size === "number" && Number.isSafeInteger(e.size) && e.size >= 0 &&
      (e.artifactType === undefined || (typeof e.artifactType === "string" && isMediaType(e.artifactType)));
    if (!ok) throw upstreamFault("MANIFEST_INVALID", `${what} holds a malformed descriptor; not cached`);
    out.push(e as ReferrerDescriptor);
  }
  return out;
}

/** The next page's path (relative to /v2/) from a Link header, only when it stays on this list. */
function nextPage(link: string | undefined, name: string, subject: Digest): string | undefined {
  const next = nextLinkTarget(link);
  if (!next) return undefined;
  // Never follow a link elsewhere: the upstream names only its own pages of this subject.
  if (next.pathname !== `/v2/${name}/referrers/${subject.value}`) return undefined;
  return `${name}/referrers/${subject.value}${next.search}`;
}
