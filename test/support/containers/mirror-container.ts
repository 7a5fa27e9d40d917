// The mirror as users run it: the image built from the project's Dockerfile, configured only through
// its environment, published on a port Docker picks; plus what a test reads from it from outside.
import { GenericContainer, Wait, type StartedTestContainer } from "testcontainers";
import { expect } from "vitest";
import { blobsOf, type Image } from "../fixtures/image.js";
import { metricValue } from "../mirror.js";
import { run } from "../process.js";
import { containerLogLines, dockerApi, waitFor } from "./engine.js";
import type { E2eHarness } from "./harness.js";
import type { RegistryContainer } from "./registry-container.js";

export interface MirrorOptions {
  /** Network alias; clients do not use it (they come through the host), upstream configs may. */
  alias: string;
  env: Record<string, string>;
  /** The port the server listens on inside the container (5000 unless the env or command moves it). */
  port?: number;
  /** Arguments after the image name (default: the image's CMD, `serve`). */
  command?: string[];
  /**
   * Serve HTTPS with these host files (e.g. what `mirror-kit cert` wrote), copied in as users mount
   * them: root's, the key 0600, so the image must read them before it drops to its service user.
   */
  tls?: { certFile: string; keyFile: string };
}

/** Where the TLS files go inside the container (the path `init --ca` mounts them at, too). */
const TLS_DIR = "/etc/mirror-kit/tls";

export interface StopResult {
  exitCode: number;
  /** True when Docker had to SIGKILL it: the graceful shutdown did not finish in time. */
  killed: boolean;
  ms: number;
}

export class MirrorContainer {
  private hostPort: number;

  private constructor(
    private readonly h: E2eHarness,
    readonly container: StartedTestContainer,
    readonly port: number,
    readonly scheme: "http" | "https",
  ) {
    this.hostPort = container.getMappedPort(port);
  }

  static async start(h: E2eHarness, opts: MirrorOptions): Promise<MirrorContainer> {
    const port = opts.port ?? 5000;
    const image = new GenericContainer(h.img.mirrorKit);
    if (opts.command) image.withCommand(opts.command);
    const env = { ...opts.env };
    const ready = Wait.forHttp("/healthz", port).forStatusCode(200);
    if (opts.tls) {
      image.withCopyFilesToContainer([
        { source: opts.tls.certFile, target: `${TLS_DIR}/server.crt`, mode: 0o644 },
        { source: opts.tls.keyFile, target: `${TLS_DIR}/server.key`, mode: 0o600 },
      ]);
      Object.assign(env, { MIRROR_KIT_TLS_CERT: `${TLS_DIR}/server.crt`, MIRROR_KIT_TLS_KEY: `${TLS_DIR}/server.key` });
      // The test process does not trust the CA; the clients under test do.
      ready.usingTls().allowInsecure();
    }
    const container = h.track(
      await image
        .withLabels(h.labels)
        .withNetwork(h.network)
        .withNetworkAliases(opts.alias)
        .withExposedPorts(port)
        .withEnvironment(env)
        .withWaitStrategy(ready)
        .withStartupTimeout(60_000)
        .start(),
    );
    return new MirrorContainer(h, container, port, opts.tls ? "https" : "http");
  }

  get id(): string {
    return this.container.getId();
  }

  /** From the test process (over https, only with a client that trusts the CA). */
  get url(): string {
    return `${this.scheme}://127.0.0.1:${this.hostPort}`;
  }

  /** The published port on the host: what a user writes after the host's address. */
  get publishedPort(): number {
    return this.hostPort;
  }

  /** How VMs and containers reach it: the host's address on their network, then the published port. */
  get viaHostUrl(): string {
    return `${this.scheme}://${this.h.gateway}:${this.hostPort}`;
  }

  metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    return metricValue(this.url, name, labels);
  }

  logLines(): Promise<string[]> {
    return containerLogLines(this.id);
  }

  /** `docker stop -t`: SIGTERM (the image's STOPSIGNAL), then SIGKILL after `timeoutSec`. */
  async stop(timeoutSec: number): Promise<StopResult> {
    const c = dockerApi().getContainer(this.id);
    const started = Date.now();
    await c.stop({ t: timeoutSec });
    const state = (await c.inspect()).State;
    return { exitCode: state.ExitCode, killed: state.ExitCode === 137, ms: Date.now() - started };
  }

  /** `docker start` of the same container: same volume, possibly a new published port. */
  async start(): Promise<void> {
    const c = dockerApi().getContainer(this.id);
    await c.start();
    const info = await c.inspect();
    this.hostPort = Number(info.NetworkSettings.Ports[`${this.port}/tcp`]?.[0]?.HostPort);
    await waitFor("the restarted mirror to answer /healthz", async () => ((await fetch(`${this.url}/healthz`)).ok ? true : undefined), 30_000);
  }

  /**
   * Files under the cache folder with their sizes, read with the Docker archive API so it works on
   * a stopped container too (before the next start wipes ingest/).
   */
  async storageFiles(root = "/var/lib/mirror-kit"): Promise<Map<string, number>> {
    const stream = await dockerApi().getContainer(this.id).getArchive({ path: root });
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    const { stdout } = await run("tar", ["-tvf", "-"], { input: Buffer.concat(chunks) });
    const files = new Map<string, number>();
    for (const line of stdout.split("\n")) {
      // -rw-r--r-- 10001/10001 12345 2026-11-23 13:00 mirror-kit/blobs/sha256/ab/abcd…
      const m = /^(\S)\S+\s+\S+\s+(\d+)\s+\S+\s+\S+\s+(.+)$/.exec(line);
      if (m && m[1] === "-") files.set(m[3]!.replace(/^[^/]+\//, ""), Number(m[2]));
    }
    return files;
  }

  /** Whether the running process serves as this uid: read from the kernel, not from the image config. */
  async processUid(): Promise<number> {
    const r = await this.container.exec(["node", "-e", "process.stdout.write(require('fs').readFileSync('/proc/1/status','utf8').match(/^Uid:\\s+(\\d+)/m)[1])"]);
    if (r.exitCode !== 0) throw new Error(`reading the mirror's uid failed: ${r.output}`);
    return Number(r.stdout);
  }

  /** Docker's view of the image's HEALTHCHECK. */
  async health(): Promise<string | undefined> {
    return (await dockerApi().getContainer(this.id).inspect()).State.Health?.Status;
  }
}

export interface MirrorRequest {
  method: string;
  path: string;
  status: number;
}

/** The mirror's access-log entries (JSON lines, msg "request") whose path holds `pathIncludes`. */
export function mirrorRequests(lines: readonly string[], pathIncludes: string): MirrorRequest[] {
  return lines
    .map((l) => {
      try {
        return JSON.parse(l) as Partial<MirrorRequest> & { msg?: string };
      } catch {
        return undefined;
      }
    })
    .filter((e): e is MirrorRequest & { msg: string } => e?.msg === "request" && typeof e.path === "string" && e.path.includes(pathIncludes));
}

/**
 * A pull went through the mirror: its access log (read by `mirrorLog` once the upstream's has
 * settled) has the manifest answered and one GET of each blob of `image` under `repo`, and the
 * upstream was asked for each blob exactly once.
 */
export async function expectPulledOnceThroughMirror(mirrorLog: () => Promise<string[]>, repo: string, manifestPath: string, image: Image, hub: RegistryContainer): Promise<void> {
  await hub.settle();
  const seen = await mirrorLog();
  expect(mirrorRequests(seen, `/v2/${repo}/manifests/${manifestPath}`).filter((e) => e.status === 200).length).toBeGreaterThanOrEqual(1);
  for (const blob of blobsOf(image)) {
    expect(mirrorRequests(seen, `/v2/${repo}/blobs/${blob.digest}`).filter((e) => e.method === "GET" && e.status === 200)).toHaveLength(1);
    expect(await hub.count({ method: "GET", pathIncludes: `/blobs/${blob.digest}` }), await hub.describe({ method: "GET" })).toBe(1);
  }
}
