// Pull-through blobs: local first (published blobs are shared by every repository and upstream),
// else one shared fill per upstream and digest, left for one's own when it lets a client down.
import { type ClusterFlight, sharedFailure } from "../cluster/flight.js";
import { followReader } from "../cluster/follow.js";
import { ANNOUNCE_MS, announce, announcementKey, readAnnouncement } from "../cluster/progress.js";
import type { Leftover } from "../cluster/takeover.js";
import type { Digest } from "../oci/digest.js";
import { upstreamFault } from "../oci/errors.js";
import type { Logger } from "../observe/log.js";
import type { Metrics } from "../observe/metrics.js";
import type { StorageHealth } from "../store/health.js";
import { type BlobStore, hasPartialReads, type OpenBlob } from "../store/store.js";
import { discard, ensureOk, headerString } from "../upstream/client.js";
import { UpstreamError } from "../upstream/errors.js";
import { BlobFill, type FillReader } from "./fill.js";
import { cachedReader, hedgedReader, joinerPatience, type OwnSource } from "./hedge.js";
import type { Holdings } from "./holdings.js";
import type { ThroughputFloor } from "./pace.js";
import type { Target } from "./route.js";
import type { ExpectedSizes } from "./sizes.js";
import type { Upstreams } from "./upstreams.js";

/** Where a blob answer comes from; the holder must close / release it when the response is over. */
export type BlobSource =
  | { kind: "cache"; size: number; blob: OpenBlob }
  /** verified: the download already finished and checked out; only the fsync and rename are left. */
  | { kind: "fill"; size: number | undefined; reader: FillReader; verified: boolean; notStored?: string };

export interface BlobServiceOptions {
  store: BlobStore;
  /** What each repository is known to hold: a cached blob is served only under those names. */
  holdings: Holdings;
  upstreams: Upstreams;
  metrics: Metrics;
  log: Logger;
  maxResumes: number;
  floor: ThroughputFloor;
  orphanTimeoutMs: number;
  /** Sizes declared by served manifests and HEAD answers, per repository. */
  sizes: ExpectedSizes;
  maxBlobBytes: number;
  health?: StorageHealth;
  /** Replicas sharing the store (config redis): one of them downloads a digest. Absent: this one alone. */
  flight?: ClusterFlight;
}

// A finished fill stays findable briefly, so a request that saw "not cached" just before the
// rename joins it instead of starting a second download.
const FINISHED_GRACE_MS = 2_000;

/**
 * Fills are per upstream: a client of one upstream never waits on another upstream's download,
 * which may trickle or lie. Across upstreams only verified bytes are shared (published blobs, or a
 * fill whose every byte is already checked). Within one upstream a client joins another
 * repository's fill (shared base layers are the common case), but only as long as it keeps the
 * throughput floor (hedge.ts); so each repository has its own slot, for the fill it falls back on.
 */
function fillKey(target: Target, digest: Digest): string {
  return `${sourceOf(target)}|${digest.value}`;
}

/** One lease per upstream and digest across replicas (config redis), whichever repository asks. */
function leaseKey(target: Target, digest: Digest): string {
  return `${target.upstream.name}|${digest.value}`;
}

export class BlobService {
  private readonly fills = new Map<string, BlobFill>();
  /** Waits for the cluster's lease, one per digest, so this replica's requests share one wait. */
  private readonly claims = new Map<string, Promise<BlobFill | "published">>();

  constructor(private readonly o: BlobServiceOptions) {}

