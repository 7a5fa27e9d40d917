// The mirror binary's logs in front of a real distribution upstream: each access-log line names the
// upstream, the cache result and the body bytes sent; --log-format picks JSON or human-readable lines
// (by default human-readable on a terminal, JSON otherwise), and credentials stay out of both.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pushImage } from "../support/fixtures/push.js";
import { uniqueImage } from "../support/fixtures/sets.js";
import type { Image } from "../support/fixtures/image.js";
import { requireTools } from "../support/preflight.js";
import { ManagedProcess } from "../support/process.js";
import { UpstreamRegistry } from "../support/registry.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

const BIN = join(import.meta.dirname, "..", "..", "dist", "cli", "main.js");

interface Served {
  proc: ManagedProcess;
  url: string;
}

async function serve(hubUrl: string, storage: string, extraArgs: string[], env: NodeJS.ProcessEnv = {}): Promise<Served> {
  const proc = new ManagedProcess("mirror-kit", process.execPath, [BIN, "serve", "--listen", "127.0.0.1:0", "--storage", storage, "--upstream", `docker.io=${hubUrl}`, ...extraArgs], {
    env: { PATH: process.env.PATH ?? "", ...env },
  });
  const m = await proc.waitForLine(/(http:\/\/127\.0\.0\.1:\d+)/);
  return { proc, url: m[1]! };
}

/** The JSON access-log line for `path`, once it is written (the line follows the response's close). */
async function accessLine(proc: ManagedProcess, method: string, path: string): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const found = proc.lines
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((e) => e.msg === "request" && e.method === method && e.path === path);
    if (found.length > 0) return found[found.length - 1]!;
    if (Date.now() > deadline) throw new Error(`no access-log line for ${method} ${path}:\n${proc.logTail()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("access log and log format", () => {
  let hub: UpstreamRegistry;
  let image: Image;
  let storage: string;
  const started: ManagedProcess[] = [];

  beforeAll(async () => {
    requireTools(["docker-registry"]);
    hub = await UpstreamRegistry.start({ name: "upstream docker.io" });
    image = await uniqueImage("docker");
    await pushImage(hub, "library/mk-logged", image, "1");
    storage = await makeTempDir("access-log");
  });

  afterAll(async () => {
    for (const p of started) await p.stop(5_000);
    await hub?.close();
    if (storage) await removeTempDir(storage);
  });

  it("each line names the upstream, the cache result and the body bytes sent", async () => {
    const { proc, url } = await serve(hub.url, storage, []);
    started.push(proc);
    const layer = image.layers[0]!;
    const blobPath = `/v2/library/mk-logged/blobs/${layer.digest}`;
    const first = await fetch(`${url}${blobPath}`);
    expect(Buffer.from(await first.arrayBuffer()).length).toBe(layer.size);
    expect(await accessLine(proc, "GET", blobPath)).toMatchObject({ upstream: "docker.io", cache: "MISS", bytes: layer.size, status: 200 });
    proc.lines.length = 0;
    const second = await fetch(`${url}${blobPath}`, { headers: { range: "bytes=0-99" } });
    expect(second.status).toBe(206);
    await second.arrayBuffer();
    expect(await accessLine(proc, "GET", blobPath)).toMatchObject({ upstream: "docker.io", cache: "HIT", bytes: 100, status: 206 });
    const manifestPath = "/v2/library/mk-logged/manifests/1";
    await (await fetch(`${url}${manifestPath}`, { method: "HEAD", headers: { accept: image.manifest.mediaType } })).arrayBuffer();
    const head = await accessLine(proc, "HEAD", manifestPath);
    expect(head).toMatchObject({ upstream: "docker.io", bytes: 0, status: 200 });
    expect(typeof head.cache).toBe("string");
    await (await fetch(`${url}/healthz`)).arrayBuffer();
    const health = await accessLine(proc, "GET", "/healthz");
    expect(health).not.toHaveProperty("upstream");
    expect(health.bytes).toBeGreaterThan(0);
    // Not a terminal: auto means one JSON object a line, the startup line included.
    expect(proc.lines.filter((l) => l.trim() !== "").every((l) => l.startsWith("{"))).toBe(true);
  });

  it.each([
    ["--log-format pretty", ["--log-format", "pretty"], {}],
    ["MIRROR_KIT_LOG_FORMAT=pretty", [], { MIRROR_KIT_LOG_FORMAT: "pretty" }],
  ])("%s writes human-readable lines, with credentials still redacted", async (_name, args, env) => {
    const { proc, url } = await serve(hub.url, storage, args, env);
    started.push(proc);
    const path = "/v2/library/mk-logged/manifests/1";
    await (await fetch(`${url}${path}`, { headers: { accept: image.manifest.mediaType, authorization: "Bearer sekrit-token-value" } })).arrayBuffer();
    const deadline = Date.now() + 10_000;
    while (!proc.lines.some((l) => l.includes(path)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const line = proc.lines.find((l) => l.includes(path));
    expect(line, proc.logTail()).toBeDefined();
    expect(line!.startsWith("{")).toBe(false);
    expect(line).toMatch(/INFO.*request/);
    expect(line).toContain('"upstream":"docker.io"');
    expect(proc.lines.some((l) => l.includes("mirror-kit listening"))).toBe(true);
    expect(proc.lines.join("\n")).not.toContain("sekrit-token-value");
    await proc.stop(5_000);
  });

  it("without --log-format, a terminal gets human-readable lines (serve run on a pseudo-terminal by util-linux script)", async () => {
    requireTools(["script"]);
    const args = [BIN, "serve", "--listen", "127.0.0.1:0", "--storage", storage, "--upstream", `docker.io=${hub.url}`].map((a) => `'${a}'`);
    // script gives the command a pty for stdin/stdout/stderr and copies what it prints to our pipe.
    const tty = new ManagedProcess("script", "script", ["-qfec", `exec '${process.execPath}' ${args.join(" ")}`, "/dev/null"], { env: { PATH: process.env.PATH ?? "" } });
    started.push(tty);
    await tty.waitForLine(/mirror-kit listening/);
    // pino-pretty colours on a terminal; without the escapes the line is "[time] INFO: mirror-kit listening …".
    const plain = (l: string) => l.replace(/\u001b\[[0-9;]*m/g, "").trim();
    const line = plain(tty.lines.find((l) => l.includes("mirror-kit listening"))!);
    expect(line.startsWith("{"), line).toBe(false);
    expect(line).toMatch(/^\[[\d:.]+\] INFO.*mirror-kit listening/);
    // serve is script's child: end it by its own pid (SIGTERM, its graceful stop), and script ends with it.
    const child = Number(readFileSync(`/proc/${tty.pid}/task/${tty.pid}/children`, "utf8").trim().split(/\s+/)[0]);
    expect(child).toBeGreaterThan(0);
    process.kill(child, "SIGTERM");
    expect((await tty.exited).code).toBe(0);
  });

  it("a log format it does not know stops it, naming the setting", async () => {
    const proc = new ManagedProcess("mirror-kit", process.execPath, [BIN, "serve", "--listen", "127.0.0.1:0", "--storage", storage, "--log-format", "xml"], { env: { PATH: process.env.PATH ?? "" } });
    started.push(proc);
    const exit = await proc.exited;
    expect(exit.code).not.toBe(0);
    expect(proc.lines.join("\n")).toMatch(/logFormat/);
  });
});
