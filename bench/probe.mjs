// A focused probe for iterating on one figure: mirror-kit only, N cold clients (then optionally M
// warm ones), printing wall time, peak RSS and RSS after. Not the bench: no comparison, no verdict.
//   node bench/probe.mjs [blobMiB=350] [coldClients=16] [warmClients=0]
//   PROBE_NODE_ARGS="..." PROBE_ENV="MALLOC_ARENA_MAX=2" PROBE_RUNS=3 PROBE_SMAPS=1
//   PROBE_CLIS=a/cli/main.js,b/cli/main.js  alternate two builds run by run (A B A B)
import { readFileSync } from "node:fs";
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
    // PROBE_CLIS=a.js,b.js alternates builds run by run (A B A B).
    const clis = (process.env.PROBE_CLIS ?? "dist/cli/main.js").split(",");
    const cli = clis[i % clis.length];
    process.stdout.write(`${cli}: `);
    const mk = await startMirrorKit(ws, { cli, upstreamUrl: upstream.url, nodeArgs: (process.env.PROBE_NODE_ARGS ?? "").split(/\s+/).filter(Boolean), env });
    await getManifest(agent, mk.url, warmup);
    await getBlob(agent, mk.url, warmup, { verify: true });
    await waitForBlob(mk, warmup.layerDigest);
    const idle = memory(mk.pid);
    await where(mk.url);
    smaps(mk.pid);
    const t = { name: "mirror-kit", url: mk.url, pid: mk.pid, proxy: mk };
    const c = await cold(ctx, fixture, t, coldClients, { verify: false });
    let line = `idle ${idle.rssMiB.toFixed(0)} MiB (peak ${idle.hwmMiB.toFixed(0)}); cold x${coldClients}: ${c.seconds.toFixed(2)} s, ttfb ${c.ttfbMs.toFixed(1)} ms, CPU ${c.cpuSecondsPerGB.toFixed(2)} s/GB, peak ${c.peakRssMiB.toFixed(0)} MiB, after ${c.rssAfterMiB.toFixed(0)} MiB, upstream GET ${c.upstream.GET}`;
    if (warmClients > 0) {
      const w = await warm(ctx, fixture, t, warmClients);
      line += `; warm x${warmClients}: ${w.aggregateMibPerSec.toFixed(0)} MiB/s, peak ${w.peakRssMiB.toFixed(0)} MiB, after ${memory(mk.pid).rssMiB.toFixed(0)} MiB`;
    }
    console.log(line);
    await where(mk.url);
    smaps(mk.pid);
    await mk.stop();
  }
  await upstream.stop();
} finally {
  await agent.close();
  await ws.dispose();
}

/** The largest mappings of a process by resident size (PROBE_SMAPS=1). */
function smaps(pid) {
  if (!process.env.PROBE_SMAPS) return;
  const text = readFileSync(`/proc/${pid}/smaps`, "utf8");
  const maps = [];
  let cur;
  for (const line of text.split("\n")) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) maps.push((cur = { name: line.split(/\s+/).slice(5).join(" ") || "[anon]", range: line.split(" ")[0], rss: 0 }));
    else if (line.startsWith("Rss:")) cur.rss = Number(line.split(/\s+/)[1]);
  }
  const byName = {};
  for (const m of maps) byName[m.name] = (byName[m.name] ?? 0) + m.rss;
  console.log("  smaps by name (MiB): " + Object.entries(byName).sort((a, b) => b[1] - a[1]).slice(0, 6).map(([n, k]) => `${n}=${(k / 1024).toFixed(1)}`).join(" "));
  console.log("  largest anon: " + maps.filter((m) => m.name === "[anon]").sort((a, b) => b.rss - a.rss).slice(0, 8).map((m) => (m.rss / 1024).toFixed(1)).join(" "));
}

/** Where the memory is, as the process itself sees it (prom-client's default metrics). */
async function where(url) {
  const m = await (await fetch(`${url}/metrics`)).text();
  const pick = (re) => [...m.matchAll(re)].map((x) => `${x[1]}=${(Number(x[2]) / 1048576).toFixed(1)}`).join(" ");
  console.log("  " + pick(/^mirrorkit_(nodejs_heap_size_total_bytes|nodejs_heap_size_used_bytes|nodejs_external_memory_bytes|process_resident_memory_bytes)\s+(\S+)/gm) + " " + pick(/^mirrorkit_nodejs_heap_space_size_total_bytes\{space="(new|old|code|large_object)"\}\s+(\S+)/gm));
}
