// The HTTP front: request ids, access logs, the distribution routes, and the one place where
// domain errors become OCI error envelopes.
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Authenticator, Principal } from "../auth/guard.js";
import type { MirrorConfig } from "../config/resolve.js";
import { isMirrorKitError } from "../errors.js";
import { parseDigest } from "../oci/digest.js";
import { MirrorError, noSuchEndpoint, toOciError } from "../oci/errors.js";
import { MediaType, parseAccept } from "../oci/mediatypes.js";
import { parseReference } from "../oci/names.js";
import type { Logger } from "../observe/log.js";
import type { Metrics } from "../observe/metrics.js";
import type { BlobService } from "../proxy/blobs.js";
import { catalog, listTags } from "../proxy/listing.js";
import type { ManifestService } from "../proxy/manifests.js";
import type { ReferrersService } from "../proxy/referrers.js";
import { resolveTarget, type Target } from "../proxy/route.js";
import type { Upstreams } from "../proxy/upstreams.js";
import { parseVia, VIA_HEADER, withHops } from "../upstream/hops.js";
import type { Coordinator } from "../cluster/coordinator.js";
import type { StatusModel } from "../observe/status.js";
import { storageFault, storageUnavailable } from "../store/faults.js";
import type { StorageHealth } from "../store/health.js";
import type { TagStore } from "../store/store.js";
import { byteRange, sendBlob, setBlobHeaders } from "./blob-response.js";
import { type Importer, serveImport } from "./import-route.js";
import { matchRoute, type Route } from "./routes.js";
import { isCanary, serveCanaryBlob, serveCanaryManifest } from "./canary.js";
import { describeRequest, isStatusRoute, serveStatusRoute, type StatusStreams } from "./status-routes.js";

export interface HandlerDeps {
  config: MirrorConfig;
  log: Logger;
  metrics: Metrics;
  blobs: BlobService;
  manifests: ManifestService;
  referrers: ReferrersService;
  /** PUT /api/v1/import (mirror-kit import --mirror); absent: not offered. */
  importer?: Importer;
  upstreams: Upstreams;
  tags: TagStore;
  /** The one authentication layer: every route passes it (its config names the open paths). */
  auth: Authenticator;
  status: StatusModel;
  streams: StatusStreams;
  /** Whether the cache folder can be written; /healthz answers 503 with the reason when not. */
  health?: StorageHealth;
  /** Redis shared by the replicas (config redis): /healthz says when it cannot be reached. */
  coordinator?: Coordinator;
}

const API_VERSION = "registry/2.0";
/** The mirror's challenge on a 401 that has no other (today: an upstream refusing the mirror). */
export const DEFAULT_CHALLENGE = 'Basic realm="mirror-kit"';

export function createHandler(deps: HandlerDeps): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const started = process.hrtime.bigint();
    const incomingId = req.headers["x-request-id"];
    const id = typeof incomingId === "string" && /^[\w.-]{1,64}$/.test(incomingId) ? incomingId : randomUUID();
    res.setHeader("x-request-id", id);
    // No browser may guess a type: a manifest-shaped body must never run as HTML from our origin.
    res.setHeader("x-content-type-options", "nosniff");
    for (const [name, values] of Object.entries(deps.config.responseHeaders)) res.setHeader(name, values);
    const url = parseTarget(req.url ?? "/");
    const route = matchRoute(url.pathname);
    if (url.pathname.startsWith("/v2")) res.setHeader("docker-distribution-api-version", API_VERSION);
    const bodyBytes = countBodyBytes(res);
    res.on("close", () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      deps.metrics.httpRequests.inc({ method: req.method ?? "?", route: route.kind, status: String(res.statusCode) });
      deps.metrics.events.emit("request", describeRequest(req, res, route, url.searchParams.get("ns"), deps.config));
      deps.log.info(
        {
          reqId: id,
          method: req.method,
          path: url.pathname,
          ns: url.searchParams.get("ns") ?? undefined,
          status: res.statusCode,
          // Which upstream the request is for, whether the mirror answered from its cache, and how
          // much it sent: what a reader of the access log needs to see what the cache saves.
          upstream: routeUpstream(route, url.searchParams.get("ns"), deps.config),
          cache: res.getHeader("x-mirror-cache"),
          bytes: bodyBytes(),
          // The response ended before its last byte: a client that hung up, or a cut-off body.
          aborted: res.writableFinished ? undefined : true,
          ms: Math.round(ms * 10) / 10,
        },
        "request",
      );
    });
    deps.auth
      .check(req, url.pathname)
      .then((principal) => withHops(deps.upstreams.mirrorId, parseVia(req.headers[VIA_HEADER]), () => dispatch(deps, route, url, req, res, principal)))
      .catch((err: unknown) => fail(deps, id, req, res, err));
  };
}

