// `mirror-kit up` / `down` through the Docker API: one labelled container per machine, recreated only
// when its configuration changed, with Docker's port conflicts turned into one clear message.
import { isAbsolute, resolve } from "node:path";
import type Dockerode from "dockerode";
import { GenerateError } from "./errors.js";
import { buildMirrorImage } from "./image-build.js";
import type { Output } from "./init.js";
import { sha256 } from "./render.js";
import { CONTAINER_PORT, CONTAINER_STORAGE, resolveSettings, type SettingsInput } from "./settings.js";

export const DEFAULT_CONTAINER = "mirror-kit";
const MANAGED = "dev.mirror-kit.managed";
const CONFIG = "dev.mirror-kit.config";

export interface UpOptions extends Omit<SettingsInput, "build" | "baseImage"> {
  /** Container name (default mirror-kit). */
  name?: string;
  /** Wait until GET /healthz answers 200 (default true). */
  wait?: boolean;
  waitTimeoutMs?: number;
  /** Replaces the image's command; for stand-in images in tests. */
  command?: string[];
  /** The Node base when the image has to be built here (default node:22-alpine). */
  baseImage?: string;
  /** Build the image from this package even when it is on this machine or could be pulled. */
  build?: boolean;
  /** The package whose Dockerfile is built (default: the running one); for tests of a packed tarball. */
  packageDir?: string;
}

export interface ContainerDeps {
  docker: Dockerode;
  stdout: Output;
  cwd: string;
}

export type UpAction = "created" | "recreated" | "started" | "unchanged";

export function containerSpec(o: UpOptions, cwd: string): Dockerode.ContainerCreateOptions {
  // up's --build and --base-image are about building the image here, not init's Compose build.
  const { build: _build, baseImage: _baseImage, ...input } = o;
  const s = resolveSettings(input);
  const custom = s.upstreams.filter((u) => u.custom);
  const hostPath = s.storage.kind === "bind" ? (isAbsolute(s.storage.path) ? s.storage.path : resolve(cwd, s.storage.path)) : null;
  const mount: Dockerode.MountSettings =
    s.storage.kind === "volume" ? { Type: "volume", Source: s.storage.name, Target: CONTAINER_STORAGE } : { Type: "bind", Source: hostPath!, Target: CONTAINER_STORAGE };
  const env = custom.length ? [`MIRROR_KIT_UPSTREAMS=${custom.map((u) => `${u.name}=${u.url}`).join(",")}`] : [];
  // The server only sees its mount point; with this its storage errors name the folder the user gave.
  if (hostPath) env.push(`MIRROR_KIT_STORAGE_HOST_PATH=${hostPath}`);
  const spec: Dockerode.ContainerCreateOptions = {
    name: o.name ?? DEFAULT_CONTAINER,
    Image: s.image,
    Env: env,
    ExposedPorts: { [`${CONTAINER_PORT}/tcp`]: {} },
    // Longer than the server's own 10 s drain, so `docker stop` does not kill it mid-cleanup.
    StopTimeout: 15,
    HostConfig: {
      PortBindings: { [`${CONTAINER_PORT}/tcp`]: [{ HostPort: String(s.port) }] },
      RestartPolicy: { Name: "always" },
      Mounts: [mount],
      // docker-init as PID 1 forwards SIGTERM, so `down` stops the mirror at once instead of after 10 s.
      Init: true,
    },
  };
  if (o.command) spec.Cmd = o.command;
  // The hash of everything above decides "same configuration": no field-by-field diff of inspect output.
  spec.Labels = { [MANAGED]: "true", [CONFIG]: sha256(JSON.stringify(spec)) };
  return spec;
}

async function inspect(docker: Dockerode, name: string): Promise<Dockerode.ContainerInspectInfo | null> {
  try {
    return await docker.getContainer(name).inspect();
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return null;
    throw dockerError(err);
  }
}

function dockerError(err: unknown): GenerateError {
  const e = err as { message?: string; code?: string };
  const why = e.code === "ENOENT" || e.code === "ECONNREFUSED" ? `cannot reach the Docker engine (${e.code}); is it running, and is DOCKER_HOST right?` : (e.message ?? String(err));
  return new GenerateError("DOCKER", why);
}

