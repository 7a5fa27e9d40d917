// Turns the per-run results into figures (median, min, max, ratios, upstream counts), the table
// printed at the end, the target verdicts of issue 2, and the JSON written when BENCH_OUT is set.
import { summary } from "./stats.mjs";

export const TARGETS = ["direct", "mirror-kit", "distribution"];
const LABEL = { direct: "direct from upstream", "mirror-kit": "mirror-kit", distribution: "distribution 2.8 proxy" };

/** Median/min/max of every numeric metric, and the upstream counts of every run, per workload and target. */
export function summarize(runs) {
  const out = {};
  for (const workload of Object.keys(runs[0])) {
    out[workload] = {};
    for (const target of TARGETS) {
      const perRun = runs.map((r) => r[workload][target]);
      const s = {};
      for (const [key, value] of Object.entries(perRun[0])) {
        if (typeof value === "number") s[key] = summary(perRun.map((x) => x[key]));
      }
      s.upstreamGet = perRun.map((x) => x.upstream.GET);
      s.upstreamHead = perRun.map((x) => x.upstream.HEAD);
      out[workload][target] = s;
    }
  }
  return out;
}

/** The claims issue 2 makes, checked against the medians. */
export function verdicts(s, o) {
  const single = s.coldSingle["mirror-kit"].seconds.median / s.coldSingle.direct.seconds.median;
  const seq = s.warm["mirror-kit"].sequentialMibPerSec.median / s.warm.distribution.sequentialMibPerSec.median;
  const conc = s.warm["mirror-kit"].concurrentMibPerSec.median / s.warm.distribution.concurrentMibPerSec.median;
  const allEqual = (xs, v) => xs.every((x) => x === v);
  const mk = s.manifest["mirror-kit"];
  const manifestRequests = mk.upstreamGet.map((g, i) => g + mk.upstreamHead[i]);
  return [
    { claim: "a. cold single stream within 1.3x of direct", value: `${single.toFixed(2)}x`, met: single <= 1.3 },
    { claim: `b. ${o.clients} concurrent cold clients cause 1 upstream blob GET`, value: counts(s.coldConcurrent["mirror-kit"].upstreamGet), met: allEqual(s.coldConcurrent["mirror-kit"].upstreamGet, 1) },
    { claim: "b. 1 cold client causes 1 upstream blob GET", value: counts(s.coldSingle["mirror-kit"].upstreamGet), met: allEqual(s.coldSingle["mirror-kit"].upstreamGet, 1) },
    { claim: "c. warm sequential throughput >= 0.8x distribution", value: `${seq.toFixed(2)}x`, met: seq >= 0.8 },
    { claim: `c. warm ${o.warmConcurrent}-client throughput >= 0.8x distribution`, value: `${conc.toFixed(2)}x`, met: conc >= 0.8 },
    { claim: "d. warm tag pulls inside the freshness window: 0 upstream requests", value: counts(manifestRequests), met: allEqual(manifestRequests, 0) },
  ];
}

/** "1" when every run agrees, else "min-max (a,b,c)": a count that varies is itself a finding. */
function counts(xs) {
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  return lo === hi ? String(lo) : `${lo}-${hi} (${xs.join(",")})`;
}

const f = (digits, unit = "") => (x) => `${x.toFixed(digits)}${unit}`;

function spread(stat, fmt) {
  return [fmt(stat.median), fmt(stat.min), fmt(stat.max)];
}

function ratio(a, b) {
  return `${(a / b).toFixed(2)}x`;
}

/** Fixed-width columns: first column left-aligned, the figures right-aligned. */
function table(rows) {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c] ?? "").length)));
  return rows.map((r) => "  " + r.map((cell, c) => (c === 0 ? String(cell).padEnd(widths[c]) : String(cell).padStart(widths[c]))).join("   ")).join("\n");
}

function upstreamCell(s) {
  return `${counts(s.upstreamGet)} / ${counts(s.upstreamHead)}`;
}

import { BLOB_CLIENT } from "./client.mjs";

export function renderReport(s, meta) {
  const o = meta.options;
  const lines = [];
  lines.push("");
  lines.push(`mirror-kit bench: ${o.blobMiB} MiB incompressible layer, ${o.runs} runs (median, min, max), all on loopback`);
  lines.push(`  node ${meta.node}, ${meta.cpus} CPUs (${meta.cpuModel}), ${meta.registryVersion}`);
  lines.push(`  blob client: ${BLOB_CLIENT} (BENCH_CLIENT=curl|node)`);
  lines.push(`  load average (1 min) ${meta.loadAverage.before.toFixed(2)} before, ${meta.loadAverage.after.toFixed(2)} after: other work on the machine skews the figures`);

  lines.push("");
  lines.push(`a. Cold single stream: 1 client, empty cache`);
  lines.push(table([
    ["", "median", "min", "max", "MiB/s", "first byte", "vs direct", "upstream blob GET / HEAD"],
    ...TARGETS.map((t) => {
      const x = s.coldSingle[t];
      return [LABEL[t], ...spread(x.seconds, f(2, " s")), f(0)(x.mibPerSec.median), f(1, " ms")(x.ttfbMs.median), ratio(x.seconds.median, s.coldSingle.direct.seconds.median), upstreamCell(x)];
    }),
  ]));

  lines.push("");
  lines.push(`b. Cold concurrent: ${o.clients} clients at once, same uncached blob (wall time until all are done)`);
  lines.push(table([
    ["", "median", "min", "max", "aggregate MiB/s", "vs direct", "upstream blob GET / HEAD"],
    ...TARGETS.map((t) => {
      const x = s.coldConcurrent[t];
      return [LABEL[t], ...spread(x.wallSeconds, f(2, " s")), f(0)(x.aggregateMibPerSec.median), ratio(x.wallSeconds.median, s.coldConcurrent.direct.wallSeconds.median), upstreamCell(x)];
    }),
  ]));

  lines.push("");
  lines.push(`c. Warm throughput: blob cached; ${o.warmSequential} sequential GETs and ${o.warmConcurrent} concurrent GETs per run (MiB/s, higher is better)`);
  lines.push(table([
    ["", "sequential", "min", "max", "vs distribution", `${o.warmConcurrent} concurrent`, "min", "max", "vs distribution", "upstream GET / HEAD"],
    ...TARGETS.map((t) => {
      const x = s.warm[t];
      const d = s.warm.distribution;
      return [LABEL[t], ...spread(x.sequentialMibPerSec, f(0)), ratio(x.sequentialMibPerSec.median, d.sequentialMibPerSec.median), ...spread(x.concurrentMibPerSec, f(0)), ratio(x.concurrentMibPerSec.median, d.concurrentMibPerSec.median), upstreamCell(x)];
    }),
  ]));

  lines.push("");
  lines.push(`d. Warm manifest by tag: ${o.manifestGets} sequential GETs per run (ms; upstream manifest requests per run)`);
  lines.push(table([
    ["", "median", "min", "max", "p95", "upstream manifest GET / HEAD"],
    ...TARGETS.map((t) => {
      const x = s.manifest[t];
      return [LABEL[t], ...spread(x.medianMs, f(2)), f(2)(x.p95Ms.median), upstreamCell(x)];
    }),
  ]));

  lines.push("");
  lines.push("Targets (issue 2)");
  for (const v of verdicts(s, o)) lines.push(`  ${v.met ? "met   " : "MISSED"}  ${v.claim}: ${v.value}`);
  lines.push("");
  return lines.join("\n");
}
