// A private Docker engine per test: its own data/exec roots, socket and daemon.json
// (registry-mirrors), so it never touches, or fights with, another dockerd on the machine.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { requireTools } from "./preflight.js";
import { ManagedProcess, run, type RunOptions, type RunResult } from "./process.js";
import { makeTempDir, removeTempDir } from "./scratch.js";

export interface DockerEngineOptions {
  /** daemon.json "registry-mirrors", e.g. ["http://127.0.0.1:PORT"]. */
  registryMirrors?: string[];
  /** daemon.json "insecure-registries", e.g. ["127.0.0.1:PORT"]. */
  insecureRegistries?: string[];
}

export class DockerEngine {
  private bridgeName: string | undefined;

  private constructor(
    readonly dir: string,
    private readonly containerd: ManagedProcess,
    private dockerd: ManagedProcess | undefined,
  ) {}

  /** The engine's own bridge interface (its daemon.json "bridge"). */
  get bridge(): string | undefined {
    return this.bridgeName;
  }

  /** unix:///tmp/mk-engine-XXXX/docker.sock, for `docker -H`. */
  get host(): string {
    return `unix://${join(this.dir, "docker.sock")}`;
  }

  /** This engine's own containerd, for `ctr -a`. */
  get containerdSocket(): string {
    return join(this.dir, "containerd", "containerd.sock");
  }

  static async start(opts: DockerEngineOptions = {}): Promise<DockerEngine> {
    requireTools(["dockerd", "docker", "containerd", "ip"], { root: true });
    const dir = await makeTempDir("engine");
    // Our own containerd, passed with --containerd: left alone, dockerd 20.10 would attach to a
    // system containerd at /run/containerd when one runs, and every engine would share it.
    await mkdir(join(dir, "containerd"));
    await writeFile(
      join(dir, "containerd", "config.toml"),
      [
        "version = 2",
        `root = "${join(dir, "containerd", "root")}"`,
        `state = "${join(dir, "containerd", "state")}"`,
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        "[grpc]",
        `  address = "${join(dir, "containerd", "containerd.sock")}"`,
        "",
      ].join("\n"),
    );
    const containerd = new ManagedProcess("containerd", "containerd", ["--config", join(dir, "containerd", "config.toml")]);
    const engine = new DockerEngine(dir, containerd, undefined);
    try {
      await containerd.waitForLine(/containerd successfully booted/, 30_000);
      // A bridge of its own, never "none": dockerd started with bridge "none" deletes the host's
      // docker0, which would break the CI engine next to it (and a developer's own Docker).
      engine.bridgeName = await createBridge();
      const daemonJson = {
        "registry-mirrors": opts.registryMirrors ?? [],
        "insecure-registries": opts.insecureRegistries ?? [],
        // No iptables rules: several engines coexist on one machine; tests run containers with --network none.
        bridge: engine.bridgeName,
        iptables: false,
        "ip-masq": false,
      };
      await writeFile(join(dir, "daemon.json"), JSON.stringify(daemonJson, null, 2));
      engine.dockerd = new ManagedProcess("dockerd", "dockerd", [
        "--containerd", engine.containerdSocket,
        "--data-root", join(dir, "data"),
        "--exec-root", join(dir, "exec"),
        "--pidfile", join(dir, "dockerd.pid"),
        "-H", `unix://${join(dir, "docker.sock")}`,
        "--config-file", join(dir, "daemon.json"),
      ]);
      await engine.dockerd.waitForLine(/API listen on/, 60_000);
      await engine.docker(["info", "--format", "{{.ServerVersion}}"]);
    } catch (err) {
      await engine.stop();
      throw err;
    }
    return engine;
  }

  /** Runs the docker CLI against this engine only (an inherited DOCKER_HOST is overridden). */
  docker(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const env = { ...process.env, ...opts.env };
    delete env.DOCKER_HOST;
    delete env.DOCKER_CONTEXT;
    return run("docker", ["-H", this.host, ...args], { ...opts, env });
  }

  /** Every line dockerd printed so far. */
  get logLines(): readonly string[] {
    return this.dockerd?.lines ?? [];
  }

  logTail(lines = 40): string {
    return `${this.dockerd?.logTail(lines) ?? "(dockerd not started)"}\n--- containerd ---\n${this.containerd.logTail(10)}`;
  }

  /**
   * Stops dockerd, then its containerd, then removes every file (unmounting leftovers).
   * Safe to call after a failed start and more than once.
   */
  async stop(): Promise<void> {
    await this.dockerd?.stop(20_000);
    await this.containerd.stop(10_000);
    if (this.bridgeName) await run("ip", ["link", "delete", this.bridgeName], { allowFailure: true });
    this.bridgeName = undefined;
    await removeTempDir(this.dir);
  }
}

let bridges = 0;

/** A fresh Linux bridge with a /24 of its own in 10.217.0.0/16 (named and numbered per process). */
async function createBridge(): Promise<string> {
  const n = (process.pid * 7 + bridges++) % 250;
  const name = `mkb${process.pid.toString(36)}${n.toString(36)}`.slice(0, 15);
  await run("ip", ["link", "add", "name", name, "type", "bridge"]);
  await run("ip", ["addr", "add", `10.217.${n}.1/24`, "dev", name]);
  await run("ip", ["link", "set", name, "up"]);
  return name;
}
