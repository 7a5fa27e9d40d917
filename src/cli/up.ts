// `mirror-kit up` and `mirror-kit down`: yargs builders over runUp/runDown (src/generate/
// mirror-container.ts), which tests call with their own dockerode client.
import type { CommandModule } from "yargs";
import { DEFAULT_CONTAINER, runDown, runUp } from "../generate/mirror-container.js";
import { DEFAULT_IMAGE, DEFAULT_PORT } from "../generate/settings.js";

export const upCommand: CommandModule = {
  command: "up",
  describe: "Start the mirror container on this machine (idempotent; honours DOCKER_HOST)",
  builder: (y) =>
    y
      .option("port", { type: "number", default: DEFAULT_PORT, describe: "host port to publish the mirror on" })
      .option("image", { type: "string", default: DEFAULT_IMAGE, describe: "mirror image" })
      .option("storage", { type: "string", describe: "cache volume name or host directory (default: volume mirror-kit-data)" })
      .option("upstream", { type: "string", array: true, describe: "extra upstream NAME=URL (repeatable)" })
      .option("name", { type: "string", default: DEFAULT_CONTAINER, describe: "container name" })
      .option("wait", { type: "boolean", default: true, describe: "wait until /healthz answers (--no-wait to skip)" }),
  handler: async (argv) => {
    const a = argv as Record<string, unknown>;
    await runUp(
      {
        port: a.port as number,
        image: a.image as string,
        storage: a.storage as string | undefined,
        upstream: a.upstream as string[] | undefined,
        name: a.name as string,
        wait: a.wait as boolean,
      },
      { docker: await dockerClient(), stdout: process.stdout, cwd: process.cwd() },
    );
  },
};

export const downCommand: CommandModule = {
  command: "down",
  describe: "Stop and remove the mirror container (the cache volume is kept)",
  builder: (y) => y.option("name", { type: "string", default: DEFAULT_CONTAINER, describe: "container name" }),
  handler: async (argv) => {
    await runDown({ name: (argv as Record<string, unknown>).name as string }, { docker: await dockerClient(), stdout: process.stdout });
  },
};

/**
 * dockerode (with ssh2 and its WebAssembly) costs ~29 MB of resident memory: loaded only by the
 * commands that talk to Docker, so a `serve` process does not carry it.
 */
async function dockerClient() {
  const { default: Docker } = await import("dockerode");
  return new Docker();
}
