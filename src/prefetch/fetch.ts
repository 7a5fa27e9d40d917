// Warming a running mirror: each image's manifests (only the requested platforms of an index) and
// blobs are pulled THROUGH the mirror, so it caches them exactly as a client's pull would. A blob the
// mirror already holds is skipped after a HEAD, which is what makes an interrupted prefetch resume.
import { Agent, type Dispatcher } from "undici";
import pLimit from "p-limit";
import { MirrorKitError } from "../errors.js";
import { indexEntries, isIndexType, UPSTREAM_ACCEPT } from "../oci/mediatypes.js";
import { parseImageReference, referenceOf, type ImageReference } from "../oci/reference.js";

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface Mirror {
  /** Base URL without credentials: http://127.0.0.1:5000 */
  url: string;
  /** Authorization header for a mirror behind client auth. */
  authorization?: string;
  /** PEM CA bundle for an https mirror with a private CA. */
  ca?: string;
}

export type PrefetchEvent =
  | { kind: "image-sized"; ref: string; blobs: number; bytes: number }
  | { kind: "bytes"; ref: string; bytes: number }
  | { kind: "blob-done"; ref: string; digest: string; size: number; cached: boolean }
  | { kind: "image-done"; ref: string; result: ImageResult };

export interface ImageResult {
  ref: string;
  ok: boolean;
  error?: string;
  blobs: number;
  /** Bytes the mirror sent now (not already cached). */
  fetchedBytes: number;
  /** Blobs the mirror already had. */
  cachedBlobs: number;
  platforms: string[];
}

export interface PrefetchOptions {
  mirror: Mirror;
  /** Empty: every platform of an index. */
  platforms: readonly Platform[];
  /** Blob downloads at once, over all images. */
  concurrency: number;
  onEvent?: (e: PrefetchEvent) => void;
}

interface Descriptor {
  digest: string;
  size: number;
  mediaType?: string;
  urls?: unknown;
}

export function hostPlatform(): Platform {
  const arch: Record<string, Platform> = {
    x64: { os: "linux", architecture: "amd64" },
    arm64: { os: "linux", architecture: "arm64" },
    arm: { os: "linux", architecture: "arm", variant: "v7" },
    ia32: { os: "linux", architecture: "386" },
    ppc64: { os: "linux", architecture: "ppc64le" },
    s390x: { os: "linux", architecture: "s390x" },
    riscv64: { os: "linux", architecture: "riscv64" },
  };
  return arch[process.arch] ?? { os: "linux", architecture: process.arch };
}

/** "linux/amd64", "linux/arm64/v8"; "all" is handled by the caller (no filter). */
export function parsePlatform(value: string): Platform {
  const parts = value.split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/.test(p))) {
    throw new MirrorKitError("MK_USAGE", `--platform: expected OS/ARCH[/VARIANT] such as linux/amd64, got ${JSON.stringify(value)}`);
  }
  return { os: parts[0] as string, architecture: parts[1] as string, ...(parts[2] ? { variant: parts[2] } : {}) };
}

function platformName(p: { os?: string; architecture?: string; variant?: string } | undefined): string {
  return p ? [p.os, p.architecture, p.variant].filter(Boolean).join("/") : "unknown";
}

function matches(entry: { os?: string; architecture?: string; variant?: string } | undefined, wanted: Platform): boolean {
  return !!entry && entry.os === wanted.os && entry.architecture === wanted.architecture && (wanted.variant === undefined || entry.variant === wanted.variant);
}

export async function prefetch(refs: readonly string[], o: PrefetchOptions): Promise<ImageResult[]> {
  const agent = new Agent({ connect: o.mirror.ca ? { ca: o.mirror.ca } : {}, connections: Math.max(4, o.concurrency * 2) });
  const limit = pLimit(Math.max(1, o.concurrency));
  try {
    return await Promise.all(refs.map((r) => prefetchImage(r, o, agent, limit)));
  } finally {
    await agent.close();
  }
}

