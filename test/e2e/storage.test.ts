// Host-folder storage with the real image through `mirror-kit up`: the folder Docker (or the user, as
// root) created is given to the service user, the server runs as uid 10001, and a folder it still
// cannot use is reported by its host path with no container left behind.
import { chmod, mkdir, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GenerateError } from "../../src/generate/errors.js";
import { runDown, runUp } from "../../src/generate/mirror-container.js";
import { dockerApi, requireE2eEnvironment } from "../support/containers/engine.js";
import { mirrorKitImage } from "../support/containers/images.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

const docker = dockerApi();
const NAME = `mk-e2e-storage-${process.pid}-${Date.now().toString(36)}`;
let image: string;
let scratch: string;
const out = { text: "", write: (t: string) => ((out.text += t), true) };

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, "0.0.0.0", ok));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((ok) => server.close(() => ok()));
  return port;
}

beforeAll(async () => {
  await requireE2eEnvironment();
  if (process.getuid?.() !== 0) throw new Error("this suite creates root-owned host folders: run it as root (CI does)");
  image = await mirrorKitImage();
  scratch = await makeTempDir("e2e-storage");
}, 900_000);

afterAll(async () => {
  await docker.getContainer(NAME).remove({ force: true }).catch(() => undefined);
  if (scratch) await removeTempDir(scratch);
});

describe("mirror-kit up with a host folder", () => {
  it("a root-owned folder (as Docker creates it) is given to uid 10001 and the server runs as 10001", async () => {
    const folder = join(scratch, "cache");
    await mkdir(join(folder, "blobs"), { recursive: true });
    await writeFile(join(folder, "blobs", "left-by-root"), "x");
    expect((await stat(folder)).uid).toBe(0);
    const port = await freePort();
    expect(await runUp({ name: NAME, image, port, storage: folder, waitTimeoutMs: 90_000 }, { docker, stdout: out, cwd: scratch })).toBe("created");
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    for (const p of [folder, join(folder, "blobs"), join(folder, "blobs", "left-by-root")]) expect((await stat(p)).uid, p).toBe(10001);
    const top = await docker.getContainer(NAME).top({ ps_args: "-o pid,uid,args" });
    const server = top.Processes.find((row) => row[2]?.startsWith("node ")); // not docker-init (root), which up adds as PID 1
    expect(server?.[1], `the server process in ${JSON.stringify(top.Processes)}`).toBe("10001");
    await runDown({ name: NAME }, { docker, stdout: out });
  }, 180_000);

  it("a folder the service user still cannot write is named by its host path, and no container is left", async () => {
    const folder = join(scratch, "read-only-cache");
    await mkdir(folder);
    await chmod(folder, 0o555); // ownership can be fixed, a mode the user chose is not overridden
    const err = await runUp({ name: NAME, image, port: await freePort(), storage: folder, waitTimeoutMs: 90_000 }, { docker, stdout: out, cwd: scratch }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GenerateError);
    expect((err as GenerateError).message).toContain(`cannot use storage folder ${folder} (mounted at /var/lib/mirror-kit): not writable by uid 10001`);
    expect(await docker.listContainers({ all: true, filters: { name: [`^/${NAME}$`] } })).toHaveLength(0);
  }, 180_000);
});