/** Docker refuses a missing bind source with a bare 400; say which folder and what to do. */
function createError(err: unknown, spec: Dockerode.ContainerCreateOptions): GenerateError {
  const source = spec.HostConfig?.Mounts?.find((m) => m.Type === "bind")?.Source;
  if (source && /bind source path does not exist/i.test((err as Error).message ?? "")) {
    return new GenerateError("BAD_OPTION", `--storage ${source}: no such folder on the Docker host; create it first (mkdir -p ${source}) or give a volume name`);
  }
  return dockerError(err);
}

function ownedOrThrow(info: Dockerode.ContainerInspectInfo, name: string): void {
  if (info.Config.Labels?.[MANAGED] !== "true") {
    throw new GenerateError("CONFLICT", `a container named "${name}" exists that mirror-kit did not create; remove it or pass --name`);
  }
}

export async function runUp(o: UpOptions, deps: ContainerDeps): Promise<UpAction> {
  const spec = containerSpec(o, deps.cwd);
  const name = spec.name!;
  const port = spec.HostConfig!.PortBindings[`${CONTAINER_PORT}/tcp`][0].HostPort as string;
  const out = (line: string) => deps.stdout.write(`${line}\n`);
  const existing = await inspect(deps.docker, name);
  let action: UpAction = "created";
  if (existing) {
    ownedOrThrow(existing, name);
    if (existing.Config.Labels?.[CONFIG] === spec.Labels![CONFIG]) {
      if (existing.State.Running) {
        out(`mirror-kit: already running (container ${name}, http://localhost:${port})`);
        return "unchanged";
      }
      await start(deps.docker.getContainer(name), port, false);
      action = "started";
    } else {
      await deps.docker.getContainer(name).remove({ force: true }).catch((err: unknown) => Promise.reject(dockerError(err)));
      action = "recreated";
    }
  }
  if (action !== "started") {
    await ensureImage(deps.docker, spec.Image!, o, out);
    const container = await deps.docker.createContainer(spec).catch((err: unknown) => Promise.reject(createError(err, spec)));
    await start(container, port, true);
  }
  if (o.wait ?? true) {
    try {
      await waitHealthy(deps.docker, name, port, o.waitTimeoutMs ?? 30_000);
    } catch (err) {
      // A mirror that cannot serve must not stay behind restarting forever (restart policy "always").
      await deps.docker.getContainer(name).remove({ force: true }).catch(() => undefined);
      throw err;
    }
  }
  out(`mirror-kit: ${action} container ${name}; the mirror answers on http://localhost:${port}`);
  return action;
}

async function start(container: Dockerode.Container, port: string, removeOnFailure: boolean): Promise<void> {
  try {
    await container.start();
  } catch (err) {
    if (removeOnFailure) await container.remove({ force: true }).catch(() => undefined);
    const message = (err as Error).message ?? "";
    if (/port is already allocated|address already in use/i.test(message)) {
      throw new GenerateError("PORT_IN_USE", `port ${port} on this machine is already in use (by another container or program); stop it or pick another with --port`);
    }
    throw dockerError(err);
  }
}

/**
 * The image on this machine: there already, else pulled, else built from the Dockerfile in this
 * package (so a mirror-kit installed from npm starts before its image is published, and offline).
 */
async function ensureImage(docker: Dockerode, image: string, o: UpOptions, out: (line: string) => void): Promise<void> {
  const build = () => buildMirrorImage(docker, { tag: image, ...(o.baseImage ? { baseImage: o.baseImage } : {}), ...(o.packageDir ? { packageDir: o.packageDir } : {}) }, out);
  if (o.build) return build();
  try {
    await docker.getImage(image).inspect();
    return;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 404) throw dockerError(err);
  }
  out(`mirror-kit: ${image} is not on this machine; pulling it`);
  try {
    const stream = await docker.pull(image);
    await new Promise<void>((ok, fail) => docker.modem.followProgress(stream, (e: Error | null) => (e ? fail(e) : ok())));
    return;
  } catch (err) {
    out(`mirror-kit: cannot pull ${image} (${(err as Error).message.trim()}); building it here instead`);
  }
  await build();
}

