// `mirror-kit export` and `mirror-kit import`: yargs builders over src/bundle/ (OCI image layout
// archives in and out of the cache). runExport / runImport are what tests call.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import bytes from "bytes";
import type { CommandModule } from "yargs";
import { archiveBlobs, exportImages, type ExportResult } from "../bundle/export.js";
import { importBundle, type ImportResult } from "../bundle/import.js";
import { importIntoMirror } from "../bundle/upload.js";
import { type ExportSource, mirrorSource, storageSource } from "../bundle/sources.js";
import { MirrorKitError } from "../errors.js";
import { platformsFromFlags } from "../oci/platform.js";
import type { Env } from "../config/load.js";
import { mirrorFromUrl } from "./prefetch.js";
import { type StorageArgs, storageFrom, storageOptions, withCacheStorage } from "./storage.js";

export interface ExportArgs extends StorageArgs {
  images: string[];
  output: string;
  mirror?: string;
  platform: string[];
  ca?: string;
  /** Earlier exports the receiving side already imported: their blobs are left out (a delta). */
  excludeFrom?: string[];
}

type Out = { write(s: string): unknown };

/** --storage or --config name the store; --mirror a running mirror instead. */
function oneSource(a: StorageArgs & { mirror?: string }, what: string): "store" | "mirror" {
  const store = a.storage !== undefined || a.config !== undefined;
  if (store === (a.mirror !== undefined)) throw new MirrorKitError("MK_USAGE", `name exactly one ${what}: --storage DIR (a cache folder), --config FILE (the mirror's storage: a folder or an S3 bucket) or --mirror URL (a running mirror)`);
  return store ? "store" : "mirror";
}

export async function runExport(a: ExportArgs, out: Out, env: Env = process.env): Promise<ExportResult> {
  if (oneSource(a, "source") === "store") return withCacheStorage(a, env, "read", ({ store, where }) => exportFrom(a, storageSource(store, where), out));
  const ca = a.ca ? readFileSync(a.ca, "utf8") : undefined;
  return exportFrom(a, mirrorSource(mirrorFromUrl(a.mirror as string, ca)), out);
}

async function exportFrom(a: ExportArgs, source: ExportSource, out: Out): Promise<ExportResult> {
  const exclude = new Set<string>();
  for (const f of a.excludeFrom ?? []) for (const d of await archiveBlobs(f)) exclude.add(d);
  const result = await exportImages({
    source,
    images: a.images,
    exclude,
    platforms: platformsFromFlags(a.platform),
    output: a.output,
    onImage: (ref, blobs, n) => out.write(`${ref}: ${blobs} blob(s), ${bytes(n) ?? "0B"}\n`),
  });
  out.write(`wrote ${a.output}: ${result.images.length} image(s), ${result.blobs} blob(s), ${bytes(result.bytes) ?? "0B"} (OCI image layout)\n`);
  return result;
}

export interface ImportArgs extends StorageArgs {
  input: string;
  /** Or hand the archive to this running mirror (PUT /api/v1/import), which verifies and caches it. */
  mirror?: string;
  ca?: string;
}

export async function runImport(a: ImportArgs, out: Out, env: Env = process.env): Promise<ImportResult> {
  if (oneSource(a, "destination") === "mirror") {
    const mirror = mirrorFromUrl(a.mirror as string, a.ca ? readFileSync(a.ca, "utf8") : undefined);
    const result = await importIntoMirror(a.input, mirror);
    for (const image of result.images) out.write(`cached ${image}\n`);
    out.write(`imported ${result.images.length} image(s) into the mirror at ${mirror.url} (${result.published} new object(s))\n`);
    return result;
  }
  return withCacheStorage(a, env, "write", async ({ store, where, importDir }) => {
    // Unpacked next to the cache (same filesystem, no copy through /tmp's tmpfs), removed afterwards.
    const result = await importBundle(a.input, store, importDir);
    for (const image of result.images) out.write(`cached ${image}\n`);
    out.write(`imported ${result.images.length} image(s) into ${where} (${result.published} new object(s))\n`);
    return result;
  });
}

export const exportCommand: CommandModule = {
  command: "export [images..]",
  describe: "Write cached images to an OCI image layout tar (skopeo, ctr images import, oras and crane read it)",
  builder: (y) =>
    y
      .positional("images", { type: "string", array: true, describe: "image references (default with --storage: every cached tag)" })
      .option("output", { alias: "o", type: "string", demandOption: true, describe: "the .tar file to write" })
      .option("storage", { type: "string", describe: "read a cache folder directly (safe while a mirror runs on it)" })
      .option("config", storageOptions.config)
      .option("mirror", { type: "string", describe: "read through a running mirror (fetching what it does not have yet)" })
      .option("platform", { type: "string", array: true, nargs: 1, describe: "OS/ARCH[/VARIANT] of a multi-arch image to include, or 'all' (default: this host's)" })
      .option("ca", { type: "string", describe: "CA certificate (PEM) of an https mirror" })
      .option("exclude-from", { type: "string", array: true, nargs: 1, describe: "an earlier export the receiving side already has: its blobs are left out (a delta export; repeatable)" }),
  handler: async (argv) => {
    const a = argv as Record<string, unknown>;
    await runExport(
      {
        images: (a.images as string[] | undefined) ?? [],
        output: a.output as string,
        ...storageFrom(a),
        ...(a.mirror !== undefined ? { mirror: a.mirror as string } : {}),
        platform: (a.platform as string[] | undefined) ?? [],
        ...(a.ca ? { ca: a.ca as string } : {}),
        ...(a.excludeFrom ? { excludeFrom: a.excludeFrom as string[] } : {}),
      },
      process.stdout,
    );
  },
};

export const importCommand: CommandModule = {
  command: "import <input>",
  describe: "Cache the images of an OCI image layout (tar or folder) or a docker save tarball, verified, under their references",
  builder: (y) =>
    y
      .positional("input", { type: "string", describe: "an OCI layout .tar or folder, or a docker save .tar" })
      .option("storage", { type: "string", describe: "the mirror's cache folder (safe while a mirror runs on it)" })
      .option("config", storageOptions.config)
      .option("mirror", { type: "string", describe: "a running mirror to import into (user:password@ for one with client auth; without auth it takes imports from its own host only)" })
      .option("ca", { type: "string", describe: "CA certificate (PEM) of an https mirror" }),
  handler: async (argv) => {
    const a = argv as Record<string, unknown>;
    await runImport(
      {
        input: a.input as string,
        ...storageFrom(a),
        ...(a.mirror !== undefined ? { mirror: a.mirror as string } : {}),
        ...(a.ca ? { ca: a.ca as string } : {}),
      },
      process.stdout,
    );
  },
};
