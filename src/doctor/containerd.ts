// doctor's containerd checks, judged as containerd reads its files: config.toml says whether CRI runs
// and which folders (config_path) it takes hosts.toml from; each registry's hosts.toml must send pulls to the mirror.
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { parse } from "smol-toml";
import { CERTS_D, readContainerdConfig, type ContainerdRegistryConfig } from "../generate/containerd-config.js";
import { readIfExists } from "../generate/files.js";
import type { Settings } from "../generate/settings.js";
import { fail, ok, type CheckResult } from "./checks.js";

const CONFIG = "/etc/containerd/config.toml";
const CRI_CHECK = "containerd CRI (config.toml)";
const HOSTS_CHECK = "containerd certs.d";

/** wire: the `mirror-kit wire containerd …` command that writes what is missing. */
export function checkContainerd(mirror: string, settings: Settings, root: string, wire: string, ca: boolean): CheckResult[] {
  let cfg: ContainerdRegistryConfig;
  const text = readIfExists(join(root, CONFIG), CONFIG);
  try {
    cfg = readContainerdConfig(text, CONFIG);
  } catch (err) {
    return [fail(CRI_CHECK, (err as Error).message, `correct ${CONFIG} (containerd does not start with it as it is), then run mirror-kit doctor again`)];
  }
  const results = [criResult(cfg, text === null, wire)];
  // CRI takes hosts.toml from config_path; ctr --hosts-dir and nerdctl from certs.d.
  const roots = cfg.criEnabled && cfg.configPath.length > 0 ? cfg.configPath : [CERTS_D];
  const origin = new URL(mirror).origin;
  const problems: string[] = [];
  const missing: string[] = [];
  const used = new Set<string>();
  for (const u of settings.upstreams) {
    const dir = hostsDir(root, roots, u.name);
    if (!dir) {
      missing.push(u.name);
      continue;
    }
    used.add(dir);
    const problem = judgeHosts(root, join(dir, "hosts.toml"), origin, ca);
    if (problem) problems.push(problem);
  }
  if (missing.length > 0) problems.unshift(`no hosts.toml for ${missing.join(", ")} in ${roots.join(":")}`);
  if (problems.length === 0) {
    results.push(ok(HOSTS_CHECK, `pulls of ${settings.upstreams.map((u) => u.name).join(", ")} go through ${origin} (hosts.toml in ${roots.join(":")})`));
  } else {
    const elsewhere = [...used].filter((d) => !d.startsWith(`${CERTS_D}/`));
    const fix = elsewhere.length > 0 ? `containerd reads ${elsewhere.join(", ")} before ${CERTS_D}: remove ${elsewhere.length === 1 ? "that folder" : "those folders"} (or make the mirror their first host), then: ${wire}` : `${wire}   # hosts.toml is read on every pull: no restart`;
    results.push(fail(HOSTS_CHECK, `${problems.join("; ")}: those pulls do not go through ${origin}`, fix));
  }
  return results;
}

function criResult(cfg: ContainerdRegistryConfig, noFile: boolean, wire: string): CheckResult {
  if (!cfg.criEnabled) return ok(CRI_CHECK, "the CRI plugin is disabled (disabled_plugins): nothing pulls through CRI, so only certs.d matters (ctr --hosts-dir, nerdctl)");
  const restart = `${wire} && sudo systemctl restart containerd`;
  if (cfg.deprecatedMirrors.length > 0 && cfg.configPath.length === 0) {
    return fail(CRI_CHECK, `CRI pulls use the deprecated ${cfg.registryTable.slice(1, -1)}.mirrors (${cfg.deprecatedMirrors.join(", ")}), not certs.d`, `delete the ${cfg.registryTable.slice(1, -1)}.mirrors tables from ${CONFIG} (containerd refuses them next to config_path), then: ${restart}`);
  }
  if (cfg.configPath.length === 0) {
    const why = noFile ? `there is no ${CONFIG}, and containerd's default has no config_path` : cfg.configPathKey ? `config_path = "" in ${cfg.registryTable}` : `${CONFIG} sets no config_path in ${cfg.registryTable}`;
    return fail(CRI_CHECK, `CRI pulls (kubelet, crictl) read no hosts.toml: ${why}`, `${restart}   # sets config_path = "${CERTS_D}"`);
  }
  return ok(CRI_CHECK, `CRI reads hosts.toml from ${cfg.configPath.join(":")} (config_path, version ${cfg.version})`);
}

/** containerd's lookup: in each config_path folder in turn, the registry's own folder, else _default. */
function hostsDir(root: string, roots: readonly string[], host: string): string | undefined {
  for (const r of roots) {
    for (const name of [host, "_default"]) {
      const dir = `${r.replace(/\/+$/, "")}/${name}`;
      if (statSync(join(root, dir), { throwIfNoEntry: false })?.isDirectory()) return dir;
    }
  }
  return undefined;
}

/** What is wrong with a registry's hosts.toml for pulls through `origin`, or undefined. */
function judgeHosts(root: string, file: string, origin: string, ca: boolean): string | undefined {
  const text = readIfExists(join(root, file), file);
  if (text === null) return `${file} is missing (containerd pulls from the registry itself)`;
  let hosts: Record<string, { capabilities?: unknown; ca?: unknown }>;
  try {
    hosts = ((parse(text) as { host?: unknown }).host ?? {}) as typeof hosts;
  } catch (err) {
    return `${file} is not valid TOML (${(err as Error).message.split("\n")[0]})`;
  }
  const names = Object.keys(hosts);
  const originOf = (h: string) => {
    try {
      return new URL(h.includes("://") ? h : `https://${h}`).origin; // containerd's default scheme
    } catch {
      return undefined;
    }
  };
  const first = names[0];
  if (first === undefined || originOf(first) !== origin) {
    return names.some((h) => originOf(h) === origin) ? `${file} tries ${first} before the mirror` : `${file} does not list the mirror`;
  }
  const entry = hosts[first] ?? {};
  const caps = entry.capabilities;
  if (Array.isArray(caps) && !(caps.includes("pull") && caps.includes("resolve"))) return `${file} gives the mirror capabilities ${JSON.stringify(caps)}, without "pull" and "resolve"`;
  if (ca) {
    const caFile = typeof entry.ca === "string" ? entry.ca : Array.isArray(entry.ca) ? entry.ca[0] : undefined;
    if (typeof caFile !== "string") return `${file} names no ca for the mirror (its certificate is not trusted)`;
    if (!existsSync(join(root, caFile))) return `${file} names ca ${caFile}, which is missing`;
  }
  return undefined;
}
