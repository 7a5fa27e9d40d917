// The object layout of the S3 store, in one place: the filesystem layout (../layout.ts) as keys
// under the bucket's root directory, plus what only object storage needs.
//
//   <root>/blobs/sha256/<2 hex>/<hex>            verified content (written once: a conditional PUT or
//                                                 a multipart upload completed after a claim)
//   <root>/manifests/sha256/<2 hex>/<hex>.json   {"mediaType": ...} for blobs that are manifests
//   <root>/repositories/<upstream>/<name>/_tags/<tag>.json, _manifests/sha256/<hex>, _layers/sha256/<hex>
//   <root>/ingest/<replica>~<hex16>-<random>     {"key", "uploadId"}: a multipart upload in progress,
//                                                 so a restarted replica aborts only its own
//   <root>/ingest/claims/<algorithm>/<hex>       who is completing a multipart upload of that digest:
//                                                 taken with If-None-Match: *, so only one replica publishes
//   <root>/ingest/<replica>~<hex16>-<random>-<part size>/<n>   part n (from 1, 5 digits) of a download in
//                                                 progress: other replicas read it while it goes on; the
//                                                 publish copies them server-side into the blob's upload
//   <root>/usage/<replica>.json                  {"<digest>": <ms>}: when that replica last read each
//                                                 blob (written at most every few seconds, not per hit);
//                                                 eviction merges them with the blobs' LastModified
import type { Digest } from "../../oci/digest.js";
import type { LinkKind } from "../store.js";

export class Keys {
  /** `root` is the bucket's root directory without leading or trailing slashes ("" = the bucket's top). */
  constructor(private readonly root: string) {}

  private key(...parts: string[]): string {
    return [this.root, ...parts].filter(Boolean).join("/");
  }

  get ingest(): string {
    return this.key("ingest") + "/";
  }

  get repositories(): string {
    return this.key("repositories") + "/";
  }

  get blobs(): string {
    return this.key("blobs") + "/";
  }

  get manifests(): string {
    return this.key("manifests") + "/";
  }

  get usage(): string {
    return this.key("usage") + "/";
  }

  /** A replica's record of last uses; `area` is its ingest area name (safe characters only). */
  usageOf(area: string): string {
    return `${this.usage}${area.replace(/~$/, "")}.json`;
  }

  /** Everything under the root (multipart uploads are listed by it). */
  get all(): string {
    return this.root ? `${this.root}/` : "";
  }

  blob(d: Digest): string {
    return this.key("blobs", d.algorithm, d.hex.slice(0, 2), d.hex);
  }

  manifestMeta(d: Digest): string {
    return this.key("manifests", d.algorithm, d.hex.slice(0, 2), `${d.hex}.json`);
  }

  /** Part `n` (from 1) of the download in progress named `locator` (S3BlobWriter.locator). */
  part(locator: string, n: number): string {
    return this.key("ingest", locator, String(n).padStart(5, "0"));
  }

  claim(d: Digest): string {
    return this.key("ingest", "claims", d.algorithm, d.hex);
  }

  repository(upstream: string, name: string): string {
    return this.key("repositories", upstream, name) + "/";
  }

  tag(upstream: string, name: string, tag: string): string {
    return `${this.repository(upstream, name)}_tags/${tag}.json`;
  }

  link(upstream: string, name: string, kind: LinkKind, d: Digest): string {
    return `${this.repository(upstream, name)}${kind === "manifest" ? "_manifests" : "_layers"}/${d.algorithm}/${d.hex}`;
  }
}
