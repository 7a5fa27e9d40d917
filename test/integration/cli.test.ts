// The built mirror-kit binary as a user runs it: exit codes, messages, signals.
import { spawn } from "node:child_process";
import { createServer, type AddressInfo } from "node:net";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const BIN = join(import.meta.dirname, "..", "..", "dist", "cli", "main.js");
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("the mirror-kit binary", () => {
  it("prints help listing serve", async () => {
    const r = await runCli(["--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("serve");
  });

  it("exits 2 with a one-line reason on a bad config, before listening", async () => {
    const r = await runCli(["serve", "--listen", "nowhere"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("listen: expected HOST:PORT");
    expect(r.stdout).not.toContain("listening");
  });

  it("exits 2 on an unknown flag", async () => {
    const r = await runCli(["serve", "--lisen", "127.0.0.1:0"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("lisen");
  });

  // Concurrent: each run of the binary costs seconds of module loading on a busy machine.
  it.concurrent.for([
    ["no command (yargs)", [], {}, 2, "name a command"],
    ["an unknown command (yargs)", ["serv"], {}, 2, "serv"],
    ["a size that means nothing", ["serve", "--listen", "127.0.0.1:0"], { MIRROR_KIT_MAX_SIZE: "1.5" }, 2, "cache.maxSize"],
    ["a malformed NAME=URL", ["serve", "--listen", "127.0.0.1:0"], { MIRROR_KIT_UPSTREAMS: "=x" }, 2, "expected NAME=URL"],
    ["a remote URL with a password", ["serve", "--listen", "127.0.0.1:0"], { REGISTRY_PROXY_REMOTEURL: "https://bob:hunter2@registry.example" }, 2, "proxy.remoteurl: must not carry credentials"],
    ["a bad init flag (BAD_OPTION)", ["init", "--yes", "--upstream", "harbor"], {}, 2, "--upstream: expected NAME=URL"],
    ["a storage folder that cannot be created (runtime)", ["serve", "--listen", "127.0.0.1:0", "--storage", "/etc/hostname/cache"], {}, 1, "cannot use storage folder /etc/hostname/cache"],
  ] as [string, string[], Record<string, string>, number, string][])("exits with the status of its failure: %s", async ([, args, env, status, message], { expect }) => {
    const r = await runCli(args, env);
    expect([r.code, r.stderr]).toEqual([status, expect.stringContaining(message)]);
    expect(r.stderr).not.toContain("hunter2");
    expect(r.stdout).not.toContain("listening");
  });

  it("exits 1 when its port is taken (a runtime failure, not a usage error)", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    try {
      const storage = await mkdtemp(join(tmpdir(), "mk-cli-"));
      dirs.push(storage);
      const r = await runCli(["serve", "--listen", `127.0.0.1:${(taken.address() as AddressInfo).port}`, "--storage", storage]);
      expect([r.code, r.stderr]).toEqual([1, expect.stringContaining("the port is already in use")]);
    } finally {
      taken.close();
    }
  });

  it("logs where it listens as JSON, with the cache cap as it understood it, and stops cleanly on SIGTERM", async () => {
    const storage = await mkdtemp(join(tmpdir(), "mk-cli-"));
    dirs.push(storage);
    const child = spawn(process.execPath, [BIN, "serve", "--listen", "127.0.0.1:0", "--storage", storage], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, MIRROR_KIT_MAX_SIZE: "20G" } });
    let maxSize: unknown;
    const url = await new Promise<string>((resolve, reject) => {
      let buf = "";
      child.stdout.on("data", (c: Buffer) => {
        buf += c.toString();
        for (const line of buf.split("\n")) {
          try {
            const entry = JSON.parse(line) as { msg?: string; url?: string; maxSize?: unknown };
            maxSize = entry.maxSize ?? maxSize;
            if (entry.msg === "mirror-kit listening" && entry.url) resolve(entry.url);
          } catch {
            // partial line
          }
        }
      });
      child.on("exit", (code) => reject(new Error(`exited ${code} before listening`)));
    });
    expect((await fetch(`${url}/v2/`)).status).toBe(200);
    expect(maxSize).toBe("20 GiB (21474836480 bytes)");
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });

  it("serves from a folder without loading the libraries only other commands and backends need", async () => {
    const storage = await mkdtemp(join(tmpdir(), "mk-cli-"));
    dirs.push(storage);
    // Every CommonJS module a process loads (imported from ESM or required) is in require.cache;
    // the preload lists their packages when the process exits.
    const preload = join(storage, "..", `${storage.split("/").pop()}-loaded.cjs`);
    const report = `${storage}-loaded.json`;
    dirs.push(preload, report);
    await writeFile(
      preload,
      `process.on("exit", () => require("node:fs").writeFileSync(${JSON.stringify(report)}, JSON.stringify([...new Set(Object.keys(require.cache).filter((k) => k.includes("/node_modules/")).map((k) => { const p = k.split("/node_modules/").pop().split("/"); return p[0].startsWith("@") ? p[0] + "/" + p[1] : p[0]; }))])));\n`,
    );
    const child = spawn(process.execPath, ["--require", preload, BIN, "serve", "--listen", "127.0.0.1:0", "--storage", storage], { stdio: ["ignore", "pipe", "pipe"] });
    const url = await new Promise<string>((resolve, reject) => {
      let buf = "";
      child.stdout.on("data", (c: Buffer) => {
        buf += c.toString();
        const m = /"url":"(http:[^"]+)"/.exec(buf);
        if (m) resolve(m[1] as string);
      });
      child.on("exit", (code) => reject(new Error(`exited ${code} before listening`)));
    });
    expect((await fetch(`${url}/v2/`)).status).toBe(200);
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    const loaded = JSON.parse(await readFile(report, "utf8")) as string[];
    // The listing works: the HTTP client every serve uses is in it.
    expect(loaded).toContain("undici");
    // S3 storage, Redis coordination, doctor/up (dockerode with ssh2) and the generator's templates:
    // measured ~20 MiB of resident memory together, none of it used by this process.
    expect(loaded.filter((p) => ["@aws-sdk/client-s3", "ioredis", "dockerode", "ssh2", "handlebars"].includes(p))).toEqual([]);
  });
});
