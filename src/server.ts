// Assembles a running mirror from configuration: store, upstream clients, pull-through services,
// HTTP server. startMirror is the in-process API the CLI and the tests use.
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Authenticator } from "./auth/guard.js";
import { ClusterEviction } from "./cluster/eviction.js";
import { startCoordinator } from "./cluster/start.js";
import { parseConfig, SMALL_CACHE_CAP, type ConfigInput } from "./config/schema.js";
import { resolveConfig, type MirrorConfig } from "./config/resolve.js";
import { describeSize } from "./config/sizes.js";
import { MirrorKitError } from "./errors.js";
import { createHandler } from "./http/handler.js";
import { createLogger, type Logger } from "./observe/log.js";
import { Metrics } from "./observe/metrics.js";
import { StatusModel } from "./observe/status.js";
import { StatusStreams } from "./http/status-routes.js";
import { BlobService } from "./proxy/blobs.js";
import { FreshnessPolicy } from "./proxy/freshness.js";
import { ReferrersService } from "./proxy/referrers.js";
import { Holdings } from "./proxy/holdings.js";
import { ManifestService } from "./proxy/manifests.js";
import { ExpectedSizes } from "./proxy/sizes.js";
import { Upstreams } from "./proxy/upstreams.js";
import { loadUpstreamTrust } from "./upstream/trust.js";
import { SizeCap } from "./store/evict.js";
import { openStore } from "./store/open.js";
import { describeTarget } from "./store/s3/target.js";
import { exposureWarnings } from "./tls/exposure.js";
import { StorageHealth } from "./store/health.js";
import { createListener, type TlsFiles } from "./tls/listener.js";

export interface RunningMirror {
  readonly url: string;
  readonly port: number;
  readonly config: MirrorConfig;
  readonly metrics: Metrics;
  /** Re-read the TLS certificate, key and client CAs (SIGHUP); false when not serving TLS or the new files are bad. */
  reloadTls(reason?: string): Promise<boolean>;
  /**
   * Stop accepting requests, let in-flight ones finish for up to graceMs, then cancel what is
   * left (downloads are discarded, nothing half-written is published).
   */
  close(graceMs?: number): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
  /** Collect process metrics (CPU, memory) too: on for the CLI, off for tests sharing a process. */
  processMetrics?: boolean;
  /** The TLS files as serve read them before dropping privileges (see createListener). */
  tlsFiles?: TlsFiles;
}

