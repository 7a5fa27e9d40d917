// One upstream's rate-limit state: the budget it announces (ratelimit-limit/-remaining, as Docker
// Hub sends), and the waits it asks for (Retry-After on a 429 or 503), which hold requests back.
import type { RateLimitConfig } from "../config/resolve.js";
import { parseRateLimit, parseRetryAfter, type RateLimit } from "../observe/events.js";

/** Why revalidation of fresh-enough tags backs off, and since when. */
export interface Backoff {
  since: number;
  reason: string;
}

export type RequestKind = "manifest" | "other";

/**
 * What one replica tells the others it learned (src/cluster/budget-share.ts carries it): a hold an
 * upstream asked for, in ms from now (never an absolute time: replicas' clocks differ), or the
 * budget it announced when that crossed the reserve.
 */
export interface SharedRateLimit {
  hold?: { kind: "manifest" | "all"; ms: number };
  budget?: RateLimit;
}

export class RateLimitBudget {
  private last: (RateLimit & { at: number }) | undefined;
  /** A 429 holds manifest requests (Docker Hub limits those only); a 503 with Retry-After holds all. */
  private manifestsHeldUntil = 0;
  private allHeldUntil = 0;
  private backoffSince = 0;
  /** Told what other replicas should know (set when replicas share a Redis). */
  share: (learned: SharedRateLimit) => void = () => undefined;

  constructor(
    private readonly config: RateLimitConfig,
    /** Told when backing off starts and stops (the server logs it). */
    private readonly onChange: (backoff: Backoff | undefined, budget: RateLimit) => void = () => undefined,
    private readonly now: () => number = Date.now,
  ) {}

  /** Reads one answer's headers; returns the hold it asks for, in ms (0: none). */
  observe(status: number, headers: { limit?: string; remaining?: string; retryAfter?: string }): number {
    const at = this.now();
    const budget = parseRateLimit(headers.limit, headers.remaining);
    // Only a crossing of the reserve is news for the other replicas, not every answer's count.
    if (budget && this.noteBudget(budget, at)) this.share({ budget });
    if (status !== 429 && status !== 503) return 0;
    const asked = parseRetryAfter(headers.retryAfter, at);
    // A 503 without Retry-After is the circuit breaker's business; a 429 always means "wait".
    if (asked === undefined && status === 503) return 0;
    const hold = Math.min(asked ?? this.config.defaultRetryAfterMs, this.config.maxRetryAfterMs);
    const kind = status === 429 ? "manifest" : "all";
    this.holdFor(kind, hold, at);
    this.share({ hold: { kind, ms: hold } });
    return hold;
  }

  /** What another replica learned from this upstream: it holds and backs off here too (never shared on). */
  learn(learned: SharedRateLimit): void {
    const at = this.now();
    if (learned.budget) this.noteBudget(learned.budget, at);
    // Capped here too: a replica with a smaller rateLimit.maxRetryAfter keeps its own bound.
    if (learned.hold && learned.hold.ms > 0) this.holdFor(learned.hold.kind, Math.min(learned.hold.ms, this.config.maxRetryAfterMs), at);
  }

  /** The hold still to run, as another replica would take it (undefined: none). */
  currentHold(): SharedRateLimit["hold"] {
    const left = (until: number) => Math.max(0, until - this.now());
    if (left(this.allHeldUntil) > 0) return { kind: "all", ms: left(this.allHeldUntil) };
    if (left(this.manifestsHeldUntil) > 0) return { kind: "manifest", ms: left(this.manifestsHeldUntil) };
    return undefined;
  }

  private holdFor(kind: "manifest" | "all", ms: number, at: number): void {
    if (kind === "manifest") this.manifestsHeldUntil = Math.max(this.manifestsHeldUntil, at + ms);
    else this.allHeldUntil = Math.max(this.allHeldUntil, at + ms);
  }

  /** Keep an announced budget; true when it crossed the reserve (backing off started or stopped). */
  private noteBudget(budget: RateLimit, at: number): boolean {
    this.last = { ...budget, at };
    const low = this.isLow(budget);
    if (low && this.backoffSince === 0) {
      this.backoffSince = at;
      this.onChange(this.backoff(), budget);
      return true;
    }
    if (!low && this.backoffSince !== 0) {
      this.backoffSince = 0;
      this.onChange(undefined, budget);
      return true;
    }
    return false;
  }

  /** Milliseconds a request of this kind must still wait (0: send it). */
  heldMs(kind: RequestKind): number {
    const until = Math.max(this.allHeldUntil, kind === "manifest" ? this.manifestsHeldUntil : 0);
    return Math.max(0, until - this.now());
  }

  /** The status the held requests are answered with: 429 when the upstream rate-limited, 503 when it said it was down. */
  heldStatus(kind: RequestKind): 429 | 503 {
    return kind === "manifest" && this.manifestsHeldUntil >= this.allHeldUntil ? 429 : 503;
  }

  /**
   * Set while the last announced budget is at or below the reserve, and for no longer than the
   * window it covers (the budget has refilled by then: Docker Hub's is a rolling 6 h window).
   */
  backoff(): Backoff | undefined {
    if (this.backoffSince === 0 || !this.last) return undefined;
    const windowMs = (this.last.windowSeconds ?? 0) * 1000;
    if (windowMs > 0 && this.now() - this.last.at > windowMs) return undefined;
    return {
      since: this.backoffSince,
      reason: `rate-limit budget ${this.last.remaining}/${this.last.limit} is at or below the reserve (${this.describeReserve()}): tags are revalidated at most every ${Math.round(this.config.backoffFreshnessMs / 1000)} s`,
    };
  }

  /** The freshness window for a tag whose normal window is windowMs: longer while backing off. */
  freshnessMs(windowMs: number): number {
    return this.backoff() ? Math.max(windowMs, this.config.backoffFreshnessMs) : windowMs;
  }

  private isLow(b: RateLimit): boolean {
    const r = this.config.reserve;
    return r.unit === "percent" ? b.remaining * 100 <= b.limit * r.value : b.remaining <= r.value;
  }

  private describeReserve(): string {
    const r = this.config.reserve;
    return r.unit === "percent" ? `${r.value}%` : `${r.value} pulls`;
  }
}

/** Manifest requests are what Docker Hub counts and refuses with 429; blobs and listings are not. */
export function requestKind(path: string): RequestKind {
  return /\/manifests\//.test(path) ? "manifest" : "other";
}
