// `npm run bench`: mirror-kit against direct upstream access and CNCF distribution's proxy, on this
// machine, on loopback. Options come from BENCH_* variables; the figures are printed as a table.
//
//   BENCH_BLOB_MB=350     size of the incompressible layer, MiB (64 for a quick run)
//   BENCH_RUNS=5          repetitions; cold workloads get freshly started proxies with empty caches
//   BENCH_CLIENTS=16      concurrent clients in the cold concurrent workload
//   BENCH_WARM_GETS=3     sequential warm GETs per run (a 4-client batch follows: BENCH_WARM_CONCURRENT)
//   BENCH_MANIFEST_GETS=200  sequential warm manifest GETs by tag per run
//   BENCH_VERIFY=all      hash every warm body too (default: the first of each run; cold ones always)
//   BENCH_OUT=1|FILE      also write the figures as JSON (1 means bench/results/latest.json)
//   BENCH_STRICT=1        exit 2 when a target of issue 2 is missed
//   BENCH_MIRROR_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof"   extra node flags for mirror-kit
//   BENCH_MIRROR_CLI=FILE the mirror-kit CLI to measure (default dist/cli/main.js; A/B another build)
//   BENCH_REGISTRY_BIN=/usr/bin/docker-registry
//   BENCH_CLIENT=curl|node   what downloads blobs (default curl: a Node client measures itself at ~1 GB/s)
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { mkdir, statfs, writeFile } from "node:fs/promises";
import { cpus, loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createAgent, getBlob } from "./lib/client.mjs";
import { pushFixture } from "./lib/fixture.mjs";
import { startMirrorKit, startRegistry, Workspace } from "./lib/processes.mjs";
import { renderReport, summarize, TARGETS, verdicts } from "./lib/report.mjs";
import { coldConcurrent, coldSingle, manifestLatency, warmThroughput } from "./lib/workloads.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const MiB = 1024 * 1024;

class UsageError extends Error {}

function intEnv(name, fallback, min = 1) {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`${name}: expected an integer >= ${min}, got ${JSON.stringify(raw)}`);
  return n;
}

function readOptions() {
  return {
    blobMiB: intEnv("BENCH_BLOB_MB", 350),
    runs: intEnv("BENCH_RUNS", 5),
    clients: intEnv("BENCH_CLIENTS", 16),
    warmSequential: intEnv("BENCH_WARM_GETS", 3),
    warmConcurrent: intEnv("BENCH_WARM_CONCURRENT", 4),
    manifestGets: intEnv("BENCH_MANIFEST_GETS", 200),
    verifyAll: process.env.BENCH_VERIFY === "all",
    out: process.env.BENCH_OUT ? (["1", "true"].includes(process.env.BENCH_OUT) ? join(root, "bench/results/latest.json") : resolve(process.env.BENCH_OUT)) : undefined,
    strict: process.env.BENCH_STRICT === "1",
    mirrorNodeArgs: (process.env.BENCH_MIRROR_NODE_ARGS ?? "").split(/\s+/).filter(Boolean),
    registryBin: process.env.BENCH_REGISTRY_BIN || "/usr/bin/docker-registry",
    cli: process.env.BENCH_MIRROR_CLI ? resolve(process.env.BENCH_MIRROR_CLI) : join(root, "dist/cli/main.js"),
  };
}

/** Fail before starting anything when a tool, the build or the disk space is missing. */
async function preflight(o) {
  if (!existsSync(o.registryBin)) {
    throw new UsageError(`docker-registry not found at ${o.registryBin}: install Debian's package (apt-get install docker-registry) or set BENCH_REGISTRY_BIN`);
  }
  if (!existsSync(o.cli)) throw new UsageError(`${o.cli} is missing: run 'npm run build' first`);
  if (!process.env.BENCH_MIRROR_CLI && newestMtime(join(root, "src")) > statSync(o.cli).mtimeMs) process.stderr.write("bench: warning: src/ is newer than dist/; run 'npm run build' to measure the current code\n");
  // Upstream copy + two proxy caches + temp files of a fill in progress, with room to spare.
  const need = o.blobMiB * MiB * 5;
  const fs = await statfs(process.env.TMPDIR || "/tmp");
  if (fs.bavail * fs.bsize < need) throw new UsageError(`need about ${Math.ceil(need / 1e9)} GB free in the temp folder for a ${o.blobMiB} MiB blob`);
}

function newestMtime(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { recursive: true })) {
    if (entry.endsWith(".ts")) newest = Math.max(newest, statSync(join(dir, entry)).mtimeMs);
  }
  return newest;
}

/** Rotate the order per run so no target always goes first (page cache, CPU frequency, writeback). */
function rotated(list, i) {
  return list.map((_, k) => list[(k + i) % list.length]);
}

