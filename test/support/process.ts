// Child processes for the real-parts harness: one-shot commands with their output,
// long-running daemons whose output is kept so a failing test can show why.
import { execFile, spawn, type ChildProcess } from "node:child_process";

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  input?: string | Buffer;
  timeoutMs?: number;
  /** Return a non-zero exit as a result instead of throwing (for tests that expect a failure). */
  allowFailure?: boolean;
}

/** Runs a command to completion; a non-zero exit throws with the command line and its stderr. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      {
        env: opts.env ?? process.env,
        cwd: opts.cwd,
        timeout: opts.timeoutMs ?? 110_000,
        killSignal: "SIGKILL",
        maxBuffer: 64 * 1024 * 1024,
        encoding: "utf8",
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
        if (error && !opts.allowFailure) {
          const why = error.killed ? `killed after ${opts.timeoutMs ?? 110_000} ms` : `exit ${String(error.code)}`;
          reject(new Error(`${cmd} ${args.join(" ")} failed (${why})\n${tail(stderr || stdout, 40)}`));
          return;
        }
        resolve({ stdout, stderr, code });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Runs a command and returns its stdout as bytes (tar streams). */
export function runBuffer(cmd: string, args: readonly string[], cwd?: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, encoding: "buffer", maxBuffer: 1024 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${cmd} ${args.join(" ")} failed: ${stderr.toString("utf8")}`));
      else resolve(stdout);
    });
  });
}

export function tail(text: string, lines: number): string {
  return text.split("\n").slice(-lines).join("\n");
}

/**
 * A daemon started by a test. Its stdout and stderr lines are kept in order so
 * that readiness can be awaited on a log line and a failure message can quote the log.
 */
export class ManagedProcess {
  readonly lines: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;
  private readonly listeners = new Set<(line: string, stream: "stdout" | "stderr") => void>();
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(
    readonly name: string,
    cmd: string,
    args: readonly string[],
    opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
  ) {
    this.child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ["ignore", "pipe", "pipe"] });
    this.exited = new Promise((resolve) => {
      this.child.once("exit", (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
      // A missing binary surfaces as 'error' without 'exit'.
      this.child.once("error", (err) => {
        this.lines.push(`[spawn error] ${err.message}`);
        this.exitInfo = { code: -1, signal: null };
        resolve(this.exitInfo);
      });
    });
    this.pipe(this.child.stdout, "stdout");
    this.pipe(this.child.stderr, "stderr");
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  onLine(listener: (line: string, stream: "stdout" | "stderr") => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves with the first line (already seen or future) matching `pattern`; rejects if the process exits first. */
  waitForLine(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
    for (const line of this.lines) {
      const m = line.match(pattern);
      if (m) return Promise.resolve(m);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`${this.name}: no line matching ${pattern} within ${timeoutMs} ms\n${this.logTail()}`));
      }, timeoutMs);
      const off = this.onLine((line) => {
        const m = line.match(pattern);
        if (m) {
          clearTimeout(timer);
          off();
          resolve(m);
        }
      });
      void this.exited.then((info) => {
        clearTimeout(timer);
        off();
        reject(new Error(`${this.name} exited (${info.code ?? info.signal}) before ${pattern}\n${this.logTail()}`));
      });
    });
  }

  logTail(lines = 30): string {
    return this.lines.slice(-lines).join("\n");
  }

  /** SIGTERM, then SIGKILL after `graceMs`: teardown must finish even when the daemon hangs. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  private pipe(stream: NodeJS.ReadableStream | null, name: "stdout" | "stderr"): void {
    if (!stream) return;
    let pending = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      pending += chunk;
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        this.lines.push(line);
        for (const l of this.listeners) l(line, name);
      }
    });
  }
}
