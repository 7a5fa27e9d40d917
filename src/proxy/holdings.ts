// Which repository may be served which cached digest. Content is stored once for everyone; it is
// served under a name only when upstream confirmed that repository holds it (distribution's links).
import { type Digest, parseDigest } from "../oci/digest.js";
import { MirrorError } from "../oci/errors.js";
import { indexEntries, UPSTREAM_ACCEPT } from "../oci/mediatypes.js";
import type { LinkKind, LinkStore, ManifestStore } from "../store/store.js";
import { discard, ensureOk } from "../upstream/client.js";
import { UpstreamError } from "../upstream/errors.js";
import type { Target } from "./route.js";
import type { Upstreams } from "./upstreams.js";

/** HIT: known and within cache.maxAge; REVALIDATED: upstream confirmed it just now; STALE: upstream unreachable, known before. */
export type Holding = "HIT" | "REVALIDATED" | "STALE";

export interface HoldingsOptions {
  store: LinkStore & ManifestStore;
  upstreams: Upstreams;
  /** 0 = a link never expires (cache.maxAge). */
  maxAgeMs: number;
  now?: () => number;
}

export class Holdings {
  private readonly now: () => number;
  private readonly confirming = new Map<string, Promise<Holding>>();
  /** Links made by this process, known before (and even if) the file is written. Bounded. */
  private readonly recent = new Map<string, number>();

  constructor(private readonly o: HoldingsOptions) {
    this.now = o.now ?? Date.now;
  }

  /**
   * May `target`'s repository be served cached `d`? Known and fresh: yes, no request. Otherwise its
   * upstream is asked with a HEAD; a 404 (or 401/403) there means this name does not hold it.
   */
  authorize(target: Target, kind: LinkKind, d: Digest): Promise<Holding> {
    const key = keyOf(target, kind, d);
    let flight = this.confirming.get(key);
    if (!flight) {
      flight = this.check(target, kind, d).finally(() => this.confirming.delete(key));
      this.confirming.set(key, flight);
    }
    return flight;
  }

  /** Record that upstream served `d` for this repository (a download, a tag HEAD naming it). */
  link(target: Target, kind: LinkKind, d: Digest): Promise<void> {
    // Known at once, so a request that follows this one needs no HEAD even while the file is written.
    const key = keyOf(target, kind, d);
    this.recent.delete(key);
    this.recent.set(key, this.now());
    if (this.recent.size > RECENT_MAX) this.recent.delete(this.recent.keys().next().value as string);
    return this.o.store.link(target.upstream.name, target.name, kind, d);
  }

  /**
   * A manifest upstream served for this repository: link it and what it references (its config and
   * layers; an index's child manifests, and theirs when cached), so the pull that follows needs no HEADs.
   */
  async linkManifest(target: Target, d: Digest, body: Uint8Array, depth = 0): Promise<void> {
    await this.link(target, "manifest", d);
    for (const child of references(body)) {
      const digest = parseOrUndefined(child.digest);
      if (!digest) continue;
      if (child.kind === "blob") {
        await this.link(target, "blob", digest);
      } else if (depth === 0) {
        const cached = await this.o.store.getManifest(digest);
        if (cached) await this.linkManifest(target, digest, cached.body, depth + 1);
        else await this.link(target, "manifest", digest);
      }
    }
  }

  private async check(target: Target, kind: LinkKind, d: Digest): Promise<Holding> {
    const at = this.recent.get(keyOf(target, kind, d)) ?? (await this.o.store.linkedAt(target.upstream.name, target.name, kind, d));
    if (at !== undefined && (this.o.maxAgeMs === 0 || this.now() - at < this.o.maxAgeMs)) return "HIT";
    const client = this.o.upstreams.client(target.upstream);
    if (at !== undefined && client.isOffline()) return "STALE";
    const notFound = kind === "blob" ? "BLOB_UNKNOWN" : "MANIFEST_UNKNOWN";
    try {
      // A HEAD like any other exchange: bounded by the upstream's total deadline (upstream.deadline).
      await client.exchange(`${kind} ${d.value} (HEAD)`, async (signal) => {
        const res = await client.fetch("HEAD", `${target.name}/${kind === "blob" ? "blobs" : "manifests"}/${d.value}`, {
          ...(kind === "manifest" ? { headers: { accept: UPSTREAM_ACCEPT } } : {}),
          scope: `repository:${target.name}:pull`,
          signal,
        });
        await ensureOk(client.name, res, `${kind} ${d.value}`);
        await discard(res);
      });
      await this.link(target, kind, d);
      return "REVALIDATED";
    } catch (err) {
      if (err instanceof UpstreamError) {
        if (at !== undefined && err.temporary()) return "STALE";
        if (err.status === 404) throw new MirrorError(notFound, `${d.value} is not known in repository ${target.clientName}`);
        throw err.toMirrorError(notFound);
      }
      throw err;
    }
  }
}

const RECENT_MAX = 50_000;

function keyOf(target: Target, kind: LinkKind, d: Digest): string {
  return `${target.upstream.name}|${target.name}|${kind}|${d.value}`;
}

/** Digests a manifest body references: config and layers (blobs), or child manifests (an index). */
function references(body: Uint8Array): { kind: LinkKind; digest: unknown }[] {
  const children = indexEntries(body);
  if (children.length > 0) return children.map((c) => ({ kind: "manifest", digest: c.digest }));
  try {
    const doc = JSON.parse(Buffer.from(body).toString("utf8")) as { config?: { digest?: unknown }; layers?: { digest?: unknown }[] };
    const blobs = [doc.config, ...(Array.isArray(doc.layers) ? doc.layers : [])];
    return blobs.filter((b) => b && typeof b === "object").map((b) => ({ kind: "blob", digest: (b as { digest?: unknown }).digest }));
  } catch {
    return [];
  }
}

function parseOrUndefined(value: unknown): Digest | undefined {
  if (typeof value !== "string") return undefined;
  try {
    return parseDigest(value);
  } catch {
    return undefined;
  }
}