async function startProxies(ws, o, upstream) {
  const [mirror, distribution] = await Promise.all([
    startMirrorKit(ws, { cli: o.cli, upstreamUrl: upstream.url, nodeArgs: o.mirrorNodeArgs }),
    startRegistry(ws, { bin: o.registryBin, role: "proxy", remoteurl: upstream.url }),
  ]);
  const targets = {
    direct: { name: "direct", url: upstream.url },
    "mirror-kit": { name: "mirror-kit", url: mirror.url, proxy: mirror },
    distribution: { name: "distribution", url: distribution.url, proxy: distribution },
  };
  return { targets, stop: () => Promise.all([mirror.stop(), distribution.stop()]) };
}

async function forEachTarget(i, fn) {
  const out = {};
  for (const t of rotated(TARGETS, i)) {
    // Write back every dirty page first: a proxy that did not fsync its cache (distribution) would
    // otherwise have the kernel flush it during the next target's measurement, billing that one.
    execFileSync("sync");
    out[t] = await fn(t);
  }
  return out;
}

async function benchmark(ws, o) {
  const agent = createAgent();
  try {
    const upstream = await startRegistry(ws, { bin: o.registryBin, role: "upstream" });
    progress(`upstream docker-registry at ${upstream.url}; pushing a ${o.blobMiB} MiB layer`);
    const fixture = await pushFixture({ upstreamUrl: upstream.url, scratchDir: ws.root, blobBytes: o.blobMiB * MiB, dispatcher: agent });
    const ctx = { agent, fixture, upstreamLog: upstream.log, verifyAll: o.verifyAll };
    // Unmeasured: the first sample would otherwise also pay for JIT warm-up in the client.
    await getBlob(agent, upstream.url, fixture);
    const runs = [];
    for (let i = 0; i < o.runs; i++) {
      const run = {};
      // Cold single stream: fresh proxies, so each one's first GET is a miss.
      let proxies = await startProxies(ws, o, upstream);
      run.coldSingle = await forEachTarget(i, (t) => coldSingle(ctx, proxies.targets[t]));
      await proxies.stop();
      // Fresh proxies again for the concurrent cold fill; the warm workloads then use what it cached.
      proxies = await startProxies(ws, o, upstream);
      run.coldConcurrent = await forEachTarget(i, (t) => coldConcurrent(ctx, proxies.targets[t], o.clients));
      run.warm = await forEachTarget(i, (t) => warmThroughput(ctx, proxies.targets[t], o.warmSequential, o.warmConcurrent));
      run.manifest = await forEachTarget(i, (t) => manifestLatency(ctx, proxies.targets[t], o.manifestGets));
      await proxies.stop();
      runs.push(run);
      progress(`run ${i + 1}/${o.runs}: cold single ${TARGETS.map((t) => `${t} ${run.coldSingle[t].seconds.toFixed(2)}s`).join(", ")}`);
    }
    await upstream.stop();
    return runs;
  } finally {
    await agent.close();
  }
}

function progress(msg) {
  process.stderr.write(`bench: ${msg}\n`);
}

function registryVersion(bin) {
  try {
    return execFileSync(bin, ["--version"], { encoding: "utf8" }).trim().replace(/^docker-registry\s+/, "");
  } catch {
    return "docker-registry (version unknown)";
  }
}

async function main() {
  const o = readOptions();
  await preflight(o);
  // This machine may be shared: a busy one skews every figure, so the report says how busy it was.
  const loadBefore = loadavg()[0];
  if (loadBefore > cpus().length / 2) progress(`warning: load average ${loadBefore.toFixed(2)} on ${cpus().length} CPUs; figures will be noisy`);
  const ws = await Workspace.create();
  // Ctrl-C still stops the children and removes the temp folders.
  const onSignal = () => {
    progress("interrupted; cleaning up");
    ws.dispose().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  let runs;
  try {
    runs = await benchmark(ws, o);
  } finally {
    await ws.dispose();
  }
  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? "unknown",
    loadAverage: { before: loadBefore, after: loadavg()[0] },
    registryVersion: registryVersion(o.registryBin),
    options: { blobMiB: o.blobMiB, runs: o.runs, clients: o.clients, warmSequential: o.warmSequential, warmConcurrent: o.warmConcurrent, manifestGets: o.manifestGets, verifyAll: o.verifyAll },
  };
  const summary = summarize(runs);
  process.stdout.write(renderReport(summary, meta) + "\n");
  const checks = verdicts(summary, meta.options);
  if (o.out) {
    await mkdir(dirname(o.out), { recursive: true });
    await writeFile(o.out, JSON.stringify({ meta, summary, targets: checks, runs }, null, 2) + "\n");
    progress(`figures written to ${o.out}`);
  }
  if (o.strict && checks.some((c) => !c.met)) process.exitCode = 2;
}

main().catch((err) => {
  process.stderr.write(`bench: ${err instanceof UsageError ? err.message : err?.stack ?? err}\n`);
  process.exit(1);
});
