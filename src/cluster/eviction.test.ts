import { describe, expect, it } from "vitest";
import { createLogger } from "../observe/log.js";
import { type CapRunner, ClusterEviction } from "./eviction.js";
import { type Coordinator, LocalCoordinator, type Lease, soloLease } from "./coordinator.js";

const log = createLogger("silent");

/** Redis as eviction sees it: a usage figure (unmeasured until set) and an evict lease another replica may hold. */
class SharedFigure extends LocalCoordinator implements Coordinator {
  figure: number | undefined;
  heldElsewhere = false;

  override async tryLease(): Promise<Lease> {
    // LocalCoordinator always grants; "held by another replica" is what Redis answers with undefined.
    return this.heldElsewhere ? (undefined as unknown as Lease) : soloLease();
  }

  override async addUsage(bytes: number): Promise<number> {
    // "unmeasured" typed as a number: LocalCoordinator's own signature has no such answer.
    if (this.figure === undefined) return "unmeasured" as unknown as number;
    this.figure += bytes;
    return this.figure;
  }

  override async settleUsage(measured: number, seen?: number, freed = 0): Promise<number> {
    this.figure = this.figure === undefined || this.figure === seen ? measured : this.figure - freed;
    return this.figure;
  }
}

/**
 * A store of `size` bytes whose runs evict down to `after` and report what they freed; `afterScan`
 * (once) is a publish by another replica landing after this run's scan: the store grows by `bytes`.
 */
function cap(size: number, after: number, afterScan?: { bytes: number; publish: (n: number) => Promise<unknown> }): CapRunner & { runs: number; local: number[] } {
  const c = {
    bytes: undefined as number | undefined,
    runs: 0,
    local: [] as number[],
    published(bytes: number) {
      c.local.push(bytes);
    },
    async trigger() {
      c.runs++;
      const freed = Math.max(0, size - after);
      size = Math.min(size, after);
      c.bytes = size;
      const late = afterScan;
      afterScan = undefined;
      if (late) {
        size += late.bytes;
        await late.publish(late.bytes);
      }
      return freed;
    },
  };
  return c;
}

describe("one evictor at a time, one usage figure", () => {
  it("measures the store when Redis has no figure, and takes the scan as the figure", async () => {
    const coordinator = new SharedFigure();
    const runner = cap(500, 500);
    const e = new ClusterEviction(runner, coordinator, 1_000, log);
    e.published(100);
    await new Promise((r) => setTimeout(r, 10));
    await e.run();
    expect(coordinator.figure).toBe(500);
    expect(runner.runs).toBeGreaterThan(0);
  });

  it("subtracts what it freed instead of overwriting publishes that landed during its scan", async () => {
    const coordinator = new SharedFigure();
    coordinator.figure = 1_200;
    // Another replica publishes 300 bytes after this replica's scan went past them.
    const runner = cap(1_200, 800, { bytes: 300, publish: (n) => coordinator.addUsage(n) });
    const settled: number[] = [];
    const settle = coordinator.settleUsage.bind(coordinator);
    coordinator.settleUsage = async (...a) => {
      const t = await settle(...a);
      settled.push(t);
      return t;
    };
    await new ClusterEviction(runner, coordinator, 1_000, log).run();
    // 1 200 + 300 - 400 freed = 1 100, the store's true size: the publish is counted, exactly once.
    // Over the cap because of it, the holder ran again (the publisher could not), and that quiet
    // run's scan became the figure.
    expect(settled).toEqual([1_100, 800]);
    expect(runner.runs).toBe(2);
    expect(coordinator.figure).toBe(800);
  });

  it("leaves eviction to the replica that holds the lease", async () => {
    const coordinator = new SharedFigure();
    coordinator.figure = 2_000;
    coordinator.heldElsewhere = true;
    const runner = cap(2_000, 100);
    await new ClusterEviction(runner, coordinator, 1_000, log).run();
    expect(runner.runs).toBe(0);
    expect(coordinator.figure).toBe(2_000);
  });

  it("counts and evicts alone while the coordinator cannot be reached", async () => {
    const down: Coordinator = Object.assign(new LocalCoordinator(), { addUsage: async () => undefined });
    const runner = cap(0, 0);
    new ClusterEviction(runner, down, 1_000, log).published(700);
    await new Promise((r) => setTimeout(r, 10));
    expect(runner.local).toEqual([700]);
  });
});
