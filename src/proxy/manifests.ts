// Pull-through manifests. By digest: local first, immutable. By tag: served from cache within the
// freshness window; past it revalidated with a HEAD (a GET only when the digest is new — Docker Hub
// counts GETs); when upstream is down, times out, errs or rate-limits, the cached tag is served stale.
import type { Coordinator } from "../cluster/coordinator.js";
import { type Digest, digestOf, parseDigest } from "../oci/digest.js";
import { MirrorError, upstreamFault } from "../oci/errors.js";
import { accepts, indexEntries, isIndexType, servedManifestType, sniffManifestType, UPSTREAM_ACCEPT } from "../oci/mediatypes.js";
import type { Reference } from "../oci/names.js";
import type { Logger } from "../observe/log.js";
import type { Metrics } from "../observe/metrics.js";
import { describeFault, storageFault } from "../store/faults.js";
import type { StorageHealth } from "../store/health.js";
import type { ManifestStore, StoredManifest, TagStore } from "../store/store.js";
import { discard, ensureOk, headerString, readLimited, type UpstreamClient } from "../upstream/client.js";
import { UpstreamError } from "../upstream/errors.js";
import type { FreshnessPolicy } from "./freshness.js";
import type { Holdings } from "./holdings.js";
import type { Target } from "./route.js";
import type { ExpectedSizes } from "./sizes.js";
import { Unstored } from "./unstored.js";
import type { Upstreams } from "./upstreams.js";

export type CacheResult = "HIT" | "MISS" | "REVALIDATED" | "STALE";

export interface ManifestAnswer {
  digest: Digest;
  mediaType: string;
  body: Buffer;
  cache: CacheResult;
  /** false: the cache could not be written, the answer is served without being stored. */
  stored?: false;
}

export interface ManifestServiceOptions {
  store: ManifestStore & TagStore;
  /** What each repository is known to hold: a cached digest is served only under those names. */
  holdings: Holdings;
  upstreams: Upstreams;
  metrics: Metrics;
  log: Logger;
  manifestMaxBytes: number;
  /** Per-tag freshness (cache.rules, immutable tags); absent: the upstream's window for every tag. */
  freshness?: FreshnessPolicy;
  /** Media types served besides the built-in manifest types (cache.manifestMediaTypes). */
  allowedMediaTypes?: ReadonlySet<string>;
  /** Told every manifest served, so blob downloads know the sizes its descriptors declare. */
  sizes?: ExpectedSizes;
  /** Told when a write fails with a storage fault (/healthz reports it). */
  health?: StorageHealth;
  now?: () => number;
  /** Replicas sharing the store (config redis): one of them revalidates a tag at a time. */
  coordinator?: Coordinator;
}

export class ManifestService {
  private readonly flights = new Map<string, Promise<ManifestAnswer>>();
  private readonly unstored = new Unstored();
  private readonly now: () => number;

  constructor(private readonly o: ManifestServiceOptions) {
    this.now = o.now ?? Date.now;
  }

  /** The manifest for a reference, negotiated against the client's Accept list. */
  async get(target: Target, ref: Reference, accepted: readonly string[]): Promise<ManifestAnswer> {
    const answer = await this.resolve(target, ref);
    if (accepts(accepted, answer.mediaType)) return answer;
    // A client that cannot read indexes asked for a multi-arch tag: give it linux/amd64, as
    // distribution does, rather than a body it cannot parse. By digest, the bytes are what was asked.
    if (ref.kind === "tag" && isIndexType(answer.mediaType)) {
      const child = indexEntries(answer.body).find((e) => e.platform?.os === "linux" && e.platform.architecture === "amd64");
      if (child) {
        const picked = await this.resolve(target, { kind: "digest", digest: parseDigest(child.digest) });
        if (accepts(accepted, picked.mediaType)) return picked;
      }
    }
    throw new MirrorError("MANIFEST_UNKNOWN", `manifest is ${answer.mediaType}, which the client's Accept header does not allow`);
  }

  private resolve(target: Target, ref: Reference): Promise<ManifestAnswer> {
    const key = `${target.upstream.name}|${target.name}|${ref.kind === "tag" ? ref.tag : ref.digest.value}`;
    let flight = this.flights.get(key);
    if (!flight) {
      flight = (ref.kind === "tag" ? this.byTag(target, ref.tag) : this.byDigest(target, ref.digest)).finally(() => this.flights.delete(key));
      this.flights.set(key, flight);
    }
    return flight.then((answer) => {
      this.o.metrics.cacheResults.inc({ kind: "manifest", result: answer.cache.toLowerCase() });
      this.o.sizes?.noteManifest(target, answer.digest, answer.body);
      return answer;
    });
  }

