// Expected blob sizes, learned from the manifests this mirror served for a repository (their
// descriptors) and from upstream HEAD answers: a blob download is bounded by them, never by trust.
import type { Digest } from "../oci/digest.js";
import type { Target } from "./route.js";

/** Enough for the layers of tens of thousands of images; the oldest entries are forgotten first. */
const MAX_ENTRIES = 200_000;

interface Descriptor {
  digest?: unknown;
  size?: unknown;
}

export class ExpectedSizes {
  private readonly sizes = new Map<string, number>();
  /** Manifests already read for a repository: a warm manifest hit parses nothing. */
  private readonly noted = new Map<string, true>();

  /** Remember the sizes a manifest declares for its config and layers, for this repository only. */
  noteManifest(target: Target, manifestDigest: Digest, body: Buffer): void {
    const seen = key(target, manifestDigest.value);
    if (this.noted.has(seen)) return;
    remember(this.noted, seen, true);
    let parsed: { config?: Descriptor; layers?: unknown; blobs?: unknown };
    try {
      parsed = JSON.parse(body.toString("utf8")) as typeof parsed;
    } catch {
      return;
    }
    const descriptors = [parsed.config, ...(Array.isArray(parsed.layers) ? parsed.layers : []), ...(Array.isArray(parsed.blobs) ? parsed.blobs : [])] as (Descriptor | undefined)[];
    for (const d of descriptors) {
      if (typeof d?.digest === "string" && typeof d.size === "number" && Number.isSafeInteger(d.size) && d.size >= 0) {
        remember(this.sizes, key(target, d.digest), d.size);
      }
    }
  }

  /** Remember the size an upstream HEAD answered for a blob of this repository. */
  noteHead(target: Target, digest: Digest, size: number): void {
    remember(this.sizes, key(target, digest.value), size);
  }

  /** The expected size of a blob of this repository, when a manifest or a HEAD said it. */
  get(target: Target, digest: Digest): number | undefined {
    return this.sizes.get(key(target, digest.value));
  }
}

// Per upstream and repository: a hostile upstream's manifest must not bound another's downloads.
function key(target: Target, digest: string): string {
  return `${target.upstream.name}|${target.name}|${digest}`;
}

function remember<V>(map: Map<string, V>, k: string, v: V): void {
  map.delete(k);
  map.set(k, v);
  if (map.size > MAX_ENTRIES) map.delete(map.keys().next().value as string);
}
