// `mirror-kit import`: OCI image layouts (a tar or a folder) and `docker save` tarballs into a cache
// folder, so the mirror serves those images with no upstream at all. Every blob and manifest is
// verified by the store before it is published; a tar's entry names are checked before anything is
// unpacked, so a hostile archive cannot write outside the temporary folder it is read into.
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, mkdtemp, open, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import tar from "tar-stream";
import { MirrorKitError } from "../errors.js";
import { digestOf, parseDigest } from "../oci/digest.js";
import { isIndexType, indexEntries, MediaType } from "../oci/mediatypes.js";
import { formatImageReference, parseImageReference, type ImageReference } from "../oci/reference.js";
import { makeDir } from "../store/faults.js";
import type { Store } from "../store/store.js";
import { CONTAINERD_NAME, REF_NAME } from "./export.js";

export interface ImportResult {
  images: string[];
  /** Blobs and manifests newly published (the rest were in the cache already). */
  published: number;
}

const SAFE_ENTRY = /^(?!.*(?:^|\/)\.\.?(?:\/|$))[A-Za-z0-9._+-]+(?:\/[A-Za-z0-9._+-]+)*\/?$/;
const OCI_CONFIG = "application/vnd.oci.image.config.v1+json";

export async function importBundle(input: string, store: Store, tempRoot: string): Promise<ImportResult> {
  const s = await stat(input).catch(() => undefined);
  if (!s) throw new MirrorKitError("MK_IMPORT_BAD_INPUT", `${input}: no such file or folder`);
  if (s.isDirectory()) return importFolder(input, store);
  await makeDir(tempRoot);
  const dir = await mkdtemp(join(tempRoot, "import-"));
  try {
    await unpack(input, dir);
    return await importFolder(dir, store);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Regular files only; a name that could climb out (.., absolute) refuses the whole archive. */
async function unpack(file: string, dir: string): Promise<void> {
  const extract = tar.extract();
  const source = createReadStream(file);
  let refused: MirrorKitError | undefined;
  const reading = pipeline(source, extract);
  // Awaited below; until then its rejection (a file that is no tar) must not go unhandled, which
  // would end a mirror that imports for a client (PUT /api/v1/import).
  reading.catch(() => undefined);
  try {
    for await (const e of extract) {
      const name = e.header.name.replace(/^\.\//, "");
      if (!SAFE_ENTRY.test(name)) {
        refused = new MirrorKitError("MK_IMPORT_BAD_INPUT", `${file}: refusing the archive: entry ${JSON.stringify(name.slice(0, 200))} is not a plain relative path`);
        break;
      }
      if (e.header.type === "file") {
        const target = join(dir, name);
        await mkdir(join(target, ".."), { recursive: true });
        await pipeline(e, createWriteStream(target, { flags: "wx" }));
      } else {
        e.resume();
      }
    }
  } catch (err) {
    refused ??= new MirrorKitError("MK_IMPORT_BAD_INPUT", `${file}: not a readable tar archive (${(err as Error).message})`);
  } finally {
    if (refused) source.destroy();
  }
  try {
    await reading;
  } catch (err) {
    throw refused ?? new MirrorKitError("MK_IMPORT_BAD_INPUT", `${file}: not a readable tar archive (${(err as Error).message})`);
  }
  if (refused) throw refused;
}

async function importFolder(dir: string, store: Store): Promise<ImportResult> {
  const has = async (p: string) => (await stat(join(dir, p)).catch(() => undefined))?.isFile() ?? false;
  if (await has("manifest.json")) return importDockerSave(dir, store);
  if (await has("index.json")) return importOciLayout(dir, store);
  throw new MirrorKitError("MK_IMPORT_BAD_INPUT", `${dir}: neither an OCI image layout (index.json) nor a docker save archive (manifest.json)`);
}

class Publisher {
  published = 0;
  constructor(
    private readonly dir: string,
    private readonly store: Store,
  ) {}

  blobPath(digest: string): string {
    const d = parseDigest(digest);
    return join(this.dir, "blobs", d.algorithm, d.hex);
  }

  /** Stream a file into the store; the writer checks size and digest before it publishes. */
  async blob(digest: string, path: string, size?: number): Promise<void> {
    const d = parseDigest(digest);
    if ((await this.store.statBlob(d)) !== undefined) return;
    const file = await open(path, "r").catch(() => {
      throw new MirrorKitError("MK_IMPORT_INCOMPLETE", `blob ${digest} is missing from the archive`);
    });
    const writer = await this.store.createWriter(d);
    try {
      const buf = Buffer.allocUnsafe(1024 * 1024);
      for (let pos = 0; ; ) {
        const { bytesRead } = await file.read(buf, 0, buf.byteLength, pos);
        if (bytesRead === 0) break;
        await writer.write([Buffer.from(buf.subarray(0, bytesRead))]);
        pos += bytesRead;
      }
      await writer.verify(size);
      await writer.publish();
      this.published++;
    } catch (err) {
      await writer.cancel();
      throw err instanceof MirrorKitError && err.code !== "DIGEST_INVALID" && err.code !== "SIZE_INVALID"
        ? err
        : new MirrorKitError("MK_IMPORT_CORRUPT", `blob ${digest} in the archive does not match its digest or size; nothing of it was cached`);
    } finally {
      await writer.close();
      await file.close();
    }
  }

  async manifest(digest: string, mediaType: string, body: Buffer): Promise<void> {
    if (digestOf(body, parseDigest(digest).algorithm).value !== digest) throw new MirrorKitError("MK_IMPORT_CORRUPT", `manifest ${digest} in the archive does not match its digest`);
    if (!(await this.store.getManifest(parseDigest(digest)))) this.published++;
    await this.store.putManifest(parseDigest(digest), mediaType, body);
  }

  link(ref: ImageReference, digest: string): Promise<void> {
    return this.store.linkManifest(ref.registry, ref.repository, parseDigest(digest));
  }

  /** The repository holds this blob: served under its name without asking upstream (src/proxy/holdings.ts). */
  linkBlob(ref: ImageReference, digest: string): Promise<void> {
    return this.store.link(ref.registry, ref.repository, "blob", parseDigest(digest));
  }

  async tag(ref: ImageReference, digest: string, mediaType: string, size: number): Promise<void> {
    await this.link(ref, digest);
    if (ref.tag) await this.store.putTag(ref.registry, ref.repository, ref.tag, { digest, mediaType, size, checkedAt: Date.now() });
  }
}

async function importOciLayout(dir: string, store: Store): Promise<ImportResult> {
  const p = new Publisher(dir, store);
  const index = JSON.parse(await readFile(join(dir, "index.json"), "utf8")) as { manifests?: { digest: string; mediaType?: string; size: number; annotations?: Record<string, string> }[] };
  const images: string[] = [];
  for (const entry of index.manifests ?? []) {
    const name = entry.annotations?.[CONTAINERD_NAME] ?? entry.annotations?.[REF_NAME];
    if (!name || (!name.includes("/") && !name.includes("@"))) {
      throw new MirrorKitError("MK_IMPORT_NO_NAME", `index.json entry ${entry.digest} has no full image reference (${CONTAINERD_NAME} or ${REF_NAME} such as docker.io/library/busybox:1); cannot tell where to cache it`);
    }
    const ref = parseImageReference(name);
    const mediaType = await manifestTree(p, ref, entry.digest, entry.mediaType);
    await p.tag(ref, entry.digest, mediaType, entry.size);
    images.push(formatImageReference(ref));
  }
  return { images, published: p.published };
}

/** A manifest and what it references: an index's present children, every blob of an image. */
async function manifestTree(p: Publisher, ref: ImageReference, digest: string, declared?: string): Promise<string> {
  const body = await readFile(p.blobPath(digest)).catch(() => {
    throw new MirrorKitError("MK_IMPORT_INCOMPLETE", `manifest ${digest} of ${formatImageReference(ref)} is missing from the archive`);
  });
  const doc = JSON.parse(body.toString("utf8")) as { mediaType?: string; config?: { digest: string; size: number }; layers?: { digest: string; size: number; urls?: unknown }[] };
  const mediaType = declared ?? doc.mediaType ?? (Array.isArray((doc as { manifests?: unknown }).manifests) ? MediaType.ociIndex : MediaType.ociManifest);
  if (isIndexType(mediaType)) {
    // Only the platforms that were exported are in the archive; the index is cached whole.
    for (const child of indexEntries(body)) {
      if ((await stat(p.blobPath(child.digest)).catch(() => undefined)) === undefined) continue;
      await manifestTree(p, ref, child.digest, child.mediaType);
      await p.link(ref, child.digest);
    }
  } else {
    const blobs = [doc.config, ...(doc.layers ?? [])].filter((d): d is { digest: string; size: number } => !!d && !Array.isArray((d as { urls?: unknown }).urls));
    // Every blob verified and present first: an incomplete image leaves no repository link behind.
    for (const d of blobs) await p.blob(d.digest, p.blobPath(d.digest), d.size);
    for (const d of blobs) await p.linkBlob(ref, d.digest);
  }
  await p.manifest(digest, mediaType, body);
  return mediaType;
}

/** `docker save` (Docker's own format): each image becomes an OCI manifest over the same config and layers. */
async function importDockerSave(dir: string, store: Store): Promise<ImportResult> {
  const p = new Publisher(dir, store);
  const entries = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")) as { Config: string; RepoTags?: string[] | null; Layers: string[] }[];
  const images: string[] = [];
  for (const e of entries) {
    if (!e.RepoTags?.length) throw new MirrorKitError("MK_IMPORT_NO_NAME", `docker save entry ${e.Config} has no repository tag; save it by name (docker save busybox:1)`);
    const file = (name: string) => {
      if (!SAFE_ENTRY.test(name)) throw new MirrorKitError("MK_IMPORT_BAD_INPUT", `manifest.json names ${JSON.stringify(name.slice(0, 200))}, which is not a plain relative path`);
      return join(dir, name);
    };
    const config = await readFile(file(e.Config));
    const configDigest = digestOf(config).value;
    await p.blob(configDigest, file(e.Config), config.byteLength);
    const layers = [];
    for (const l of e.Layers) {
      const path = file(l);
      const head = Buffer.alloc(2);
      const fh = await open(path, "r");
      const { size } = await fh.stat();
      await fh.read(head, 0, 2, 0);
      await fh.close();
      const digest = await fileDigest(path);
      await p.blob(digest, path, size);
      const gzip = head[0] === 0x1f && head[1] === 0x8b;
      layers.push({ mediaType: gzip ? "application/vnd.oci.image.layer.v1.tar+gzip" : "application/vnd.oci.image.layer.v1.tar", digest, size });
    }
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { mediaType: OCI_CONFIG, digest: configDigest, size: config.byteLength }, layers }));
    const digest = digestOf(body).value;
    await p.manifest(digest, MediaType.ociManifest, body);
    for (const t of e.RepoTags) {
      const ref = parseImageReference(t);
      for (const blob of [configDigest, ...layers.map((l) => l.digest)]) await p.linkBlob(ref, blob);
      await p.tag(ref, digest, MediaType.ociManifest, body.byteLength);
      images.push(formatImageReference(ref));
    }
  }
  return { images, published: p.published };
}

async function fileDigest(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
  return `sha256:${hash.digest("hex")}`;
}
