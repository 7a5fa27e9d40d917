// A focused probe for iterating on one figure: mirror-kit only, N cold clients (then optionally M
// warm ones), printing wall time, peak RSS and RSS after. Not the bench: no comparison, no verdict.
//   node bench/probe.mjs [blobMiB=350] [coldClients=16] [warmClients=0]
//   PROBE_NODE_ARGS="..." PROBE_ENV="MALLOC_ARENA_MAX=2" PROBE_RUNS=3
import { createAgent, getBlob, getManifest } from "./lib/client.mjs";
import { pushFixture } from "./lib/fixture.mjs";
import { startMirrorKit, startRegistry, waitForBlob, Workspace } from "./lib/processes.mjs";
import { memory } from "./lib/procstat.mjs";
import { cold, warm } from "./lib/workloads.mjs";

const [blobMiB = 350, coldClients = 16, warmClients = 0] = process.argv.slice(2).map(Number);
const MiB = 1024 * 1024;
const env = Object.fromEntries((process.env.PROBE_ENV ?? "").split(/\s+/).filter(Boolean).map((kv) => kv.split("=")));
const ws = await Workspace.create();
const agent = createAgent();
try {
  const upstream = await startRegistry(ws, { bin: "/usr/bin/docker-registry", role: "upstream" });
  const fixture = await pushFixture({ upstreamUrl: upstream.url, scratchDir: ws.root, blobBytes: blobMiB * MiB, dispatcher: agent });
  const warmup = await pushFixture({ upstreamUrl: upstream.url, scratchDir: ws.root, blobBytes: MiB, dispatcher: agent, repository: "mirrorkit/warmup" });
  const ctx = { agent, upstreamLog: upstream.log };
  for (let i = 0; i < Number(process.env.PROBE_RUNS || 1); i++) {
    const mk = await startMirrorKit(ws, { cli: "dist/cli/main.js", upstreamUrl: upstream.url, nodeArgs: (process.env.PROBE_NODE_ARGS ?? "").split(/\s+/).filter(Boolean), env });
    await getManifest(agent, mk.url, warmup);
    await getBlob(agent, mk.url, warmup, { verify: true });
    await waitForBlob(mk, warmup.layerDigest);
    const idle = memory(mk.pid);
    await where(mk.url);
    const t = { name: "mirror-kit", url: mk.url, pid: mk.pid, proxy: mk };
    const c = await cold(ctx, fixture, t, coldClients, { verify: false });
    let line = `idle ${idle.rssMiB.toFixed(0)} MiB (peak ${idle.hwmMiB.toFixed(0)}); cold x${coldClients}: ${c.seconds.toFixed(2)} s, ttfb ${c.ttfbMs.toFixed(1)} ms, CPU ${c.cpuSecondsPerGB.toFixed(2)} s/GB, peak ${c.peakRssMiB.toFixed(0)} MiB, after ${c.rssAfterMiB.toFixed(0)} MiB, upstream GET ${c.upstream.GET}`;
    if (warmClients > 0) {
      const w = await warm(ctx, fixture, t, warmClients);
      line += `; warm x${warmClients}: ${w.aggregateMibPerSec.toFixed(0)} MiB/s, peak ${w.peakRssMiB.toFixed(0)} MiB, after ${memory(mk.pid).rssMiB.toFixed(0)} MiB`;
    }
    console.log(line);
    await where(mk.url);
    await mk.stop();
  }
  await upstream.stop();
} finally {
  await agent.close();
  await ws.dispose();
}

/** Where the memory is, as the process itself sees it (prom-client's default metrics). */
async function where(url) {
  const m = await (await fetch(`${url}/metrics`)).text();
  const pick = (re) => [...m.matchAll(re)].map((x) => `${x[1]}=${(Number(x[2]) / 1048576).toFixed(1)}`).join(" ");
  console.log("  " + pick(/^mirrorkit_(nodejs_heap_size_total_bytes|nodejs_heap_size_used_bytes|nodejs_external_memory_bytes|process_resident_memory_bytes)\s+(\S+)/gm) + " " + pick(/^mirrorkit_nodejs_heap_space_size_total_bytes\{space="(new|old|code|large_object)"\}\s+(\S+)/gm));
}
