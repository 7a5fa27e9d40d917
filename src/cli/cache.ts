// `mirror-kit rm`, `prune` and `refresh`: owning what is in a cache folder (safe while a mirror runs
// on it: files are replaced or removed atomically, and an open cached file stays readable).
import bytes from "bytes";
import { Agent } from "undici";
import type { CommandModule } from "yargs";
import { loadConfig, type Env } from "../config/load.js";
import { parseDuration } from "../config/schema.js";
import { MirrorKitError } from "../errors.js";
import { parseImageReference, formatImageReference } from "../oci/reference.js";
import { MirrorClient } from "../prefetch/mirror-client.js";
import { FreshnessPolicy } from "../proxy/freshness.js";
import { evict, pinnedDigests } from "../store/evict.js";
import { FsStore } from "../store/fs-store.js";
import { pruneUnreferenced, removeImage } from "../store/remove.js";
import { mirrorFromUrl } from "./prefetch.js";

type Out = { write(s: string): unknown };

export async function runRm(a: { storage: string; images: string[] }, out: Out): Promise<number> {
  const store = await FsStore.open(a.storage, { shared: true });
  let missing = 0;
  for (const image of a.images) {
    const ref = parseImageReference(image);
    const r = await removeImage(store, ref.registry, ref.repository, ref.digest ? { digest: ref.digest } : { tag: ref.tag ?? "latest" });
    if (!r) {
      missing++;
      out.write(`not cached: ${formatImageReference(ref)}\n`);
    } else out.write(`removed ${r.references.join(", ")} (${r.deleted} object(s) only it used)\n`);
  }
  if (missing > 0) throw new MirrorKitError("MK_CACHE_NOT_FOUND", `${missing} of ${a.images.length} image(s) were not in the cache at ${a.storage}`);
  return a.images.length;
}

/** A duration flag: "30d", "12h"; never 0 (that would mean "everything"). The config's own parser. */
function olderThan(value: string): number {
  const n = parseDuration(value);
  if (n === undefined || n <= 0) throw new MirrorKitError("MK_USAGE", `--older-than: expected a duration such as 30d or 12h, got ${JSON.stringify(value)}`);
  return n;
}

export interface PruneArgs {
  /** The cache folder; default: the configuration's storage. */
  storage?: string;
  /** The mirror's config file (its cache.rules pins are spared); default $MIRROR_KIT_CONFIG. */
  config?: string;
  olderThan?: string;
  unused: boolean;
}

/** The folder and the pins of the mirror's own configuration, read as `serve` reads it. */
async function pruneScope(a: PruneArgs, env: Env): Promise<{ storage: string; pinned: (upstream: string, name: string, tag: string) => boolean }> {
  const { config } = await loadConfig({ ...(a.config ? { file: a.config } : {}), env, ...(a.storage ? { flags: { storage: a.storage } } : {}) });
  const policy = new FreshnessPolicy(config.tagRules, config.semverTagsImmutable);
  return { storage: config.storage, pinned: (upstream, name, tag) => policy.pinned(upstream, name, tag) };
}

export async function runPrune(a: PruneArgs, out: Out, env: Env = process.env): Promise<{ deleted: number; bytes: number }> {
  if (a.olderThan === undefined && !a.unused) throw new MirrorKitError("MK_USAGE", "say what to prune: --older-than DURATION (not used for that long) and/or --unused (referenced by no cached image)");
  const age = a.olderThan === undefined ? undefined : olderThan(a.olderThan);
  const { storage, pinned } = await pruneScope(a, env);
  const store = await FsStore.open(storage, { shared: true });
  let deleted = 0;
  let freed = 0;
  if (age !== undefined) {
    // Least recently used first, never a layer a kept image still needs, never a pinned image (as the size cap).
    const keep = await pinnedDigests(store, pinned);
    const r = await evict(store, { target: 0, protectAfter: Date.now() - age, keep });
    deleted += r.evicted.length;
    freed += r.sizeBefore - r.sizeAfter;
  }
  if (a.unused) {
    // Anything used in the last two minutes may belong to a pull in progress.
    const r = await pruneUnreferenced(store, Date.now() - 120_000);
    deleted += r.deleted;
    freed += r.bytes;
  }
  out.write(`pruned ${deleted} object(s), ${bytes(freed) ?? "0B"} freed from ${storage}\n`);
  return { deleted, bytes: freed };
}

