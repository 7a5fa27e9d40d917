// The built mirror-kit binary as a user runs it: exit codes, messages, signals.
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
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

  it("logs where it listens as JSON and stops cleanly on SIGTERM", async () => {
    const storage = await mkdtemp(join(tmpdir(), "mk-cli-"));
    dirs.push(storage);
    const child = spawn(process.execPath, [BIN, "serve", "--listen", "127.0.0.1:0", "--storage", storage], { stdio: ["ignore", "pipe", "pipe"] });
    const url = await new Promise<string>((resolve, reject) => {
      let buf = "";
      child.stdout.on("data", (c: Buffer) => {
        buf += c.toString();
        for (const line of buf.split("\n")) {
          try {
            const entry = JSON.parse(line) as { msg?: string; url?: string };
            if (entry.msg === "mirror-kit listening" && entry.url) resolve(entry.url);
          } catch {
            // partial line
          }
        }
      });
      child.on("exit", (code) => reject(new Error(`exited ${code} before listening`)));
    });
    expect((await fetch(`${url}/v2/`)).status).toBe(200);
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });
});
