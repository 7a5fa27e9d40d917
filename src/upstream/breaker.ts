// A per-upstream circuit breaker: after a connection-level failure the upstream is skipped for a
// cooldown, so an offline upstream costs one timeout per window instead of one per request.

export class CircuitBreaker {
  private openUntil = 0;

  constructor(
    private readonly cooldownMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** True while requests should not be sent. */
  isOpen(): boolean {
    return this.cooldownMs > 0 && this.now() < this.openUntil;
  }

  recordFailure(): void {
    if (this.cooldownMs > 0) this.openUntil = this.now() + this.cooldownMs;
  }

  recordSuccess(): void {
    this.openUntil = 0;
  }

  /** Milliseconds until the next attempt is allowed (0 when closed). */
  remainingMs(): number {
    return Math.max(0, this.openUntil - this.now());
  }
}
