// Where configuration comes from: a YAML file (mirror-kit's own format, or a CNCF distribution
// config.yml as registry:2 mirrors use), environment variables and flags, merged in that order.
import { readFile } from "node:fs/promises";
import { parse as parseYaml, YAMLParseError } from "yaml";
import { ConfigError, type ConfigInput, parseConfig } from "./schema.js";
import { resolveConfig, type MirrorConfig } from "./resolve.js";
import { tlsFromDistribution, tlsFromEnv } from "./tls-keys.js";

export type Env = Readonly<Record<string, string | undefined>>;

export interface LoadOptions {
  /** Config file path (flag); MIRROR_KIT_CONFIG is used when absent. */
  file?: string;
  env?: Env;
  /** Values from command-line flags: the highest precedence. */
  flags?: ConfigInput;
}

export interface LoadedConfig {
  config: MirrorConfig;
  /** Things worth telling the operator: ignored distribution settings and the like. */
  warnings: string[];
}

const DOCKER_HUB_HOSTS = new Set(["registry-1.docker.io", "index.docker.io", "docker.io", "registry.hub.docker.com"]);

export async function loadConfig(options: LoadOptions = {}): Promise<LoadedConfig> {
  const env = options.env ?? {};
  const warnings: string[] = [];
  const layers: ConfigInput[] = [];
  const file = options.file ?? env.MIRROR_KIT_CONFIG;
  if (file) layers.push(await readConfigFile(file, warnings));
  layers.push(fromEnv(env, warnings));
  if (options.flags) layers.push(options.flags);
  const merged = layers.reduce<Record<string, unknown>>((acc, layer) => deepMerge(acc, layer as Record<string, unknown>), {});
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
  return isDistributionConfig(doc as Record<string, unknown>) ? fromDistribution(doc as Record<string, unknown>, file, warnings) : (doc as ConfigInput);
}

/** A distribution config.yml has `version: 0.1` and its own sections (proxy, http, storage). */
function isDistributionConfig(doc: Record<string, unknown>): boolean {
  return "version" in doc && ("proxy" in doc || "http" in doc || "storage" in doc);
}

/** Translate the distribution settings a registry:2 mirror uses; say what is ignored. */
export function fromDistribution(doc: Record<string, unknown>, source: string, warnings: string[]): ConfigInput {
  const out: ConfigInput = {};
  const http = asRecord(doc.http);
  if (typeof http?.addr === "string") out.listen = normaliseAddr(http.addr);
  const tls = tlsFromDistribution(http?.tls, `${source}: http.tls`);
  if (tls) out.tls = tls as ConfigInput["tls"];
  const storage = asRecord(doc.storage);
  const fs = asRecord(storage?.filesystem);
  if (typeof fs?.rootdirectory === "string") out.storage = fs.rootdirectory;
  for (const key of Object.keys(storage ?? {})) {
    if (!["filesystem", "delete", "cache", "maintenance", "redirect"].includes(key)) warnings.push(`${source}: storage.${key} is not supported; mirror-kit stores on the filesystem`);
  }
  const level = asRecord(doc.log)?.level;
  if (typeof level === "string") out.logLevel = level === "warning" ? "warn" : (level as ConfigInput["logLevel"]);
  const proxy = asRecord(doc.proxy);
  if (proxy) Object.assign(out, proxyUpstream(proxy.remoteurl, proxy.username, proxy.password, `${source}: proxy`));
  if (proxy?.ttl !== undefined) warnings.push(`${source}: proxy.ttl is ignored; mirror-kit keeps cached content until removed`);
  for (const key of ["auth", "notifications", "redis", "middleware", "validation", "health", "reporting"]) {
    if (key in doc) warnings.push(`${source}: ${key} is ignored by mirror-kit`);
  }
  return out;
}

