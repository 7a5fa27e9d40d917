// The Docker engine the end-to-end suites drive (DOCKER_HOST, as testcontainers finds it): preflight
// that fails with what is missing, the docker CLI and dockerode bound to it, and container log reading.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import Docker from "dockerode";
import { requireTools } from "../preflight.js";
import { run, type RunOptions, type RunResult } from "../process.js";

export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));

let docker: Docker | undefined;

/** dockerode for the engine at DOCKER_HOST (or /var/run/docker.sock), the same one testcontainers uses. */
export function dockerApi(): Docker {
  docker ??= new Docker();
  return docker;
}

/** The docker CLI against that engine. Classic builder: BuildKit would try to pull its frontend. */
export function dockerCli(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return run("docker", args, { timeoutMs: 300_000, ...opts, env: { ...process.env, DOCKER_BUILDKIT: "0", ...opts.env } });
}

function describeEngine(): string {
  return process.env.DOCKER_HOST ? `DOCKER_HOST=${process.env.DOCKER_HOST}` : "/var/run/docker.sock (DOCKER_HOST is not set)";
}

/**
 * Fails (never skips) when the end-to-end suites cannot run here, naming each missing piece:
 * a reachable engine, the host binaries the offline images are made of, a fresh dist/.
 */
export async function requireE2eEnvironment(extraTools: readonly string[] = []): Promise<void> {
  // Ryuk (testcontainers' reaper) would be pulled from Docker Hub, which these machines cannot reach;
  // the harness removes what it creates itself. testcontainers reads this when it first starts a container.
  process.env.TESTCONTAINERS_RYUK_DISABLED = "true";
  // The images are made of the host's own binaries (rootfs.ts checks each file it copies, too).
  requireTools(["docker", "dockerd", "containerd", "ctr", "docker-registry", "busybox", "tar", ...extraTools]);
  try {
    await dockerApi().ping();
  } catch (err) {
    throw new Error(
      `end-to-end suite cannot run: no Docker engine answers at ${describeEngine()} (${(err as Error).message}).\n` +
        "  Start one and point DOCKER_HOST at it, as .ci/run does:\n" +
        "    dockerd --data-root /tmp/mk/docker --exec-root /tmp/mk/exec -H unix:///tmp/mk/docker.sock &\n" +
        "    export DOCKER_HOST=unix:///tmp/mk/docker.sock",
    );
  }
  requireFreshBuild();
}

/** The image is built from dist/: a dist older than src/ would put yesterday's code under test. */
function requireFreshBuild(): void {
  const main = join(REPO_ROOT, "dist", "cli", "main.js");
  if (!existsSync(main)) throw new Error("end-to-end suite cannot run: dist/cli/main.js is missing; run `npm run build` first (the image COPYs dist/)");
  const stale: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts")) {
        const rel = relative(join(REPO_ROOT, "src"), path).replace(/\.ts$/, ".js");
        const built = join(REPO_ROOT, "dist", rel);
        if (!existsSync(built) || statSync(built).mtimeMs < statSync(path).mtimeMs) stale.push(`src/${rel.replace(/\.js$/, ".ts")}`);
      }
    }
  };
  walk(join(REPO_ROOT, "src"));
  if (stale.length > 0) {
    throw new Error(`end-to-end suite cannot run: dist/ is older than ${stale.slice(0, 5).join(", ")}${stale.length > 5 ? ", …" : ""}; run \`npm run build\` first`);
  }
}

/**
 * A container's whole log (every run of it: json-file logs survive stop/start), demultiplexed.
 * Read in full each time instead of followed, so a restarted container needs no re-attach.
 */
export async function containerLogLines(id: string): Promise<string[]> {
  const raw = (await dockerApi().getContainer(id).logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
  return demux(raw).split("\n").filter((l) => l.length > 0);
}

/** Docker's stream framing for non-TTY containers: [stream, 0, 0, 0, size (u32 BE)] + payload. */
function demux(buf: Buffer): string {
  const parts: Buffer[] = [];
  let offset = 0;
  while (offset + 8 <= buf.length) {
    const size = buf.readUInt32BE(offset + 4);
    parts.push(buf.subarray(offset + 8, offset + 8 + size));
    offset += 8 + size;
  }
  return Buffer.concat(parts).toString("utf8");
}

/** Polls `check` every `intervalMs` until it returns a value other than undefined, or fails with `what`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
