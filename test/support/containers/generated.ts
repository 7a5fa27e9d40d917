// What `mirror-kit init` generates for an example project, produced by the built CLI exactly as a
// user runs it, and read back the way Vagrant, the devcontainer CLI and Compose consume it.
import { cp, readFile } from "node:fs/promises";
import { join } from "node:path";
import { parse as parseJsonc } from "jsonc-parser";
import { run } from "../process.js";
import { REPO_ROOT } from "./engine.js";
import type { E2eHarness } from "./harness.js";

export interface GeneratedProject {
  dir: string;
  /** What `init` printed. */
  output: string;
}

/** Copies examples/<example> to a temp folder and runs `node dist/cli/main.js init --yes` in it. */
export async function initExample(h: E2eHarness, example: string, args: readonly string[]): Promise<GeneratedProject> {
  const dir = await h.tempDir(`e2e-${example}`);
  await cp(join(REPO_ROOT, "examples", example), dir, { recursive: true });
  const { stdout, stderr } = await run(process.execPath, [join(REPO_ROOT, "dist", "cli", "main.js"), "init", "--dir", dir, "--yes", ...args], { cwd: dir });
  return { dir, output: stdout + stderr };
}

/**
 * The environment Vagrant gives the provisioning script: the `env:` hash of the generated block in
 * the Vagrantfile, with `ENV.fetch("X", default)` taken from `hostEnv` (the user's shell) or the default.
 */
export async function vagrantProvisionEnv(project: GeneratedProject, hostEnv: Record<string, string>): Promise<{ script: string; env: Record<string, string> }> {
  const vagrantfile = await readFile(join(project.dir, "Vagrantfile"), "utf8");
  const block = /# >>> mirror-kit >>>[\s\S]*?# <<< mirror-kit <<</.exec(vagrantfile)?.[0];
  if (!block) throw new Error(`no mirror-kit block in the generated Vagrantfile:\n${vagrantfile}`);
  const path = /path:\s*"([^"]+)"/.exec(block)?.[1];
  if (!path) throw new Error(`the generated provisioner names no script path:\n${block}`);
  const env: Record<string, string> = {};
  for (const m of block.matchAll(/"(\w+)"\s*=>\s*(?:ENV\.fetch\("(\w+)",\s*"([^"]*)"\)|"([^"]*)")/g)) {
    const [, key, envName, fallback, literal] = m;
    env[key!] = envName !== undefined ? (hostEnv[envName] ?? fallback ?? "") : (literal ?? "");
  }
  return { script: join(project.dir, path), env };
}

export interface DevcontainerFeature {
  /** The local Feature folder (devcontainer-feature.json, install.sh). */
  dir: string;
  /** Option variables as the devcontainer CLI exports them before install.sh: user values over defaults. */
  env: Record<string, string>;
  /** `--add-host` entries from runArgs, as the CLI passes them to `docker run`. */
  extraHosts: { host: string; ipAddress: string }[];
}

/**
 * Reads the generated devcontainer.json (JSONC) and the local Feature it references, and derives
 * what the devcontainer CLI would do with them (devcontainers/spec, devcontainer-features.md):
 * option ids become upper-cased variables, non-word characters replaced by "_".
 */
export async function devcontainerFeature(project: GeneratedProject, featureRef = "./mirror-kit"): Promise<DevcontainerFeature> {
  const configDir = join(project.dir, ".devcontainer");
  const config = parseJsonc(await readFile(join(configDir, "devcontainer.json"), "utf8")) as {
    features?: Record<string, Record<string, string | boolean>>;
    runArgs?: string[];
  };
  const userOptions = config.features?.[featureRef];
  if (!userOptions) throw new Error(`the generated devcontainer.json has no "${featureRef}" feature: ${JSON.stringify(config.features)}`);
  const dir = join(configDir, featureRef);
  const meta = JSON.parse(await readFile(join(dir, "devcontainer-feature.json"), "utf8")) as { options?: Record<string, { default?: string | boolean }> };
  const env: Record<string, string> = {};
  for (const [id, option] of Object.entries(meta.options ?? {})) {
    const name = id.replace(/[^\w_]/g, "_").replace(/^[\d_]+/, "").toUpperCase();
    const value = userOptions[id] ?? option.default;
    if (value !== undefined) env[name] = String(value);
  }
  const extraHosts = (config.runArgs ?? [])
    .map((a) => /^--add-host[= ]([^:]+):(.+)$/.exec(a))
    .filter((m): m is RegExpExecArray => !!m)
    .map((m) => ({ host: m[1]!, ipAddress: m[2]! }));
  return { dir, env, extraHosts };
}