/** A single distribution-style remote becomes a named upstream and the default route. */
function proxyUpstream(remote: unknown, username: unknown, password: unknown, where: string): ConfigInput {
  if (remote === undefined) return {};
  if (typeof remote !== "string") throw new ConfigError(`${where}.remoteurl: expected a URL`);
  let host: string;
  try {
    host = new URL(remote).host;
  } catch {
    throw new ConfigError(`${where}.remoteurl: expected an http:// or https:// URL, got ${JSON.stringify(remote)}`);
  }
  const name = DOCKER_HUB_HOSTS.has(host) ? "docker.io" : host;
  const upstream: Record<string, unknown> = { url: remote };
  if (typeof username === "string" && username !== "") upstream.username = username;
  if (typeof password === "string" && password !== "") upstream.password = password;
  return { defaultUpstream: name, upstreams: { [name]: upstream } };
}

/** MIRROR_KIT_* variables, and the REGISTRY_* ones a registry:2 mirror is configured with. */
export function fromEnv(env: Env, warnings: string[]): ConfigInput {
  const out: Record<string, unknown> = {};
  if (env.REGISTRY_HTTP_ADDR) out.listen = normaliseAddr(env.REGISTRY_HTTP_ADDR);
  if (env.REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY) out.storage = env.REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY;
  if (env.REGISTRY_PROXY_REMOTEURL) {
    deepMergeInto(out, proxyUpstream(env.REGISTRY_PROXY_REMOTEURL, env.REGISTRY_PROXY_USERNAME, env.REGISTRY_PROXY_PASSWORD, "REGISTRY_PROXY") as Record<string, unknown>);
  } else if (env.REGISTRY_PROXY_USERNAME || env.REGISTRY_PROXY_PASSWORD) {
    warnings.push("REGISTRY_PROXY_USERNAME/PASSWORD are ignored without REGISTRY_PROXY_REMOTEURL");
  }
  const tls = tlsFromEnv(env);
  if (tls) out.tls = tls;
  if (env.MIRROR_KIT_LISTEN) out.listen = env.MIRROR_KIT_LISTEN;
  if (env.MIRROR_KIT_STORAGE) out.storage = env.MIRROR_KIT_STORAGE;
  if (env.MIRROR_KIT_LOG_LEVEL) out.logLevel = env.MIRROR_KIT_LOG_LEVEL;
  if (env.MIRROR_KIT_DEFAULT_UPSTREAM) out.defaultUpstream = env.MIRROR_KIT_DEFAULT_UPSTREAM;
  if (env.MIRROR_KIT_TAG_FRESHNESS) deepMergeInto(out, { cache: { tagFreshness: env.MIRROR_KIT_TAG_FRESHNESS } });
  if (env.MIRROR_KIT_MAX_SIZE) deepMergeInto(out, { cache: { maxSize: env.MIRROR_KIT_MAX_SIZE } });
  if (env.MIRROR_KIT_UPSTREAMS) {
    const list = env.MIRROR_KIT_UPSTREAMS.split(",").map((s) => s.trim()).filter(Boolean);
    deepMergeInto(out, { upstreams: parseUpstreamFlags(list, "MIRROR_KIT_UPSTREAMS") });
  }
  return out as ConfigInput;
}

/** `--upstream NAME=URL` values. */
export function parseUpstreamFlags(values: readonly string[], source = "--upstream"): Record<string, { url: string }> {
  const out: Record<string, { url: string }> = {};
  for (const value of values) {
    const eq = value.indexOf("=");
    if (eq <= 0 || eq === value.length - 1) throw new ConfigError(`${source}: expected NAME=URL (e.g. ghcr.io=https://ghcr.io), got ${JSON.stringify(value)}`);
    out[value.slice(0, eq)] = { url: value.slice(eq + 1) };
  }
  return out;
}

/** distribution's http.addr may be ":5000". */
function normaliseAddr(addr: string): string {
  return addr.startsWith(":") ? `0.0.0.0${addr}` : addr;
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
