// The processes a benchmark run needs: Debian's docker-registry as upstream and as proxy peer, and
// mirror-kit's CLI, each on a free loopback port with its own temp storage, stopped and removed after.
import { spawn } from "node:child_process";
import { createWriteStream, existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;

/** A scratch folder for the whole run; everything the bench writes lives under it. */
export class Workspace {
  static async create() {
    return new Workspace(await mkdtemp(join(tmpdir(), "mirror-kit-bench-")));
  }

  constructor(root) {
    this.root = root;
    this.counter = 0;
    this.children = new Set();
  }

  /** A fresh, empty folder: a new cache means a genuinely cold proxy. */
  async dir(label) {
    const dir = join(this.root, `${label}-${++this.counter}`);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  /** Stop whatever is still running and delete the scratch folder (also on failure and Ctrl-C). */
  async dispose() {
    await Promise.allSettled([...this.children].map((c) => c.stop()));
    await rm(this.root, { recursive: true, force: true });
  }
}

/**
 * A free loopback port. The OS picks it and we release it just before the child binds it; the
 * window is tiny, and a clash shows up as a clear "exited before ready" error rather than a hang.
 */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** The upstream's access log (CombinedLoggingHandler on stdout): the source of every upstream count. */
export class AccessLog {
  constructor() {
    this.entries = [];
    this.lastAt = 0;
    this.partial = "";
  }

  feed(text) {
    const lines = (this.partial + text).split("\n");
    this.partial = lines.pop();
    for (const line of lines) {
      const m = /"([A-Z]+) (\S+) HTTP\/[\d.]+" (\d{3}) (\d+|-)/.exec(line);
      if (!m) continue;
      this.entries.push({ method: m[1], path: m[2].split("?")[0], status: Number(m[3]), bytes: m[4] === "-" ? 0 : Number(m[4]) });
      this.lastAt = performance.now();
    }
  }

  mark() {
    return this.entries.length;
  }

  /** Requests since a mark whose path contains `fragment`, counted by method. */
  count(since, fragment) {
    const counts = { GET: 0, HEAD: 0 };
    for (const e of this.entries.slice(since)) {
      if (e.path.includes(fragment)) counts[e.method] = (counts[e.method] ?? 0) + 1;
    }
    return counts;
  }

  /**
   * Lines are written when a response completes, so a count is only final once the log has been
   * quiet for a while (a proxy's background fill finishes after its clients do).
   */
  async quiet(ms = 500, timeoutMs = 120_000) {
    // Also wait from the call itself: the line for a response the client just finished may still
    // be on its way through the pipe.
    const calledAt = performance.now();
    const deadline = calledAt + timeoutMs;
    while (performance.now() - Math.max(this.lastAt, calledAt) < ms) {
      if (performance.now() > deadline) throw new Error("upstream access log never went quiet");
      await sleep(50);
    }
  }
}

/** A child process that serves HTTP; ready once GET /v2/ answers 200 (bench/cluster.mjs starts its replicas with it). */
export class Service {
  constructor(workspace, name, command, args, env) {
    this.workspace = workspace;
    this.name = name;
    this.stderr = "";
    this.exited = false;
    this.child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
    // 'error' (e.g. ENOENT) may come without 'exit': either one ends the process's life here.
    this.exitPromise = new Promise((resolve) => {
      const ended = (info) => {
        this.exited = true;
        this.exitInfo ??= info;
        resolve();
      };
      this.child.once("exit", (code, signal) => ended(signal ? `signal ${signal}` : `code ${code}`));
      this.child.once("error", (err) => ended(err.message));
    });
    // Keep only the tail of stderr: enough to explain a failed start, bounded in memory.
    this.child.stderr.on("data", (d) => {
      this.stderr = (this.stderr + d).slice(-4000);
    });
    workspace.children.add(this);
  }

  async ready(url) {
    const deadline = performance.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (this.exited) throw new Error(`${this.name} exited before it was ready (${this.exitInfo}):\n${this.stderr.trim()}`);
      try {
        const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        if (res.status === 200) return;
      } catch {
        // Not listening yet.
      }
      if (performance.now() > deadline) throw new Error(`${this.name} did not answer GET ${url}/v2/ within ${READY_TIMEOUT_MS} ms:\n${this.stderr.trim()}`);
      await sleep(50);
    }
  }

  /** SIGTERM, then SIGKILL if it lingers; removes its storage when it owns one. */
  async stop() {
    this.workspace.children.delete(this);
    if (!this.exited) {
      this.child.kill("SIGTERM");
      const killed = await Promise.race([this.exitPromise.then(() => false), sleep(STOP_TIMEOUT_MS).then(() => true)]);
      if (killed) {
        this.child.kill("SIGKILL");
        await this.exitPromise;
      }
    }
    if (this.storage) await rm(this.storage, { recursive: true, force: true });
  }
}

function registryConfig({ port, storage, accessLog, remoteurl }) {
  // registry:2's own default config uses the in-memory descriptor cache; the peer runs as the seeds do.
  return [
    "version: 0.1",
    "log:",
    "  level: error",
    "  accesslog:",
    `    disabled: ${!accessLog}`,
    "storage:",
    "  cache:",
    "    blobdescriptor: inmemory",
    "  filesystem:",
    `    rootdirectory: ${storage}`,
    "http:",
    `  addr: 127.0.0.1:${port}`,
    ...(remoteurl ? ["proxy:", `  remoteurl: ${remoteurl}`] : []),
    "",
  ].join("\n");
}

/**
 * CNCF distribution. As upstream, its access log is on and parsed; as the proxy peer it logs
 * nothing, like mirror-kit with --log-level silent, so neither pays for logging.
 */
export async function startRegistry(workspace, { bin, role, remoteurl }) {
  const storage = await workspace.dir(role);
  const port = await freePort();
  const configFile = join(storage, "..", `${role}-${port}.yml`);
  await writeFile(configFile, registryConfig({ port, storage: join(storage, "data"), accessLog: role === "upstream", remoteurl }));
  const service = new Service(workspace, `docker-registry (${role})`, bin, ["serve", configFile], {});
  service.storage = storage;
  const url = `http://127.0.0.1:${port}`;
  let log;
  if (role === "upstream") {
    log = new AccessLog();
    service.child.stdout.setEncoding("utf8");
    service.child.stdout.on("data", (d) => log.feed(d));
  } else {
    service.child.stdout.resume();
  }
  await service.ready(url);
  return {
    name: "distribution",
    url,
    pid: service.child.pid,
    log,
    stop: () => service.stop(),
    // distribution's storage driver layout (registry/storage/paths.go).
    hasBlob: (digest) => existsSync(join(storage, "data", "docker/registry/v2/blobs/sha256", digest.slice(7, 9), digest.slice(7), "data")),
  };
}

/** mirror-kit as a separate process (its CLI), so it competes for CPU exactly as distribution does. */
export async function startMirrorKit(workspace, { cli, upstreamUrl, nodeArgs, env = {} }) {
  const storage = await workspace.dir("mirror-kit");
  const port = await freePort();
  const args = [...nodeArgs, cli, "serve", "--listen", `127.0.0.1:${port}`, "--storage", storage, "--upstream", `docker.io=${upstreamUrl}`, "--log-level", "silent"];
  const service = new Service(workspace, "mirror-kit", process.execPath, args, env);
  service.storage = storage;
  // BENCH_MIRROR_STDOUT=FILE keeps what the server prints (e.g. --trace-gc among BENCH_MIRROR_NODE_ARGS).
  if (process.env.BENCH_MIRROR_STDOUT) service.child.stdout.pipe(createWriteStream(process.env.BENCH_MIRROR_STDOUT, { flags: "a" }));
  else service.child.stdout.resume();
  const url = `http://127.0.0.1:${port}`;
  await service.ready(url);
  return {
    name: "mirror-kit",
    url,
    pid: service.child.pid,
    stop: () => service.stop(),
    // src/store/layout.ts: blobs/<algorithm>/<2 hex>/<hex>, present only once verified and renamed.
    hasBlob: (digest) => existsSync(join(storage, "blobs", "sha256", digest.slice(7, 9), digest.slice(7))),
  };
}

/** Poll until a proxy has published a blob (its fill is over), or fail after timeoutMs. */
export async function waitForBlob(proxy, digest, timeoutMs = 180_000) {
  const deadline = performance.now() + timeoutMs;
  while (!proxy.hasBlob(digest)) {
    if (performance.now() > deadline) throw new Error(`${proxy.name} never stored ${digest} (cache fill did not finish in ${timeoutMs} ms)`);
    await sleep(50);
  }
}