  private async byDigest(target: Target, digest: Digest): Promise<ManifestAnswer> {
    const local = await this.getManifest(digest);
    // Content-addressed and stored once, but served under a name only when upstream confirmed that
    // repository holds it: a private manifest is not readable by digest under any other name.
    if (local) {
      const holding = await this.o.holdings.authorize(target, "manifest", digest);
      return { digest, ...local, cache: holding === "REVALIDATED" ? "HIT" : holding };
    }
    const client = this.o.upstreams.client(target.upstream);
    try {
      const fetched = await this.download(client, target, digest.value, digest);
      const linked = await this.persist(`link ${digest.value}`, () => this.o.holdings.linkManifest(target, digest, fetched.body));
      return { ...fetched, cache: "MISS", ...(linked && fetched.stored !== false ? {} : { stored: false as const }) };
    } catch (err) {
      throw err instanceof UpstreamError ? err.toMirrorError("MANIFEST_UNKNOWN") : err;
    }
  }

  private async byTag(target: Target, tag: string): Promise<ManifestAnswer> {
    const { store } = this.o;
    const up = target.upstream.name;
    const tagKey = `${up}|${target.name}|${tag}`;
    const record = this.unstored.getTag(tagKey) ?? (await store.getTag(up, target.name, tag));
    const cached = record ? await this.cachedManifest(record.digest) : undefined;
    const client = this.o.upstreams.client(target.upstream);
    // A low rate-limit budget stretches the window (rateLimit.reserve / backoffFreshness).
    const windowMs = client.budget.freshnessMs(this.o.freshness?.windowMs(target.upstream, target.name, tag) ?? target.upstream.tagFreshnessMs);
    // checkedAt 0 is `mirror-kit refresh`: revalidate now, whatever the window (immutable and pinned too).
    if (record && cached && record.checkedAt > 0 && this.now() - record.checkedAt < windowMs) {
      return { ...cached, cache: "HIT" };
    }
    if (cached && client.isOffline()) return this.stale(target, tag, cached, "upstream offline (circuit open)");
    // Another replica is asking upstream about this tag right now; its answer lands in the shared store.
    const lease = cached && this.o.coordinator ? await this.o.coordinator.tryLease(`tag:${up}|${target.name}|${tag}`) : undefined;
    if (cached && this.o.coordinator && !lease) return { ...cached, cache: "HIT" };
    try {
      const head = await client.exchange(`manifest ${tag} (HEAD)`, async (signal) => {
        const res = await client.fetch("HEAD", `${target.name}/manifests/${tag}`, { headers: { accept: UPSTREAM_ACCEPT }, scope: scopeOf(target), signal });
        await discard(res);
        return res;
      });
      if (head.statusCode === 404) {
        // Upstream is authoritative about a tag it says is gone.
        this.unstored.deleteTag(tagKey);
        await this.persist(`untag ${tag}`, () => store.deleteTag(up, target.name, tag));
      }
      let answer: ManifestAnswer | undefined;
      const headDigest = head.statusCode === 200 ? optionalDigest(headerString(head.headers["docker-content-digest"])) : undefined;
      if (head.statusCode === 200 && headDigest) {
        const known = await this.getManifest(headDigest);
        answer = known
          ? { digest: headDigest, ...known, cache: record?.digest === headDigest.value ? "REVALIDATED" : "HIT" }
          : { ...(await this.download(client, target, headDigest.value, headDigest)), cache: "MISS" };
      } else if (head.statusCode === 200 || head.statusCode === 405) {
        // No digest in the HEAD answer (or HEAD unsupported): only a GET by tag can tell.
        answer = { ...(await this.download(client, target, tag, undefined)), cache: "MISS" };
      } else {
        await ensureOk(client.name, head, `manifest ${tag}`);
        throw new UpstreamError(client.name, "status", `manifest ${tag}: unexpected status ${head.statusCode}`, head.statusCode);
      }
      const tagRecord = { digest: answer.digest.value, mediaType: answer.mediaType, size: answer.body.byteLength, checkedAt: this.now() };
      const tagged = await this.persist(`tag ${tag}`, () => store.putTag(up, target.name, tag, tagRecord));
      // Linked even when the tag could not be written: Holdings remembers the link in memory.
      const body = answer.body;
      const linked = await this.persist(`link ${answer.digest.value}`, () => this.o.holdings.linkManifest(target, answer.digest, body));
      if (!tagged) this.unstored.putTag(tagKey, tagRecord);
      else this.unstored.deleteTag(tagKey);
      return tagged && linked && answer.stored !== false ? answer : { ...answer, stored: false };
    } catch (err) {
      if (err instanceof UpstreamError) {
        if (cached && err.temporary()) return this.stale(target, tag, cached, err.message);
        throw err.toMirrorError("MANIFEST_UNKNOWN");
      }
      // Content that fails its checks (a captive portal's HTML, a truncated body) is an upstream
      // fault too: the verified copy we have is the better answer.
      if (cached && err instanceof MirrorError && err.upstreamFault) {
        return this.stale(target, tag, cached, err.message);
      }
      throw err;
    } finally {
      void lease?.release();
    }
  }

