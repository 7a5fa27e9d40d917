// `mirror-kit healthcheck`: exit 0 when the mirror answers GET /healthz with 200, 1 otherwise. It finds
// the mirror the way serve was configured: its own serve flags, else a running serve's record, else env + config file.
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { parseArgs } from "node:util";
import type { Env } from "../config/load.js";
import type { Output } from "../generate/init.js";
import { loadServeConfig, type ServeArgs } from "./serve.js";
import { liveServeRecords, runDir, type ServeRecord } from "./serve-record.js";

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
  const targets = records.length > 0 ? records : [await configuredTarget(args, deps.env)];
  const checks = await Promise.all(targets.map((t) => probe(t, deps.timeoutMs ?? 4_000)));
  const healthy = checks.every((c) => c.ok);
  for (const c of checks) deps.stdout.write(`${c.ok ? "healthy" : "unhealthy"}: ${c.url} ${c.detail}\n`);
  return { healthy, checks };
}

/** Where serve would listen with these flags, this environment and its config file. */
async function configuredTarget(args: ServeArgs, env: Env): Promise<Omit<ServeRecord, "pid">> {
  const { config } = await loadServeConfig(args, env);
  if (config.port === 0) throw new Error("listen port 0 picks a free port at start-up; run healthcheck next to serve (it records the port) or give --listen");
  // A wildcard address is reachable on loopback; the probe never leaves this machine.
  const host = config.host === "" || config.host === "0.0.0.0" ? "127.0.0.1" : config.host === "::" ? "::1" : config.host;
  const tls = config.tls;
  return {
    url: `${tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${config.port}`,
    ...(tls ? { tls: { certFile: tls.certFile, keyFile: tls.keyFile, clientAuth: tls.clientCAFiles.length > 0 } } : {}),
  };
}

async function probe(target: Omit<ServeRecord, "pid">, timeoutMs: number): Promise<{ url: string; ok: boolean; detail: string }> {
  const url = `${target.url}/healthz`;
  if (target.tls?.clientAuth) return { url, ...(await mutualTlsAnswer(new URL(target.url), timeoutMs)) };
  // node:http, not fetch: fetch refuses the WHATWG "bad ports" (6000-6063 and others), and a mirror
  // may well listen on one of them.
  const request = url.startsWith("https:") ? httpsRequest : httpRequest;
  return new Promise((resolve) => {
    // The probe talks to its own listener over loopback: the certificate names what clients use, not 127.0.0.1.
    const req = request(url, { rejectUnauthorized: false, timeout: timeoutMs }, (res) => {
      res.resume();
      resolve({ url, ok: res.statusCode === 200, detail: `(HTTP ${res.statusCode})` });
    });
    req.on("timeout", () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: "ETIMEDOUT" })));
    req.on("error", (err: NodeJS.ErrnoException) => resolve({ url, ok: false, detail: `(${err.code ?? err.name}: ${err.message})` }));
    req.end();
  });
}

/**
 * Mutual TLS: the probe has no client certificate of its own, and the server's TLS 1.3 stack answers
 * an HTTP request without one with the "certificate required" alert. That alert comes from the live
 * listener, which is as far as the probe can get; anything else (refused, timeout, plain HTTP) fails.
 */
async function mutualTlsAnswer(url: URL, timeoutMs: number): Promise<{ ok: boolean; detail: string }> {
  const { connect } = await import("node:tls");
  return new Promise((resolve) => {
    const socket = connect({ host: url.hostname.replace(/^\[|\]$/g, ""), port: Number(url.port), rejectUnauthorized: false, minVersion: "TLSv1.3" });
    const done = (ok: boolean, detail: string) => {
      socket.destroy();
      resolve({ ok, detail });
    };
    socket.setTimeout(timeoutMs, () => done(false, `(no TLS answer within ${timeoutMs} ms)`));
    socket.on("secureConnect", () => socket.write(`GET /healthz HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n\r\n`));
    socket.on("error", (err: NodeJS.ErrnoException) =>
      err.code === "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED"
        ? done(true, "(TLS listener answers; it requires client certificates, so /healthz itself was not asked)")
        : done(false, `(${err.code ?? err.name}: ${err.message})`),
    );
    socket.on("data", (chunk: Buffer) => done(/^HTTP\/1\.1 200 /.test(chunk.toString("latin1")), `(${chunk.toString("latin1").split("\r\n")[0]})`));
    socket.on("end", () => done(false, "(the listener closed the connection)"));
  });
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
  "log-format": { type: "string" },
  "tag-freshness": { type: "string" },
  "max-size": { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "tls-client-ca": { type: "string", multiple: true },
  "tls-min-version": { type: "string" },
} as const;
