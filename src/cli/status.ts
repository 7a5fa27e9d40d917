// `mirror-kit status` and `mirror-kit ls`: the dashboard's figures and the cached images in the
// terminal, read from a running mirror's API (or, for ls, straight from its store: a folder or a bucket).
import type { CommandModule } from "yargs";
import type { Env } from "../config/load.js";
import type { Output } from "../generate/init.js";
import { type CachedRepository, scanInventory } from "../observe/inventory.js";
import type { StatusV1 } from "../observe/status-types.js";
import { DEFAULT_MIRROR, getJson, shownMirror } from "./mirror-api.js";
import { renderRepositories, renderStatus } from "./status-view.js";
import { type StorageArgs, storageOptions, withCacheStorage } from "./storage.js";

export interface StatusArgs {
  mirror: string;
  json?: boolean;
}

export async function runStatus(args: StatusArgs, deps: { stdout: Output }): Promise<StatusV1> {
  const status = await getJson<StatusV1>(args.mirror, "/api/v1/status");
  deps.stdout.write(args.json ? `${JSON.stringify(status, null, 2)}\n` : renderStatus(status, shownMirror(args.mirror)));
  return status;
}

export interface LsArgs extends StorageArgs {
  mirror: string;
  json?: boolean;
}

export async function runLs(args: LsArgs, deps: { stdout: Output; env?: Env }): Promise<CachedRepository[]> {
  // --storage or --config: the store itself (a folder or a bucket), read only; else the mirror's API.
  const repos =
    args.storage !== undefined || args.config !== undefined
      ? await withCacheStorage(args, deps.env ?? process.env, "read", ({ store }) => scanInventory(store))
      : (await getJson<{ repositories: CachedRepository[] }>(args.mirror, "/api/v1/repositories")).repositories;
  deps.stdout.write(args.json ? `${JSON.stringify(repos, null, 2)}\n` : renderRepositories(repos));
  return repos;
}

const mirrorOption = { type: "string", default: process.env.MIRROR_KIT_MIRROR ?? DEFAULT_MIRROR, describe: "the mirror's URL (https://USER:PASSWORD@host when it asks for credentials; env MIRROR_KIT_MIRROR)" } as const;

export const statusCommand: CommandModule<object, StatusArgs> = {
  command: "status",
  describe: "Show a running mirror's status: cache, hit ratios, bytes saved, upstreams, rate limits, pulls",
  builder: (y) =>
    y
      .option("mirror", mirrorOption)
      .option("json", { type: "boolean", describe: "print the JSON of /api/v1/status (schemas/status-v1.schema.json)" })
      .example("$0 status --mirror http://10.0.0.5:5000", "the status of the mirror on another machine"),
  handler: async (args) => {
    await runStatus(args, { stdout: process.stdout });
  },
};

export const lsCommand: CommandModule<object, LsArgs> = {
  command: "ls",
  describe: "List cached repositories and tags with size and last use",
  builder: (y) =>
    y
      .option("mirror", mirrorOption)
      .option("storage", { type: "string", describe: "read this storage folder directly instead of asking a mirror (safe beside a running one)" })
      .option("config", { ...storageOptions.config, describe: "read the storage of this mirror config (a folder or an S3 bucket) directly instead of asking a mirror" })
      .option("json", { type: "boolean", describe: "print JSON" }),
  handler: async (args) => {
    await runLs(args, { stdout: process.stdout });
  },
};
