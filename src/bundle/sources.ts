// Where `mirror-kit export` reads images from: a running mirror (its distribution API, so a miss is
// fetched upstream like any pull) or a store read in place, a folder or a bucket (nothing is written).
import { Agent } from "undici";
import { MirrorKitError } from "../errors.js";
import { parseDigest } from "../oci/digest.js";
import type { ImageReference } from "../oci/reference.js";
import { MirrorClient, type Descriptor, type FetchedManifest, type Mirror } from "../prefetch/mirror-client.js";
import type { OpenBlob, Store } from "../store/store.js";

export interface ExportSource {
  manifest(ref: ImageReference, reference: string): Promise<FetchedManifest>;
  blob(ref: ImageReference, d: Descriptor): Promise<AsyncIterable<Buffer>>;
  /** Every tagged image the source holds (export with no image names). */
  images(): Promise<string[]>;
  close(): Promise<void>;
}

export function mirrorSource(mirror: Mirror): ExportSource {
  const agent = new Agent({ connect: mirror.ca ? { ca: mirror.ca } : {} });
  const client = (ref: ImageReference) => new MirrorClient(mirror, ref, agent);
  return {
    manifest: (ref, reference) => client(ref).manifest(reference),
    blob: (ref, d) => client(ref).blobStream(d.digest),
    images: () => Promise.reject(new MirrorKitError("MK_USAGE", "name the images to export from a mirror (or use --storage DIR to export everything cached)")),
    close: () => agent.close(),
  };
}

/** A cache (a folder or a bucket), read only: tags as the mirror last confirmed them, content by digest. */
export function storageSource(store: Store, where: string): ExportSource {
  const missing = (what: string) => new MirrorKitError("MK_EXPORT_NOT_CACHED", `${what} is not in the cache at ${where}`);
  return {
    async manifest(ref, reference) {
      let digest = reference;
      if (!reference.includes(":")) {
        const tag = await store.getTag(ref.registry, ref.repository, reference);
        if (!tag) throw missing(`${ref.registry}/${ref.repository}:${reference}`);
        digest = tag.digest;
      }
      const m = await store.getManifest(parseDigest(digest));
      if (!m) throw missing(`manifest ${digest} of ${ref.registry}/${ref.repository}`);
      return { digest, mediaType: m.mediaType, body: m.body };
    },
    async blob(_ref, d) {
      // Opened here, so a missing blob fails with a message before the archive is written further.
      const blob = await store.openBlob(parseDigest(d.digest));
      if (!blob) throw missing(`blob ${d.digest}`);
      return readBlob(blob);
    },
    async images() {
      const out: string[] = [];
      for (const r of await store.listRepositories()) {
        for (const tag of await store.listTags(r.upstream, r.name)) out.push(`${r.upstream}/${r.name}:${tag}`);
      }
      return out;
    },
    close: async () => undefined,
  };
}

/** A published blob as chunks of 1 MiB, closed when read to the end or abandoned. */
async function* readBlob(blob: OpenBlob): AsyncGenerator<Buffer> {
  try {
    for (let pos = 0; pos < blob.size; ) {
      const buf = Buffer.allocUnsafe(Math.min(1024 * 1024, blob.size - pos));
      const n = await blob.readInto(buf, pos);
      if (n <= 0) throw new MirrorKitError("MK_EXPORT_NOT_CACHED", `a cached blob ended at ${pos} of ${blob.size} bytes`);
      pos += n;
      yield buf.subarray(0, n);
    }
  } finally {
    await blob.close();
  }
}
