// The workloads of issue 12, one function each, run against one target (direct upstream,
// mirror-kit, distribution proxy). Upstream requests are counted from the upstream's access log;
// each server's CPU time and peak RSS come from /proc (procstat.mjs).
import { setTimeout as sleep } from "node:timers/promises";
import { getBlob, getManifest, manifestUrl, MANIFEST_ACCEPT } from "./client.mjs";
import { waitForBlob } from "./processes.mjs";
import { measured, memory } from "./procstat.mjs";
import { median } from "./stats.mjs";
import { runWrk } from "./wrk.mjs";

const MiB = 1024 * 1024;
/** How long a server gets, once a workload is over, before its resident memory is read again. */
const SETTLE_MS = Number(process.env.BENCH_SETTLE_MS || 2000);

/**
 * Wait until nothing more will reach the upstream because of this workload, then count. A proxy's
 * fill can outlive its clients (distribution stores in the background), so first wait for the
 * blob to be published, then for the access log to go quiet.
 */
async function settledCount(ctx, fixture, target, mark) {
  if (target.proxy) await waitForBlob(target.proxy, fixture.layerDigest);
  await ctx.upstreamLog.quiet();
  return ctx.upstreamLog.count(mark, `/blobs/${fixture.layerDigest}`);
}

function checkCache(target, results, want) {
  for (const r of results) {
    if (target.proxy && r.cache !== undefined && r.cache !== want) throw new Error(`${target.name}: answered X-Mirror-Cache: ${r.cache}, expected ${want}`);
  }
}

/**
 * N clients at once for the same uncached blob (N = 1: the cold single stream). `verify` picks
 * the client: one that hashes the body, or one that only counts bytes. CPU and peak RSS cover the
 * whole fill, until the blob is published; rssAfterMiB is read SETTLE_MS after that.
 */
export async function cold(ctx, fixture, target, clients, { verify }) {
  const r = await measured(target.pid, async () => {
    const mark = ctx.upstreamLog.mark();
    const started = performance.now();
    const results = await Promise.all(Array.from({ length: clients }, () => getBlob(ctx.agent, target.url, fixture, { verify })));
    const wallSeconds = (performance.now() - started) / 1000;
    // With many clients on a busy machine the last may start after the fill is over: only a single
    // client must be a miss.
    if (clients === 1) checkCache(target, results, "MISS");
    const upstream = await settledCount(ctx, fixture, target, mark);
    return {
      bytes: clients * fixture.layerSize,
      result: {
        seconds: wallSeconds,
        ttfbMs: median(results.map((x) => x.ttfbMs)),
        aggregateMibPerSec: (clients * fixture.layerSize) / MiB / wallSeconds,
        upstream,
      },
    };
  });
  if (target.proxy) {
    await sleep(SETTLE_MS);
    r.rssAfterMiB = memory(target.pid).rssMiB;
  }
  return r;
}

/**
 * Blob already cached: `clients` concurrent GETs, bodies only counted (a hashing client would be
 * the bottleneck here). `repeat` rounds; the median round is kept.
 */
export async function warm(ctx, fixture, target, clients, { repeat = 1 } = {}) {
  if (target.proxy && !target.proxy.hasBlob(fixture.layerDigest)) throw new Error(`${target.name}: blob not cached before the warm workload`);
  return measured(target.pid, async () => {
    const mark = ctx.upstreamLog.mark();
    const rounds = [];
    for (let i = 0; i < repeat; i++) {
      const started = performance.now();
      const results = await Promise.all(Array.from({ length: clients }, () => getBlob(ctx.agent, target.url, fixture, { verify: false })));
      checkCache(target, results, "HIT");
      rounds.push((clients * fixture.layerSize) / MiB / ((performance.now() - started) / 1000));
    }
    await ctx.upstreamLog.quiet();
    return { bytes: repeat * clients * fixture.layerSize, result: { aggregateMibPerSec: median(rounds), upstream: ctx.upstreamLog.count(mark, `/blobs/${fixture.layerDigest}`) } };
  });
}

/** A warm `docker pull` asks for the tag first: wrk at `connections` connections for `seconds`. */
export async function manifestLoad(ctx, fixture, target, { connections, seconds }) {
  await getManifest(ctx.agent, target.url, fixture); // caches the tag in the proxy; not measured
  await ctx.upstreamLog.quiet();
  const mark = ctx.upstreamLog.mark();
  const r = await measured(target.pid, async () => {
    const w = await runWrk(manifestUrl(target.url, fixture), { connections, seconds, headers: { accept: MANIFEST_ACCEPT } });
    return { bytes: w.requests, result: w };
  });
  await ctx.upstreamLog.quiet();
  const upstream = ctx.upstreamLog.count(mark, "/manifests/");
  // CPU per GB means nothing for tiny bodies: CPU microseconds per request instead.
  const { cpuSecondsPerGB, ...rest } = r;
  return { ...rest, cpuMicrosPerRequest: r.cpuSeconds === undefined ? undefined : (r.cpuSeconds / r.requests) * 1e6, upstream };
}
