// `mirror-kit export`: images as one OCI image layout tar (oci-layout, index.json, blobs/sha256/…),
// each image an index.json entry named by its full reference for skopeo (org.opencontainers.image.
// ref.name) and containerd (io.containerd.image.name). Written to a temp file and renamed, and every
// blob's digest checked on the way, so a failure never leaves a half archive under the user's name.
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import tar from "tar-stream";
import { MirrorKitError } from "../errors.js";
import { isIndexType } from "../oci/mediatypes.js";
import { selectPlatforms, type Platform } from "../oci/platform.js";
import { formatImageReference, parseImageReference, referenceOf, type ImageReference } from "../oci/reference.js";
import type { Descriptor } from "../prefetch/mirror-client.js";
import type { ExportSource } from "./sources.js";

export const REF_NAME = "org.opencontainers.image.ref.name";
export const CONTAINERD_NAME = "io.containerd.image.name";

export interface ExportOptions {
  source: ExportSource;
  /** Empty: every tagged image the source holds. */
  images: readonly string[];
  /** Platforms to include from a multi-arch index; [] = all. */
  platforms: readonly Platform[];
  output: string;
  /** Digests the receiving side already has: left out (a delta export). */
  exclude?: ReadonlySet<string>;
  onImage?: (ref: string, blobs: number, bytes: number) => void;
}

export interface ExportResult {
  images: string[];
  blobs: number;
  bytes: number;
}

interface Planned {
  ref: string;
  top: Descriptor;
  blobs: { ref: ImageReference; d: Descriptor; body?: Buffer }[];
}

export async function exportImages(o: ExportOptions): Promise<ExportResult> {
  const names = o.images.length > 0 ? [...o.images] : await o.source.images();
  if (names.length === 0) throw new MirrorKitError("MK_EXPORT_NOTHING", "nothing to export: the cache holds no tagged image");
  // Plan first (manifests only), so a missing image fails before any byte is written.
  const plans: Planned[] = [];
  for (const name of names) plans.push(await plan(name, o));

  const temp = join(dirname(o.output), `.${basename(o.output)}.${randomBytes(6).toString("hex")}.partial`);
  const pack = tar.pack();
  const written = pipeline(pack, createWriteStream(temp, { mode: 0o644 }));
  written.catch(() => undefined);
  const seen = new Set<string>();
  let bytes = 0;
  try {
    await entry(pack, "oci-layout", Buffer.from(JSON.stringify({ imageLayoutVersion: "1.0.0" })));
    for (const p of plans) {
      let imageBytes = 0;
      for (const b of p.blobs) {
        if (seen.has(b.d.digest) || o.exclude?.has(b.d.digest)) continue;
        seen.add(b.d.digest);
        const path = `blobs/${b.d.digest.replace(":", "/")}`;
        if (b.body) await entry(pack, path, b.body);
        else await streamEntry(pack, path, b.d, await o.source.blob(b.ref, b.d));
        imageBytes += b.d.size;
      }
      bytes += imageBytes;
      o.onImage?.(p.ref, p.blobs.length, imageBytes);
    }
    const index = {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: plans.map((p) => ({ ...p.top, annotations: { [REF_NAME]: p.ref, [CONTAINERD_NAME]: p.ref } })),
    };
    await entry(pack, "index.json", Buffer.from(JSON.stringify(index, null, 2)));
    pack.finalize();
    await written;
    await rename(temp, o.output);
  } catch (err) {
    pack.destroy();
    await written.catch(() => undefined);
    await rm(temp, { force: true });
    throw err;
  } finally {
    await o.source.close();
  }
  return { images: plans.map((p) => p.ref), blobs: seen.size, bytes };
}

async function plan(name: string, o: ExportOptions): Promise<Planned> {
  const ref = parseImageReference(name);
  const full = formatImageReference(ref);
  const top = await o.source.manifest(ref, referenceOf(ref));
  const blobs: Planned["blobs"] = [];
  const manifestBlob = (m: { digest: string; mediaType: string; body: Buffer }) => blobs.push({ ref, d: { digest: m.digest, size: m.body.byteLength, mediaType: m.mediaType }, body: m.body });
  manifestBlob(top);
  const images = isIndexType(top.mediaType)
    ? await Promise.all(selectPlatforms(top.body, o.platforms).map((e) => o.source.manifest(ref, e.digest)))
    : [top];
  for (const m of images) {
    if (m !== top) manifestBlob(m);
    const doc = JSON.parse(m.body.toString("utf8")) as { config?: Descriptor; layers?: Descriptor[] };
    for (const d of [doc.config, ...(doc.layers ?? [])]) {
      // Foreign layers are not distributed by registries; an OCI layout may leave them out.
      if (d && typeof d.digest === "string" && !Array.isArray(d.urls)) blobs.push({ ref, d: { digest: d.digest, size: d.size, mediaType: d.mediaType } });
    }
  }
  return { ref: full, top: { mediaType: top.mediaType, digest: top.digest, size: top.body.byteLength }, blobs };
}

function entry(pack: tar.Pack, name: string, body: Buffer): Promise<void> {
  return new Promise((resolve, reject) => pack.entry({ name, size: body.byteLength, mode: 0o644 }, body, (err) => (err ? reject(err) : resolve())));
}

/** One blob into the archive, its size and digest checked as it goes: a wrong byte fails the export. */
async function streamEntry(pack: tar.Pack, name: string, d: Descriptor, chunks: AsyncIterable<Buffer>): Promise<void> {
  const [algorithm, hex] = d.digest.split(":") as [string, string];
  const hash = createHash(algorithm);
  let size = 0;
  const sink = pack.entry({ name, size: d.size, mode: 0o644 });
  const done = new Promise<void>((resolve, reject) => {
    sink.once("finish", resolve);
    sink.once("error", reject);
  });
  for await (const chunk of chunks) {
    size += chunk.byteLength;
    if (size > d.size) throw new MirrorKitError("MK_EXPORT_CORRUPT", `blob ${d.digest} is larger than the ${d.size} bytes its manifest says`);
    hash.update(chunk);
    if (!sink.write(chunk)) await new Promise<void>((r) => sink.once("drain", () => r()));
  }
  if (size !== d.size || hash.digest("hex") !== hex) throw new MirrorKitError("MK_EXPORT_CORRUPT", `blob ${d.digest} did not match its digest and size (${size} of ${d.size} bytes); nothing written`);
  // tar-stream's entries are streamx writables: end() takes no callback (finish is awaited instead).
  (sink as unknown as { end(): void }).end();
  await done;
}

/** The blob digests an OCI layout tar holds (entry names only; the bytes are skipped). */
export async function archiveBlobs(file: string): Promise<Set<string>> {
  const out = new Set<string>();
  const extract = tar.extract();
  const reading = pipeline(createReadStream(file), extract).catch((err: unknown) => {
    throw new MirrorKitError("MK_USAGE", `--exclude-from: ${file} is not a readable tar archive (${(err as Error).message})`);
  });
  for await (const e of extract) {
    const m = /^(?:\.\/)?blobs\/(sha256|sha512)\/([a-f0-9]+)$/.exec(e.header.name);
    if (m) out.add(`${m[1]}:${m[2]}`);
    e.resume();
  }
  await reading;
  return out;
}
