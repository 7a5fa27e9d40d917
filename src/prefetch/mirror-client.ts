// A client of a running mirror's distribution API (what prefetch and export use): one repository of
// one upstream, selected with ?ns=, with the mirror's own auth header and CA when it has them.
import { createHash } from "node:crypto";
import type { Dispatcher } from "undici";
import { MirrorKitError } from "../errors.js";
import { UPSTREAM_ACCEPT } from "../oci/mediatypes.js";
import type { ImageReference } from "../oci/reference.js";

export interface Mirror {
  /** Base URL without credentials: http://127.0.0.1:5000 */
  url: string;
  /** Authorization header for a mirror behind client auth. */
  authorization?: string;
  /** PEM CA bundle for an https mirror with a private CA. */
  ca?: string;
}

export interface Descriptor {
  digest: string;
  size: number;
  mediaType?: string;
  urls?: unknown;
}

export interface FetchedManifest {
  digest: string;
  mediaType: string;
  body: Buffer;
}

export /** The distribution API of the mirror, for one repository of one upstream (selected with ?ns=). */
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

  async manifest(reference: string): Promise<FetchedManifest> {
    const res = await this.request("GET", this.url("manifests", reference), { accept: UPSTREAM_ACCEPT });
    const body = Buffer.from(await res.body.arrayBuffer());
    if (res.statusCode !== 200) throw new MirrorKitError("MK_PREFETCH_MIRROR", `${this.ref.registry}/${this.ref.repository}:${reference}: the mirror answered ${res.statusCode}${ociMessage(body)}`);
    const mediaType = String(res.headers["content-type"] ?? "").split(";")[0]?.trim() ?? "";
    const digest = String(res.headers["docker-content-digest"] ?? "") || `sha256:${createHash("sha256").update(body).digest("hex")}`;
    return { digest, mediaType, body };
  }

  /** A blob's bytes as the mirror streams them (a short body is the caller's to detect). */
  async blobStream(digest: string): Promise<AsyncIterable<Buffer>> {
    const res = await this.request("GET", this.url("blobs", digest));
    if (res.statusCode !== 200) {
      const body = Buffer.from(await res.body.arrayBuffer());
      throw new MirrorKitError("MK_PREFETCH_MIRROR", `blob ${digest}: the mirror answered ${res.statusCode}${ociMessage(body)}`);
    }
    return res.body as AsyncIterable<Buffer>;
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