/** The engine's host as the mirror's port is published on it: DOCKER_HOST tcp://HOST or this machine. */
function publishedHost(): string {
  const host = process.env.DOCKER_HOST ?? "";
  return host.startsWith("tcp://") ? new URL(host.replace(/^tcp:/, "http:")).hostname : "127.0.0.1";
}

async function waitHealthy(docker: Dockerode, name: string, port: string, timeoutMs: number): Promise<void> {
  const url = `http://${publishedHost()}:${port}/healthz`;
  const deadline = Date.now() + timeoutMs;
  let why = `${url} did not answer 200 within ${Math.round(timeoutMs / 1000)} s`;
  while (Date.now() < deadline) {
    const ok = await fetch(url, { signal: AbortSignal.timeout(2_000) }).then((r) => r.ok, () => false);
    if (ok) return;
    const info = await inspect(docker, name);
    // The mirror only exits when it cannot start (bad storage, config, port): one exit is the answer.
    if (!info) {
      why = "it disappeared";
      break;
    }
    if (info.RestartCount > 0 || ["exited", "dead", "restarting"].includes(info.State.Status)) {
      why = `it exited (code ${await lastExitCode(docker, name, info)})`;
      break;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const logs = await docker.getContainer(name).logs({ stdout: true, stderr: true, tail: 20 }).then(demux, () => "");
  throw new GenerateError("DOCKER", `container ${name} did not become healthy: ${why}; it was removed. Its last log lines:\n${logs}`);
}

/**
 * The restart policy may already have started the container again, and a running container reports
 * exit code 0: stop restarting it and take the code of the run that is ending (bounded wait).
 */
async function lastExitCode(docker: Dockerode, name: string, info: Dockerode.ContainerInspectInfo): Promise<number> {
  if (["exited", "dead"].includes(info.State.Status)) return info.State.ExitCode;
  const container = docker.getContainer(name);
  await container.update({ RestartPolicy: { Name: "no" } }).catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  const waited = await Promise.race([
    container.wait().then((r: { StatusCode?: number }) => r.StatusCode, () => undefined),
    new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), 10_000))),
  ]).finally(() => clearTimeout(timer));
  return waited ?? (await inspect(docker, name))?.State.ExitCode ?? info.State.ExitCode;
}

/** Docker's log stream frames each chunk with an 8-byte header (no TTY); keep only the text. */
function demux(raw: Buffer | string): string {
  const buf = Buffer.isBuffer(raw) ? raw : Buffer.from(raw);
  const parts: Buffer[] = [];
  let i = 0;
  while (i + 8 <= buf.length && (buf[i] === 1 || buf[i] === 2) && buf[i + 1] === 0) {
    const size = buf.readUInt32BE(i + 4);
    parts.push(buf.subarray(i + 8, i + 8 + size));
    i += 8 + size;
  }
  return (parts.length ? Buffer.concat(parts) : buf).toString("utf8");
}

export async function runDown(o: { name?: string }, deps: Omit<ContainerDeps, "cwd">): Promise<boolean> {
  const name = o.name ?? DEFAULT_CONTAINER;
  const out = (line: string) => deps.stdout.write(`${line}\n`);
  const existing = await inspect(deps.docker, name);
  if (!existing) {
    out(`mirror-kit: no container ${name}; nothing to stop`);
    return false;
  }
  ownedOrThrow(existing, name);
  const container = deps.docker.getContainer(name);
  await container.stop({ t: 10 }).catch((err: { statusCode?: number }) => (err.statusCode === 304 ? undefined : Promise.reject(dockerError(err))));
  await container.remove().catch((err: unknown) => Promise.reject(dockerError(err)));
  const volume = existing.Mounts.find((m) => m.Type === "volume")?.Name;
  out(`mirror-kit: stopped and removed ${name}${volume ? ` (the cache volume ${volume} is kept)` : ""}`);
  return true;
}
