// What the proxy observes, as typed events: client answers, upstream exchanges, fills. The status
// model (status.ts) is built from these alone, so no part of the proxy keeps counters for it.
import { EventEmitter } from "node:events";

/** One client request, when its response is over. */
export interface RequestEvent {
  at: number;
  method: string;
  /** The route kind (manifest, blob, tags, ...). */
  route: string;
  status: number;
  /** X-Mirror-Cache: HIT, MISS, REVALIDATED or STALE; undefined when none was sent (errors). */
  cache: string | undefined;
  /** The client's address as the socket saw it. */
  client: string;
  /** upstream/name, when the request named an image and its upstream was resolved. */
  upstream?: string;
  name?: string;
  /** A tag or a digest. */
  reference?: string;
  /** A request for mirror-kit doctor's canary (served by the mirror itself; not traffic). */
  canary?: boolean;
}

/** Bytes sent to a client, from the cache or straight from a download in progress. */
export interface ServedEvent {
  kind: "manifest" | "blob";
  source: "cache" | "upstream";
  bytes: number;
}

/** Docker Hub's budget headers (ratelimit-limit / ratelimit-remaining: "100;w=21600"). */
export interface RateLimit {
  limit: number;
  remaining: number;
  /** The window the budget covers, in seconds, when the upstream says. */
  windowSeconds?: number;
}

/** One HTTP exchange with an upstream (or the failure to get an answer). */
export interface UpstreamEvent {
  at: number;
  upstream: string;
  method: string;
  /** undefined: no HTTP answer (connection failure, timeout, or skipped by the breaker). */
  status?: number;
  ms: number;
  error?: string;
  rateLimit?: RateLimit;
  /** A 429's Retry-After, as milliseconds from `at`. */
  retryAfterMs?: number;
}

export interface FillStartEvent {
  digest: string;
  upstream: string;
  name: string;
}

export interface FillProgressEvent {
  digest: string;
  /** Bytes received so far, and the expected total when known. */
  received: number;
  size: number | undefined;
}

export interface FillEndEvent {
  digest: string;
  upstream: string;
  ok: boolean;
  bytes: number;
  ms: number;
}

interface EventMap {
  request: [RequestEvent];
  served: [ServedEvent];
  upstream: [UpstreamEvent];
  fillStart: [FillStartEvent];
  fillProgress: [FillProgressEvent];
  fillEnd: [FillEndEvent];
}

export class ProxyEvents extends EventEmitter<EventMap> {}

/** "100;w=21600" -> 100 and 21600; undefined for anything else. */
export function parseRateLimit(limitHeader: string | undefined, remainingHeader: string | undefined): RateLimit | undefined {
  const limit = parseBudget(limitHeader);
  const remaining = parseBudget(remainingHeader);
  if (!limit || !remaining) return undefined;
  return { limit: limit.value, remaining: remaining.value, ...(remaining.window ?? limit.window ? { windowSeconds: (remaining.window ?? limit.window) as number } : {}) };
}

function parseBudget(header: string | undefined): { value: number; window?: number } | undefined {
  const m = header ? /^\s*(\d{1,12})\s*(?:;\s*w\s*=\s*(\d{1,12}))?/.exec(header) : null;
  if (!m) return undefined;
  return { value: Number(m[1]), ...(m[2] ? { window: Number(m[2]) } : {}) };
}

/** Retry-After as delay-seconds or an HTTP date, in ms from now; undefined when absent or unreadable. */
export function parseRetryAfter(header: string | undefined, now = Date.now()): number | undefined {
  if (!header) return undefined;
  const text = header.trim();
  if (/^\d{1,9}$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
