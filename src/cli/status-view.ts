// The status and the cached repositories as terminal text. Every string from the mirror is
// stripped of control characters first: an upstream's error message must not drive the terminal.
import type { CachedRepository } from "../observe/inventory.js";
import { formatBytes as size, formatDuration as duration, formatRatio } from "../observe/format.js";
import type { StatusV1, TrafficStatus } from "../observe/status-types.js";

export function renderStatus(s: StatusV1, mirror: string, now = Date.now()): string {
  const lines: string[] = [];
  const cap = s.cache.maxBytes === null ? "no size cap" : `of ${size(s.cache.maxBytes)} cap (${Math.round((100 * s.cache.sizeBytes) / s.cache.maxBytes)} %)`;
  lines.push(`mirror-kit at ${safe(mirror)}, up ${ago(s.startedAt, now)}; all-time figures since ${s.countingSince.slice(0, 10)}`);
  lines.push(`cache      ${size(s.cache.sizeBytes)} ${cap}, ${s.cache.objects} objects`);
  lines.push("");
  lines.push(table(
    ["", "requests", "hit ratio", "from cache", "from upstream", "byte hits", "fetched", "time saved"],
    ([["last hour", s.traffic.lastHour], ["last day", s.traffic.lastDay], ["all time", s.traffic.allTime]] as [string, TrafficStatus][]).map(([label, t]) => [
      label, String(t.requests), percent(t.hitRatio), size(t.bytesFromCache), size(t.bytesFromUpstream), percent(t.byteHitRatio), size(t.bytesFetched), t.secondsSaved === null ? "-" : duration(t.secondsSaved),
    ]),
  ));
  lines.push("");
  lines.push(table(
    ["upstream", "state", "requests", "latency", "rate-limit budget", "last error"],
    s.upstreams.map((u) => [
      u.name,
      u.state + (u.retryAfter ? ` until ${u.retryAfter.slice(11, 19)}` : "") + (u.revalidationBackoff ? " (revalidation backed off)" : ""),
      String(u.requests),
      u.latencyMs === null ? "-" : `${Math.round(u.latencyMs)} ms`,
      u.rateLimit ? `${u.rateLimit.remaining}/${u.rateLimit.limit}${u.rateLimit.windowSeconds !== null ? ` per ${duration(u.rateLimit.windowSeconds)}` : ""}` : "-",
      u.lastError ? `${u.lastError.message} (${ago(u.lastError.at, now)} ago)` : "-",
    ]),
  ));
  lines.push("");
  lines.push(s.downloads.length === 0 ? "downloads  none in progress" : table(
    ["downloading", "digest", "progress"],
    s.downloads.map((d) => [`${d.upstream}/${d.repository}`, d.digest.slice(0, 19), d.sizeBytes ? `${size(d.receivedBytes)} of ${size(d.sizeBytes)} (${Math.floor((100 * d.receivedBytes) / d.sizeBytes)} %)` : size(d.receivedBytes)]),
  ));
  lines.push("");
  lines.push(s.recentPulls.length === 0 ? "recent pulls  none yet" : table(
    ["recent pulls", "client", "result", "when"],
    s.recentPulls.slice(0, 10).map((p) => [p.image, p.client, p.result === "error" ? `error ${p.status}` : p.result, `${ago(p.at, now)} ago`]),
  ));
  if (s.images.largest.length > 0) {
    lines.push("");
    lines.push(table(["largest images", "size"], s.images.largest.slice(0, 5).map((i) => [i.image, size(i.sizeBytes)])));
  }
  if (s.images.mostUsed.length > 0) {
    lines.push("");
    lines.push(table(["most used images", "pulls"], s.images.mostUsed.slice(0, 5).map((i) => [i.image, String(i.pulls)])));
  }
  return `${lines.join("\n")}\n`;
}

export function renderRepositories(repos: CachedRepository[], now = Date.now()): string {
  if (repos.length === 0) return "nothing cached yet\n";
  const rows = repos.flatMap((r) => r.tags.map((t) => [`${r.upstream}/${r.name}`, t.tag, size(t.sizeBytes), `${ago(new Date(t.lastUsed).toISOString(), now)} ago`, t.digest.slice(0, 19)]));
  return `${table(["repository", "tag", "size", "last used", "digest"], rows)}\n`;
}

function table(head: string[], rows: string[][]): string {
  const all = [head, ...rows].map((r) => r.map(safe));
  const widths = head.map((_, i) => Math.max(...all.map((r) => (r[i] ?? "").length)));
  return all.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] as number))).join("  ").trimEnd()).join("\n");
}

const percent = (r: number | null): string => formatRatio(r, "-");

function safe(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, "?");
}

function ago(iso: string, now: number): string {
  return duration(Math.max(0, (now - Date.parse(iso)) / 1000));
}