export async function runRefresh(a: { storage: string; mirror?: string; images: string[] }, out: Out): Promise<void> {
  const store = await FsStore.open(a.storage, { shared: true });
  const agent = a.mirror ? new Agent() : undefined;
  try {
    for (const image of a.images) {
      const ref = parseImageReference(image);
      if (ref.digest) throw new MirrorKitError("MK_USAGE", `${image}: a digest never changes; refresh takes a tag`);
      const tag = ref.tag ?? "latest";
      const record = await store.getTag(ref.registry, ref.repository, tag);
      if (!record) throw new MirrorKitError("MK_CACHE_NOT_FOUND", `${formatImageReference(ref)} is not cached at ${a.storage}`);
      // Confirmed "never": the next pull of the tag asks upstream, whatever its freshness window.
      await store.putTag(ref.registry, ref.repository, tag, { ...record, checkedAt: 0 });
      if (!a.mirror || !agent) {
        out.write(`${formatImageReference(ref)}: the next pull revalidates it with upstream\n`);
        continue;
      }
      const m = await new MirrorClient(mirrorFromUrl(a.mirror), ref, agent).manifest(tag);
      out.write(`${formatImageReference(ref)}: revalidated, now ${m.digest}${m.digest === record.digest ? " (unchanged)" : ` (was ${record.digest})`}\n`);
    }
  } finally {
    await agent?.close();
  }
}

const storageOption = { type: "string", demandOption: true, describe: "the mirror's cache folder (safe while a mirror runs on it)" } as const;

export const rmCommand: CommandModule = {
  command: "rm <images..>",
  describe: "Remove images from the cache: their tags, and the content no other cached image uses",
  builder: (y) => y.positional("images", { type: "string", array: true }).option("storage", storageOption),
  handler: async (argv) => {
    const a = argv as Record<string, unknown>;
    await runRm({ storage: a.storage as string, images: a.images as string[] }, process.stdout);
  },
};

export const pruneCommand: CommandModule = {
  command: "prune",
  describe: "Remove cached content not used for a while (--older-than 30d) and/or referenced by no cached image (--unused); pinned images stay",
  builder: (y) =>
    y
      .option("storage", { type: "string", describe: "the mirror's cache folder (default: the configuration's storage; safe while a mirror runs on it)" })
      .option("config", { type: "string", describe: "the mirror's config file: its storage and its cache.rules pins, which prune spares (env MIRROR_KIT_CONFIG)" })
      .option("older-than", { type: "string", describe: "remove what was not used for this long (30d, 12h); layers a kept image needs stay" })
      .option("unused", { type: "boolean", default: false, describe: "remove blobs and manifests no cached tag or repository reaches" }),
  handler: async (argv) => {
    const a = argv as Record<string, unknown>;
    await runPrune(
      {
        ...(a.storage !== undefined ? { storage: a.storage as string } : {}),
        ...(a.config !== undefined ? { config: a.config as string } : {}),
        ...(a.olderThan !== undefined ? { olderThan: a.olderThan as string } : {}),
        unused: a.unused as boolean,
      },
      process.stdout,
    );
  },
};

export const refreshCommand: CommandModule = {
  command: "refresh <images..>",
  describe: "Revalidate cached tags with upstream: now through --mirror URL, or on the next pull",
  builder: (y) =>
    y
      .positional("images", { type: "string", array: true })
      .option("storage", storageOption)
      .option("mirror", { type: "string", describe: "the running mirror on that folder: revalidate now (user:password@ for a mirror behind auth)" }),
  handler: async (argv) => {
    const a = argv as Record<string, unknown>;
    await runRefresh({ storage: a.storage as string, ...(a.mirror ? { mirror: a.mirror as string } : {}), images: a.images as string[] }, process.stdout);
  },
};