/** Body bytes written to the response (headers not counted), for the access log; HEAD counts 0. */
function countBodyBytes(res: ServerResponse): () => number {
  let bytes = 0;
  const count = (chunk: unknown, encoding: unknown): void => {
    if (typeof chunk === "string") bytes += Buffer.byteLength(chunk, typeof encoding === "string" ? (encoding as BufferEncoding) : "utf8");
    else if (chunk instanceof Uint8Array) bytes += chunk.byteLength;
  };
  const write = res.write.bind(res) as (...args: unknown[]) => boolean;
  const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
  res.write = ((...args: unknown[]) => (count(args[0], args[1]), write(...args))) as ServerResponse["write"];
  res.end = ((...args: unknown[]) => (typeof args[0] !== "function" && count(args[0], args[1]), end(...args))) as ServerResponse["end"];
  return () => (res.req.method === "HEAD" ? 0 : bytes);
}

/** The upstream a distribution route's repository maps to; undefined for the mirror's own routes or a bad name. */
function routeUpstream(route: Route, ns: string | null, config: MirrorConfig): string | undefined {
  if (!("name" in route)) return undefined;
  try {
    return resolveTarget(route.name, ns, config).upstream.name;
  } catch {
    return undefined;
  }
}

/**
 * The raw request target, split but not normalised: WHATWG URL parsing would resolve "%2e%2e" into
 * a parent-directory step, and a hostile name must be rejected as written, not as rewritten.
 */
function parseTarget(target: string): { pathname: string; searchParams: URLSearchParams } {
  const q = target.indexOf("?");
  return {
    pathname: q >= 0 ? target.slice(0, q) : target,
    searchParams: new URLSearchParams(q >= 0 ? target.slice(q + 1) : ""),
  };
}

async function dispatch(
  deps: HandlerDeps,
  route: Route,
  url: { searchParams: URLSearchParams },
  req: IncomingMessage,
  res: ServerResponse,
  principal: Principal,
): Promise<void> {
  const method = req.method ?? "GET";
  if (route.kind === "healthz") {
    const health = (await deps.health?.check()) ?? { ok: true };
    // Without Redis a replica still serves what the store holds: still up (200), but it says so.
    const redis = deps.coordinator?.health();
    const degraded = redis && !redis.ok ? { redis: redis.reason } : {};
    if (!health.ok) return json(res, 503, { status: "unhealthy", reason: health.reason, ...degraded });
    return json(res, 200, redis && !redis.ok ? { status: "degraded", ...degraded } : { status: "ok" });
  }
  if (route.kind === "metrics") {
    res.setHeader("content-type", deps.metrics.registry.contentType);
    res.end(await deps.metrics.registry.metrics());
    return;
  }
  if (isStatusRoute(route)) return serveStatusRoute(route, req, res, deps.status, deps.streams, deps.config);
  if (route.kind === "unknown" || (route.kind === "import" && !deps.importer)) throw noSuchEndpoint();
  if (route.kind === "import" && deps.importer) return serveImport(req, res, principal, deps.auth.enabled, deps.importer);
  if (method !== "GET" && method !== "HEAD") {
    throw new MirrorError("UNSUPPORTED", "this is a pull-through cache: only pulls (GET, HEAD) are supported");
  }
  const ns = url.searchParams.get("ns");
  switch (route.kind) {
    case "base":
      return json(res, 200, {});
    case "catalog": {
      // Anonymous clients see only the repositories of upstreams they may read.
      const page = await catalog(url.searchParams, deps.tags, deps.config, (upstream) => principal !== null || deps.config.upstreams.get(upstream)?.access === "anonymous");
      if (page.link) res.setHeader("link", page.link);
      return json(res, 200, page.body);
    }
    case "upload":
      throw new MirrorError("UNSUPPORTED", "this is a pull-through cache: pushes are not supported");
    case "referrers": {
      const target = readable(deps, resolveTarget(route.name, ns, deps.config), principal);
      const answer = await deps.referrers.get(target, parseDigest(route.digest), url.searchParams.get("artifactType") ?? undefined);
      res.statusCode = 200;
      res.setHeader("content-type", MediaType.ociIndex);
      res.setHeader("content-length", String(answer.body.byteLength));
      if (answer.filtered) res.setHeader("oci-filters-applied", "artifactType");
      res.setHeader("x-mirror-cache", answer.cache);
      res.setHeader("x-mirror-referrers-source", answer.source);
      res.end(method === "HEAD" ? undefined : answer.body);
      return;
    }
    case "tags": {
      const target = readable(deps, resolveTarget(route.name, ns, deps.config), principal);
      const listing = await listTags(target, url.searchParams, deps.upstreams, deps.tags);
      if (listing.link) res.setHeader("link", listing.link);
      res.setHeader("x-mirror-cache", listing.cache);
      return json(res, 200, listing.body);
    }
    case "manifest": {
      const target = readable(deps, resolveTarget(route.name, ns, deps.config), principal);
      const ref = parseReference(route.reference);
      if (isCanary(target.name)) return serveCanaryManifest(res, ref, method === "HEAD");
      const answer = await deps.manifests.get(target, ref, parseAccept(req.headers.accept));
      res.statusCode = 200;
      res.setHeader("content-type", answer.mediaType);
      res.setHeader("content-length", String(answer.body.byteLength));
      res.setHeader("docker-content-digest", answer.digest.value);
      res.setHeader("etag", `"${answer.digest.value}"`);
      res.setHeader("x-mirror-cache", answer.cache);
      if (method === "GET") deps.metrics.events.emit("served", { kind: "manifest", source: answer.cache === "MISS" ? "upstream" : "cache", bytes: answer.body.byteLength });
      if (answer.stored === false) res.setHeader("x-mirror-stored", "no");
      res.end(method === "HEAD" ? undefined : answer.body);
      return;
    }
    case "blob": {
      const target = readable(deps, resolveTarget(route.name, ns, deps.config), principal);
      const digest = parseDigest(route.digest);
      if (isCanary(target.name)) return serveCanaryBlob(res, digest.value, method === "HEAD");
      if (method === "HEAD") {
        // HEAD answers what GET would, Range included (206 + Content-Range), without the body.
        const { size, cached } = await deps.blobs.stat(target, digest);
        const range = byteRange(req.headers.range, size);
        res.statusCode = range.status;
        if (range.contentRange) res.setHeader("content-range", range.contentRange);
        setBlobHeaders(res, digest, cached, range.end - range.start + 1);
        res.end();
        return;
      }
      const source = await deps.blobs.get(target, digest);
      await sendBlob(req, res, digest, source, deps.metrics);
      return;
    }
  }
}

