// What replicas sharing one store agree on: who downloads a digest, who revalidates a tag, who
// evicts (leases), and shared figures. LocalCoordinator is one replica alone (today's single flight).
import { randomBytes } from "node:crypto";

/** A lease on a key, renewed by its holder until released; lapses when the holder dies. */
export interface Lease {
  /** False once the lease was lost (it lapsed, or the coordinator went down): another replica may hold it. */
  readonly held: boolean;
  /** Let others have it; `failure` is told to the replicas that waited (they answer the same error). */
  release(failure?: SharedFailure): Promise<void>;
}

/** A holder's failure, as waiting replicas answer it. */
export interface SharedFailure {
  /** Which upstream repository the download was for: only waiters for the same one take it as theirs. */
  source: string;
  code: string;
  status: number;
  message: string;
}

export type CoordinatorHealth = { ok: true; mode: "local" | "redis" } | { ok: false; mode: "redis"; reason: string };

/** Shared figures and rate-limit observations, readable by every replica. */
export interface SharedState {
  /**
   * Add to the shared cache usage: the new total; "unmeasured" when no replica has measured the
   * store since the coordinator started (a Redis restart loses the figure); undefined when the
   * coordinator cannot be reached.
   */
  addUsage(bytes: number): Promise<number | "unmeasured" | undefined>;
  /**
   * After the evictor's scan: the usage becomes `measured` when nobody published since the figure
   * read `seen` (or when there is none), else `freed` is subtracted from it (publishes during the
   * scan stay counted once). The new total, or undefined when the coordinator cannot be reached.
   */
  settleUsage(measured: number, seen: number | undefined, freed: number): Promise<number | undefined>;
  /** The last value put under `key` by any replica, or undefined. */
  get(key: string): Promise<string | undefined>;
  put(key: string, value: string, ttlMs: number): Promise<void>;
  /** Tell the other replicas now (best effort: one not connected misses it; `put` keeps what must last). */
  broadcast(topic: string, message: unknown): Promise<void>;
  /** Hear what other replicas broadcast on `topic` (never this replica's own messages). */
  onBroadcast(topic: string, handler: (message: unknown) => void): void;
}

export interface Coordinator extends SharedState {
  readonly mode: "local" | "redis";
  /**
   * Try to hold `key` for the cluster: a lease, or undefined while another replica holds it. When
   * the coordinator cannot be reached, a lease that coordinates nothing (this replica goes on alone).
   */
  tryLease(key: string): Promise<Lease | undefined>;
  /**
   * Resolves once `key` may be free (its holder released it or its lease lapsed), or after `ms`.
   * What the holder left as its failure, if any, comes with it.
   */
  waitRelease(key: string, ms: number): Promise<SharedFailure | undefined>;
  health(): CoordinatorHealth;
  close(): Promise<void>;
}

/** One replica alone: every lease is granted (in-process single flight is the services' own). */
export class LocalCoordinator implements Coordinator {
  readonly mode = "local";
  private usage = 0;
  private readonly values = new Map<string, { value: string; until: number }>();

  async tryLease(): Promise<Lease> {
    return soloLease();
  }

  async waitRelease(): Promise<undefined> {
    return undefined;
  }

  health(): CoordinatorHealth {
    return { ok: true, mode: "local" };
  }

  async addUsage(bytes: number): Promise<number> {
    this.usage += bytes;
    return this.usage;
  }

  async settleUsage(measured: number): Promise<number> {
    this.usage = measured;
    return measured;
  }

  async get(key: string): Promise<string | undefined> {
    const v = this.values.get(key);
    return v && v.until > Date.now() ? v.value : undefined;
  }

  async put(key: string, value: string, ttlMs: number): Promise<void> {
    this.values.set(key, { value, until: Date.now() + ttlMs });
  }

  /** Nobody else to tell. */
  async broadcast(): Promise<void> {}

  onBroadcast(): void {}

  async close(): Promise<void> {}
}

/** A lease that coordinates nothing: held until released. */
export function soloLease(): Lease {
  let held = true;
  return {
    get held() {
      return held;
    },
    release: async () => {
      held = false;
    },
  };
}

/** Names this replica in lease values (its config `replica` and pid help an operator reading Redis). */
export function replicaId(replica: string): string {
  return `${replica}:${process.pid}:${randomBytes(4).toString("hex")}`;
}
