// Whether the cache storage can be written right now: the store's own probe (a small write, made
// durable and removed), at most once a second, plus what the last real write failure said. /healthz reports it.
import { describeFault, storageFault } from "./faults.js";

export type Health = { ok: true } | { ok: false; reason: string };

const PROBE_INTERVAL_MS = 1_000;

export class StorageHealth {
  private last: { at: number; health: Health } | undefined;
  private probing: Promise<Health> | undefined;

  /** `probeWrite` is the store's probe (OpenedStore.probe): it throws when the store cannot be written. */
  constructor(private readonly probeWrite: () => Promise<void>) {}

  /** The current verdict: re-probed when the last one is older than a second. */
  check(): Promise<Health> {
    if (this.last && Date.now() - this.last.at < PROBE_INTERVAL_MS) return Promise.resolve(this.last.health);
    this.probing ??= this.probe().finally(() => (this.probing = undefined));
    return this.probing;
  }

  /** A write failed with a storage fault: unhealthy at once, until a probe succeeds again. */
  report(err: unknown): void {
    const code = storageFault(err);
    if (code) this.last = { at: Date.now(), health: { ok: false, reason: `cache storage cannot be written: ${describeFault(code)}` } };
  }

  private async probe(): Promise<Health> {
    let health: Health;
    try {
      await this.probeWrite();
      health = { ok: true };
    } catch (err) {
      const code = storageFault(err) ?? (err as NodeJS.ErrnoException).code ?? "unknown error";
      health = { ok: false, reason: `cache storage cannot be written: ${describeFault(code)}` };
    }
    this.last = { at: Date.now(), health };
    return health;
  }
}
