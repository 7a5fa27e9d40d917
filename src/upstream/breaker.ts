// A per-upstream circuit breaker: after a connection-level failure (or repeated 5xx) the upstream is
// skipped for a cooldown, so an offline upstream costs one timeout per window instead of one per request.

/** 5xx answers in a row that open the breaker: one could be a single repository's bad day. */
const SERVER_ERRORS_TO_OPEN = 3;

export class CircuitBreaker {
  private openUntil = 0;
  private serverErrors = 0;

  constructor(
    private readonly cooldownMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** True while requests should not be sent. */
  isOpen(): boolean {
    return this.cooldownMs > 0 && this.now() < this.openUntil;
  }

  /** network: no answer at all (opens at once); 5xx: an answer saying the registry is failing. */
  recordFailure(kind: "network" | "5xx"): void {
    if (this.cooldownMs <= 0) return;
    if (kind === "5xx" && ++this.serverErrors < SERVER_ERRORS_TO_OPEN) return;
    this.serverErrors = 0;
    this.openUntil = this.now() + this.cooldownMs;
  }

  /** Any other answer, including a repository's 401 or 404: the registry is up. */
  recordSuccess(): void {
    this.openUntil = 0;
    this.serverErrors = 0;
  }

  /** Milliseconds until the next attempt is allowed (0 when closed). */
  remainingMs(): number {
    return Math.max(0, this.openUntil - this.now());
  }
}
