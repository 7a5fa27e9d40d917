// `npm run bench`: mirror-kit against direct upstream access and CNCF distribution's proxy, on this
// machine, on loopback. Options come from BENCH_* variables; the figures are printed as tables,
// with met / not met against every target of issue 12.
//
//   BENCH_QUICK=1         a run that fits a few minutes: 64 MiB layer, 3 runs, scaling 10/100 MiB,
//                         wrk 3 s, 1 docker pull round (every value below still overrides it)
//   BENCH_BLOB_MB=350     size of the incompressible layer, MiB
//   BENCH_RUNS=5          interleaved repetitions; cold workloads get freshly started proxies
//   BENCH_CLIENTS=16      concurrent clients in the cold concurrent workloads
//   BENCH_MANY_CLIENTS=100  concurrent warm clients of the memory workload
//   BENCH_WRK_SECONDS=5   duration of each wrk run (manifests by tag, 16 connections)
//   BENCH_SCALING=10,100,1024   layer sizes (MiB) of the scaling tables; 0 skips them
//   BENCH_SCALING_CLIENTS=1,4,16,64
//   BENCH_PULL_MB=100     layer of the `docker pull` image (0 skips; needs root, dockerd, containerd)
//   BENCH_PULL_RUNS=3
//   BENCH_OUT=1|FILE      also write the figures as JSON (1 means bench/results/latest.json)
//   BENCH_STRICT=1        exit 2 when a target is not met
//   BENCH_MIRROR_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof"   extra node flags for mirror-kit
//   BENCH_MIRROR_CLI=FILE the mirror-kit CLI to measure (default dist/cli/main.js; A/B another build)
//   BENCH_REGISTRY_BIN=/usr/bin/docker-registry   BENCH_WRK_BIN=/usr/bin/wrk
//   BENCH_CLIENT=curl|node   what downloads blobs (default curl: a Node client measures itself at ~1 GB/s)
//   BENCH_CLUSTER=1       instead: replicas sharing one store and one Redis (bench/cluster.mjs, its own BENCH_* options)
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { mkdir, statfs, writeFile } from "node:fs/promises";
import { cpus, loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { BLOB_CLIENT, createAgent, getBlob, getManifest } from "./lib/client.mjs";
import { buildLayer, dockerPull, loadDockerEngine } from "./lib/docker-pull.mjs";
import { pushFixture } from "./lib/fixture.mjs";
import { startMirrorKit, startRegistry, waitForBlob, Workspace } from "./lib/processes.mjs";
import { PROXIES, renderReport, summarize, TARGETS, verdicts } from "./lib/report.mjs";
import { summary } from "./lib/stats.mjs";
import { cold, manifestLoad, warm } from "./lib/workloads.mjs";
import { haveWrk, WRK_BIN } from "./lib/wrk.mjs";

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

function listEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  if (raw === "0") return [];
  const xs = raw.split(",").map((x) => Number(x.trim()));
  if (xs.some((x) => !Number.isInteger(x) || x < 1)) throw new UsageError(`${name}: expected positive integers separated by commas, got ${JSON.stringify(raw)}`);
  return xs;
}

