// A mirror-kit replica as its own process: the built `mirror-kit serve` (dist/) with a config file,
// its JSON log kept, its real URL read from the "listening" line; SIGKILL for a replica that dies.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { stringify } from "yaml";
import type { ConfigInput } from "../../src/config/schema.js";
import { ManagedProcess } from "./process.js";

const BIN = join(import.meta.dirname, "..", "..", "dist", "cli", "main.js");

export class Replica {
  private constructor(
    readonly name: string,
    readonly proc: ManagedProcess,
    readonly url: string,
  ) {}

  /**
   * Starts `mirror-kit serve --config <dir>/<name>.yml`; resolves once it listens. `user`: run it as
   * that unprivileged uid/gid (setpriv; tests run as root), which must be able to read `dir`.
   */
  static async start(name: string, dir: string, config: ConfigInput, user?: { uid: number; gid: number }): Promise<Replica> {
    const file = join(dir, `${name}.yml`);
    await writeFile(file, stringify({ listen: "127.0.0.1:0", builtinUpstreams: false, logLevel: "debug", replica: name, ...config }));
    const serve = [process.execPath, BIN, "serve", "--config", file];
    const [cmd, ...args] = user ? ["setpriv", `--reuid=${user.uid}`, `--regid=${user.gid}`, "--clear-groups", ...serve] : serve;
    const proc = new ManagedProcess(`replica ${name}`, cmd as string, args, {
      env: { ...process.env, MIRROR_KIT_RUN_DIR: join(dir, `run-${name}`) },
    });
    const m = await proc.waitForLine(/"msg":"mirror-kit listening"/, 30_000);
    const url = (JSON.parse(m.input as string) as { url: string }).url;
    return new Replica(name, proc, url);
  }

  get pid(): number {
    return this.proc.pid as number;
  }

  /** Log lines (parsed JSON) whose msg matches. */
  logged(msg: RegExp): Record<string, unknown>[] {
    return this.proc.lines.flatMap((l) => {
      try {
        const rec = JSON.parse(l) as Record<string, unknown>;
        return msg.test(String(rec.msg)) ? [rec] : [];
      } catch {
        return [];
      }
    });
  }

  kill(): Promise<unknown> {
    process.kill(this.pid, "SIGKILL");
    return this.proc.exited;
  }

  stop(): Promise<void> {
    return this.proc.stop(5_000);
  }
}
