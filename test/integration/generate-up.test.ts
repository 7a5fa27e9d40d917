// `mirror-kit up` / `down` against the real Docker engine named by DOCKER_HOST (.ci/run starts one),
// with a busybox httpd image standing in for the mirror (it answers GET /healthz on port 5000).
import { spawnSync } from "node:child_process";
import { mkdirSync, symlinkSync, writeFileSync, copyFileSync, chmodSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { GenerateError } from "../../src/generate/errors.js";
import { runDown, runUp, type UpOptions } from "../../src/generate/mirror-container.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";
import { requireTools } from "../support/preflight.js";

const docker = new Docker();
const suffix = `${process.pid}-${Date.now().toString(36)}`;
const IMAGE = `mk-gen-test/httpd:${suffix}`;
const NAME = `mk-gen-up-${suffix}`;
const VOLUME = `mk-gen-cache-${suffix}`;
let scratch: string;

const sink = () => {
  const s = { text: "", write: (t: string) => ((s.text += t), true) };
  return s;
};

/** A free loopback port: the OS picks it, then we release it for Docker to bind. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, "0.0.0.0", ok));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((ok) => server.close(() => ok()));
  return port;
}

const up = (port: number, extra: Partial<UpOptions> = {}) => {
  const out = sink();
  return runUp(
    { name: NAME, image: IMAGE, port, storage: VOLUME, command: ["httpd", "-f", "-p", "5000", "-h", "/www"], waitTimeoutMs: 20_000, ...extra },
    { docker, stdout: out, cwd: scratch },
  ).then((action) => ({ action, out: out.text }));
};

async function containersNamed(): Promise<Docker.ContainerInfo[]> {
  return docker.listContainers({ all: true, filters: { name: [`^/${NAME}$`] } });
}

beforeAll(async () => {
  if (!process.env.DOCKER_HOST) throw new Error("set DOCKER_HOST to a Docker engine (.ci/run starts one; see TESTING-OFFLINE.md)");
  requireTools(["docker", "busybox"]);
  scratch = await makeTempDir("gen-up");
  // A one-layer image: static busybox, /www/healthz for httpd to serve.
  const root = join(scratch, "rootfs");
  mkdirSync(join(root, "bin"), { recursive: true });
  mkdirSync(join(root, "www"), { recursive: true });
  copyFileSync(spawnSync("sh", ["-c", "command -v busybox"], { encoding: "utf8" }).stdout.trim(), join(root, "bin/busybox"));
  chmodSync(join(root, "bin/busybox"), 0o755);
  for (const tool of ["sh", "httpd"]) symlinkSync("busybox", join(root, "bin", tool));
  writeFileSync(join(root, "www/healthz"), '{"status":"ok"}\n');
  const imported = spawnSync("sh", ["-c", 'tar -C "$1" -c . | docker import -c "ENV PATH=/bin" - "$2"', "sh", root, IMAGE], { encoding: "utf8" });
  if (imported.status !== 0) throw new Error(`docker import failed: ${imported.stderr}`);
});

afterAll(async () => {
  await docker.getContainer(NAME).remove({ force: true }).catch(() => undefined);
  await docker.getVolume(VOLUME).remove().catch(() => undefined);
  await docker.getImage(IMAGE).remove({ force: true }).catch(() => undefined);
  if (scratch) await removeTempDir(scratch);
});

describe("mirror-kit up / down", () => {
  test("up starts one healthy container; a second up changes nothing", async () => {
    const port = await freePort();
    expect((await up(port)).action).toBe("created");
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);
    const [info] = await containersNamed();
    const inspect = await docker.getContainer(NAME).inspect();
    expect(inspect.HostConfig.RestartPolicy?.Name).toBe("always");
    expect(inspect.Mounts.find((m) => m.Destination === "/var/lib/mirror-kit")?.Name).toBe(VOLUME);

    const again = await up(port);
    expect(again.action).toBe("unchanged");
    expect(again.out).toContain("already running");
    const after = await containersNamed();
    expect(after).toHaveLength(1);
    expect(after[0]?.Id).toBe(info?.Id);
  });

  test("a changed port recreates the container; down removes it and keeps the cache volume", async () => {
    const port = await freePort();
    expect((await up(port)).action).toBe("recreated");
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    expect(await containersNamed()).toHaveLength(1);

    const out = sink();
    expect(await runDown({ name: NAME }, { docker, stdout: out })).toBe(true);
    expect(out.text).toContain(`the cache volume ${VOLUME} is kept`);
    expect(await containersNamed()).toHaveLength(0);
    expect((await docker.getVolume(VOLUME).inspect()).Name).toBe(VOLUME);
    expect(await runDown({ name: NAME }, { docker, stdout: sink() })).toBe(false);
  });

  test("a port held by another program is a clear error and leaves no container behind", async () => {
    const blocker: Server = createServer();
    await new Promise<void>((ok) => blocker.listen(0, "0.0.0.0", ok));
    const port = (blocker.address() as { port: number }).port;
    try {
      const err = await up(port).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GenerateError);
      expect((err as GenerateError).code).toBe("PORT_IN_USE");
      expect((err as GenerateError).message).toContain(`port ${port} on this machine is already in use`);
      expect(await containersNamed()).toHaveLength(0);
    } finally {
      await new Promise<void>((ok) => blocker.close(() => ok()));
    }
  });

  test("a container of the same name that mirror-kit did not create is left alone", async () => {
    const foreign = await docker.createContainer({ name: NAME, Image: IMAGE, Cmd: ["sh", "-c", "sleep 1"] });
    try {
      const err = await up(await freePort()).catch((e: unknown) => e);
      expect((err as GenerateError).code).toBe("CONFLICT");
      const downErr = await runDown({ name: NAME }, { docker, stdout: sink() }).catch((e: unknown) => e);
      expect((downErr as GenerateError).code).toBe("CONFLICT");
      expect((await docker.getContainer(NAME).inspect()).Id).toBe(foreign.id);
    } finally {
      await foreign.remove({ force: true });
    }
  });

  test("--storage naming a folder that does not exist is a clear error naming it, and leaves no container", async () => {
    const missing = join(scratch, "no-such-folder");
    const err = await up(await freePort(), { storage: missing }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GenerateError);
    expect((err as GenerateError).code).toBe("BAD_OPTION");
    expect((err as GenerateError).message).toBe(`--storage ${missing}: no such folder on the Docker host; create it first (mkdir -p ${missing}) or give a volume name`);
    expect(await containersNamed()).toHaveLength(0);
  });

  test("a mirror that exits at start is reported with its log at once and removed, never left crash-looping", async () => {
    const folder = join(scratch, "cache-crash");
    mkdirSync(folder);
    const started = Date.now();
    // Stands in for a server refusing its storage: it names the folder the way serve does, from the environment up sets.
    const command = ["sh", "-c", 'echo "mirror-kit: cannot use storage folder $MIRROR_KIT_STORAGE_HOST_PATH (mounted at /var/lib/mirror-kit): EACCES" >&2; exit 1'];
    const err = await up(await freePort(), { storage: folder, command, waitTimeoutMs: 60_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GenerateError);
    expect((err as GenerateError).message).toContain(`container ${NAME} did not become healthy: it exited (code 1); it was removed`);
    expect((err as GenerateError).message).toContain(`cannot use storage folder ${folder} (mounted at /var/lib/mirror-kit)`);
    expect(Date.now() - started, "a crash is the answer; no waiting out the 60 s health timeout").toBeLessThan(45_000);
    expect(await containersNamed()).toHaveLength(0);
  });
});