  /** Size only: local, a fill in progress, or an upstream HEAD (nothing is downloaded). */
  async stat(target: Target, digest: Digest): Promise<{ size: number; cached: boolean }> {
    const local = await this.o.store.statBlob(digest);
    if (local !== undefined) {
      await this.o.holdings.authorize(target, "blob", digest);
      return { size: local, cached: true };
    }
    const fill = this.fills.get(fillKey(target, digest)) ?? this.verifiedFill(digest) ?? this.siblingFill(target, digest);
    if (fill?.size !== undefined) {
      if (fill.source !== sourceOf(target)) await this.o.holdings.authorize(target, "blob", digest);
      return { size: fill.size, cached: fill.isVerified };
    }
    const client = this.o.upstreams.client(target.upstream);
    try {
      const res = await client.exchange(`blob ${digest.value} (HEAD)`, async (signal) => {
        const res = await client.fetch("HEAD", `${target.name}/blobs/${digest.value}`, { scope: `repository:${target.name}:pull`, signal });
        await ensureOk(client.name, res, `blob ${digest.value}`);
        await discard(res);
        return res;
      });
      const size = Number(headerString(res.headers["content-length"]));
      if (!Number.isSafeInteger(size) || size < 0) throw upstreamFault("UNAVAILABLE", `upstream ${client.name} sent no size for ${digest.value}`);
      this.o.sizes.noteHead(target, digest, size);
      // Not fatal: an unwritable disk still answers the HEAD (Holdings keeps the link in memory).
      await this.o.holdings.link(target, "blob", digest).catch((err: unknown) => this.o.log.warn({ digest: digest.value, err: (err as Error).message }, "cannot record the repository link"));
      return { size, cached: false };
    } catch (err) {
      throw err instanceof UpstreamError ? err.toMirrorError("BLOB_UNKNOWN") : err;
    }
  }

  /** The bytes of a blob: from the cache, or streamed from the single shared download. */
  async get(target: Target, digest: Digest): Promise<BlobSource> {
    const joined = this.joinable(target, digest);
    // A finished fill has published its blob: that is a cache hit, checked like any other.
    if (joined?.isRunning) {
      // Another repository's download: joined only once this repository is known to hold the blob too.
      if (joined.source !== sourceOf(target)) await this.o.holdings.authorize(target, "blob", digest);
      return this.fromFill(target, joined, digest);
    }
    // Opened, not just checked: eviction may remove the file at any moment, an open one stays readable.
    const blob = await this.o.store.openBlob(digest);
    if (blob) {
      try {
        await this.o.holdings.authorize(target, "blob", digest);
      } catch (err) {
        await blob.close();
        throw err;
      }
      return { kind: "cache", size: blob.size, blob };
    }
    // Re-check after the await: another request may have started the download meanwhile.
    const fill = this.joinable(target, digest) ?? (this.o.flight ? await this.clusterFill(target, digest) : this.startFill(target, digest));
    // Another replica downloaded it: served from the store like any other hit.
    if (fill === "published") return this.get(target, digest);
    // Another replica is downloading it: streamed from the store as its bytes land.
    if (!(fill instanceof BlobFill)) return fill;
    return this.fromFill(target, fill, digest);
  }

  /**
   * This repository's fill, any fill whose bytes are all verified, or another repository's fill from
   * the same upstream. Not one streaming past a full disk: what its clients have read is gone from
   * memory, so a newcomer downloads its own.
   */
  private joinable(target: Target, digest: Digest): BlobFill | undefined {
    const own = this.fills.get(fillKey(target, digest));
    return own && !own.notStored ? own : (this.verifiedFill(digest) ?? this.siblingFill(target, digest));
  }

  /** Another repository's fill of this digest from the same upstream, still downloading. */
  private siblingFill(target: Target, digest: Digest): BlobFill | undefined {
    for (const f of this.fills.values()) if (f.digest === digest.value && f.upstream === target.upstream.name && f.isRunning && !f.notStored) return f;
    return undefined;
  }

  /** Another upstream's fill of this digest whose bytes are all here and checked: safe to share. */
  private verifiedFill(digest: Digest): BlobFill | undefined {
    for (const f of this.fills.values()) if (f.digest === digest.value && f.isVerified && f.isRunning && !f.notStored) return f;
    return undefined;
  }

  /** Abort every download (shutdown): temp files are discarded, nothing half-written is published. */
  cancelAll(reason: string): Promise<unknown> {
    const fills = [...this.fills.values()];
    for (const f of fills) f.cancel(reason);
    return Promise.allSettled(fills.map((f) => f.done));
  }

  get activeFills(): number {
    return [...this.fills.values()].filter((f) => f.isRunning).length;
  }

