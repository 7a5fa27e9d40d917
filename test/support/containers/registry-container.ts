// An upstream registry as a container (Debian's docker-registry = CNCF distribution 2.8) on the e2e
// network under an alias; requests are counted from its own access log, read from the container log.
import { GenericContainer, Wait, type StartedTestContainer } from "testcontainers";
import { matches, parseAccessLine, SETTLE_MARKER, type AccessEntry, type AccessFilter } from "../access-log.js";
import type { PushTarget } from "../fixtures/push.js";
import { containerLogLines, dockerApi, waitFor } from "./engine.js";
import type { E2eHarness } from "./harness.js";

export class RegistryContainer implements PushTarget {
  private resetAt = 0;
  private settleSeq = 0;
  private hostPort: number;

  private constructor(
    /** The name the mirror and the slow link reach it by: http://<alias>:5000. */
    readonly alias: string,
    readonly container: StartedTestContainer,
  ) {
    this.hostPort = container.getMappedPort(5000);
  }

  static async start(h: E2eHarness, alias: string): Promise<RegistryContainer> {
    const container = h.track(
      await new GenericContainer(h.img.registry)
        .withLabels(h.labels)
        .withNetwork(h.network)
        .withNetworkAliases(alias)
        .withExposedPorts(5000)
        .withWaitStrategy(Wait.forHttp("/v2/", 5000).forStatusCode(200))
        .withStartupTimeout(60_000)
        .start(),
    );
    return new RegistryContainer(alias, container);
  }

  /** The URL the mirror uses: the registry on the e2e network. */
  get internalUrl(): string {
    return `http://${this.alias}:5000`;
  }

  /** From the test process (fixture pushes, settle markers): the published port. */
  get url(): string {
    return `http://127.0.0.1:${this.hostPort}`;
  }

  /** Every access-log entry since the last reset(), settle markers excluded. */
  async entries(): Promise<AccessEntry[]> {
    return (await this.allEntries()).slice(this.resetAt);
  }

  async count(filter: AccessFilter = {}): Promise<number> {
    return (await this.entries()).filter((e) => matches(e, filter)).length;
  }

  /** One line per request, for assertion messages. */
  async describe(filter: AccessFilter = {}): Promise<string> {
    const lines = (await this.entries()).filter((e) => matches(e, filter)).map((e) => `${e.method} ${e.path}${e.query ? `?${e.query}` : ""} ${e.status}`);
    return `${this.alias} access log:\n${lines.length > 0 ? lines.join("\n") : "(no requests)"}`;
  }

  /** Starts a new counting window; call settle() first so no earlier request lands in it late. */
  async reset(): Promise<void> {
    this.resetAt = (await this.allEntries()).length;
  }

  /**
   * distribution logs a request after its response is complete; a marker request sent now and seen
   * in the log means every request that completed before it is counted.
   */
  async settle(): Promise<void> {
    const marker = `${SETTLE_MARKER}${++this.settleSeq}`;
    const res = await fetch(`${this.url}/v2/?${marker}`);
    await res.arrayBuffer();
    await waitFor(`${this.alias} to log ${marker}`, async () => ((await containerLogLines(this.container.getId())).some((l) => l.includes(marker)) ? true : undefined), 10_000, 100);
  }

  /** The upstream goes offline: the container stops, its storage stays. */
  async stop(): Promise<void> {
    await dockerApi().getContainer(this.container.getId()).stop({ t: 5 });
  }

  /** Back online, same alias and storage (the published port may change). */
  async start(): Promise<void> {
    const c = dockerApi().getContainer(this.container.getId());
    await c.start();
    const info = await c.inspect();
    this.hostPort = Number(info.NetworkSettings.Ports["5000/tcp"]?.[0]?.HostPort);
    await waitFor(`${this.alias} to answer again`, async () => ((await fetch(`${this.url}/v2/`)).status === 200 ? true : undefined), 30_000);
  }

  private async allEntries(): Promise<AccessEntry[]> {
    const out: AccessEntry[] = [];
    for (const line of await containerLogLines(this.container.getId())) {
      const entry = parseAccessLine(line);
      if (entry && !entry.query.includes(SETTLE_MARKER)) out.push(entry);
    }
    return out;
  }
}
