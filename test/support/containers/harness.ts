// One end-to-end stack's lifetime: the preflight, the images, a user-defined network, and a ledger of
// every container, network, image and folder the suite created, all removed in cleanup() whatever failed.
import { randomUUID } from "node:crypto";
import { Network, type StartedNetwork, type StartedTestContainer } from "testcontainers";
import { makeTempDir, removeTempDir } from "../scratch.js";
import { dockerApi, requireE2eEnvironment } from "./engine.js";
import { mirrorKitImage, nodeRuntimeImage, registryImage, vmImage } from "./images.js";

export interface E2eImages {
  nodeRuntime: string;
  registry: string;
  vm: string;
  mirrorKit: string;
}

/** Label on every container a harness starts, so cleanup finds even those whose start failed half-way. */
export const RUN_LABEL = "mirror-kit-e2e.run";

export class E2eHarness {
  /** Put on every container: { "mirror-kit-e2e.run": <this run> }. */
  readonly labels = { [RUN_LABEL]: randomUUID() };
  private readonly containers = new Set<string>();
  private readonly images = new Set<string>();
  private readonly dirs = new Set<string>();
  private readonly cleanups: (() => Promise<void>)[] = [];

  private constructor(
    /** The images this stack runs, built or reused by content hash. */
    readonly img: E2eImages,
    readonly network: StartedNetwork,
    /** The network's gateway: the host's address as every container on it sees it. */
    readonly gateway: string,
  ) {}

  /**
   * Checks the machine, builds (or reuses) the images and creates the network. On failure,
   * whatever was made is removed before the error propagates.
   */
  static async start(extraTools: readonly string[] = []): Promise<E2eHarness> {
    await requireE2eEnvironment(extraTools);
    const images: E2eImages = {
      nodeRuntime: await nodeRuntimeImage(),
      registry: await registryImage(),
      vm: await vmImage(),
      mirrorKit: await mirrorKitImage(),
    };
    const network = await new Network().start();
    try {
      const info = await dockerApi().getNetwork(network.getId()).inspect();
      const gateway = (info.IPAM?.Config ?? []).map((c: { Gateway?: string }) => c.Gateway).find((g: string | undefined) => !!g && g.includes("."));
      if (!gateway) throw new Error(`network ${network.getName()} has no IPv4 gateway: ${JSON.stringify(info.IPAM)}`);
      return new E2eHarness(images, network, gateway);
    } catch (err) {
      await network.stop().catch(() => undefined);
      throw err;
    }
  }

  /** Registers a container for removal (with its anonymous volumes) in cleanup(). */
  track<T extends StartedTestContainer>(container: T): T {
    this.containers.add(container.getId());
    return container;
  }

  trackContainerId(id: string): void {
    this.containers.add(id);
  }

  /** An image this run built for itself (not one of the content-hash cached ones). */
  trackImage(tag: string): void {
    this.images.add(tag);
  }

  trackCleanup(fn: () => Promise<void>): void {
    this.cleanups.push(fn);
  }

  async tempDir(prefix: string): Promise<string> {
    const dir = await makeTempDir(prefix);
    this.dirs.add(dir);
    return dir;
  }

  /**
   * Removes everything registered, collecting errors instead of stopping at the first, so one
   * stuck container cannot leak the rest. The cached images stay: they are keyed by content.
   */
  async cleanup(): Promise<void> {
    const errors: string[] = [];
    const attempt = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (err) {
        const status = (err as { statusCode?: number }).statusCode;
        if (status !== 404) errors.push(`${what}: ${(err as Error).message}`);
      }
    };
    for (const fn of this.cleanups.reverse()) await attempt("cleanup step", fn);
    const labelled = await dockerApi().listContainers({ all: true, filters: { label: [`${RUN_LABEL}=${this.labels[RUN_LABEL]}`] } });
    for (const id of new Set([...this.containers, ...labelled.map((c) => c.Id)])) {
      await attempt(`container ${id.slice(0, 12)}`, () => dockerApi().getContainer(id).remove({ force: true, v: true }));
    }
    await attempt(`network ${this.network.getName()}`, () => this.network.stop());
    for (const tag of this.images) await attempt(`image ${tag}`, () => dockerApi().getImage(tag).remove({ force: true }));
    for (const dir of this.dirs) await attempt(`folder ${dir}`, () => removeTempDir(dir));
    if (errors.length > 0) throw new Error(`e2e cleanup left something behind:\n  ${errors.join("\n  ")}`);
  }
}