  private async fromFill(target: Target, fill: BlobFill, digest: Digest, retried = false): Promise<BlobSource> {
    const shared = fill.source !== sourceOf(target);
    try {
      // Another repository's download that has not even answered within the joiner's patience is
      // not waited for: it may be that repository's hostile upstream.
      if (shared && !retried && !(await settlesWithin(fill.ready, joinerPatience(this.o.floor)))) {
        this.o.log.warn({ digest: digest.value, upstream: target.upstream.name }, "another repository's download of this blob has not started answering; downloading for this repository");
        return this.fromFill(target, this.ownFill(target, digest), digest, true);
      }
      await fill.ready;
    } catch (err) {
      // Joined a download another client started for another repository (a wrong name, another
      // upstream): its failure says nothing about this request, which tries its own source once.
      if (!retried && shared) return this.fromFill(target, this.ownFill(target, digest), digest, true);
      throw err instanceof UpstreamError ? err.toMirrorError("BLOB_UNKNOWN") : err;
    }
    // Upstream is sending it for this repository: later hits under this name need no HEAD. Recorded
    // before the first byte goes out, so a client that has the whole blob finds the link too.
    if (fill.source === sourceOf(target) && !fill.alreadyCached) {
      this.o.holdings.link(target, "blob", digest).catch((err: unknown) => this.o.log.warn({ digest: digest.value, err: (err as Error).message }, "cannot record the repository link; the next hit under this name asks upstream"));
    }
    if (fill.alreadyCached || !fill.isRunning) {
      const blob = await this.o.store.openBlob(digest);
      if (blob) return { kind: "cache", size: blob.size, blob };
      // Published and already evicted again (a tiny cap): download anew.
      const next = this.fills.get(fillKey(target, digest));
      return this.fromFill(target, next && next !== fill ? next : this.startFill(target, digest), digest, retried);
    }
    const notStored = fill.notStored;
    // Another repository's bytes not yet verified: followed only while they keep coming (hedge.ts).
    const reader =
      shared && !fill.isVerified && !retried
        ? hedgedReader({ shared: fill, own: () => this.ownSource(target, digest), digest, floor: this.o.floor, log: this.o.log })
        : fill.reader();
    return { kind: "fill", size: fill.size, reader, verified: fill.isVerified && !notStored, ...(notStored ? { notStored } : {}) };
  }

  /** This repository's running fill, or a new one. */
  private ownFill(target: Target, digest: Digest): BlobFill {
    const own = this.fills.get(fillKey(target, digest));
    return own && own.isRunning && !own.notStored ? own : this.startFill(target, digest);
  }

  /** Where a client that gave up on another repository's download reads the rest. */
  private async ownSource(target: Target, digest: Digest): Promise<OwnSource> {
    const source = await this.fromFill(target, this.ownFill(target, digest), digest, true);
    return source.kind === "cache" ? { reader: cachedReader(source.blob), size: source.size } : { reader: source.reader, size: source.size };
  }

  /**
   * This replica's fill once it holds the cluster's lease, "published" when another replica's
   * landed, or, while another replica downloads it, a source that streams its bytes as they land.
   */
  private async clusterFill(target: Target, digest: Digest): Promise<BlobFill | "published" | BlobSource> {
    const flight = this.o.flight as ClusterFlight;
    // Announced per upstream and digest, as the lease is: the holder may be downloading for another repository.
    const key = announcementKey(leaseKey(target, digest));
    const claim = this.claim(target, digest);
    const store = this.o.store;
    if (!hasPartialReads(store)) return claim;
    // Whichever comes first: the lease (or the publish), or the holder's first bytes in the store.
    const settled = claim.then(
      (v) => ({ v }),
      (e: unknown) => ({ e }),
    );
    for (;;) {
      const first = await Promise.race([settled, new Promise<undefined>((r) => setTimeout(() => r(undefined), ANNOUNCE_MS).unref())]);
      if (first) {
        if ("e" in first) throw first.e;
        return first.v;
      }
      const a = await readAnnouncement(flight.coordinator, key);
      // Nothing readable yet; or everything is, and the holder is publishing it: served from the
      // store in a moment.
      if (a?.state !== "running" || a.mark === 0 || a.mark === a.size) continue;
      // Served under this name only when this repository is known to hold it, as a cached blob is.
      await this.o.holdings.authorize(target, "blob", digest);
      const reader = followReader({
        store,
        digest,
        source: sourceOf(target),
        announcement: () => readAnnouncement(flight.coordinator, key),
        // This replica took the download over (for this repository or another of this upstream).
        local: () => {
          const own = this.fills.get(fillKey(target, digest)) ?? this.siblingFill(target, digest);
          return own?.isRunning && !own.notStored ? own : undefined;
        },
        pollMs: ANNOUNCE_MS,
        stallMs: flight.stallMs,
        size: a.size,
      });
      return { kind: "fill", size: a.size, reader, verified: false };
    }
  }

