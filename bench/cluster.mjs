// `BENCH_CLUSTER=1 npm run bench`: mirror-kit replicas sharing one store and one Redis (issue 13).
// For 1, 2 and 3 replica processes on a shared folder and on a Ceph RGW bucket: warm aggregate
// throughput with the clients spread over the replicas, and the first-byte latency of a cold blob
// through a replica that is not the one downloading it. Upstream GETs come from the access log.
//
//   BENCH_REPLICAS=1,2,3           replica counts
//   BENCH_CLUSTER_STORES=folder,s3 stores (s3 starts Ceph RGW: root, ceph-mon, ceph-osd, radosgw)
//   BENCH_CLUSTER_BLOB_MB=64       layer size, MiB
//   BENCH_CLUSTER_CLIENTS=12       concurrent warm clients, spread round-robin over the replicas
//   BENCH_CLUSTER_ROUNDS=3         warm rounds; the median is reported
import { execFileSync } from "node:child_process";
import { connect } from "node:net";
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { createAgent, getBlob } from "./lib/client.mjs";
import { pushFixture } from "./lib/fixture.mjs";
import { freePort, Service, startRegistry, Workspace } from "./lib/processes.mjs";
import { median } from "./lib/stats.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const MiB = 1024 * 1024;
const RGW_SCRIPT = join(root, "test/support/ceph-rgw.sh");

function list(name, fallback) {
  const raw = process.env[name];
  return raw ? raw.split(",").map((x) => x.trim()).filter(Boolean) : fallback;
}

function int(name, fallback) {
  const n = Number(process.env[name] || fallback);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}: expected a positive integer, got ${JSON.stringify(process.env[name])}`);
  return n;
}

export function clusterOptions() {
  const replicas = list("BENCH_REPLICAS", ["1", "2", "3"]).map(Number);
  if (replicas.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`BENCH_REPLICAS: expected positive integers, got ${process.env.BENCH_REPLICAS}`);
  const stores = list("BENCH_CLUSTER_STORES", ["folder", "s3"]);
  for (const s of stores) if (s !== "folder" && s !== "s3") throw new Error(`BENCH_CLUSTER_STORES: expected folder and/or s3, got ${s}`);
  return {
    replicas,
    stores,
    blobMiB: int("BENCH_CLUSTER_BLOB_MB", 64),
    clients: int("BENCH_CLUSTER_CLIENTS", 12),
    rounds: int("BENCH_CLUSTER_ROUNDS", 3),
    cli: process.env.BENCH_MIRROR_CLI ? resolve(process.env.BENCH_MIRROR_CLI) : join(root, "dist/cli/main.js"),
    registryBin: process.env.BENCH_REGISTRY_BIN || "/usr/bin/docker-registry",
  };
}

/** Debian's redis-server on a free port, no persistence. */
async function startRedis(ws) {
  const port = await freePort();
  const service = new Service(ws, "redis-server", "redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {});
  service.child.stdout.resume();
  for (let i = 0; i < 200; i++) {
    const up = await new Promise((done) => {
      const s = connect(port, "127.0.0.1", () => (s.destroy(), done(true)));
      s.once("error", () => done(false));
    });
    if (up) return { addr: `127.0.0.1:${port}`, stop: () => service.stop() };
    await sleep(50);
  }
  throw new Error(`redis-server did not listen on ${port}: ${service.stderr}`);
}

/** A one-node Ceph cluster with radosgw (test/support/ceph-rgw.sh): endpoint and keys. */
async function startRgw(ws) {
  const dir = await ws.dir("rgw");
  const [port, monPort] = [await freePort(), await freePort()];
  const out = execFileSync("bash", [RGW_SCRIPT, "start", dir, String(port)], { env: { ...process.env, MONPORT: String(monPort) }, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const [endpoint, accessKey, secretKey] = out.trim().split(/\s+/);
  return { endpoint, accessKey, secretKey, stop: async () => execFileSync("bash", [RGW_SCRIPT, "stop", dir], { stdio: "ignore" }) };
}

/** A `mirror-kit serve` replica with a config file: the store, Redis, the upstream. */
async function startReplica(ws, o, { name, storage, redis, upstreamUrl }) {
  const dir = await ws.dir(`replica-${name}`);
  const port = await freePort();
  const file = join(dir, "config.json");
  // JSON is YAML: the config loader reads it as written.
  await writeFile(file, JSON.stringify({ listen: `127.0.0.1:${port}`, replica: name, storage: storage(dir), redis: { addr: redis.addr }, logLevel: "silent", builtinUpstreams: false, defaultUpstream: "docker.io", upstreams: { "docker.io": { url: upstreamUrl } } }));
  const service = new Service(ws, `mirror-kit ${name}`, process.execPath, [o.cli, "serve", "--config", file], {});
  service.child.stdout.resume();
  const url = `http://127.0.0.1:${port}`;
  await service.ready(url);
  return { name, url, pid: service.child.pid, stop: () => service.stop() };
}

