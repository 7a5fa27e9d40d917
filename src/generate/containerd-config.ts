// containerd's config.toml as containerd itself reads it for registries: the schema version, whether
// the CRI plugin runs, and where CRI looks for hosts.toml (config_path); wire and doctor both use it.
import { parse, TomlError } from "smol-toml";
import { GenerateError } from "./errors.js";

/** Where `mirror-kit wire containerd` writes hosts.toml, and what ctr --hosts-dir and nerdctl read. */
export const CERTS_D = "/etc/containerd/certs.d";

export interface ContainerdRegistryConfig {
  /** 1 when the file has no `version` line (containerd's own rule). */
  version: 1 | 2 | 3;
  /** false when disabled_plugins names the CRI plugin as this version spells it. */
  criEnabled: boolean;
  /** The table CRI's registry settings live in, as a TOML header: where config_path goes. */
  registryTable: string;
  /** config_path split as containerd splits it (":"); empty when unset or "". */
  configPath: string[];
  /** Whether a config_path key is there at all (`containerd config default` writes config_path = ""). */
  configPathKey: boolean;
  /** Registries of the deprecated registry.mirrors; beside config_path containerd refuses to start. */
  deprecatedMirrors: string[];
}

type Table = Record<string, unknown>;
const table = (v: unknown): Table | undefined => (v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Table) : undefined);

// The CRI plugin's registry table by version: v1 keys plugins by their short id, v2 by URI, and
// containerd 2.x (v3) moved image settings to their own plugin.
const REGISTRY_PATH: Record<1 | 2 | 3, [string, string]> = {
  1: ["cri", "[plugins.cri.registry]"],
  2: ["io.containerd.grpc.v1.cri", '[plugins."io.containerd.grpc.v1.cri".registry]'],
  3: ["io.containerd.cri.v1.images", '[plugins."io.containerd.cri.v1.images".registry]'],
};
// What disables CRI in disabled_plugins. Measured with containerd 1.6: in a v1 file only "cri"
// does (the URI is ignored); a v2 file must use URIs (containerd refuses to start on "cri").
const CRI_IDS: Record<1 | 2 | 3, string[]> = {
  1: ["cri"],
  2: ["io.containerd.grpc.v1.cri"],
  3: ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images"],
};

/**
 * Read config.toml (null: there is none, so containerd runs on its defaults: CRI on, no config_path).
 * Throws BAD_INPUT, naming `display`, for a file containerd would refuse to start with.
 */
export function readContainerdConfig(text: string | null, display: string): ContainerdRegistryConfig {
  let doc: Table = {};
  if (text !== null) {
    try {
      doc = parse(text) as Table;
    } catch (err) {
      const where = err instanceof TomlError ? ` at line ${err.line}` : "";
      throw new GenerateError("BAD_INPUT", `not valid TOML${where} (containerd would not start with it): ${(err as Error).message.split("\n")[0]}`, display);
    }
  }
  const rawVersion = doc.version ?? 1;
  if (rawVersion !== 1 && rawVersion !== 2 && rawVersion !== 3) throw new GenerateError("BAD_INPUT", `version = ${String(rawVersion)}: containerd reads versions 1, 2 and 3 only`, display);
  const version = text === null ? 2 : rawVersion;
  const disabled = Array.isArray(doc.disabled_plugins) ? doc.disabled_plugins.filter((p): p is string => typeof p === "string") : [];
  const plugins = table(doc.plugins) ?? {};
  if (version >= 2) {
    // containerd's own check for v2 files: every plugin name must be a URI (io.containerd.x.vx.name).
    const bad = [...disabled.map((p) => ["disabled plugin", p]), ...Object.keys(plugins).map((p) => ["plugin key", p])].find(([, p]) => p!.split(".").length < 4);
    if (bad) throw new GenerateError("BAD_INPUT", `invalid ${bad[0]} URI "${bad[1]}" (containerd refuses to start: version ${version} expects io.containerd.x.vx names)`, display);
  }
  const [plugin, registryTable] = REGISTRY_PATH[version];
  const registry = table(table(plugins[plugin])?.registry) ?? {};
  const configPath = registry.config_path;
  if (configPath !== undefined && typeof configPath !== "string") throw new GenerateError("BAD_INPUT", `config_path in ${registryTable} must be a string`, display);
  return {
    version,
    criEnabled: !CRI_IDS[version].some((id) => disabled.includes(id)),
    registryTable,
    configPath: (configPath ?? "").split(":").filter((p) => p !== ""),
    configPathKey: configPath !== undefined,
    deprecatedMirrors: Object.keys(table(registry.mirrors) ?? {}),
  };
}

const CONFIG_PATH_LINE = /^(\s*config_path\s*=\s*)("[^"\n]*"|'[^'\n]*')/m;

/**
 * config.toml with certs.d first in CRI's config_path, changing nothing else: a file whose CRI is
 * disabled or already reads certs.d stays as it is. What it writes is read back as containerd would.
 */
export function ensureConfigPath(before: string | null, display: string): string {
  const cfg = readContainerdConfig(before, display);
  if (before === null || before.trim() === "") return `version = 2\n\n${REGISTRY_PATH[2][1]}\n  config_path = "${CERTS_D}"\n`;
  if (!cfg.criEnabled || cfg.configPath.includes(CERTS_D)) return before;
  if (cfg.deprecatedMirrors.length > 0) {
    throw new GenerateError("CONFLICT", `uses the deprecated registry.mirrors (${cfg.deprecatedMirrors.join(", ")}), which containerd refuses next to config_path; move those mirrors to certs.d first`, display);
  }
  const wanted = [CERTS_D, ...cfg.configPath].join(":");
  let after: string;
  if (cfg.configPathKey) {
    // config_path = "" (as `containerd config default` writes it) or other folders: certs.d goes first.
    if ((before.match(new RegExp(CONFIG_PATH_LINE.source, "gm")) ?? []).length !== 1) {
      throw new GenerateError("BAD_INPUT", `set config_path = "${wanted}" in ${cfg.registryTable} by hand (more than one config_path line)`, display);
    }
    after = before.replace(CONFIG_PATH_LINE, (_, lead: string) => `${lead}"${wanted}"`);
  } else {
    const lines = before.split("\n");
    const at = lines.findIndex((l) => l.trim() === cfg.registryTable);
    const line = `  config_path = "${CERTS_D}"`;
    after = at >= 0 ? [...lines.slice(0, at + 1), line, ...lines.slice(at + 1)].join("\n") : `${before.replace(/\n*$/, "\n")}\n${cfg.registryTable}\n${line}\n`;
  }
  // The table may be spelled in a way the edit above cannot see (dotted keys, other quoting).
  let check: ContainerdRegistryConfig | undefined;
  try {
    check = readContainerdConfig(after, display);
  } catch {
    check = undefined;
  }
  if (check?.configPath[0] !== CERTS_D) throw new GenerateError("BAD_INPUT", `add config_path = "${wanted}" to ${cfg.registryTable} by hand (the file's layout cannot be edited safely)`, display);
  return after;
}
