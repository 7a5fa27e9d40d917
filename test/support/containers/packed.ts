// The project as npm ships it: `npm pack` of this checkout, and `npx` runs of that tarball in a user's
// project folder, installed into npm's own npx cache with its dependencies exactly as a user's npx does.
import { readdir, readFile, rm } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { run, type RunResult } from "../process.js";
import { REPO_ROOT } from "./engine.js";
import type { E2eHarness } from "./harness.js";

/**
 * The environment a user's shell gives npx: none of the npm_* variables `npm test` sets for its own
 * run, and no PATH entry inside this checkout, so nothing but the tarball can answer to `mirror-kit`.
 * prefer-offline: the dependencies come from npm's cache when `npm ci` put them there, else the registry.
 */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && k !== "INIT_CWD") env[k] = v;
  const root = REPO_ROOT.replace(/\/$/, "");
  env.PATH = (process.env.PATH ?? "").split(delimiter).filter((p) => p !== root && !p.startsWith(`${root}/`)).join(delimiter);
  return { ...env, npm_config_prefer_offline: "true", npm_config_update_notifier: "false", npm_config_fund: "false", npm_config_audit: "false" };
}

export class PackedCli {
  private constructor(
    /** The .tgz `npm pack` wrote. */
    readonly tarball: string,
    readonly version: string,
  ) {}

  /** `npm pack` of the checkout (dist/ must be built) into a folder the harness removes. */
  static async pack(h: E2eHarness): Promise<PackedCli> {
    const dest = await h.tempDir("pack");
    const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", dest], { cwd: REPO_ROOT, env: userEnv(), timeoutMs: 120_000 });
    const [info] = JSON.parse(stdout) as { filename: string; version: string }[];
    if (!info) throw new Error(`npm pack printed no package: ${stdout}`);
    const cli = new PackedCli(join(dest, info.filename), info.version);
    h.trackCleanup(() => cli.removeInstall());
    return cli;
  }

  /** `npx --package=<tarball> mirror-kit ARGS` in `cwd`, as a user without a published package runs it. */
  npx(args: readonly string[], cwd: string, timeoutMs = 300_000): Promise<RunResult> {
    return run("npx", ["--yes", `--package=${this.tarball}`, "mirror-kit", ...args], { cwd, env: userEnv(), timeoutMs });
  }

  /** npm's cache folder, where npx installs packages it runs (<cache>/_npx/<hash>). */
  private async npxRoot(): Promise<string> {
    const { stdout } = await run("npm", ["config", "get", "cache"], { env: userEnv() });
    return join(stdout.trim(), "_npx");
  }

  /** The folder npx installed this tarball into (its package.json lists the tarball), or null before the first run. */
  async installDir(): Promise<string | null> {
    const root = await this.npxRoot();
    for (const entry of await readdir(root).catch(() => [] as string[])) {
      const manifest = await readFile(join(root, entry, "package.json"), "utf8").catch(() => "");
      if (manifest.includes(JSON.stringify(this.tarball))) return join(root, entry);
    }
    return null;
  }

  /** The installed mirror-kit package npx runs. */
  async packageDir(): Promise<string> {
    const dir = await this.installDir();
    if (!dir) throw new Error(`npx has not installed ${this.tarball}`);
    return join(dir, "node_modules", "mirror-kit");
  }

  /** Removes npx's install of this tarball: the tarball's path is new every run, so each run makes one. */
  private async removeInstall(): Promise<void> {
    const dir = await this.installDir();
    if (dir) await rm(dir, { recursive: true, force: true });
  }
}