function readOptions() {
  const quick = ["1", "true"].includes(process.env.BENCH_QUICK ?? "");
  return {
    quick,
    blobMiB: intEnv("BENCH_BLOB_MB", quick ? 64 : 350),
    runs: intEnv("BENCH_RUNS", quick ? 3 : 5),
    clients: intEnv("BENCH_CLIENTS", 16),
    manyClients: intEnv("BENCH_MANY_CLIENTS", 100),
    warmRepeat: intEnv("BENCH_WARM_GETS", 3),
    wrkConnections: 16,
    wrkSeconds: intEnv("BENCH_WRK_SECONDS", quick ? 3 : 5),
    scalingMiB: listEnv("BENCH_SCALING", quick ? [10, 100] : [10, 100, 1024]),
    scalingClients: listEnv("BENCH_SCALING_CLIENTS", [1, 4, 16, 64]),
    pullMiB: intEnv("BENCH_PULL_MB", quick ? 32 : 100, 0),
    pullRuns: intEnv("BENCH_PULL_RUNS", quick ? 1 : 3),
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
  if (!haveWrk()) throw new UsageError(`wrk not found at ${WRK_BIN}: install Debian's package (apt-get install --no-install-recommends wrk) or set BENCH_WRK_BIN`);
  if (!existsSync(o.cli)) throw new UsageError(`${o.cli} is missing: run 'npm run build' first`);
  if (!process.env.BENCH_MIRROR_CLI && newestMtime(join(root, "src")) > statSync(o.cli).mtimeMs) process.stderr.write("bench: warning: src/ is newer than dist/; run 'npm run build' to measure the current code\n");
  // Upstream copy + two proxy caches + temp files of a fill in progress, with room to spare.
  const need = Math.max(o.blobMiB, ...o.scalingMiB, o.pullMiB) * MiB * 5;
  const fs = await statfs(process.env.TMPDIR || "/tmp");
  if (fs.bavail * fs.bsize < need) throw new UsageError(`need about ${Math.ceil(need / 1e9)} GB free in the temp folder`);
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

/**
 * Fresh proxies with empty caches. Each first serves a small image of its own (another digest):
 * "cold" means the blob is not cached, not that the server process has never run, so a JIT
 * compiler's first pass is not billed to the measured transfer.
 */
async function startProxies(ws, o, upstream, ctx) {
  const [mirror, distribution] = await Promise.all([
    startMirrorKit(ws, { cli: o.cli, upstreamUrl: upstream.url, nodeArgs: o.mirrorNodeArgs }),
    startRegistry(ws, { bin: o.registryBin, role: "proxy", remoteurl: upstream.url }),
  ]);
  for (const p of [mirror, distribution]) {
    await getManifest(ctx.agent, p.url, ctx.warmup);
    await getBlob(ctx.agent, p.url, ctx.warmup, { verify: true });
    await waitForBlob(p, ctx.warmup.layerDigest);
  }
  const targets = {
    direct: { name: "direct", url: upstream.url, pid: upstream.pid },
    "mirror-kit": { name: "mirror-kit", url: mirror.url, pid: mirror.pid, proxy: mirror },
    distribution: { name: "distribution", url: distribution.url, pid: distribution.pid, proxy: distribution },
  };
  return { targets, stop: () => Promise.all([mirror.stop(), distribution.stop()]) };
}

/** Run fn for every target in this run's order; A B C, then B C A, ... */
async function forEachTarget(i, fn, targets = TARGETS) {
  const out = {};
  for (const t of rotated(targets, i)) {
    // Write back every dirty page first: a proxy that did not fsync its cache (distribution) would
    // otherwise have the kernel flush it during the next target's measurement, billing that one.
    execFileSync("sync");
    out[t] = await fn(t);
  }
  return out;
}

/** Fresh proxies for one workload (a cold cache), stopped afterwards. */
async function withProxies(ws, o, upstream, fn, ctx) {
  const proxies = await startProxies(ws, o, upstream, ctx);
  try {
    return await fn(proxies.targets);
  } finally {
    await proxies.stop();
  }
}

async function mainRuns(ws, o, ctx, upstream, fixture) {
  const runs = [];
  for (let i = 0; i < o.runs; i++) {
    const run = {};
    run.coldSingle = await withProxies(ws, o, upstream, (t) => forEachTarget(i, (n) => cold(ctx, fixture, t[n], 1, { verify: false })), ctx);
    run.coldSingleVerify = await withProxies(ws, o, upstream, (t) => forEachTarget(i, (n) => cold(ctx, fixture, t[n], 1, { verify: true })), ctx);
    await withProxies(ws, o, upstream, async (t) => {
      run.cold16 = await forEachTarget(i, (n) => cold(ctx, fixture, t[n], o.clients, { verify: false }));
      // The warm workloads use what that fill cached.
      run.warm1 = await forEachTarget(i, (n) => warm(ctx, fixture, t[n], 1, { repeat: o.warmRepeat }));
      run.warm8 = await forEachTarget(i, (n) => warm(ctx, fixture, t[n], 8));
      run.warm100 = await forEachTarget(i, (n) => warm(ctx, fixture, t[n], o.manyClients), PROXIES);
      run.manifests = await forEachTarget(i, (n) => manifestLoad(ctx, fixture, t[n], { connections: o.wrkConnections, seconds: o.wrkSeconds }), PROXIES);
    }, ctx);
    run.cold16Verify = await withProxies(ws, o, upstream, (t) => forEachTarget(i, (n) => cold(ctx, fixture, t[n], o.clients, { verify: true })), ctx);
    runs.push(run);
    const cs = run.coldSingle;
    progress(`run ${i + 1}/${o.runs}: cold single ${TARGETS.map((t) => `${t} ${cs[t].seconds.toFixed(2)}s`).join(", ")}; 16 cold peak RSS mirror-kit ${run.cold16["mirror-kit"].peakRssMiB.toFixed(0)} MiB`);
  }
  return runs;
}

/** One row per (layer size, clients): cold on fresh proxies, then warm on what they cached. */
async function scaling(ws, o, ctx, upstream) {
  const rows = [];
  let i = 0;
  for (const mib of o.scalingMiB) {
    progress(`scaling: pushing a ${mib} MiB layer`);
    const fixture = await pushFixture({ upstreamUrl: upstream.url, scratchDir: ws.root, blobBytes: mib * MiB, dispatcher: ctx.agent, repository: `mirrorkit/scale-${mib}` });
    for (const clients of o.scalingClients) {
      const results = {};
      await withProxies(ws, o, upstream, async (t) => {
        const c = await forEachTarget(i, (n) => cold(ctx, fixture, t[n], clients, { verify: false }));
        const w = await forEachTarget(i, (n) => warm(ctx, fixture, t[n], clients));
        for (const n of TARGETS) results[n] = { cold: c[n], warm: w[n] };
      }, ctx);
      rows.push({ mib, clients, results });
      progress(`scaling ${mib} MiB x ${clients}: cold ${TARGETS.map((n) => `${n} ${results[n].cold.seconds.toFixed(2)}s`).join(", ")}`);
      i++;
    }
  }
  return rows;
}

/** `docker pull` through each target with a private engine: cold (fresh proxies), then warm. */
async function pulls(ws, o, ctx, upstream) {
  if (o.pullMiB === 0) return { skipped: "BENCH_PULL_MB=0" };
  if (process.getuid?.() !== 0) return { skipped: "needs root (a private dockerd)" };
  for (const tool of ["dockerd", "containerd", "docker"]) {
    if (!existsSync(`/usr/bin/${tool}`) && !existsSync(`/usr/sbin/${tool}`)) return { skipped: `${tool} not installed` };
  }
  progress(`docker pull: building a ${o.pullMiB} MiB tar.gz layer and starting a private dockerd`);
  const layer = await buildLayer(ws.root, o.pullMiB);
  const fixture = await pushFixture({ upstreamUrl: upstream.url, scratchDir: ws.root, dispatcher: ctx.agent, repository: "mirrorkit/pull", layer });
  const DockerEngine = await loadDockerEngine(ws.root);
  const engine = await DockerEngine.start();
  try {
    const runs = [];
    for (let i = 0; i < o.pullRuns; i++) {
      const run = { cold: {}, warm: {} };
      await withProxies(ws, o, upstream, async (t) => {
        const c = await forEachTarget(i, async (n) => ({ seconds: await dockerPull(engine, t[n].url, fixture) }));
        const w = await forEachTarget(i, async (n) => ({ seconds: await dockerPull(engine, t[n].url, fixture) }));
        Object.assign(run.cold, c);
        Object.assign(run.warm, w);
      }, ctx);
      runs.push(run);
      progress(`docker pull ${i + 1}/${o.pullRuns}: cold ${TARGETS.map((n) => `${n} ${run.cold[n].seconds.toFixed(2)}s`).join(", ")}`);
    }
    const out = { cold: {}, warm: {} };
    for (const kind of ["cold", "warm"]) for (const n of TARGETS) out[kind][n] = { seconds: summary(runs.map((r) => r[kind][n].seconds)) };
    return { pull: out, runs };
  } finally {
    await engine.stop();
  }
}

async function benchmark(ws, o) {
  const agent = createAgent();
  try {
    const upstream = await startRegistry(ws, { bin: o.registryBin, role: "upstream" });
    progress(`upstream docker-registry at ${upstream.url}; pushing a ${o.blobMiB} MiB layer`);
    const fixture = await pushFixture({ upstreamUrl: upstream.url, scratchDir: ws.root, blobBytes: o.blobMiB * MiB, dispatcher: agent });
    const warmup = await pushFixture({ upstreamUrl: upstream.url, scratchDir: ws.root, blobBytes: MiB, dispatcher: agent, repository: "mirrorkit/warmup" });
    const ctx = { agent, upstreamLog: upstream.log, warmup };
    // Unmeasured: the first sample would otherwise also pay for JIT warm-up in the client.
    await getBlob(agent, upstream.url, fixture, { verify: true });
    const runs = await mainRuns(ws, o, ctx, upstream, fixture);
    const scalingRows = o.scalingMiB.length > 0 ? await scaling(ws, o, ctx, upstream) : undefined;
    const pull = await pulls(ws, o, ctx, upstream);
    await upstream.stop();
    return { runs, scaling: scalingRows, pull };
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
  if (["1", "true"].includes(process.env.BENCH_CLUSTER ?? "")) {
    await (await import("./cluster.mjs")).runCluster();
    return;
  }
  const o = readOptions();
  await preflight(o);
  // This machine may be shared: a busy one skews every figure, so the report says how busy it was.
  const loadBefore = loadavg()[0];
  if (loadBefore > cpus().length / 2) progress(`warning: load average ${loadBefore.toFixed(2)} on ${cpus().length} CPUs; timings will be noisy`);
  const ws = await Workspace.create();
  // Ctrl-C still stops the children and removes the temp folders.
  const onSignal = () => {
    progress("interrupted; cleaning up");
    ws.dispose().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  let result;
  try {
    result = await benchmark(ws, o);
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
    blobClient: BLOB_CLIENT,
    settleMs: Number(process.env.BENCH_SETTLE_MS || 2000),
    options: { quick: o.quick, blobMiB: o.blobMiB, runs: o.runs, clients: o.clients, manyClients: o.manyClients, wrkConnections: o.wrkConnections, wrkSeconds: o.wrkSeconds, scalingMiB: o.scalingMiB, scalingClients: o.scalingClients, pullMiB: o.pullMiB, pullRuns: o.pullRuns },
  };
  const summaryOut = summarize(result.runs);
  const extra = { scaling: result.scaling, pull: result.pull.pull, pullSkipped: result.pull.skipped, pullMiB: o.pullMiB };
  process.stdout.write(renderReport(summaryOut, meta, extra) + "\n");
  const checks = verdicts(summaryOut, meta.options, extra.pull);
  if (o.out) {
    await mkdir(dirname(o.out), { recursive: true });
    await writeFile(o.out, JSON.stringify({ meta, summary: summaryOut, targets: checks, runs: result.runs, scaling: result.scaling, pull: result.pull }, null, 2) + "\n");
    progress(`figures written to ${o.out}`);
  }
  if (o.strict && checks.some((c) => !c.met)) process.exitCode = 2;
}

main().catch((err) => {
  process.stderr.write(`bench: ${err instanceof UsageError ? err.message : err?.stack ?? err}\n`);
  process.exit(1);
});