export async function startMirror(input: ConfigInput | MirrorConfig, options: StartOptions = {}): Promise<RunningMirror> {
  const config = isResolved(input) ? input : resolveConfig(parseConfig(input));
  const log = options.logger ?? createLogger(config.logLevel, undefined, config.logFormat);
  // CA files first: a bad one refuses to start before anything else is opened.
  const trust = await loadUpstreamTrust(config);
  const metrics = new Metrics({ processMetrics: options.processMetrics });
  const auth = new Authenticator(config.auth, log);
  await auth.start();
  // Last uses reach the other replicas' evictors well within the grace that protects them.
  const store = await openStore(config.store, { replica: config.replica, useFlushMs: Math.min(15_000, Math.max(250, Math.floor(config.evictionGraceMs / 4))) });
  const freshness = new FreshnessPolicy(config.tagRules, config.semverTagsImmutable);
  const upstreams = new Upstreams(config, log, metrics, trust);
  const status = await StatusModel.start({ config, metrics, log, breakers: upstreams, store });
  store.onPublish = (n) => status.published(n);
  store.onNotice = (message, fields) => log.warn(fields, message);
  // Redis (config redis): what the replicas of one store agree on. Unreachable, the replica starts anyway.
  const { coordinator, flight } = await startCoordinator(config, log);
  if (coordinator) upstreams.shareWith(coordinator);
  let cap: SizeCap | undefined;
  // Every store opens with a catalog (OpenedStore), so every driver enforces a cap.
  if (config.cacheMaxBytes > 0) {
    const sizeCap = (cap = new SizeCap(
      store,
      config.cacheMaxBytes,
      (r) => {
        status.evicted(r);
        if (r.evicted.length === 0) return;
        metrics.evictedBytes.inc(r.sizeBefore - r.sizeAfter);
        log.info({ evicted: r.evicted.length, freedBytes: r.sizeBefore - r.sizeAfter, sizeBytes: r.sizeAfter, capBytes: config.cacheMaxBytes }, "cache over its size cap: least recently used content evicted");
      },
      (err) => log.error({ err: (err as Error).message }, "cache eviction failed"),
      config.evictionGraceMs,
      (upstream, name, tag) => freshness.pinned(upstream, name, tag),
    ));
    // With Redis the usage is the cluster's, and only the holder of the evict lease evicts.
    const cluster = coordinator ? new ClusterEviction(sizeCap, coordinator, config.cacheMaxBytes, log.child({ component: "eviction" })) : undefined;
    store.onPublish = (n) => {
      status.published(n);
      if (cluster) cluster.published(n);
      else sizeCap.published(n);
    };
    store.makeRoom = (n) => sizeCap.makeRoom(n);
    if (cluster) sizeCap.rerun = () => cluster.run();
    void (cluster ? cluster.run() : sizeCap.trigger());
  }
  const streams = new StatusStreams();
  const holdings = new Holdings({ store, upstreams, maxAgeMs: config.cacheMaxAgeMs });
  const sizes = new ExpectedSizes();
  const health = new StorageHealth(() => store.probe());
  const blobs = new BlobService({ store, holdings, upstreams, metrics, log, maxResumes: config.maxResumes, floor: config.throughputFloor, orphanTimeoutMs: config.orphanFillTimeoutMs, sizes, maxBlobBytes: config.maxBlobBytes, health, ...(flight ? { flight } : {}) });
  const manifests = new ManifestService({ store, holdings, upstreams, metrics, log, manifestMaxBytes: config.manifestMaxBytes, freshness, allowedMediaTypes: config.manifestMediaTypes, sizes, health, ...(coordinator ? { coordinator } : {}) });
  const referrers = new ReferrersService({ store, upstreams, manifests, log, manifestMaxBytes: config.manifestMaxBytes });
  let listener;
  try {
    // Loaded on first use: the archive reader is not worth its memory in a mirror that never imports.
    // The upload waits on local disk: the filesystem store's own temporary folder (same filesystem).
    const importDir = "tempDir" in store && typeof store.tempDir === "string" ? store.tempDir : join(config.storage, "import-tmp");
    const importer = { ingestDir: importDir, run: async (file: string) => (await import("./bundle/import.js")).importBundle(file, store, importDir) };
    listener = await createListener(config.tls, createHandler({ config, log, metrics, blobs, manifests, referrers, importer, upstreams, tags: store, auth, status, streams, health, ...(coordinator ? { coordinator } : {}) }), log, options.tlsFiles);
    await listen(listener.server, config.host, config.port);
  } catch (err) {
    listener?.close();
    await coordinator?.close();
    await status.close();
    await upstreams.close();
    throw err;
  }
  const { server } = listener;
  const port = (server.address() as AddressInfo).port;
  const shownHost = config.host === "0.0.0.0" || config.host === "::" ? "127.0.0.1" : config.host.includes(":") ? `[${config.host}]` : config.host;
  const url = `${listener.scheme}://${shownHost}:${port}`;
  for (const warning of exposureWarnings({ ...config, port })) log.warn(warning);
  if (config.parent) {
    const direct = [...new Set([...config.upstreams.values()].filter((u) => u.username !== undefined).map((u) => u.name))];
    log.info({ parent: config.parent.url.origin, fallback: config.parent.fallback, mirrorId: upstreams.mirrorId, ...(direct.length > 0 ? { directWithCredentials: direct } : {}) }, "chained: upstreams are fetched through the parent mirror");
  }
  if (config.cacheMaxBytes > 0 && config.cacheMaxBytes < SMALL_CACHE_CAP) {
    log.warn({ maxSize: describeSize(config.cacheMaxBytes) }, "cache.maxSize is below 1 MiB: nearly everything will be evicted (a size without a unit is bytes; write e.g. 20GB)");
  }
  log.info({ url, listen: `${config.host}:${port}`, mirrorId: upstreams.mirrorId, storage: config.store.driver === "s3" ? `s3 ${describeTarget(config.store)}` : config.storage, upstreams: [...new Set([...config.upstreams.values()].map((u) => u.name))], defaultUpstream: config.defaultUpstream.name, maxSize: config.cacheMaxBytes > 0 ? describeSize(config.cacheMaxBytes) : "no cap" }, "mirror-kit listening");

  let closing: Promise<void> | undefined;
  const close = (graceMs = 10_000): Promise<void> => {
    closing ??= (async () => {
      listener.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      streams.closeAll();
      const timer = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
      await Promise.race([closed, timer]);
      cap?.stop();
      await blobs.cancelAll("mirror shutting down");
      server.closeAllConnections();
      await closed;
      await upstreams.close();
      await coordinator?.close();
      await status.close();
      await store.close();
      log.info("mirror-kit stopped");
    })();
    return closing;
  };
  return { url, port, config, metrics, reloadTls: (reason = "reload requested") => listener.reloadTls(reason), close };
}

function isResolved(input: ConfigInput | MirrorConfig): input is MirrorConfig {
  return (input as MirrorConfig).upstreams instanceof Map;
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const why = err.code === "EADDRINUSE" ? "the port is already in use" : err.code === "EACCES" ? "permission denied" : (err.code ?? err.message);
      reject(new MirrorKitError("MK_LISTEN_FAILED", `cannot listen on ${host}:${port}: ${why}`, { cause: err }));
    };
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve();
    });
  });
}