  private stale(target: Target, tag: string, cached: StoredManifest & { digest: Digest }, reason: string): ManifestAnswer {
    this.o.log.warn({ upstream: target.upstream.name, name: target.name, tag, reason }, "serving cached tag while upstream is unavailable");
    return { ...cached, cache: "STALE" };
  }

  private async cachedManifest(digest: string): Promise<(StoredManifest & { digest: Digest }) | undefined> {
    const d = optionalDigest(digest);
    const m = d ? await this.getManifest(d) : undefined;
    return d && m ? { digest: d, ...m } : undefined;
  }

  /** GET a manifest, check it (size, JSON, digest), and store it byte for byte. */
  private async download(client: UpstreamClient, target: Target, reference: string, expected: Digest | undefined): Promise<Omit<ManifestAnswer, "cache">> {
    // Headers and body under one deadline: a trickling body must not hold the flight (and every
    // client waiting on it) past it.
    const { res, body } = await client.exchange(`manifest ${reference}`, async (signal) => {
      const res = await client.fetch("GET", `${target.name}/manifests/${reference}`, { headers: { accept: UPSTREAM_ACCEPT }, scope: scopeOf(target), signal });
      await ensureOk(client.name, res, `manifest ${reference}`);
      try {
        return { res, body: await readLimited(res, this.o.manifestMaxBytes) };
      } catch (err) {
        if (err instanceof RangeError) throw upstreamFault("MANIFEST_INVALID", `upstream manifest ${reference} is larger than ${this.o.manifestMaxBytes} bytes`);
        throw new UpstreamError(client.name, "unreachable", `manifest ${reference}: ${(err as Error).message}`, undefined, undefined, { cause: err });
      }
    });
    const announced = optionalDigest(headerString(res.headers["docker-content-digest"]));
    const digest = expected ?? (announced ? digestOf(body, announced.algorithm) : digestOf(body));
    const actual = digestOf(body, digest.algorithm);
    if (actual.value !== digest.value || (announced && announced.value !== actual.value)) {
      throw upstreamFault("DIGEST_INVALID", `upstream ${client.name} sent manifest ${reference} whose content does not match its digest; not cached`);
    }
    if (sniffManifestType(body) === undefined) throw upstreamFault("MANIFEST_INVALID", `upstream ${client.name} sent manifest ${reference} that is not a JSON manifest; not cached`);
    const mediaType = servedManifestType(headerString(res.headers["content-type"]), body, this.o.allowedMediaTypes);
    if (mediaType === undefined) {
      throw upstreamFault("MANIFEST_INVALID", `upstream ${client.name} sent manifest ${reference} whose media type is not a manifest type (allow more with cache.manifestMediaTypes); not cached`);
    }
    const stored = await this.persist(`manifest ${digest.value}`, () => this.o.store.putManifest(digest, mediaType, body));
    if (!stored) this.unstored.putManifest(digest.value, { mediaType, body });
    return { digest, mediaType, body, ...(stored ? {} : { stored: false as const }) };
  }

  /** The cache, then what was fetched while the cache could not be written. */
  private async getManifest(digest: Digest): Promise<(StoredManifest & { stored?: false }) | undefined> {
    const local = await this.o.store.getManifest(digest);
    if (local) return local;
    const kept = this.unstored.getManifest(digest.value);
    return kept ? { ...kept, stored: false } : undefined;
  }

  /**
   * Write to the cache; a storage fault (read-only, full, failing disk) is reported and answered
   * false, so what was fetched is still served: the client gets its answer, marked not stored.
   */
  private async persist(what: string, write: () => Promise<void>): Promise<boolean> {
    try {
      await write();
      return true;
    } catch (err) {
      const code = storageFault(err);
      if (!code) throw err;
      this.o.health?.report(err);
      this.o.log.warn({ what, err: describeFault(code) }, "cache storage cannot be written; serving without storing");
      return false;
    }
  }
}

function scopeOf(target: Target): string {
  return `repository:${target.name}:pull`;
}

function optionalDigest(value: string | undefined): Digest | undefined {
  if (!value) return undefined;
  try {
    return parseDigest(value.trim());
  } catch {
    return undefined;
  }
}
