// The list of mirror-kit commands; each module exports a yargs CommandModule. A process loads only
// the module of the command it runs (all of them for help or an unknown command).
import type { CommandModule } from "yargs";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Command = CommandModule<any, any>;

/** Each command's name, in the order help lists them, and the module that defines it. */
const MODULES: readonly (readonly [string, () => Promise<Command>])[] = [
  ["serve", async () => (await import("./serve.js")).serveCommand],
  ["init", async () => (await import("./init.js")).initCommand],
  ["wire", async () => (await import("./wire.js")).wireCommand],
  ["up", async () => (await import("./up.js")).upCommand],
  ["down", async () => (await import("./up.js")).downCommand],
  ["image", async () => (await import("./up.js")).imageCommand],
  ["prefetch", async () => (await import("./prefetch.js")).prefetchCommand],
  ["export", async () => (await import("./bundle.js")).exportCommand],
  ["import", async () => (await import("./bundle.js")).importCommand],
  ["rm", async () => (await import("./cache.js")).rmCommand],
  ["prune", async () => (await import("./cache.js")).pruneCommand],
  ["refresh", async () => (await import("./cache.js")).refreshCommand],
  ["cert", async () => (await import("./cert.js")).certCommand],
  ["status", async () => (await import("./status.js")).statusCommand],
  ["ls", async () => (await import("./status.js")).lsCommand],
  ["doctor", async () => (await import("./doctor.js")).doctorCommand],
  ["healthcheck", async () => (await import("./healthcheck-command.js")).healthcheckCommand],
];

/**
 * The commands to register for these arguments: the named one alone when the first argument names
 * one (measured: a serve process that loaded every command's libraries, the generator, prefetch,
 * bundles, held 2.5-5 MiB more), else all of them, so help and yargs' own errors see every command.
 */
export async function loadCommands(args: readonly string[]): Promise<Command[]> {
  const named = MODULES.find(([name]) => name === args[0]);
  if (named) return [await named[1]()];
  return Promise.all(MODULES.map(([, load]) => load()));
}