async function prefetchImage(value: string, o: PrefetchOptions, agent: Dispatcher, limit: ReturnType<typeof pLimit>): Promise<ImageResult> {
  const result: ImageResult = { ref: value, ok: false, blobs: 0, fetchedBytes: 0, cachedBlobs: 0, platforms: [] };
  try {
    const ref = parseImageReference(value);
    const client = new MirrorClient(o.mirror, ref, agent);
    const top = await client.manifest(referenceOf(ref));
    const images: { platform: string; body: Record<string, unknown> }[] = [];
    if (isIndexType(top.mediaType)) {
      const entries = indexEntries(top.body);
      const chosen = o.platforms.length === 0 ? entries.filter((e) => e.platform?.os !== "unknown") : entries.filter((e) => o.platforms.some((p) => matches(e.platform, p)));
      if (chosen.length === 0) {
        throw new MirrorKitError("MK_PREFETCH_PLATFORM", `no ${o.platforms.map(platformName).join(" or ")} image in the index (it has ${entries.map((e) => platformName(e.platform)).join(", ") || "none"})`);
      }
      for (const e of chosen) {
        const child = await client.manifest(e.digest);
        images.push({ platform: platformName(e.platform), body: JSON.parse(child.body.toString("utf8")) as Record<string, unknown> });
      }
    } else {
      images.push({ platform: "single", body: JSON.parse(top.body.toString("utf8")) as Record<string, unknown> });
    }
    result.platforms = images.map((i) => i.platform);
    const blobs = new Map<string, Descriptor>();
    for (const { body } of images) {
      const layers = Array.isArray(body.layers) ? (body.layers as Descriptor[]) : [];
      for (const d of [body.config as Descriptor | undefined, ...layers]) {
        // Foreign (non-distributable) layers live elsewhere; a registry does not serve them.
        if (d && typeof d.digest === "string" && !Array.isArray(d.urls)) blobs.set(d.digest, d);
      }
    }
    result.blobs = blobs.size;
    o.onEvent?.({ kind: "image-sized", ref: value, blobs: blobs.size, bytes: [...blobs.values()].reduce((n, d) => n + (d.size ?? 0), 0) });
    await Promise.all(
      [...blobs.values()].map((d) =>
        limit(async () => {
          const { cached, bytes } = await client.blob(d, (n) => o.onEvent?.({ kind: "bytes", ref: value, bytes: n }));
          if (cached) result.cachedBlobs++;
          else result.fetchedBytes += bytes;
          o.onEvent?.({ kind: "blob-done", ref: value, digest: d.digest, size: d.size, cached });
        }),
      ),
    );
    result.ok = true;
  } catch (err) {
    result.error = (err as Error).message;
  }
  o.onEvent?.({ kind: "image-done", ref: value, result });
  return result;
}

/** The distribution API of the mirror, for one repository of one upstream (selected with ?ns=). */
class MirrorClient {
  constructor(
    private readonly mirror: Mirror,
    private readonly ref: ImageReference,
    private readonly agent: Dispatcher,
  ) {}

  private url(kind: "manifests" | "blobs", reference: string): string {
    return `${this.mirror.url}/v2/${this.ref.repository}/${kind}/${reference}?ns=${encodeURIComponent(this.ref.registry)}`;
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { "user-agent": "mirror-kit-prefetch", ...(this.mirror.authorization ? { authorization: this.mirror.authorization } : {}), ...extra };
  }

  async manifest(reference: string): Promise<{ mediaType: string; body: Buffer }> {
    const res = await this.request("GET", this.url("manifests", reference), { accept: UPSTREAM_ACCEPT });
    const body = Buffer.from(await res.body.arrayBuffer());
    if (res.statusCode !== 200) throw new MirrorKitError("MK_PREFETCH_MIRROR", `${this.ref.registry}/${this.ref.repository}:${reference}: the mirror answered ${res.statusCode}${ociMessage(body)}`);
    const mediaType = String(res.headers["content-type"] ?? "").split(";")[0]?.trim() ?? "";
    return { mediaType, body };
  }

  /** HEAD first: a blob the mirror has is not downloaded again. Otherwise GET it to the end. */
  async blob(d: Descriptor, progress: (bytes: number) => void): Promise<{ cached: boolean; bytes: number }> {
    const url = this.url("blobs", d.digest);
    const head = await this.request("HEAD", url);
    await head.body.dump();
    if (head.statusCode === 200 && head.headers["x-mirror-cache"] === "HIT") {
      progress(d.size);
      return { cached: true, bytes: 0 };
    }
    const res = await this.request("GET", url);
    if (res.statusCode !== 200) {
      const body = Buffer.from(await res.body.arrayBuffer());
      throw new MirrorKitError("MK_PREFETCH_MIRROR", `blob ${d.digest}: the mirror answered ${res.statusCode}${ociMessage(body)}`);
    }
    let bytes = 0;
    for await (const chunk of res.body) {
      bytes += (chunk as Buffer).byteLength;
      progress((chunk as Buffer).byteLength);
    }
    // The mirror verifies the digest before it publishes; a short body here means it cut the
    // response off (an upstream failure), so the blob is not in the cache.
    if (typeof d.size === "number" && bytes !== d.size) throw new MirrorKitError("MK_PREFETCH_MIRROR", `blob ${d.digest}: got ${bytes} of ${d.size} bytes`);
    return { cached: false, bytes };
  }

  private async request(method: "GET" | "HEAD", url: string, extra: Record<string, string> = {}): Promise<Dispatcher.ResponseData> {
    const u = new URL(url);
    try {
      const res = await this.agent.request({ origin: u.origin, path: u.pathname + u.search, method, headers: this.headers(extra) });
      res.body.on("error", () => undefined);
      return res;
    } catch (err) {
      throw new MirrorKitError("MK_PREFETCH_UNREACHABLE", `cannot reach the mirror at ${this.mirror.url}: ${(err as { code?: string }).code ?? (err as Error).message}`);
    }
  }
}

function ociMessage(body: Buffer): string {
  try {
    const first = (JSON.parse(body.toString("utf8")) as { errors?: { code?: string; message?: string }[] }).errors?.[0];
    return first ? ` (${first.code ?? ""}: ${String(first.message ?? "").slice(0, 200)})` : "";
  } catch {
    return "";
  }
}
