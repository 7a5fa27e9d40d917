// `mirror-kit init`: the yargs options builder; the work is runInit (src/generate/init.ts), which
// tests call directly with an injected cwd, output and terminal state.
import { createInterface } from "node:readline/promises";
import type { Argv, CommandModule } from "yargs";
import { runInit } from "../generate/init.js";
import { BUILD_CONTEXT } from "../generate/compose-build.js";
import { DEFAULT_BASE_IMAGE, DEFAULT_IMAGE, DEFAULT_PORT } from "../generate/settings.js";

/** Mirror-address flags shared by init and wire. */
export function mirrorOptions<T>(y: Argv<T>) {
  return y
    .option("mirror-url", { type: "string", describe: "URL every client uses for the mirror (scheme required), e.g. http://10.0.0.5:5000" })
    .option("host", { type: "string", describe: "address VMs and containers use to reach this machine (default: detected per client)" })
    .option("port", { type: "number", describe: `host port the mirror is published on (default ${DEFAULT_PORT}; init moves the default past ports the Compose file already publishes)` })
    .option("upstream", { type: "string", array: true, nargs: 1, describe: "extra upstream NAME=URL (repeatable)" })
    .option("ca", { type: "string", describe: "the mirror serves TLS signed by this CA (ca.crt, or the folder `mirror-kit cert` wrote): install it for every client, https URLs, no insecure-registries" });
}

export async function ttyConfirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

export const initCommand: CommandModule = {
  command: "init",
  describe: "Wire this project's Compose stack, Vagrant VMs and devcontainers to the mirror",
  builder: (y) =>
    mirrorOptions(y)
      .option("dir", { type: "string", describe: "project folder (default: the current directory)" })
      .option("compose", { type: "boolean", describe: "wire the Compose file (creates compose.yaml if there is none)" })
      .option("vagrant", { type: "boolean", describe: "wire the Vagrantfile" })
      .option("devcontainer", { type: "boolean", describe: "wire .devcontainer/**/devcontainer.json" })
      .option("prefetch", { type: "boolean", describe: "add the project's prefetch step, .mirror-kit/prefetch.sh: warms the mirror with every image the project uses" })
      .option("storage", { type: "string", describe: "cache volume name or host directory (default: volume mirror-kit-data)" })
      .option("image", { type: "string", default: DEFAULT_IMAGE, describe: "mirror image" })
      .option("build", { type: "boolean", describe: `the Compose service builds the image on this machine from the Dockerfile in this package (its context is copied to ${BUILD_CONTEXT}); no registry needed` })
      .option("base-image", { type: "string", describe: `with --build: the Node base image to build on (any image with node >= 20.19; default ${DEFAULT_BASE_IMAGE})` })
      .option("dry-run", { type: "boolean", default: false, describe: "print the diff, write nothing" })
      .option("yes", { alias: "y", type: "boolean", default: false, describe: "do not ask before writing" })
      .option("force", { type: "boolean", default: false, describe: "replace generated files and blocks even if edited by hand" }),
  handler: async (argv) => {
    const a = argv as Record<string, unknown>;
    await runInit(
      {
        compose: a.compose as boolean | undefined,
        vagrant: a.vagrant as boolean | undefined,
        devcontainer: a.devcontainer as boolean | undefined,
        prefetch: a.prefetch as boolean | undefined,
        mirrorUrl: a.mirrorUrl as string | undefined,
        host: a.host as string | undefined,
        port: a.port as number | undefined,
        upstream: a.upstream as string[] | undefined,
        ca: a.ca as string | undefined,
        storage: a.storage as string | undefined,
        image: a.image as string,
        build: a.build as boolean | undefined,
        baseImage: a.baseImage as string | undefined,
        dryRun: a.dryRun as boolean,
        yes: a.yes as boolean,
        force: a.force as boolean,
      },
      {
        cwd: (a.dir as string | undefined) ?? process.cwd(),
        stdout: process.stdout,
        isTTY: !!process.stdin.isTTY && !!process.stdout.isTTY,
        confirm: ttyConfirm,
      },
    );
  },
};
