// Parses the access log of CNCF distribution (Apache combined format on stdout) and counts
// requests, so a test can prove "fewer upstream requests" from what the upstream actually saw.

export interface AccessEntry {
  method: string;
  /** Path without query, e.g. /v2/library/busybox/blobs/sha256:... */
  path: string;
  /** Query string without '?', '' when absent. */
  query: string;
  status: number;
  bytes: number;
  userAgent: string;
}

export interface AccessFilter {
  method?: string;
  pathIncludes?: string;
  status?: number;
  /** Only blob or only manifest requests (tags/list, /v2/ and uploads are neither). */
  kind?: "blob" | "manifest";
}

// 127.0.0.1 - - [23/Nov/2026:13:16:27 +0000] "GET /v2/foo/manifests/x HTTP/1.1" 404 91 "" "curl/7.88.1"
const COMBINED = /^\S+ \S+ \S+ \[[^\]]+\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-) "[^"]*" "([^"]*)"/;

/** Requests the harness itself sends to find the end of the log; never counted. */
export const SETTLE_MARKER = "mk-harness-settle=";

export function parseAccessLine(line: string): AccessEntry | undefined {
  const m = COMBINED.exec(line);
  if (!m) return undefined;
  const [, method, uri, status, bytes, userAgent] = m as unknown as [string, string, string, string, string, string];
  const q = uri.indexOf("?");
  return {
    method,
    path: q >= 0 ? uri.slice(0, q) : uri,
    query: q >= 0 ? uri.slice(q + 1) : "",
    status: Number(status),
    bytes: bytes === "-" ? 0 : Number(bytes),
    userAgent,
  };
}

export function matches(entry: AccessEntry, filter: AccessFilter): boolean {
  if (filter.method && entry.method !== filter.method.toUpperCase()) return false;
  if (filter.pathIncludes && !entry.path.includes(filter.pathIncludes)) return false;
  if (filter.status !== undefined && entry.status !== filter.status) return false;
  if (filter.kind === "blob" && !/\/blobs\/[a-z0-9]+:/.test(entry.path)) return false;
  if (filter.kind === "manifest" && !entry.path.includes("/manifests/")) return false;
  return true;
}

/**
 * Entries seen since the last reset(). Survives a registry restart: the log of the
 * previous run stays, so "requests while offline" and "after it came back" add up.
 */
export class AccessLog {
  private all: AccessEntry[] = [];
  private from = 0;

  /** Feed one raw output line; non-access lines are ignored. */
  push(line: string): void {
    const entry = parseAccessLine(line);
    if (entry && !entry.query.includes(SETTLE_MARKER)) this.all.push(entry);
  }

  get entries(): readonly AccessEntry[] {
    return this.all.slice(this.from);
  }

  count(filter: AccessFilter = {}): number {
    return this.entries.filter((e) => matches(e, filter)).length;
  }

  /** Count per path, e.g. to show that each blob was fetched exactly once. */
  countByPath(filter: AccessFilter = {}): Map<string, number> {
    const counts = new Map<string, number>();
    for (const e of this.entries) if (matches(e, filter)) counts.set(e.path, (counts.get(e.path) ?? 0) + 1);
    return counts;
  }

  reset(): void {
    this.from = this.all.length;
  }

  /** One line per request, for assertion messages. */
  describe(filter: AccessFilter = {}): string {
    const lines = this.entries.filter((e) => matches(e, filter)).map((e) => `${e.method} ${e.path}${e.query ? `?${e.query}` : ""} ${e.status}`);
    return lines.length > 0 ? lines.join("\n") : "(no requests)";
  }
}
