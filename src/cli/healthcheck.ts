// `mirror-kit healthcheck`: exit 0 when the mirror answers GET /healthz with 200, 1 otherwise. It finds
// the mirror the way serve was configured: its own serve flags, else a running serve's record, else env + config file.
import { parseArgs } from "node:util";
import type { Env } from "../config/load.js";
import type { Output } from "../generate/init.js";
import { loadServeConfig, type ServeArgs } from "./serve.js";
import { liveServeRecords, runDir } from "./serve-record.js";

export interface HealthcheckDeps {
  env: Env;
  stdout: Output;
  /** Folder serve records its URL in (default: runDir()). */
  runDir?: string;
  timeoutMs?: number;
}

export interface HealthResult {
  healthy: boolean;
  /** Every URL asked, with its outcome. */
  checks: { url: string; ok: boolean; detail: string }[];
}

const WHERE_FLAGS = ["listen", "config"] as const;

export async function runHealthcheck(args: ServeArgs, deps: HealthcheckDeps): Promise<HealthResult> {
  const explicit = WHERE_FLAGS.some((f) => args[f] !== undefined);
  const records = explicit ? [] : await liveServeRecords(deps.runDir ?? runDir(deps.env as NodeJS.ProcessEnv));
  const urls = records.length > 0 ? records.map((r) => r.url) : [await configuredUrl(args, deps.env)];
  const checks = await Promise.all(urls.map((url) => probe(`${url}/healthz`, deps.timeoutMs ?? 4_000)));
  const healthy = checks.every((c) => c.ok);
  for (const c of checks) deps.stdout.write(`${c.ok ? "healthy" : "unhealthy"}: ${c.url} ${c.detail}\n`);
  return { healthy, checks };
}

/** The URL serve would listen on with these flags, this environment and its config file. */
async function configuredUrl(args: ServeArgs, env: Env): Promise<string> {
  const { config } = await loadServeConfig(args, env);
  if (config.port === 0) throw new Error("listen port 0 picks a free port at start-up; run healthcheck next to serve (it records the port) or give --listen");
  // A wildcard address is reachable on loopback; the probe never leaves this machine.
  const host = config.host === "" || config.host === "0.0.0.0" ? "127.0.0.1" : config.host === "::" ? "::1" : config.host;
  return `http://${host.includes(":") ? `[${host}]` : host}:${config.port}`;
}

async function probe(url: string, timeoutMs: number): Promise<{ url: string; ok: boolean; detail: string }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel();
    return { url, ok: res.status === 200, detail: `(HTTP ${res.status})` };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    return { url, ok: false, detail: `(${e.cause?.code ?? e.name ?? "error"}: ${e.cause && "message" in e.cause ? String((e.cause as Error).message) : e.message})` };
  }
}

/**
 * The fast path (healthcheck-main.ts) for `mirror-kit healthcheck`: node:util's parser instead of the whole
 * yargs command tree (which imports every command), so it answers within Docker's 5 s on a busy host.
 */
export async function healthcheckMain(argv: string[]): Promise<number> {
  let values: Record<string, string | string[] | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, strict: true, allowPositionals: false, options: SERVE_FLAGS }));
  } catch (err) {
    process.stderr.write(`mirror-kit healthcheck: ${(err as Error).message}\n`);
    return 2;
  }
  try {
    const result = await runHealthcheck(values as ServeArgs, { env: process.env, stdout: process.stdout });
    return result.healthy ? 0 : 1;
  } catch (err) {
    process.stderr.write(`mirror-kit healthcheck: ${(err as Error).message}\n`);
    return 1;
  }
}

/** serve's flags (ServeArgs), as node:util spells them. */
const SERVE_FLAGS = {
  listen: { type: "string" },
  storage: { type: "string" },
  upstream: { type: "string", multiple: true },
  config: { type: "string" },
  "log-level": { type: "string" },
  "tag-freshness": { type: "string" },
  "max-size": { type: "string" },
} as const;
