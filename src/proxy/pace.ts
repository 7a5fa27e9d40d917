// The blob throughput floor (upstream.minThroughput over upstream.throughputWindow): a body that keeps
// arriving too slowly is judged failed. Only time spent waiting on upstream counts, never time the
// mirror's readers, its disk or a starved process held the download back.

export interface ThroughputFloor {
  /** Slowest acceptable pace, bytes per second. */
  readonly bytesPerSecond: number;
  /** How long the pace is measured before it is judged. */
  readonly windowMs: number;
}

/** A meter judging a read in progress, and the timer that ticks it; stop() ends the timer. */
export interface WatchedPace {
  readonly meter: PaceMeter;
  stop(): void;
}

/**
 * A meter with its own timer, for a read in progress: the timer judges between chunks too (a body
 * that sends nothing at all, before undici's idle timeout), a few times per window and at least
 * every second, and hands a verdict to `onSlow`. A tick three intervals late means the process was
 * held, not upstream: every real meter wants that, so it is set here, not by each caller.
 */
export function watchPace(floor: ThroughputFloor, onSlow: (why: string) => void): WatchedPace {
  const interval = Math.max(100, Math.min(1_000, floor.windowMs / 4));
  const meter = new PaceMeter(floor, Date.now, 3 * interval);
  const timer = setInterval(() => {
    const why = meter.tick();
    if (why) onSlow(why);
  }, interval);
  timer.unref();
  return { meter, stop: () => clearInterval(timer) };
}

/**
 * Fed by the body's reader: waiting() before each read from upstream, arrived() when a chunk came.
 * A window closes once `windowMs` of waiting has passed; below the floor it is "slow", else a new
 * window starts. tick() judges a read still in progress (a timer calls it: a body that sends
 * nothing at all is judged too, before undici's idle timeout).
 */
export class PaceMeter {
  private bytes = 0;
  private waitedMs = 0;
  private waitingSince: number | undefined;
  private lastTick: number;

  constructor(
    readonly floor: ThroughputFloor,
    private readonly now: () => number = Date.now,
    /**
     * Ticks further apart than this mean the process itself was held (a blocked event loop, a
     * starved CPU): that time is not upstream's, and is not counted. Infinity: every gap counts.
     */
    private readonly maxTickGapMs = Number.POSITIVE_INFINITY,
  ) {
    this.lastTick = now();
  }

  waiting(): void {
    this.waitingSince ??= this.now();
  }

  /** A chunk arrived; undefined while the pace is fine, else why it is not. */
  arrived(n: number): string | undefined {
    this.bytes += n;
    this.account();
    this.waitingSince = undefined;
    return this.judge();
  }

  /** Judge the read in progress; undefined while the pace is fine, else why it is not. */
  tick(): string | undefined {
    const now = this.now();
    const previous = this.lastTick;
    this.lastTick = now;
    if (this.waitingSince === undefined) return undefined;
    if (now - previous > this.maxTickGapMs) {
      // This timer came late: the wait since the last tick was the process's, not upstream's.
      this.waitingSince = Math.max(this.waitingSince, now);
      return undefined;
    }
    this.account();
    return this.judge();
  }

  /** Move the wait so far into the window. */
  private account(): void {
    if (this.waitingSince === undefined) return;
    const now = this.now();
    this.waitedMs += now - this.waitingSince;
    this.waitingSince = now;
  }

  private judge(): string | undefined {
    const waited = this.waitedMs;
    if (waited < this.floor.windowMs) return undefined;
    if (this.bytes < (this.floor.bytesPerSecond * waited) / 1000) {
      return `${this.bytes} bytes in ${(waited / 1000).toFixed(1)} s of waiting on upstream, below the floor of ${this.floor.bytesPerSecond} bytes/s (upstream.minThroughput)`;
    }
    // Fast enough over this window: the next one starts from nothing.
    this.bytes = 0;
    this.waitedMs = 0;
    return undefined;
  }
}
