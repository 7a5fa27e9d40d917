// `mirror-kit healthcheck` as Docker's HEALTHCHECK runs it: a separate process that must find the
// mirror however serve was told where to listen (flag, environment, config file), and fail otherwise.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";

const BIN = join(import.meta.dirname, "..", "..", "dist", "cli", "main.js");
/** The entry point the image's HEALTHCHECK and the generated Compose service run. */
const FAST = join(import.meta.dirname, "..", "..", "dist", "cli", "healthcheck-main.js");
const dirs: string[] = [];
const children: ChildProcess[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null) {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    }
  }
});
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "mk-health-"));
  dirs.push(d);
  return d;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((ok) => server.close(() => ok()));
  return port;
}

function cli(args: string[], env: Record<string, string>, bin = BIN): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (out += c.toString()));
    child.on("exit", (code) => resolve({ code, out }));
  });
}

/** Starts `mirror-kit serve` and resolves once it logged where it listens. */
async function serve(args: string[], env: Record<string, string>): Promise<string> {
  const child = spawn(process.execPath, [BIN, "serve", "--storage", await tmp(), "--upstream", "docker.io=http://127.0.0.1:9", ...args], {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  return new Promise<string>((resolve, reject) => {
    let buf = "";
    child.stdout.on("data", (c: Buffer) => {
      buf += c.toString();
      const m = /"url":"([^"]+)".*"mirror-kit listening"|"msg":"mirror-kit listening".*"url":"([^"]+)"/.exec(buf);
      if (m) setTimeout(() => resolve((m[1] ?? m[2])!), 200); // the record is written right after the log line
    });
    child.on("exit", (code) => reject(new Error(`serve exited ${code}: ${buf}`)));
  });
}

describe("mirror-kit healthcheck", () => {
  it("finds a serve started with --listen, which it cannot see in its own environment", async () => {
    const run = await tmp();
    const port = await freePort();
    const url = await serve(["--listen", `127.0.0.1:${port}`], { MIRROR_KIT_RUN_DIR: run });
    const r = await cli(["healthcheck"], { MIRROR_KIT_RUN_DIR: run });
    expect(r.out).toContain(`healthy: ${url}/healthz (HTTP 200)`);
    expect(r.code).toBe(0);
    const fast = await cli([], { MIRROR_KIT_RUN_DIR: run }, FAST);
    expect(fast.out).toContain(`healthy: ${url}/healthz (HTTP 200)`);
    expect(fast.code).toBe(0);
  });

  it.each([
    ["MIRROR_KIT_LISTEN", (port: number) => ({ env: { MIRROR_KIT_LISTEN: `127.0.0.1:${port}` }, args: [] as string[] })],
    ["REGISTRY_HTTP_ADDR", (port: number) => ({ env: { REGISTRY_HTTP_ADDR: `127.0.0.1:${port}` }, args: [] as string[] })],
    ["--config with listen", (port: number, file?: string) => ({ env: {}, args: ["--config", file!], content: `listen: "127.0.0.1:${port}"\n` })],
    ["MIRROR_KIT_CONFIG (distribution config.yml)", (port: number, file?: string) => ({ env: { MIRROR_KIT_CONFIG: file! }, args: [] as string[], content: `version: 0.1\nhttp:\n  addr: 127.0.0.1:${port}\nproxy:\n  remoteurl: http://127.0.0.1:9\n` })],
  ])("without a record it resolves %s exactly as serve does", async (_name, setup) => {
    const port = await freePort();
    const file = join(await tmp(), "config.yml");
    const s = setup(port, file) as { env: Record<string, string>; args: string[]; content?: string };
    if (s.content) await writeFile(file, s.content);
    // serve records into one folder, healthcheck looks into an empty one: only the configuration can lead it there.
    await serve(s.args, { ...s.env, MIRROR_KIT_RUN_DIR: await tmp() });
    const r = await cli(s.args, { ...s.env, MIRROR_KIT_RUN_DIR: await tmp() }, FAST);
    expect(r.out).toContain(`healthy: http://127.0.0.1:${port}/healthz (HTTP 200)`);
    expect(r.code).toBe(0);
  });

  it("is unhealthy (exit 1) when nothing answers, and ignores the record of a serve that died", async () => {
    const run = await tmp();
    const port = await freePort();
    await writeFile(join(run, "serve-999999.json"), JSON.stringify({ pid: 999999, url: "http://127.0.0.1:1" }));
    const r = await cli(["healthcheck"], { MIRROR_KIT_RUN_DIR: run, MIRROR_KIT_LISTEN: `127.0.0.1:${port}` });
    expect(r.out).toContain(`unhealthy: http://127.0.0.1:${port}/healthz (ECONNREFUSED`);
    expect(r.code).toBe(1);
    const fast = await cli(["--listen", `127.0.0.1:${port}`], { MIRROR_KIT_RUN_DIR: run }, FAST);
    expect(fast.out).toContain(`unhealthy: http://127.0.0.1:${port}/healthz (ECONNREFUSED`);
    expect(fast.code).toBe(1);
  });

  it("the fast entry point refuses a flag serve does not have (exit 2), naming it", async () => {
    const r = await cli(["--lisen", "127.0.0.1:5000"], {}, FAST);
    expect(r.out).toContain("lisen");
    expect(r.code).toBe(2);
  });

  it("serve removes its record when it stops", async () => {
    const run = await tmp();
    await serve(["--listen", "127.0.0.1:0"], { MIRROR_KIT_RUN_DIR: run });
    expect(await readdir(run)).toHaveLength(1);
    const child = children[0]!;
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
    expect(await readdir(run)).toEqual([]);
  });

  it("speaks https to a TLS listener found from the record or the environment; with client certificates required it accepts the listener's TLS answer", async () => {
    const certs = await tmp();
    const made = await cli(["cert", "--dir", certs], {});
    expect(made.code, made.out).toBe(0);
    const [crt, key, ca] = ["server.crt", "server.key", "ca.crt"].map((f) => join(certs, f)) as [string, string, string];
    const run = await tmp();
    const port = await freePort();
    const url = await serve(["--listen", `127.0.0.1:${port}`, "--tls-cert", crt, "--tls-key", key], { MIRROR_KIT_RUN_DIR: run });
    expect(url).toBe(`https://127.0.0.1:${port}`);
    const fromRecord = await cli([], { MIRROR_KIT_RUN_DIR: run }, FAST);
    expect(fromRecord.out).toContain(`healthy: ${url}/healthz (HTTP 200)`);
    expect(fromRecord.code).toBe(0);
    const fromEnv = await cli([], { MIRROR_KIT_RUN_DIR: await tmp(), MIRROR_KIT_LISTEN: `127.0.0.1:${port}`, MIRROR_KIT_TLS_CERT: crt, MIRROR_KIT_TLS_KEY: key }, FAST);
    expect(fromEnv.out).toContain(`healthy: ${url}/healthz (HTTP 200)`);
    expect(fromEnv.code).toBe(0);
    // Plain http to the TLS port is not mistaken for health.
    expect((await cli(["--listen", `127.0.0.1:${port}`], { MIRROR_KIT_RUN_DIR: await tmp() }, FAST)).code).toBe(1);

    const mtlsRun = await tmp();
    const mtlsPort = await freePort();
    await serve(["--listen", `127.0.0.1:${mtlsPort}`, "--tls-cert", crt, "--tls-key", key, "--tls-client-ca", ca], { MIRROR_KIT_RUN_DIR: mtlsRun });
    const mtls = await cli([], { MIRROR_KIT_RUN_DIR: mtlsRun }, FAST);
    expect(mtls.out).toContain(`healthy: https://127.0.0.1:${mtlsPort}/healthz (TLS listener answers; it requires client certificates`);
    expect(mtls.code).toBe(0);
    // The same check against a port where nothing listens fails.
    const none = await cli([], { MIRROR_KIT_RUN_DIR: await tmp(), MIRROR_KIT_LISTEN: `127.0.0.1:${await freePort()}`, MIRROR_KIT_TLS_CERT: crt, MIRROR_KIT_TLS_KEY: key, MIRROR_KIT_TLS_CLIENT_CAS: ca }, FAST);
    expect(none.code).toBe(1);
  });
});
