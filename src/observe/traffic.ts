// Traffic figures over time: one bucket per minute for the last day, so "last hour" and "last day"
// are sums of buckets, and one all-time total that the status file keeps across restarts.

/** What is counted; every field is a plain sum, so windows and totals add up the same way. */
export interface Traffic {
  /** Manifest and blob answers that carried X-Mirror-Cache. */
  requests: number;
  /** Those answered from the cache (HIT, REVALIDATED, STALE). */
  hits: number;
  /** Blob and manifest bytes sent to clients from the cache. */
  bytesFromCache: number;
  /** Bytes sent to clients straight from an upstream download in progress. */
  bytesFromUpstream: number;
  /** Blob bytes downloaded from upstreams. */
  bytesFetched: number;
  /** Time spent downloading those bytes (per download, summed), for the upstream rate. */
  fetchMs: number;
}

export function emptyTraffic(): Traffic {
  return { requests: 0, hits: 0, bytesFromCache: 0, bytesFromUpstream: 0, bytesFetched: 0, fetchMs: 0 };
}

export function addTraffic(into: Traffic, delta: Partial<Traffic>): void {
  for (const key of Object.keys(delta) as (keyof Traffic)[]) into[key] += delta[key] ?? 0;
}

const MINUTE = 60_000;
const BUCKETS = 24 * 60;

export class TrafficWindows {
  /** Bucket i counts minute `minutes[i]` (ms since epoch / 60000); a stale minute is reset on reuse. */
  private readonly buckets: Traffic[] = Array.from({ length: BUCKETS }, emptyTraffic);
  private readonly minutes = new Array<number>(BUCKETS).fill(-1);

  constructor(private readonly now: () => number = Date.now) {}

  add(delta: Partial<Traffic>): void {
    const minute = Math.floor(this.now() / MINUTE);
    const i = minute % BUCKETS;
    if (this.minutes[i] !== minute) {
      this.buckets[i] = emptyTraffic();
      this.minutes[i] = minute;
    }
    addTraffic(this.buckets[i] as Traffic, delta);
  }

  /** The sum over the last `ms` (rounded to whole minutes, the current one included). */
  last(ms: number): Traffic {
    const current = Math.floor(this.now() / MINUTE);
    const from = current - Math.ceil(ms / MINUTE) + 1;
    const sum = emptyTraffic();
    for (let i = 0; i < BUCKETS; i++) {
      const m = this.minutes[i] as number;
      if (m >= from && m <= current) addTraffic(sum, this.buckets[i] as Traffic);
    }
    return sum;
  }
}
