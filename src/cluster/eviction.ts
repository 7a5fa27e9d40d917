// One evictor at a time for replicas sharing a store: every publish counts toward the cache usage
// kept in Redis; past the cap, the replica that takes the "evict" lease evicts and corrects the count.
import type { Logger } from "../observe/log.js";
import type { Coordinator } from "./coordinator.js";

/** What SizeCap (src/store/evict.ts) offers: a run over the whole store, and its own count. */
export interface CapRunner {
  readonly bytes: number | undefined;
  published(bytes: number): void;
  /** Evict now; resolves with the bytes freed. */
  trigger(): Promise<number>;
}

export class ClusterEviction {
  private running: Promise<void> | undefined;

  constructor(
    private readonly cap: CapRunner,
    private readonly coordinator: Coordinator,
    private readonly maxBytes: number,
    private readonly log: Logger,
  ) {}

  /** A blob or manifest this replica published. */
  published(bytes: number): void {
    void this.coordinator.addUsage(bytes).then((total) => {
      // Redis away: this replica keeps its own count and evicts by itself, as a lone replica does.
      if (total === undefined) return this.cap.published(bytes);
      // Nobody measured the store since Redis (re)started: the evictor's scan sets the figure.
      if (total === "unmeasured" || total > this.maxBytes) void this.run();
    });
  }

  /** Evict unless another replica is evicting right now (it holds the lease, and its run covers ours). */
  run(): Promise<void> {
    this.running ??= (async () => {
      const lease = await this.coordinator.tryLease("evict");
      if (!lease) {
        this.log.debug("another replica is evicting; not evicting here");
        return;
      }
      // Start and end are logged so an operator (and the cluster test) can see runs never overlap.
      const started = Date.now();
      this.log.debug({ startedAt: started }, "evicting for the cluster: this replica holds the evict lease");
      try {
        // Publishes by other replicas during a run may or may not be in its scan: the figure takes
        // the scan only when there were none, else loses what was freed; when they took the total
        // over the cap again, the holder runs again (they could not).
        for (let round = 0; round < 3; round++) {
          const before = await this.coordinator.addUsage(0);
          const freed = await this.cap.trigger();
          const measured = this.cap.bytes;
          if (measured === undefined) break;
          const total = await this.coordinator.settleUsage(measured, typeof before === "number" ? before : undefined, freed);
          if (total === undefined || total <= this.maxBytes || total === measured) break;
        }
      } finally {
        this.log.debug({ startedAt: started, endedAt: Date.now(), sizeBytes: this.cap.bytes }, "cluster eviction run over");
        await lease.release();
      }
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }
}
