// Brute-force brake: failed logins from one address make that address's next attempts wait,
// doubling up to a ceiling. Memory is bounded: at most `maxAddresses` are remembered, oldest first out.

export interface SlowdownOptions {
  /** Failures allowed before any delay. Default 5. */
  freeFailures?: number;
  /** Delay after the first counted failure; doubles with each further one. Default 200 ms. */
  baseDelayMs?: number;
  /** The longest delay. Default 10 s. */
  maxDelayMs?: number;
  /** Failures older than this are forgotten. Default 15 min. */
  windowMs?: number;
  /** Addresses remembered at once. Default 10,000. */
  maxAddresses?: number;
  now?: () => number;
}

interface Entry {
  failures: number;
  last: number;
}

export class FailureSlowdown {
  private readonly entries = new Map<string, Entry>();
  private readonly o: Required<SlowdownOptions>;

  constructor(options: SlowdownOptions = {}) {
    this.o = { freeFailures: 5, baseDelayMs: 200, maxDelayMs: 10_000, windowMs: 15 * 60_000, maxAddresses: 10_000, now: Date.now, ...options };
  }

  /** How long a new attempt from `address` must wait before it is checked. */
  delayFor(address: string): number {
    const e = this.live(address);
    if (!e || e.failures < this.o.freeFailures) return 0;
    const steps = e.failures - this.o.freeFailures;
    return Math.min(this.o.maxDelayMs, this.o.baseDelayMs * 2 ** Math.min(steps, 30));
  }

  failed(address: string): void {
    const e = this.live(address) ?? { failures: 0, last: 0 };
    e.failures++;
    e.last = this.o.now();
    // Re-insert so Map order is least-recently-failed first; evict from the front.
    this.entries.delete(address);
    this.entries.set(address, e);
    while (this.entries.size > this.o.maxAddresses) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }

  succeeded(address: string): void {
    this.entries.delete(address);
  }

  get size(): number {
    return this.entries.size;
  }

  private live(address: string): Entry | undefined {
    const e = this.entries.get(address);
    if (e && this.o.now() - e.last > this.o.windowMs) {
      this.entries.delete(address);
      return undefined;
    }
    return e;
  }
}
