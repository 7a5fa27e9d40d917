// The four workloads of issue 2's speed section, one function each, run against one target
// (direct upstream, mirror-kit, distribution proxy). Upstream requests are counted from the access log.
import { getBlob, getManifest } from "./client.mjs";
import { waitForBlob } from "./processes.mjs";
import { median, percentile } from "./stats.mjs";

const MiB = 1024 * 1024;

/**
 * Wait until nothing more will reach the upstream because of this workload, then count. A proxy's
 * fill can outlive its clients (distribution stores in the background), so first wait for the
 * blob to be published, then for the access log to go quiet.
 */
async function settledCount(ctx, target, mark, fragment) {
  if (target.proxy) await waitForBlob(target.proxy, ctx.fixture.layerDigest);
  await ctx.upstreamLog.quiet();
  return ctx.upstreamLog.count(mark, fragment);
}

function blobPath(ctx) {
  return `/blobs/${ctx.fixture.layerDigest}`;
}

/** a. One client, empty cache: how much slower than fetching straight from upstream? */
export async function coldSingle(ctx, target) {
  const mark = ctx.upstreamLog.mark();
  const r = await getBlob(ctx.agent, target.url, ctx.fixture);
  if (target.proxy && r.cache !== undefined && r.cache !== "MISS") throw new Error(`${target.name}: a cold GET answered X-Mirror-Cache: ${r.cache}; the cache was not empty`);
  const upstream = await settledCount(ctx, target, mark, blobPath(ctx));
  return { seconds: r.seconds, ttfbMs: r.ttfbMs, mibPerSec: r.bytes / MiB / r.seconds, upstream };
}

/** b. N clients at once for the same uncached blob: single flight means one upstream GET. */
export async function coldConcurrent(ctx, target, clients) {
  const mark = ctx.upstreamLog.mark();
  const started = performance.now();
  const results = await Promise.all(Array.from({ length: clients }, () => getBlob(ctx.agent, target.url, ctx.fixture)));
  const wallSeconds = (performance.now() - started) / 1000;
  const upstream = await settledCount(ctx, target, mark, blobPath(ctx));
  return {
    wallSeconds,
    slowestClientSeconds: Math.max(...results.map((r) => r.seconds)),
    aggregateMibPerSec: (clients * ctx.fixture.layerSize) / MiB / wallSeconds,
    upstream,
  };
}

/**
 * c. Blob already cached: K sequential GETs and one batch of C concurrent GETs. Only the first
 * sequential GET is hashed; hashing every body would make the client's CPU the bottleneck.
 */
export async function warmThroughput(ctx, target, sequential, concurrent) {
  if (target.proxy && !target.proxy.hasBlob(ctx.fixture.layerDigest)) throw new Error(`${target.name}: blob not cached before the warm workload`);
  const mark = ctx.upstreamLog.mark();
  const seq = [];
  for (let i = 0; i < sequential; i++) {
    const r = await getBlob(ctx.agent, target.url, ctx.fixture, { verify: ctx.verifyAll || i === 0 });
    if (target.proxy && r.cache !== undefined && r.cache !== "HIT") throw new Error(`${target.name}: a warm GET answered X-Mirror-Cache: ${r.cache}`);
    seq.push(r.bytes / MiB / r.seconds);
  }
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrent }, () => getBlob(ctx.agent, target.url, ctx.fixture, { verify: ctx.verifyAll })));
  const concurrentMibPerSec = (concurrent * ctx.fixture.layerSize) / MiB / ((performance.now() - started) / 1000);
  await ctx.upstreamLog.quiet();
  return { sequentialMibPerSec: median(seq), concurrentMibPerSec, upstream: ctx.upstreamLog.count(mark, blobPath(ctx)) };
}

/** d. A warm `docker pull` asks for the tag first: latency of N sequential manifest GETs by tag. */
export async function manifestLatency(ctx, target, n) {
  await getManifest(ctx.agent, target.url, ctx.fixture); // caches the tag in the proxy; not measured
  await ctx.upstreamLog.quiet();
  const mark = ctx.upstreamLog.mark();
  const samples = [];
  for (let i = 0; i < n; i++) samples.push(await getManifest(ctx.agent, target.url, ctx.fixture));
  await ctx.upstreamLog.quiet();
  const upstream = ctx.upstreamLog.count(mark, "/manifests/");
  return { medianMs: median(samples), p95Ms: percentile(samples, 95), upstream };
}
