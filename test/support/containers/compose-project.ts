// A user's Compose project driven with the Compose v1 CLI these machines have (docker-compose 1.29;
// the v2 plugin does not exist here): up/down/exec, and a service's container, health and log.
import { createServer } from "node:net";
import { basename, dirname } from "node:path";
import { run, type RunResult } from "../process.js";
import { containerLogLines, dockerApi, waitFor } from "./engine.js";
import type { E2eHarness } from "./harness.js";

/**
 * A port nobody listens on right now. The generated service publishes a fixed host port (as users
 * want: "5000:5000"), so a test asks the OS for a free one instead of hard-coding 5000.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "0.0.0.0", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export class ComposeProject {
  /** A project name of its own, so parallel suites never share containers, networks or volumes. */
  readonly name = `mke2e${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

  /**
   * `files`: the project's Compose file first (its folder is the project folder), then overrides.
   * `down --volumes` is registered with the harness, so whatever `up` started is removed.
   */
  constructor(
    h: E2eHarness,
    private readonly files: readonly string[],
  ) {
    h.trackCleanup(async () => {
      await this.run(["down", "--volumes", "--remove-orphans", "--timeout", "20"]);
    });
  }

  get dir(): string {
    return dirname(this.files[0]!);
  }

  run(args: readonly string[], timeoutMs = 300_000): Promise<RunResult> {
    return run("docker-compose", ["-p", this.name, ...this.files.flatMap((f) => ["-f", f]), ...args], { cwd: this.dir, timeoutMs });
  }

  /** The running container of `service`. */
  async containerId(service: string): Promise<string> {
    const id = (await this.run(["ps", "--quiet", service])).stdout.trim();
    if (!/^[0-9a-f]{64}$/.test(id)) throw new Error(`no container for service ${service} of ${basename(this.files[0]!)}: ${JSON.stringify(id)}`);
    return id;
  }

  /** `docker-compose exec -T SERVICE CMD…`; a non-zero exit throws with its output. */
  async exec(service: string, cmd: readonly string[], timeoutMs = 180_000): Promise<string> {
    return (await this.run(["exec", "-T", service, ...cmd], timeoutMs)).stdout;
  }

  /** Until Docker reports the service's healthcheck healthy; a timeout quotes the last unhealthy report and log. */
  async waitHealthy(service: string, timeoutMs = 120_000): Promise<void> {
    const id = await this.containerId(service);
    await waitFor(
      `service ${service}'s healthcheck to report healthy`,
      async () => {
        const state = (await dockerApi().getContainer(id).inspect()).State;
        if (state.Health?.Status === "unhealthy") throw new Error(`unhealthy: ${JSON.stringify(state.Health.Log?.slice(-2))}\n${(await containerLogLines(id)).slice(-20).join("\n")}`);
        return state.Health?.Status === "healthy" ? true : undefined;
      },
      timeoutMs,
      1_000,
    );
  }

  async logLines(service: string): Promise<string[]> {
    return containerLogLines(await this.containerId(service));
  }
}
