// The JSON of GET /api/v1/status, as TypeScript types. schemas/status-v1.schema.json is the
// published contract; the two change together (a test validates live answers against the schema).

export interface StatusV1 {
  version: 1;
  /** ISO 8601 times. */
  generatedAt: string;
  startedAt: string;
  /** Since when the all-time figures count (first start on this storage folder). */
  countingSince: string;
  cache: CacheStatus;
  traffic: { lastHour: TrafficStatus; lastDay: TrafficStatus; allTime: TrafficStatus };
  upstreams: UpstreamStatus[];
  downloads: DownloadStatus[];
  recentPulls: PullStatus[];
  images: { largest: ImageSize[]; mostUsed: ImageUse[] };
}

export interface CacheStatus {
  sizeBytes: number;
  objects: number;
  /** null: no size cap. */
  maxBytes: number | null;
}

export interface TrafficStatus {
  requests: number;
  hits: number;
  /** hits / requests; null before the first request. */
  hitRatio: number | null;
  bytesFromCache: number;
  bytesFromUpstream: number;
  /** bytesFromCache / (bytesFromCache + bytesFromUpstream); null before the first byte. */
  byteHitRatio: number | null;
  bytesFetched: number;
  /** Bytes served from the cache; none of them crossed the upstream link again. */
  bytesSaved: number;
  /** bytesSaved at the upstream download rate measured so far; null until a download was measured. */
  secondsSaved: number | null;
}

export type UpstreamState = "healthy" | "failing" | "breaker-open" | "rate-limited" | "unused";

export interface UpstreamStatus {
  name: string;
  /** The registry URL (configured URLs carry no credentials). */
  url: string;
  state: UpstreamState;
  breakerOpen: boolean;
  requests: number;
  /** Smoothed time to response headers, ms; null before the first answer. */
  latencyMs: number | null;
  lastError: { message: string; at: string } | null;
  rateLimit: { limit: number; remaining: number; windowSeconds: number | null; observedAt: string } | null;
  /** A 429 or 503 asked to wait until then (Retry-After). */
  retryAfter: string | null;
  /** Set while the announced budget is at or below rateLimit.reserve: tags are revalidated less often. */
  revalidationBackoff: { since: string; reason: string } | null;
}

export interface DownloadStatus {
  digest: string;
  upstream: string;
  repository: string;
  receivedBytes: number;
  /** null until the upstream announced a length. */
  sizeBytes: number | null;
  startedAt: string;
}

export interface PullStatus {
  at: string;
  /** upstream/name:tag */
  image: string;
  client: string;
  /** hit, miss, revalidated, stale, or error. */
  result: "hit" | "miss" | "revalidated" | "stale" | "error";
  status: number;
}

export interface ImageSize {
  image: string;
  sizeBytes: number;
  lastUsed: string;
}

export interface ImageUse {
  image: string;
  pulls: number;
  lastPull: string;
}
