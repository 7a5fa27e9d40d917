// Bounded load: 200 concurrent clients pull warm manifests and blobs from the mirror binary for
// 60 s, in front of a real distribution upstream. No request may fail, the mirror's RSS must stay
// bounded, and the figures are printed (requests, throughput, latency, RSS).
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildImage, MediaType, type Image } from "../support/fixtures/image.js";
import { filesLayer, randomLayer } from "../support/fixtures/layers.js";
import { pushImage } from "../support/fixtures/push.js";
import { eventually } from "../support/eventually.js";
import { UpstreamRegistry } from "../support/registry.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

const BIN = join(import.meta.dirname, "..", "..", "dist", "cli", "main.js");
const CLIENTS = 200;
const SECONDS = 60;
/** The mirror's resident memory may not pass this at any sample (measured ~100-200 MiB). */
const RSS_BOUND_MIB = 512;
const ACCEPT = [MediaType.dockerManifest, MediaType.dockerManifestList, MediaType.ociManifest, MediaType.ociIndex].join(", ");

let hub: UpstreamRegistry;
let storage: string;
let mirror: ReturnType<typeof spawn>;
let mirrorUrl: string;
const images: Image[] = [];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

async function rssMiB(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN);
  return { rss: kib("VmRSS") / 1024, peak: kib("VmHWM") / 1024 };
}

beforeAll(async () => {
  hub = await UpstreamRegistry.start({ name: "upstream docker.io" });
  for (const [i, size] of [64 * 1024, 1024 * 1024, 4 * 1024 * 1024].entries()) {
    const image = buildImage({ layers: [await randomLayer(`data/${i}.bin`, size), await filesLayer({ "etc/id": `load ${i}\n` })] });
    await pushImage({ url: hub.url }, `library/load${i}`, image, "1");
    images.push(image);
  }
  storage = await makeTempDir("load");
  // Logs at warn: an access line per request would make this a test of stdout. The port is picked
  // here, since the "listening" line is info.
  const port = await freePort();
  mirror = spawn(process.execPath, [BIN, "serve", "--listen", `127.0.0.1:${port}`, "--storage", storage, "--upstream", `docker.io=${hub.url}`, "--log-level", "warn", "--tag-freshness", "10m"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  mirror.stdout?.on("data", (c: Buffer) => (output = (output + c.toString()).slice(-4000)));
  mirror.stderr?.on("data", (c: Buffer) => (output = (output + c.toString()).slice(-4000)));
  mirrorUrl = `http://127.0.0.1:${port}`;
  await eventually(
    () => request(`${mirrorUrl}/v2/`).then((r) => (r.body.dump(), r.statusCode), () => (mirror.exitCode === null ? 0 : -1)),
    (status) => status !== 0,
    60_000,
  ).then((status) => {
    if (status !== 200) throw new Error(`mirror did not start (${status}): ${output}`);
  });
  // Warm: one pull of everything, so the load is what a busy team's warm cache sees.
  for (const image of images) {
    const repo = `library/load${images.indexOf(image)}`;
    const m = await request(`${mirrorUrl}/v2/${repo}/manifests/1`, { headers: { accept: ACCEPT } });
    expect(m.statusCode).toBe(200);
    await m.body.dump();
    for (const b of [image.config, ...image.layers]) {
      const r = await request(`${mirrorUrl}/v2/${repo}/blobs/${b.digest}`);
      expect(r.statusCode).toBe(200);
      await r.body.dump();
    }
  }
}, 120_000);

afterAll(async () => {
  if (mirror && mirror.exitCode === null) {
    const exited = new Promise((resolve) => mirror.once("exit", resolve));
    mirror.kill("SIGTERM");
    await exited;
  }
  await hub?.close();
  if (storage) await removeTempDir(storage);
});

describe("200 concurrent clients on a warm cache for 60 s", () => {
  it("answers every request correctly while the mirror's RSS stays bounded", async () => {
    const pid = mirror.pid as number;
    const targets = images.flatMap((image, i) => {
      const repo = `library/load${i}`;
      return [
        { path: `/v2/${repo}/manifests/1`, size: image.manifest.size, headers: { accept: ACCEPT } },
        { path: `/v2/${repo}/blobs/${image.config.digest}`, size: image.config.size, headers: {} },
        ...image.layers.map((l) => ({ path: `/v2/${repo}/blobs/${l.digest}`, size: l.size, headers: {} })),
      ];
    });
    const agent = new Agent({ connections: CLIENTS, pipelining: 1 });
    const before = await rssMiB(pid);
    const samples: number[] = [];
    const sampler = setInterval(() => {
      rssMiB(pid).then((r) => samples.push(r.rss), () => undefined);
    }, 500);
    const latencies: number[] = [];
    const failures: string[] = [];
    let bytes = 0;
    const end = performance.now() + SECONDS * 1000;
    const client = async (n: number) => {
      for (let i = n; performance.now() < end; i++) {
        const t = targets[i % targets.length]!;
        const started = performance.now();
        try {
          const res = await request(`${mirrorUrl}${t.path}`, { dispatcher: agent, headers: t.headers });
          let got = 0;
          for await (const chunk of res.body) got += (chunk as Buffer).byteLength;
          if (res.statusCode !== 200 || got !== t.size) failures.push(`${t.path}: ${res.statusCode}, ${got}/${t.size} bytes`);
          bytes += got;
        } catch (err) {
          failures.push(`${t.path}: ${(err as Error).message}`);
        }
        latencies.push(performance.now() - started);
      }
    };
    const wall = performance.now();
    await Promise.all(Array.from({ length: CLIENTS }, (_, n) => client(n)));
    const seconds = (performance.now() - wall) / 1000;
    clearInterval(sampler);
    await agent.close();
    const after = await rssMiB(pid);
    latencies.sort((a, b) => a - b);
    const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]!.toFixed(1);
    const maxSample = Math.max(...samples, after.rss);
    process.stdout.write(
      [
        `load: ${CLIENTS} clients, ${seconds.toFixed(1)} s, ${latencies.length} requests (${(latencies.length / seconds).toFixed(0)} req/s), ` +
          `${(bytes / 1024 ** 2 / seconds).toFixed(0)} MiB/s, ${failures.length} failures`,
        `load: latency p50 ${pct(50)} ms, p99 ${pct(99)} ms, max ${pct(100)} ms`,
        `load: mirror RSS before ${before.rss.toFixed(0)} MiB, max sampled ${maxSample.toFixed(0)} MiB, after ${after.rss.toFixed(0)} MiB, peak (VmHWM) ${after.peak.toFixed(0)} MiB`,
        "",
      ].join("\n"),
    );
    expect(failures.slice(0, 5)).toEqual([]);
    expect(latencies.length).toBeGreaterThan(CLIENTS * 10);
    expect(after.peak).toBeLessThan(RSS_BOUND_MIB);
    // Still serving once the load is over.
    expect((await request(`${mirrorUrl}/v2/`)).statusCode).toBe(200);
  }, (SECONDS + 60) * 1000);
});
