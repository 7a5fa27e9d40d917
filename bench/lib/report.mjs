// Turns the per-run results into figures (median, min, max, spread, ratios, upstream counts), the
// tables printed at the end, and the met / not met verdicts against the targets of issue 12.
import { summary } from "./stats.mjs";

export const TARGETS = ["direct", "mirror-kit", "distribution"];
export const PROXIES = ["mirror-kit", "distribution"];
const LABEL = { direct: "direct from upstream", "mirror-kit": "mirror-kit", distribution: "distribution 2.8 proxy" };
const MIB_128 = 128;
const MIB_96 = 96;
const MANIFEST_RPS_TODAY = 11_240;

/** Median/min/max of every numeric metric, and the upstream counts of every run, per workload and target. */
export function summarize(runs) {
  const out = {};
  for (const workload of Object.keys(runs[0])) {
    out[workload] = {};
    for (const target of Object.keys(runs[0][workload])) {
      const perRun = runs.map((r) => r[workload][target]);
      const s = {};
      for (const [key, value] of Object.entries(perRun[0])) {
        if (typeof value === "number") s[key] = summary(perRun.map((x) => x[key]));
      }
      if (perRun[0].upstream) {
        s.upstreamGet = perRun.map((x) => x.upstream.GET);
        s.upstreamHead = perRun.map((x) => x.upstream.HEAD);
      }
      out[workload][target] = s;
    }
  }
  return out;
}

const med = (s, workload, target, key) => s[workload]?.[target]?.[key]?.median;

/** The targets of issue 12 (and the core's invariants), checked against the medians. */
export function verdicts(s, o, pull) {
  const v = [];
  const add = (claim, value, met) => v.push({ claim, value, met: value !== undefined && met });
  const cs = (t) => med(s, "coldSingle", t, "seconds");
  add("cold single stream (byte-counting client) <= 1.0x distribution's time", fx(cs("mirror-kit") / cs("distribution")), cs("mirror-kit") / cs("distribution") <= 1.0);
  add("cold single stream <= 1.5x direct", fx(cs("mirror-kit") / cs("direct")), cs("mirror-kit") / cs("direct") <= 1.5);
  const tt = (t) => med(s, "coldSingle", t, "ttfbMs");
  add("cold first byte within 1.2x of direct", `${tt("mirror-kit").toFixed(1)} ms vs ${tt("direct").toFixed(1)} ms (${fx(tt("mirror-kit") / tt("direct"))})`, tt("mirror-kit") <= 1.2 * tt("direct"));
  const peak = med(s, "cold16", "mirror-kit", "peakRssMiB");
  add(`peak RSS (VmHWM) during ${o.clients} concurrent cold clients <= 128 MiB`, `${peak.toFixed(0)} MiB`, peak <= MIB_128);
  const after = med(s, "cold16", "mirror-kit", "rssAfterMiB");
  add(`RSS after them <= 96 MiB`, `${after.toFixed(0)} MiB`, after <= MIB_96);
  const w100 = med(s, "warm100", "mirror-kit", "peakRssMiB");
  add(`peak RSS during ${o.manyClients} concurrent warm blob clients < 128 MiB`, `${w100.toFixed(0)} MiB`, w100 < MIB_128);
  const w1 = med(s, "warm1", "mirror-kit", "aggregateMibPerSec") / med(s, "warm1", "distribution", "aggregateMibPerSec");
  add("warm single stream >= 1.0x distribution", fx(w1), w1 >= 1.0);
  const w8 = med(s, "warm8", "mirror-kit", "aggregateMibPerSec") / med(s, "warm8", "distribution", "aggregateMibPerSec");
  add("warm 8 clients >= 1.2x distribution", fx(w8), w8 >= 1.2);
  const p99 = med(s, "manifests", "mirror-kit", "p99Ms");
  add(`manifests by tag, wrk -c${o.wrkConnections}: p99 <= 5 ms`, `${p99.toFixed(2)} ms`, p99 <= 5);
  const rps = med(s, "manifests", "mirror-kit", "requestsPerSec");
  add(`manifests by tag, wrk -c${o.wrkConnections}: >= ${MANIFEST_RPS_TODAY} req/s`, `${rps.toFixed(0)} req/s`, rps >= MANIFEST_RPS_TODAY);
  if (pull) {
    for (const kind of ["cold", "warm"]) {
      const r = med(pull, kind, "mirror-kit", "seconds") / med(pull, kind, "distribution", "seconds");
      add(`docker pull end to end, ${kind}: no slower than through distribution`, fx(r), r <= 1.0);
    }
  }
  const allOne = (xs) => xs.every((x) => x === 1);
  add(`invariant: ${o.clients} concurrent cold clients cause 1 upstream blob GET`, counts(s.cold16["mirror-kit"].upstreamGet), allOne(s.cold16["mirror-kit"].upstreamGet));
  add("invariant: 1 cold client causes 1 upstream blob GET", counts(s.coldSingle["mirror-kit"].upstreamGet), allOne(s.coldSingle["mirror-kit"].upstreamGet));
  return v;
}