/** Content of an upstream with access: authenticated is for authenticated clients only. */
function readable(deps: HandlerDeps, target: Target, principal: Principal): Target {
  if (principal !== null || target.upstream.access === "anonymous") return target;
  if (deps.auth.enabled) throw deps.auth.unauthorized(`authentication required: ${target.upstream.name} is served to authenticated clients only`);
  throw new MirrorError("DENIED", `${target.upstream.name} is served to authenticated clients only, and this mirror has no client authentication`);
}

function fail(deps: HandlerDeps, id: string, req: IncomingMessage, res: ServerResponse, err: unknown): void {
  if (res.headersSent) {
    // Mid-body failure (upstream died, digest mismatch, client gone): cut the connection so the
    // client sees an incomplete body rather than a short one that looks whole.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "ERR_STREAM_PREMATURE_CLOSE") deps.log.warn({ reqId: id, err: (err as Error).message }, "response aborted");
    res.destroy();
    return;
  }
  // A storage fault that reached here unhandled is still the disk's fault, not ours: 503, named.
  const fault = isMirrorKitError(err) ? undefined : storageFault(err);
  if (fault) {
    deps.health?.report(err);
    err = storageUnavailable(err, fault);
  }
  const { status, body } = toOciError(err);
  if (status >= 500) {
    deps.log.error({ reqId: id, code: isMirrorKitError(err) ? err.code : undefined, err: isMirrorKitError(err) ? err.message : String((err as Error)?.stack ?? err) }, "request failed");
  }
  // The error's own headers (a challenge, Retry-After, Content-Range) go out with it; set here only.
  if (isMirrorKitError(err) && err.headers) for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
  // Every 401 carries a challenge (RFC 9110 11.6.1); clients without one cannot even try to log in.
  if (status === 401 && !res.hasHeader("www-authenticate")) res.setHeader("www-authenticate", DEFAULT_CHALLENGE);
  if (status === 405 && req.method !== "GET" && req.method !== "HEAD") res.setHeader("allow", "GET, HEAD");
  res.removeHeader("x-mirror-cache");
  json(res, status, body, req.method === "HEAD");
}

function json(res: ServerResponse, status: number, body: unknown, headOnly = false): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader("content-type", "application/json; charset=utf-8");
  res.setHeader("content-length", String(Buffer.byteLength(text)));
  res.end(headOnly ? undefined : text);
}
