// The on-disk layout of the cache, in one place. Every path is built from values that were
// validated first (digests are fixed-length hex; names and tags match the distribution grammar).
//
//   <root>/
//   ├── blobs/sha256/<2 hex>/<hex>            verified content: layers, configs and manifests alike,
//   │                                          shared by every repository and every upstream
//   ├── manifests/sha256/<2 hex>/<hex>.json   {"mediaType": ...} for blobs that are manifests
//   ├── repositories/<upstream>/<name>/
//   │   ├── _tags/<tag>.json                  {"digest", "mediaType", "size", "checkedAt"}: the tag as
//   │   │                                      upstream last confirmed it
//   │   ├── _manifests/sha256/<hex>           empty: upstream confirmed this repository holds that
//   │   │                                      manifest (catalog; mtime = when last confirmed)
//   │   └── _layers/sha256/<hex>              empty: the same for a blob (a layer or config it references)
//   ├── ingest/<replica>~<random>             downloads in progress, each replica under its own name;
//   │                                          published by rename only after size and digest
//   │                                          verification; a replica wipes only its own at startup;
//   │                                          other replicas read one up to the mark its replica
//   │                                          announced in Redis (cluster/progress.ts), never further
//   └── stats.json                            all-time traffic figures and pull counts (observe/stats-file.ts)
//
// Repository components never start with "_" (distribution grammar), so _tags, _manifests and _layers
// cannot collide with a nested repository name.
import { join } from "node:path";
import type { Digest } from "../oci/digest.js";

export class Layout {
  constructor(readonly root: string) {}

  get ingestDir(): string {
    return join(this.root, "ingest");
  }

  get repositoriesDir(): string {
    return join(this.root, "repositories");
  }

  blob(d: Digest): string {
    return join(this.root, "blobs", d.algorithm, d.hex.slice(0, 2), d.hex);
  }

  manifestMeta(d: Digest): string {
    return join(this.root, "manifests", d.algorithm, d.hex.slice(0, 2), `${d.hex}.json`);
  }

  repository(upstream: string, name: string): string {
    return join(this.repositoriesDir, upstream, ...name.split("/"));
  }

  tag(upstream: string, name: string, tag: string): string {
    return join(this.repository(upstream, name), "_tags", `${tag}.json`);
  }

  tagsDir(upstream: string, name: string): string {
    return join(this.repository(upstream, name), "_tags");
  }

  manifestLink(upstream: string, name: string, d: Digest): string {
    return join(this.repository(upstream, name), "_manifests", d.algorithm, d.hex);
  }

  blobLink(upstream: string, name: string, d: Digest): string {
    return join(this.repository(upstream, name), "_layers", d.algorithm, d.hex);
  }
}
