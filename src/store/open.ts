// Opens the configured storage backend (config `storage`, a discriminated union on `driver`): the
// one place that knows which classes implement the store, so the rest of the mirror sees interfaces.
import type { StoreSpec } from "../config/resolve.js";
import { FsStore } from "./fs-store.js";
import type { S3ClientOptions } from "./s3/client.js";
import type { ContentCatalog, SpaceAware, Store } from "./store.js";

/**
 * A store as the server runs it: the interfaces, a publish hook, and the optional capabilities
 * (eviction, free space) where the backend has them.
 */
export type OpenedStore = Store &
  ContentCatalog &
  Partial<SpaceAware> & {
    /** Called with the size of every newly published blob or manifest (status, size cap). */
    onPublish: (size: number) => void;
    /** Told what an operator should know about how the store behaves (logged as a warning). */
    onNotice?: (message: string, fields: Record<string, unknown>) => void;
    /** Throws when the store cannot be written now (/healthz: src/store/health.ts). */
    probe(): Promise<void>;
    /** Release connections and timers (the mirror is stopping). */
    close(): Promise<void>;
  };

export interface OpenStoreOptions {
  /** This process among replicas sharing the store: its ingest area. */
  replica: string;
  /** S3 only: a replacement HTTP handler (tests resolve virtual-hosted bucket names with it). */
  s3?: S3ClientOptions;
  /**
   * S3 only: how often last uses are written (a fraction of the eviction grace); false for a command
   * that only reads the bucket beside a running mirror (records no use, cleans nothing up).
   */
  useFlushMs?: number | false;
}

export async function openStore(spec: StoreSpec, options: OpenStoreOptions): Promise<OpenedStore> {
  switch (spec.driver) {
    case "filesystem":
      return FsStore.open(spec.root, { replica: options.replica });
    case "s3": {
      // The AWS SDK costs ~6 MiB of resident memory: loaded only by a mirror that stores in S3.
      const { S3Store } = await import("./s3/s3-store.js");
      return S3Store.open(spec, { replica: options.replica, ...options.s3, ...(options.useFlushMs !== undefined ? { useFlushMs: options.useFlushMs } : {}) });
    }
  }
}
