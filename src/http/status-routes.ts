// The mirror's own pages and API, beside the distribution routes: the dashboard (GET /, /ui/*),
// /api/v1/status (schemas/status-v1.schema.json), its live stream, and the cached repositories.
import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { MirrorConfig } from "../config/resolve.js";
import { MirrorError } from "../oci/errors.js";
import { parseReference } from "../oci/names.js";
import type { RequestEvent } from "../observe/events.js";
import type { StatusModel } from "../observe/status.js";
import { resolveTarget } from "../proxy/route.js";
import { isCanary } from "./canary.js";
import type { Route } from "./routes.js";

/** The bundle `npm run build` writes (scripts/build-ui.mjs); the same path from src/ and dist/. */
const UI_DIR = new URL("../../dist/ui/", import.meta.url);
const UI_ASSETS: Record<string, string> = {
  "index.html": "text/html; charset=utf-8",
  "app.js": "text/javascript; charset=utf-8",
  "app.js.map": "application/json; charset=utf-8",
  "style.css": "text/css; charset=utf-8",
};
/** How often a connected dashboard gets a fresh status. */
export const STREAM_INTERVAL_MS = 2_000;

export type StatusRoute = Extract<Route, { kind: "dashboard" | "ui" | "status" | "status-events" | "repositories" }>;

export function isStatusRoute(route: Route): route is StatusRoute {
  return route.kind === "dashboard" || route.kind === "ui" || route.kind === "status" || route.kind === "status-events" || route.kind === "repositories";
}

/** Open event streams, ended at shutdown so they do not hold the server's close for its grace. */
export class StatusStreams {
  private readonly open = new Set<ServerResponse>();

  add(res: ServerResponse, status: StatusModel): void {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", "x-accel-buffering": "no" });
    const push = () => {
      status.snapshot().then(
        (s) => res.write(`event: status\ndata: ${JSON.stringify(s)}\n\n`),
        () => res.destroy(),
      );
    };
    push();
    const timer = setInterval(push, STREAM_INTERVAL_MS);
    this.open.add(res);
    res.on("close", () => {
      clearInterval(timer);
      this.open.delete(res);
    });
  }

  closeAll(): void {
    for (const res of this.open) res.end();
  }
}

export async function serveStatusRoute(route: StatusRoute, req: IncomingMessage, res: ServerResponse, status: StatusModel, streams: StatusStreams, config: MirrorConfig): Promise<void> {
  const method = req.method ?? "GET";
  if (method !== "GET" && method !== "HEAD") throw new MirrorError("UNSUPPORTED", "only GET and HEAD are supported here");
  switch (route.kind) {
    case "status":
      return sendJson(res, await status.snapshot(), method);
    case "repositories":
      return sendJson(res, { repositories: await status.repositories() }, method);
    case "status-events":
      return streams.add(res, status);
    case "dashboard":
      return sendAsset(res, "index.html", method);
    case "ui":
      return sendAsset(res, route.file, method);
  }
}

async function sendAsset(res: ServerResponse, file: string, method: string): Promise<void> {
  const type = Object.hasOwn(UI_ASSETS, file) ? UI_ASSETS[file] : undefined;
  if (!type) throw new MirrorError("NAME_UNKNOWN", `no dashboard file ${JSON.stringify(file.slice(0, 80))}`);
  let body: Buffer;
  try {
    body = await readFile(new URL(file, UI_DIR));
  } catch {
    throw new MirrorError("UNAVAILABLE", "the dashboard is not built: run `npm run build` (the status JSON is at /api/v1/status)");
  }
  res.statusCode = 200;
  res.setHeader("content-type", type);
  res.setHeader("content-length", String(body.byteLength));
  // Everything the page needs comes from this server; nothing else may be loaded or framed.
  res.setHeader("content-security-policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
  res.setHeader("x-content-type-options", "nosniff");
  res.setHeader("cache-control", "no-cache");
  res.end(method === "HEAD" ? undefined : body);
}

function sendJson(res: ServerResponse, body: unknown, method: string): void {
  const text = JSON.stringify(body);
  res.statusCode = 200;
  res.setHeader("content-type", "application/json; charset=utf-8");
  res.setHeader("content-length", String(Buffer.byteLength(text)));
  res.setHeader("cache-control", "no-store");
  res.end(method === "HEAD" ? undefined : text);
}

/** The request as the status model sees it; the image is named only when its name and reference are valid. */
export function describeRequest(req: IncomingMessage, res: ServerResponse, route: Route, ns: string | null, config: MirrorConfig): RequestEvent {
  const cache = res.getHeader("x-mirror-cache");
  const event: RequestEvent = {
    at: Date.now(),
    method: req.method ?? "?",
    route: route.kind,
    status: res.statusCode,
    cache: typeof cache === "string" ? cache : undefined,
    client: req.socket.remoteAddress ?? "unknown",
  };
  // doctor's canary is served by the mirror itself: shown as a pull, never counted as traffic.
  if ((route.kind === "manifest" || route.kind === "blob") && isCanary(route.name)) event.canary = true;
  if (route.kind === "manifest") {
    try {
      const target = resolveTarget(route.name, ns, config);
      const ref = parseReference(route.reference);
      Object.assign(event, { upstream: target.upstream.name, name: target.name, reference: ref.kind === "tag" ? ref.tag : ref.digest.value });
    } catch {
      // A name or reference that is not valid names no image.
    }
  }
  return event;
}