async function measureCluster(ws, o, ctx, store, count) {
  const redis = await startRedis(ws);
  const replicas = [];
  try {
    for (let i = 0; i < count; i++) replicas.push(await startReplica(ws, o, { name: `r${i}`, storage: store.storage, redis, upstreamUrl: ctx.upstream.url }));
    const fixture = await pushFixture({ upstreamUrl: ctx.upstream.url, scratchDir: ws.root, blobBytes: o.blobMiB * MiB, dispatcher: ctx.agent, repository: `mirrorkit/cluster-${store.name}-${count}` });
    // Cold: replica 0 downloads; a client of the last replica (another one when there are several) asks meanwhile.
    const mark = ctx.upstreamLog.mark();
    const downloading = getBlob(ctx.agent, replicas[0].url, fixture, { verify: false });
    await sleep(200);
    const other = await getBlob(ctx.agent, replicas[replicas.length - 1].url, fixture, { verify: false });
    await downloading;
    await ctx.upstreamLog.quiet();
    const coldGets = ctx.upstreamLog.count(mark, `/blobs/${fixture.layerDigest}`).GET;
    const warmMark = ctx.upstreamLog.mark();
    const rounds = [];
    for (let r = 0; r < o.rounds; r++) {
      const started = performance.now();
      await Promise.all(Array.from({ length: o.clients }, (_, i) => getBlob(ctx.agent, replicas[i % count].url, fixture, { verify: false })));
      rounds.push((o.clients * fixture.layerSize) / MiB / ((performance.now() - started) / 1000));
    }
    await ctx.upstreamLog.quiet();
    return {
      store: store.name,
      replicas: count,
      warmMibPerSec: median(rounds),
      coldOtherTtfbMs: other.ttfbMs,
      coldUpstreamGets: coldGets,
      warmUpstreamGets: ctx.upstreamLog.count(warmMark, `/blobs/${fixture.layerDigest}`).GET,
    };
  } finally {
    for (const r of replicas) await r.stop();
    await redis.stop();
  }
}

function render(rows, o) {
  const lines = [`Replicas sharing one store and one Redis: ${o.blobMiB} MiB layer, ${o.clients} warm clients spread over the replicas, median of ${o.rounds} rounds`, ""];
  lines.push("| store | replicas | warm aggregate MiB/s | cold first byte via another replica (ms) | upstream GETs cold / warm |");
  lines.push("|---|---|---|---|---|");
  for (const r of rows) lines.push(`| ${r.store} | ${r.replicas} | ${r.warmMibPerSec.toFixed(0)} | ${r.coldOtherTtfbMs.toFixed(0)} | ${r.coldUpstreamGets} / ${r.warmUpstreamGets} |`);
  return lines.join("\n");
}

/** Run every store × replica count; prints the table and returns the rows. */
export async function runCluster(progress = (m) => process.stderr.write(`bench: ${m}\n`)) {
  const o = clusterOptions();
  for (const [bin, what] of [[o.registryBin, "docker-registry"], ["/usr/bin/redis-server", "redis-server"]]) if (!existsSync(bin)) throw new Error(`${what} not found at ${bin}: install Debian's package`);
  if (!existsSync(o.cli)) throw new Error(`${o.cli} is missing: run 'npm run build' first`);
  const ws = await Workspace.create();
  const rows = [];
  try {
    const upstream = await startRegistry(ws, { bin: o.registryBin, role: "upstream" });
    const ctx = { upstream, upstreamLog: upstream.log, agent: createAgent() };
    for (const kind of o.stores) {
      let rgw;
      if (kind === "s3") {
        progress("starting Ceph RGW");
        rgw = await startRgw(ws);
      }
      try {
        for (const count of o.replicas) {
          progress(`${kind}: ${count} replica(s)`);
          const bucket = `mk-bench-${process.pid}-${count}`;
          const store = {
            name: kind,
            // Each replica count gets a fresh folder or bucket: every run starts cold.
            storage: kind === "folder" ? () => join(ws.root, `store-${count}`) : (dir) => ({ driver: "s3", bucket, endpoint: rgw.endpoint, accessKey: rgw.accessKey, secretKey: rgw.secretKey, forcePathStyle: true, secure: false, spool: join(dir, "spool") }),
          };
          rows.push(await measureCluster(ws, o, ctx, store, count));
        }
      } finally {
        await rgw?.stop();
      }
    }
    await ctx.agent.close();
  } finally {
    await ws.dispose();
  }
  process.stdout.write(render(rows, o) + "\n");
  return rows;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  runCluster().catch((err) => {
    process.stderr.write(`bench: ${err?.stack ?? err}\n`);
    process.exit(1);
  });
}