function fx(x) {
  return Number.isFinite(x) ? `${x.toFixed(2)}x` : undefined;
}

/** "1" when every run agrees, else "min-max (a,b,c)": a count that varies is itself a finding. */
function counts(xs) {
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  return lo === hi ? String(lo) : `${lo}-${hi} (${xs.join(",")})`;
}

const f = (digits, unit = "") => (x) => (x === undefined || Number.isNaN(x) ? "-" : `${x.toFixed(digits)}${unit}`);

/** median, min-max and the spread as a share of the median: how far one run can be trusted. */
function spread(stat, fmt) {
  if (!stat) return ["-", "-", "-"];
  const pct = stat.median === 0 ? 0 : ((stat.max - stat.min) / stat.median) * 100;
  return [fmt(stat.median), `${fmt(stat.min)}..${fmt(stat.max)}`, `±${(pct / 2).toFixed(0)}%`];
}

function ratio(a, b) {
  return a === undefined || b === undefined ? "-" : `${(a / b).toFixed(2)}x`;
}

/** Fixed-width columns: first column left-aligned, the figures right-aligned. */
export function table(rows) {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c] ?? "").length)));
  return rows.map((r) => "  " + r.map((cell, c) => (c === 0 ? String(cell ?? "").padEnd(widths[c]) : String(cell ?? "").padStart(widths[c]))).join("   ")).join("\n");
}

function upstreamCell(x) {
  return x.upstreamGet ? `${counts(x.upstreamGet)} / ${counts(x.upstreamHead)}` : "-";
}

function cost(x) {
  return [f(2)(x.cpuSecondsPerGB?.median), f(0, " MiB")(x.peakRssMiB?.median)];
}

function coldTable(s, workload, base) {
  return table([
    ["", "median", "min..max", "spread", "first byte", `vs ${base}`, "vs distribution", "CPU s/GB", "peak RSS", "RSS after", "upstream GET / HEAD"],
    ...TARGETS.filter((t) => s[workload][t]).map((t) => {
      const x = s[workload][t];
      return [LABEL[t], ...spread(x.seconds, f(2, " s")), f(1, " ms")(x.ttfbMs.median), ratio(x.seconds.median, s[workload][base].seconds.median), ratio(x.seconds.median, s[workload].distribution.seconds.median), ...cost(x), f(0, " MiB")(x.rssAfterMiB?.median), upstreamCell(x)];
    }),
  ]);
}

function warmTable(s, workload) {
  return table([
    ["", "MiB/s", "min..max", "spread", "vs distribution", "CPU s/GB", "peak RSS", "upstream GET / HEAD"],
    ...TARGETS.filter((t) => s[workload][t]).map((t) => {
      const x = s[workload][t];
      return [LABEL[t], ...spread(x.aggregateMibPerSec, f(0)), ratio(x.aggregateMibPerSec.median, s[workload].distribution.aggregateMibPerSec.median), ...cost(x), upstreamCell(x)];
    }),
  ]);
}