  /** Waits for the cluster's lease, one per digest in this replica; a lease taken starts the fill. */
  private claim(target: Target, digest: Digest): Promise<BlobFill | "published"> {
    const flight = this.o.flight as ClusterFlight;
    const key = leaseKey(target, digest);
    let claim = this.claims.get(key);
    if (!claim) {
      claim = (async () => {
        const got = await flight.claim(`blob:${key}`, sourceOf(target), async () => (await this.o.store.statBlob(digest)) !== undefined);
        if (got === "published") return got;
        const joined = this.joinable(target, digest);
        const failureOf = (err: unknown) => sharedFailure(sourceOf(target), err, "BLOB_UNKNOWN");
        if (joined) {
          joined.done.then(
            () => got.release(),
            (err: unknown) => got.release(failureOf(err)),
          );
          return joined;
        }
        const fill = this.startFill(target, digest, await this.leftover(key, digest));
        // Released once the outcome is announced: a replica taking the lease then sees it.
        void announce(flight.coordinator, announcementKey(key), fill, failureOf, this.o.log)
          .catch(() => undefined)
          .then(() => fill.done)
          .then(
            () => got.release(),
            (err: unknown) => got.release(failureOf(err)),
          );
        return fill;
      })().finally(() => this.claims.delete(key));
      // Clients following the holder's bytes may not wait for this: its failure must not go unobserved.
      claim.catch(() => undefined);
      this.claims.set(key, claim);
    }
    return claim;
  }

  /** What a replica that held this download before left in the store (it died or gave up): resumed from. */
  private async leftover(key: string, digest: Digest): Promise<Leftover | undefined> {
    const store = this.o.store;
    const flight = this.o.flight as ClusterFlight;
    if (!hasPartialReads(store)) return undefined;
    const a = await readAnnouncement(flight.coordinator, announcementKey(key));
    if (a?.state !== "running" || a.mark === 0) return undefined;
    const partial = await store.openPartial(digest, a.locator).catch(() => undefined);
    return partial ? { partial, mark: a.mark, locator: a.locator } : undefined;
  }

  private startFill(target: Target, digest: Digest, resume?: Leftover): BlobFill {
    const fill = new BlobFill({
      client: this.o.upstreams.client(target.upstream),
      store: this.o.store,
      digest,
      name: target.name,
      maxResumes: this.o.maxResumes,
      floor: this.o.floor,
      orphanTimeoutMs: this.o.orphanTimeoutMs,
      expectedSize: this.o.sizes.get(target, digest),
      maxBlobBytes: this.o.maxBlobBytes,
      health: this.o.health,
      metrics: this.o.metrics,
      log: this.o.log,
      ...(resume ? { resume } : {}),
    });
    const key = fillKey(target, digest);
    this.fills.set(key, fill);
    const forget = () => {
      if (this.fills.get(key) === fill) this.fills.delete(key);
    };
    fill.done.then(
      () => setTimeout(forget, FINISHED_GRACE_MS).unref(),
      (err: unknown) => {
        // Waiters already attached share this failure; the next request starts afresh.
        forget();
        this.o.log.warn({ digest: digest.value, upstream: target.upstream.name, err: (err as Error).message }, "blob download failed; nothing cached");
      },
    );
    return fill;
  }
}

/** How a fill names the repository it downloads for (BlobFill.source). */
function sourceOf(target: Target): string {
  return `${target.upstream.name}|${target.name}`;
}

/** Whether `p` settles (either way) within `ms`. */
function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const settled = p.then(
    () => true,
    () => true,
  );
  return Promise.race([settled, late]).finally(() => clearTimeout(timer));
}
