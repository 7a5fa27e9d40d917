// `mirror-kit up`, `down` and `image`: yargs builders over runUp/runDown (src/generate/mirror-container.ts)
// and buildMirrorImage (src/generate/image-build.ts), which tests call with their own dockerode client.
import type { CommandModule } from "yargs";
import { buildMirrorImage } from "../generate/image-build.js";
import { DEFAULT_CONTAINER, runDown, runUp } from "../generate/mirror-container.js";
import { DEFAULT_BASE_IMAGE, DEFAULT_IMAGE, DEFAULT_PORT } from "../generate/settings.js";

const baseImageOption = {
  type: "string",
  default: DEFAULT_BASE_IMAGE,
  describe: "Node base image to build on when the mirror image is built here (any image with node >= 20.19)",
} as const;

export const upCommand: CommandModule = {
  command: "up",
  describe: "Start the mirror container on this machine (idempotent; honours DOCKER_HOST); builds the image from this package when it is missing and cannot be pulled",
  builder: (y) =>
    y
      .option("port", { type: "number", default: DEFAULT_PORT, describe: "host port to publish the mirror on" })
      .option("image", { type: "string", default: DEFAULT_IMAGE, describe: "mirror image" })
      .option("base-image", baseImageOption)
      .option("build", { type: "boolean", default: false, describe: "build the image from this package even when it is on this machine or pullable" })
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
        baseImage: a["base-image"] as string,
        build: a.build as boolean,
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

export const imageCommand: CommandModule = {
  command: "image",
  describe: "Build the mirror image on this machine from the Dockerfile in this package, without any registry (for docker compose up before the image is published, or offline)",
  builder: (y) =>
    y
      .option("tag", { type: "string", default: DEFAULT_IMAGE, describe: "tag for the image (the one init's Compose service and up run)" })
      .option("base-image", baseImageOption)
      .example("$0 image", `builds ${DEFAULT_IMAGE} on ${DEFAULT_BASE_IMAGE}`)
      .example("$0 image --base-image my-registry/node:22", "on another Node image"),
  handler: async (argv) => {
    const a = argv as Record<string, unknown>;
    await buildMirrorImage(await dockerClient(), { tag: a.tag as string, baseImage: a["base-image"] as string }, (line) => process.stdout.write(`${line}\n`));
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