export function renderReport(s, meta, extra = {}) {
  const o = meta.options;
  const lines = [];
  const section = (title, body) => lines.push("", title, body);
  lines.push("");
  lines.push(`mirror-kit bench${o.quick ? " (BENCH_QUICK)" : ""}: ${o.blobMiB} MiB incompressible layer, ${o.runs} interleaved runs (order rotated per run; median, min..max, spread = half the range over the median), all on loopback`);
  lines.push(`  node ${meta.node}, ${meta.cpus} CPUs (${meta.cpuModel}), ${meta.registryVersion}, blob client ${meta.blobClient}`);
  lines.push(`  load average (1 min) ${meta.loadAverage.before.toFixed(2)} before, ${meta.loadAverage.after.toFixed(2)} after: other work on the machine skews the timings (memory figures are unaffected)`);
  lines.push("  CPU s/GB: the server's own user+system CPU per GB it sent (direct = the upstream registry); peak RSS: its VmHWM during the workload");

  section("Cold single stream, client only counts bytes (the targets apply to this one)", coldTable(s, "coldSingle", "direct"));
  section("Cold single stream, client verifies the digest (curl | sha256sum)", coldTable(s, "coldSingleVerify", "direct"));
  section(`Cold, ${o.clients} concurrent clients, same uncached blob, bytes counted (wall time until all are done; RSS after = ${meta.settleMs} ms later)`, coldTable(s, "cold16", "direct"));
  section(`Cold, ${o.clients} concurrent clients, digest verified`, coldTable(s, "cold16Verify", "direct"));
  section("Warm, 1 client (aggregate MiB/s, higher is better)", warmTable(s, "warm1"));
  section("Warm, 8 concurrent clients", warmTable(s, "warm8"));
  section(`Warm, ${o.manyClients} concurrent clients (memory)`, warmTable(s, "warm100"));
  section(
    `Manifest by tag, wrk -t2 -c${o.wrkConnections} -d${o.wrkSeconds}s`,
    table([
      ["", "req/s", "min..max", "spread", "p50 ms", "p90 ms", "p99 ms", "p99 min..max", "CPU us/req", "upstream manifest GET / HEAD"],
      ...PROXIES.map((t) => {
        const x = s.manifests[t];
        return [LABEL[t], ...spread(x.requestsPerSec, f(0)), f(2)(x.p50Ms.median), f(2)(x.p90Ms.median), ...spread(x.p99Ms, f(2)).slice(0, 2), f(0)(x.cpuMicrosPerRequest?.median), upstreamCell(x)];
      }),
    ]),
  );
  if (extra.pull) {
    section(
      `docker pull end to end (private dockerd, ${extra.pullMiB} MiB gzip layer, image removed between pulls; cold = fresh proxies)`,
      table([
        ["", "cold s", "min..max", "spread", "vs distribution", "warm s", "min..max", "spread", "vs distribution"],
        ...TARGETS.map((t) => [LABEL[t], ...spread(extra.pull.cold[t].seconds, f(2)), ratio(extra.pull.cold[t].seconds.median, extra.pull.cold.distribution.seconds.median), ...spread(extra.pull.warm[t].seconds, f(2)), ratio(extra.pull.warm[t].seconds.median, extra.pull.warm.distribution.seconds.median)]),
      ]),
    );
  } else if (extra.pullSkipped) {
    section("docker pull end to end", `  skipped: ${extra.pullSkipped}`);
  }
  if (extra.scaling) section(`Scaling (1 run each, bytes counted; cold = fresh proxies; MiB/s aggregate over all clients)`, renderScaling(extra.scaling));
  lines.push("", "Targets (issue 12)");
  for (const v of verdicts(s, o, extra.pull)) lines.push(`  ${v.met ? "met    " : "NOT MET"}  ${v.claim}: ${v.value ?? "not measured"}`);
  lines.push("");
  return lines.join("\n");
}

/** scaling: [{ mib, clients, results: { target: { cold, warm } } }] */
function renderScaling(scaling) {
  const rows = [["layer", "clients", "target", "cold s", "cold MiB/s", "cold vs distribution", "cold CPU s/GB", "cold peak RSS", "warm MiB/s", "warm vs distribution", "warm CPU s/GB", "warm peak RSS", "upstream GET (cold)"]];
  for (const { mib, clients, results } of scaling) {
    for (const t of TARGETS) {
      const x = results[t];
      const d = results.distribution;
      rows.push([
        `${mib} MiB`, String(clients), LABEL[t],
        f(2)(x.cold.seconds), f(0)(x.cold.aggregateMibPerSec), ratio(x.cold.seconds, d.cold.seconds), f(2)(x.cold.cpuSecondsPerGB), f(0, " MiB")(x.cold.peakRssMiB),
        f(0)(x.warm?.aggregateMibPerSec), t === "direct" ? "-" : ratio(x.warm.aggregateMibPerSec, d.warm.aggregateMibPerSec), f(2)(x.warm?.cpuSecondsPerGB), f(0, " MiB")(x.warm?.peakRssMiB),
        String(x.cold.upstream.GET),
      ]);
    }
  }
  return table(rows);
}
