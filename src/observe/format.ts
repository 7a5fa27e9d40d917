// How status figures read to people: one formatter for both views of GET /api/v1/status, the
// terminal (`mirror-kit status`/`ls`) and the dashboard bundle, so they never disagree.
// No Node imports: src/ui bundles this file for the browser.

/** Bytes in binary units: "512 B", "1.5 MiB". */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** A ratio as a percentage; `none` where there is no ratio yet (no requests). */
export function formatRatio(r: number | null, none: string): string {
  return r === null ? none : `${(100 * r).toFixed(1)} %`;
}

/** A duration in the largest unit that keeps it short: "4.2 s", "12 min", "3.5 h", "2.0 d". */
export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}
