// The forward-proxy environment: HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY, lower case first
// (as undici's EnvHttpProxyAgent and curl read them), as config input below upstream.proxy.
import { redactUserinfo } from "../oci/hosts.js";
import { ConfigError, noProxyEntryProblem, proxyUrlProblem } from "./schema.js";

type Env = Readonly<Record<string, string | undefined>>;

/** What the environment says, and which variable said it (for messages naming the override). */
export interface EnvProxy {
  http?: { value: string; from: string };
  https?: { value: string; from: string };
  noProxy?: { value: string[]; from: string };
}

/**
 * Read the proxy variables. A lower-case variable wins over its upper-case twin, even when empty
 * (undici's rule; an empty value means "no proxy" from that variable). ALL_PROXY (curl's) is the
 * fallback for both schemes. A malformed value refuses to start, naming the variable.
 */
export function proxyFromEnv(env: Env, warnings: string[]): EnvProxy {
  const http = pick(env, "http_proxy", "HTTP_PROXY", warnings);
  const https = pick(env, "https_proxy", "HTTPS_PROXY", warnings);
  const all = pick(env, "all_proxy", "ALL_PROXY", warnings);
  const no = pick(env, "no_proxy", "NO_PROXY", warnings);
  const out: EnvProxy = {};
  const httpChosen = http ?? all;
  const httpsChosen = https ?? all;
  if (httpChosen?.value) out.http = checked(httpChosen);
  if (httpsChosen?.value) out.https = checked(httpsChosen);
  if (no) {
    const entries = splitNoProxy(no.value);
    for (const entry of entries) {
      const problem = noProxyEntryProblem(entry);
      if (problem) throw new ConfigError(`invalid environment:\n  ${no.from}: ${problem}`);
    }
    out.noProxy = { value: entries, from: no.from };
  }
  return out;
}

/** NO_PROXY's list: comma- or space-separated, as undici and curl split it. */
export function splitNoProxy(value: string): string[] {
  return value
    .split(/[,\s]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** The environment layer of the configuration (the lowest: a config file or flag wins over it). */
export function proxyLayer(envProxy: EnvProxy): Record<string, unknown> {
  const proxy: Record<string, unknown> = {};
  if (envProxy.http) proxy.http = envProxy.http.value;
  if (envProxy.https) proxy.https = envProxy.https.value;
  if (envProxy.noProxy) proxy.noProxy = envProxy.noProxy.value;
  return Object.keys(proxy).length > 0 ? { upstream: { proxy } } : {};
}

/** Name every environment variable that upstream.proxy overrode, so neither is dropped without a word. */
export function proxyOverrides(envProxy: EnvProxy, merged: Record<string, unknown>, warnings: string[]): void {
  const upstream = merged.upstream as { proxy?: Record<string, unknown> } | undefined;
  const chosen = upstream?.proxy ?? {};
  for (const key of ["http", "https"] as const) {
    const fromEnv = envProxy[key];
    const value = chosen[key];
    if (fromEnv && typeof value === "string" && value !== fromEnv.value) {
      warnings.push(`upstream.proxy.${key} (${redactUserinfo(value)}) is used instead of ${fromEnv.from} (${redactUserinfo(fromEnv.value)})`);
    }
  }
  const no = envProxy.noProxy;
  if (no && Array.isArray(chosen.noProxy) && chosen.noProxy.join(",") !== no.value.join(",")) {
    warnings.push(`upstream.proxy.noProxy (${chosen.noProxy.join(",")}) is used instead of ${no.from} (${no.value.join(",")})`);
  }
}

function pick(env: Env, lower: string, upper: string, warnings: string[]): { value: string; from: string } | undefined {
  const l = env[lower];
  const u = env[upper];
  if (l !== undefined && u !== undefined && l !== u) {
    warnings.push(`${lower} and ${upper} differ; ${lower} is used (${redactUserinfo(l) || "empty"}), ${upper} is not (${redactUserinfo(u) || "empty"})`);
  }
  if (l !== undefined) return { value: l.trim(), from: lower };
  if (u !== undefined) return { value: u.trim(), from: upper };
  return undefined;
}

function checked(found: { value: string; from: string }): { value: string; from: string } {
  const problem = proxyUrlProblem(found.value);
  if (problem) throw new ConfigError(`invalid environment:\n  ${found.from}: ${problem}`);
  return found;
}
