// Where configuration comes from: a YAML file (mirror-kit's own format, or a CNCF distribution
// config.yml as registry:2 mirrors use), environment variables and flags, merged in that order.
import { readFileSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { parse as parseYaml, YAMLParseError } from "yaml";
import { parseUpstreamSpec } from "../oci/hosts.js";
import { fromDistribution, fromRegistryEnv } from "./distribution.js";
import { proxyFromEnv, proxyLayer, proxyOverrides } from "./proxy-env.js";
import { ConfigError, type ConfigInput, parseConfig, refusePrototypeKeys } from "./schema.js";
import { resolveConfig, type MirrorConfig } from "./resolve.js";
import { tlsFromDistribution, tlsFromEnv } from "./tls-keys.js";

export type Env = Readonly<Record<string, string | undefined>>;

export interface LoadOptions {
  /** Config file path (flag); MIRROR_KIT_CONFIG is used when absent. */
  file?: string;
  env?: Env;
  /** Values from command-line flags: the highest precedence. */
  flags?: ConfigInput;
  /** How the container image finds registry:2's files (tests replace it). */
  probe?: PathProbe;
}

export interface PathProbe {
  isFile(path: string): boolean;
  isMountPoint(path: string): boolean;
}

/** Where the registry:2 image keeps its config and its data; mirror-kit's image looks there too. */
export const REGISTRY_IMAGE_CONFIG = "/etc/docker/registry/config.yml";
export const REGISTRY_IMAGE_STORAGE = "/var/lib/registry";

const hostProbe: PathProbe = {
  isFile: (path) => {
    try {
      return statSync(path).isFile();
    } catch {
      return false;
    }
  },
  isMountPoint: (path) => {
    try {
      // Field 5 of each mountinfo line is the mount point (spaces escaped as \040).
      return readFileSync("/proc/self/mountinfo", "utf8").split("\n").some((line) => line.split(" ")[4] === path);
    } catch {
      return false;
    }
  },
};

export interface LoadedConfig {
  config: MirrorConfig;
  /** Things worth telling the operator: ignored distribution settings and the like. */
  warnings: string[];
}

export async function loadConfig(options: LoadOptions = {}): Promise<LoadedConfig> {
  const env = options.env ?? {};
  const warnings: string[] = [];
  // The proxy variables are ambient (set for every program on the host): they are the lowest layer,
  // and an upstream.proxy setting that overrides one is named in the warnings.
  const envProxy = proxyFromEnv(env, warnings);
  const layers: ConfigInput[] = [proxyLayer(envProxy) as ConfigInput];
  let file = options.file ?? env.MIRROR_KIT_CONFIG;
  // In the container image (MIRROR_KIT_IMAGE=1) a mounted registry:2 config.yml and data volume are
  // used as registry:2 would use them, so its `docker run -v` line works unchanged.
  if (env.MIRROR_KIT_IMAGE === "1") {
    const probe = options.probe ?? hostProbe;
    if (!file && probe.isFile(REGISTRY_IMAGE_CONFIG)) file = REGISTRY_IMAGE_CONFIG;
    if (probe.isMountPoint(REGISTRY_IMAGE_STORAGE)) layers.push({ storage: REGISTRY_IMAGE_STORAGE });
  }
  if (file) layers.push(await readConfigFile(file, warnings));
  layers.push(fromEnv(env, warnings));
  if (options.flags) {
    refusePrototypeKeys(options.flags, "flags");
    layers.push(options.flags);
  }
  const merged = layers.reduce<Record<string, unknown>>((acc, layer) => deepMerge(acc, layer as Record<string, unknown>), {});
  proxyOverrides(envProxy, merged, warnings);
  return { config: resolveConfig(parseConfig(merged, file ? `configuration (${file} + environment + flags)` : "configuration")), warnings };
}

export async function readConfigFile(file: string, warnings: string[]): Promise<ConfigInput> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? ` at line ${err.linePos[0].line}, column ${err.linePos[0].col}` : "";
    throw new ConfigError(`config file ${file} is not valid YAML${where}: ${(err as Error).message.split("\n")[0]}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) throw new ConfigError(`config file ${file}: expected a mapping at the top level`);
  refusePrototypeKeys(doc, `config file ${file}`);
  return isDistributionConfig(doc as Record<string, unknown>) ? fromDistribution(doc as Record<string, unknown>, file, warnings) : (doc as ConfigInput);
}

/** A distribution config.yml has `version: 0.1` and its own sections (proxy, http, storage). */
function isDistributionConfig(doc: Record<string, unknown>): boolean {
  return "version" in doc && ("proxy" in doc || "http" in doc || "storage" in doc);
}

/** MIRROR_KIT_* variables, and the REGISTRY_* ones a registry:2 mirror is configured with. */
export function fromEnv(env: Env, warnings: string[]): ConfigInput {
  const out: Record<string, unknown> = {};
  deepMergeInto(out, fromRegistryEnv(env, warnings) as Record<string, unknown>);
  const tls = tlsFromEnv(env);
  if (tls) out.tls = tls;
  if (env.MIRROR_KIT_LISTEN) out.listen = env.MIRROR_KIT_LISTEN;
  if (env.MIRROR_KIT_STORAGE) out.storage = env.MIRROR_KIT_STORAGE;
  if (env.MIRROR_KIT_REPLICA) out.replica = env.MIRROR_KIT_REPLICA;
  if (env.MIRROR_KIT_LOG_LEVEL) out.logLevel = env.MIRROR_KIT_LOG_LEVEL;
  if (env.MIRROR_KIT_LOG_FORMAT) out.logFormat = env.MIRROR_KIT_LOG_FORMAT as ConfigInput["logFormat"];
  if (env.MIRROR_KIT_DEFAULT_UPSTREAM) out.defaultUpstream = env.MIRROR_KIT_DEFAULT_UPSTREAM;
  if (env.MIRROR_KIT_PARENT) out.parent = { url: env.MIRROR_KIT_PARENT };
  if (env.MIRROR_KIT_TAG_FRESHNESS) deepMergeInto(out, { cache: { tagFreshness: env.MIRROR_KIT_TAG_FRESHNESS } });
  if (env.MIRROR_KIT_REDIS_ADDR) deepMergeInto(out, { redis: { addr: env.MIRROR_KIT_REDIS_ADDR } });
  if (env.MIRROR_KIT_REDIS_PASSWORD) deepMergeInto(out, { redis: { password: env.MIRROR_KIT_REDIS_PASSWORD } });
  if (env.MIRROR_KIT_MAX_SIZE) deepMergeInto(out, { cache: { maxSize: env.MIRROR_KIT_MAX_SIZE } });
  if (env.MIRROR_KIT_ANONYMOUS_UPSTREAMS) {
    // Upstreams with credentials whose content may be read without logging in (access: anonymous).
    for (const name of env.MIRROR_KIT_ANONYMOUS_UPSTREAMS.split(",").map((s) => s.trim()).filter(Boolean)) {
      deepMergeInto(out, { upstreams: { [name]: { access: "anonymous" } } });
    }
  }
  if (env.MIRROR_KIT_UPSTREAMS) {
    const list = env.MIRROR_KIT_UPSTREAMS.split(",").map((s) => s.trim()).filter(Boolean);
    deepMergeInto(out, { upstreams: parseUpstreamFlags(list, "MIRROR_KIT_UPSTREAMS") });
  }
  return out as ConfigInput;
}

/** `--upstream NAME=URL` values (the one NAME=URL parser, shared with `init`: src/oci/hosts.ts). */
export function parseUpstreamFlags(values: readonly string[], source = "--upstream"): Record<string, { url: string }> {
  const out: Record<string, { url: string }> = {};
  for (const value of values) {
    const spec = parseUpstreamSpec(value);
    if (!spec.ok) throw new ConfigError(`${source}: ${spec.reason}`);
    out[spec.name] = { url: spec.url };
  }
  return out;
}

function asRecord(v: unknown): Record<string, unknown> | undefined {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out = { ...a };
  deepMergeInto(out, b);
  return out;
}

function deepMergeInto(target: Record<string, unknown>, src: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(src)) {
    if (value === undefined) continue;
    const existing = asRecord(target[key]);
    const incoming = asRecord(value);
    target[key] = existing && incoming ? deepMerge(existing, incoming) : value;
  }
}
