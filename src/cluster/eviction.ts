// One evictor at a time for replicas sharing a store: every publish counts toward the cache usage
// kept in Redis; past the cap, the replica that takes the "evict" lease evicts and resets the count.
import type { Logger } from "../observe/log.js";
import type { Coordinator } from "./coordinator.js";

/** What SizeCap (src/store/evict.ts) offers: a run over the whole store, and its own count. */
export interface CapRunner {
  readonly bytes: number | undefined;
  published(bytes: number): void;
  trigger(): Promise<void>;
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
      if (total > this.maxBytes) void this.run();
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
      try {
        await this.cap.trigger();
        // What the evictor measured is the truth: drift from replicas that died mid-publish ends here.
        if (this.cap.bytes !== undefined) await this.coordinator.setUsage(this.cap.bytes);
      } finally {
        await lease.release();
      }
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }
}
