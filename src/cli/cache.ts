// `mirror-kit rm`, `prune` and `refresh`: owning what is in a cache, a folder or an S3 bucket (safe
// while a mirror runs on it: records are replaced or removed whole, what is being read stays readable).
import bytes from "bytes";
import { Agent } from "undici";
import type { CommandModule } from "yargs";
import type { Env } from "../config/load.js";
import { parseDuration } from "../config/schema.js";
import { MirrorKitError } from "../errors.js";
import { parseImageReference, formatImageReference } from "../oci/reference.js";
import { MirrorClient } from "../prefetch/mirror-client.js";
import { evict, pinnedDigests } from "../store/evict.js";
import { pruneUnreferenced, removeImage } from "../store/remove.js";
import { mirrorFromUrl } from "./prefetch.js";
import { type StorageArgs, storageFrom, storageOptions, withCacheStorage } from "./storage.js";

type Out = { write(s: string): unknown };

export interface RmArgs extends StorageArgs {
  images: string[];
}

export async function runRm(a: RmArgs, out: Out, env: Env = process.env): Promise<number> {
  return withCacheStorage(a, env, "write", async ({ store, where }) => {
    let missing = 0;
    for (const image of a.images) {
      const ref = parseImageReference(image);
      const r = await removeImage(store, ref.registry, ref.repository, ref.digest ? { digest: ref.digest } : { tag: ref.tag ?? "latest" });
      if (!r) {
        missing++;
        out.write(`not cached: ${formatImageReference(ref)}\n`);
      } else out.write(`removed ${r.references.join(", ")} (${r.deleted} object(s) only it used)\n`);
    }
    if (missing > 0) throw new MirrorKitError("MK_CACHE_NOT_FOUND", `${missing} of ${a.images.length} image(s) were not in the cache at ${where}`);
    return a.images.length;
  });
}

/** A duration flag: "30d", "12h"; never 0 (that would mean "everything"). The config's own parser. */
function olderThan(value: string): number {
  const n = parseDuration(value);
  if (n === undefined || n <= 0) throw new MirrorKitError("MK_USAGE", `--older-than: expected a duration such as 30d or 12h, got ${JSON.stringify(value)}`);
  return n;
}

export interface PruneArgs extends StorageArgs {
  olderThan?: string;
  unused: boolean;
}

export async function runPrune(a: PruneArgs, out: Out, env: Env = process.env): Promise<{ deleted: number; bytes: number }> {
  if (a.olderThan === undefined && !a.unused) throw new MirrorKitError("MK_USAGE", "say what to prune: --older-than DURATION (not used for that long) and/or --unused (referenced by no cached image)");
  const age = a.olderThan === undefined ? undefined : olderThan(a.olderThan);
  return withCacheStorage(a, env, "write", async ({ store, where, pinned }) => {
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
    out.write(`pruned ${deleted} object(s), ${bytes(freed) ?? "0B"} freed from ${where}\n`);
    return { deleted, bytes: freed };
  });
}

export interface RefreshArgs extends StorageArgs {
  mirror?: string;
  images: string[];
}

export async function runRefresh(a: RefreshArgs, out: Out, env: Env = process.env): Promise<void> {
  const agent = a.mirror ? new Agent() : undefined;
  try {
    await withCacheStorage(a, env, "write", async ({ store, where }) => {
      for (const image of a.images) {
        const ref = parseImageReference(image);
        if (ref.digest) throw new MirrorKitError("MK_USAGE", `${image}: a digest never changes; refresh takes a tag`);
        const tag = ref.tag ?? "latest";
        const record = await store.getTag(ref.registry, ref.repository, tag);
        if (!record) throw new MirrorKitError("MK_CACHE_NOT_FOUND", `${formatImageReference(ref)} is not cached at ${where}`);
        // Confirmed "never": the next pull of the tag asks upstream, whatever its freshness window.
        await store.putTag(ref.registry, ref.repository, tag, { ...record, checkedAt: 0 });
        if (!a.mirror || !agent) {
          out.write(`${formatImageReference(ref)}: the next pull revalidates it with upstream\n`);
          continue;
        }
        const m = await new MirrorClient(mirrorFromUrl(a.mirror), ref, agent).manifest(tag);
        out.write(`${formatImageReference(ref)}: revalidated, now ${m.digest}${m.digest === record.digest ? " (unchanged)" : ` (was ${record.digest})`}\n`);
      }
    });
  } finally {
    await agent?.close();
  }
}

export const rmCommand: CommandModule = {
  command: "rm <images..>",
  describe: "Remove images from the cache: their tags, and the content no other cached image uses",
  builder: (y) => y.positional("images", { type: "string", array: true }).options(storageOptions),
  handler: async (argv) => {
    const a = argv as Record<string, unknown>;
    await runRm({ ...storageFrom(a), images: a.images as string[] }, process.stdout);
  },
};

export const pruneCommand: CommandModule = {
  command: "prune",
  describe: "Remove cached content not used for a while (--older-than 30d) and/or referenced by no cached image (--unused); pinned images stay",
  builder: (y) =>
    y
      .options(storageOptions)
      .option("older-than", { type: "string", describe: "remove what was not used for this long (30d, 12h); layers a kept image needs stay" })
      .option("unused", { type: "boolean", default: false, describe: "remove blobs and manifests no cached tag or repository reaches" }),
  handler: async (argv) => {
    const a = argv as Record<string, unknown>;
    await runPrune({ ...storageFrom(a), ...(a.olderThan !== undefined ? { olderThan: a.olderThan as string } : {}), unused: a.unused as boolean }, process.stdout);
  },
};

export const refreshCommand: CommandModule = {
  command: "refresh <images..>",
  describe: "Revalidate cached tags with upstream: now through --mirror URL, or on the next pull",
  builder: (y) =>
    y
      .positional("images", { type: "string", array: true })
      .options(storageOptions)
      .option("mirror", { type: "string", describe: "the running mirror on that store: revalidate now (user:password@ for a mirror behind auth)" }),
  handler: async (argv) => {
    const a = argv as Record<string, unknown>;
    await runRefresh({ ...storageFrom(a), ...(a.mirror ? { mirror: a.mirror as string } : {}), images: a.images as string[] }, process.stdout);
  },
};
