// `mirror-kit up` with its image missing and no registry to pull it from, on the real engine at
// DOCKER_HOST: it builds the image from the package's Dockerfile through the Docker API on the base
// --base-image names (a local Node runtime here), shows the build, and the mirror it starts serves;
// a base that is neither local nor pullable fails naming --base-image and leaves no container.
import { createServer } from "node:net";
import Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { GenerateError } from "../../src/generate/errors.js";
import { runUp } from "../../src/generate/mirror-container.js";
import { REPO_ROOT } from "../support/containers/engine.js";
import { nodeRuntimeImage } from "../support/containers/images.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

const docker = new Docker();
const suffix = `${process.pid}-${Date.now().toString(36)}`;
const IMAGE = `mk-gen-test/built-mirror:${suffix}`;
const NAME = `mk-gen-build-${suffix}`;
const VOLUME = `mk-gen-build-cache-${suffix}`;
let scratch: string;
let base: string;

const sink = () => {
  const s = { text: "", write: (t: string) => ((s.text += t), true) };
  return s;
};

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, "0.0.0.0", ok));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((ok) => server.close(() => ok()));
  return port;
}

beforeAll(async () => {
  if (!process.env.DOCKER_HOST) throw new Error("set DOCKER_HOST to a Docker engine (.ci/run starts one; see TESTING-OFFLINE.md)");
  scratch = await makeTempDir("gen-build");
  base = await nodeRuntimeImage();
}, 600_000);

afterAll(async () => {
  await docker.getContainer(NAME).remove({ force: true }).catch(() => undefined);
  await docker.getVolume(VOLUME).remove().catch(() => undefined);
  await docker.getImage(IMAGE).remove({ force: true }).catch(() => undefined);
  if (scratch) await removeTempDir(scratch);
});

describe("mirror-kit up builds the mirror image when it cannot pull it", () => {
  test("from the package's Dockerfile on --base-image, with progress; the mirror it starts serves", async () => {
    const out = sink();
    const port = await freePort();
    const action = await runUp({ name: NAME, image: IMAGE, port, storage: VOLUME, baseImage: base, packageDir: REPO_ROOT, waitTimeoutMs: 60_000 }, { docker, stdout: out, cwd: scratch });
    expect(action).toBe("created");
    expect(out.text).toContain(`cannot pull ${IMAGE}`);
    expect(out.text).toContain(`building ${IMAGE} from the Dockerfile in ${REPO_ROOT.replace(/\/$/, "")}`);
    expect(out.text).toContain(`on ${base}`);
    // The build's own progress, as the engine reports it.
    expect(out.text).toMatch(/Step \d+\/\d+ : FROM /);
    expect(out.text).toContain(`built ${IMAGE}`);
    const inspect = await docker.getImage(IMAGE).inspect();
    expect(inspect.Config.Entrypoint).toEqual(["node", "/app/dist/cli/main.js"]);
    const v2 = await fetch(`http://127.0.0.1:${port}/v2/`);
    expect(v2.status).toBe(200);
    expect(v2.headers.get("docker-distribution-api-version")).toBe("registry/2.0");
    // The image holds production dependencies only, and the earlier build stage is not left behind.
    const ls = await docker.getContainer(NAME).exec({ Cmd: ["sh", "-c", "ls /app/node_modules | tr '\\n' ' '"], AttachStdout: true, AttachStderr: true });
    const stream = await ls.start({});
    const listing = await new Promise<string>((resolve) => {
      let text = "";
      stream.on("data", (c: Buffer) => (text += c.toString("utf8")));
      stream.on("end", () => resolve(text));
    });
    expect(listing).toContain("dockerode");
    expect(listing).not.toContain("vitest");
    expect(listing).not.toContain("typescript");
    // Only this build's layers count: other suites build on the same engine meanwhile.
    const layers = new Set([...out.text.matchAll(/ ---> ([0-9a-f]{12})\b/g)].map((m) => m[1]));
    expect(layers.size).toBeGreaterThan(3);
    const dangling = (await docker.listImages({ filters: { dangling: ["true"] } })).map((i) => i.Id.replace(/^sha256:/, "").slice(0, 12));
    expect(dangling.filter((id) => layers.has(id))).toEqual([]);
  }, 600_000);

  test("a base image that is not here and cannot be pulled is named with --base-image; no container is left", async () => {
    await docker.getContainer(NAME).remove({ force: true }).catch(() => undefined);
    const out = sink();
    const missing = `mk-gen-test/no-such-node:${suffix}`;
    const err = await runUp({ name: NAME, image: `${IMAGE}-b`, port: await freePort(), storage: VOLUME, baseImage: missing, packageDir: REPO_ROOT, build: true }, { docker, stdout: out, cwd: scratch }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GenerateError);
    expect((err as GenerateError).message).toContain(missing);
    expect((err as GenerateError).message).toContain("--base-image");
    expect(await docker.listContainers({ all: true, filters: { name: [`^/${NAME}$`] } })).toEqual([]);
    await expect(docker.getImage(`${IMAGE}-b`).inspect()).rejects.toMatchObject({ statusCode: 404 });
  }, 300_000);
});
