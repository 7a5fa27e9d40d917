// Single flight across replicas: a replica downloads a digest only while it holds the cluster's
// lease on it; the others wait until the blob is published, or take over when the lease lapses.
import { MirrorError, type ErrorCode } from "../oci/errors.js";
import type { Logger } from "../observe/log.js";
import { UpstreamError } from "../upstream/errors.js";
import type { Coordinator, Lease, SharedFailure } from "./coordinator.js";

export interface ClusterFlightOptions {
  coordinator: Coordinator;
  log: Logger;
  /** How often a waiter looks again when nothing was announced (a holder that died announces nothing). */
  pollMs: number;
  /** A client streaming another replica's download is cut off after this long without a new byte. */
  stallMs: number;
}

export class ClusterFlight {
  constructor(private readonly o: ClusterFlightOptions) {}

  get coordinator(): Coordinator {
    return this.o.coordinator;
  }

  get stallMs(): number {
    return this.o.stallMs;
  }

  /**
   * The lease to download `key` (the caller releases it when the download settles), or "published"
   * once another replica's download of it is in the store. A holder's failure for the same `source`
   * is thrown here, as its own clients saw it; for another source the waiter tries its own.
   */
  async claim(key: string, source: string, published: () => Promise<boolean>): Promise<Lease | "published"> {
    let waited = false;
    for (;;) {
      const lease = await this.o.coordinator.tryLease(key);
      if (lease) {
        if (waited) this.o.log.info({ key }, "taking over a download another replica held (it released or its lease lapsed)");
        return lease;
      }
      if (await published()) return "published";
      if (!waited) this.o.log.debug({ key }, "another replica is downloading this; waiting for it to be published");
      waited = true;
      const failure = await this.o.coordinator.waitRelease(key, this.o.pollMs);
      if (await published()) return "published";
      if (failure && failure.source === source) throw new MirrorError(failure.code as ErrorCode, failure.message, undefined, statusOption(failure.status));
    }
  }
}

/** What a failed download tells the replicas that waited for it (only errors a client would see). */
export function sharedFailure(source: string, err: unknown, notFound: ErrorCode): SharedFailure | undefined {
  const m = err instanceof UpstreamError ? err.toMirrorError(notFound) : err;
  if (!(m instanceof MirrorError)) return undefined;
  // Our own shutdown or abandonment says nothing about the blob: waiters take over instead.
  if (m.code === "UNAVAILABLE" && m.status === 503) return undefined;
  return { source, code: m.code, status: m.status, message: m.message };
}

function statusOption(status: number): { status?: 404 | 502 | 503 | 504 } {
  return status === 404 || status === 502 || status === 503 || status === 504 ? { status } : {};
}
