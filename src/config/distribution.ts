// The registry:2 drop-in: every setting of distribution's config.yml and every REGISTRY_* variable,
// each decided once in SETTINGS below — honoured, accepted as harmless, or refused naming it.
import { parse as parseYaml } from "yaml";
import type { Env } from "./load.js";
import { redactUserinfo } from "../oci/hosts.js";
import { ConfigError, type ConfigInput } from "./schema.js";
import { tlsFromDistribution } from "./tls-keys.js";

type Out = Record<string, unknown> & ConfigInput;

/** What happens to one distribution setting (and everything below it). */
type Verdict =
  /** Translated into mirror-kit's configuration; `apply` throws ConfigError naming the field on a wrong type. */
  | { kind: "honour"; apply: (value: unknown, out: Out, where: string) => void }
  /** Has no effect on what is served or where data goes; `note`, when present, is told at startup. */
  | { kind: "accept"; note?: string; when?: (value: unknown) => boolean }
  /** Would change security or where data goes, and mirror-kit cannot do it: startup fails naming it. */
  | { kind: "refuse"; why: string };

const accept = (note?: string): Verdict => ({ kind: "accept", ...(note ? { note } : {}) });
const refuse = (why: string): Verdict => ({ kind: "refuse", why });
const honour = (apply: (value: unknown, out: Out, where: string) => void): Verdict => ({ kind: "honour", apply });
/** Accepted only while it does nothing (empty, or every entry disabled); refused otherwise. */
const onlyIfInert = (why: string, inert: (value: unknown) => boolean): Verdict => ({ kind: "accept", when: inert, note: why });

const DOCKER_HUB_HOSTS = new Set(["registry-1.docker.io", "index.docker.io", "docker.io", "registry.hub.docker.com"]);
const LOG_LEVELS: Record<string, ConfigInput["logLevel"]> = { panic: "fatal", fatal: "fatal", error: "error", warn: "warn", warning: "warn", info: "info", debug: "debug" };
const LOG_FORMATS: Record<string, ConfigInput["logFormat"]> = { text: "pretty", json: "json", logstash: "json" };
const STORAGE_DRIVERS = ["s3-aws", "gcs", "azure", "swift", "oss", "inmemory", "cos"];

/**
 * Every registry:2 setting by dotted path. A path not listed is refused as unknown: a typo in a
 * security setting must not pass as "ignored". The deepest listed prefix of a path decides for it.
 */
export const SETTINGS: Readonly<Record<string, Verdict>> = {
  version: honour((v, _out, where) => {
    if (String(v) !== "0.1") throw new ConfigError(`${where}: expected 0.1, got ${JSON.stringify(v)}`);
  }),
  loglevel: honour((v, out, where) => (out.logLevel = logLevel(v, where))),
  "log.level": honour((v, out, where) => (out.logLevel = logLevel(v, where))),
  "log.formatter": honour((v, out, where) => (out.logFormat = logFormat(v, where))),
  "log.fields": accept(),
  "log.reportcaller": accept(),
  "log.accesslog.disabled": accept("log.accesslog.disabled: mirror-kit always logs one JSON line per request (without credentials)"),
  "log.hooks": onlyIfInert("log.hooks would send log events elsewhere (mail); mirror-kit has no log hooks", isEmpty),

  "storage.filesystem.rootdirectory": honour((v, out, where) => {
    if (typeof out.storage === "object") throw new ConfigError(`${where}: storage.filesystem and storage.s3 are both configured; give one storage driver`);
    out.storage = str(v, where);
  }),
  "storage.filesystem.maxthreads": accept(),
  "storage.delete": accept(),
  "storage.cache": accept(),
  "storage.maintenance": accept(),
  "storage.redirect": accept(),
  "storage.tag": accept(),
  ...Object.fromEntries(STORAGE_DRIVERS.map((d) => [`storage.${d}`, refuse(`storage driver ${d} is not supported; mirror-kit caches on the local filesystem (storage.filesystem.rootdirectory) or S3 (storage.s3)`)])),
  // storage.s3: the keys mirror-kit's S3 driver honours (src/store/s3/), and a verdict for every other one.
  "storage.s3.regionendpoint": honour((v, out, where) => (s3Of(out, where).endpoint = str(v, where))),
  "storage.s3.region": honour((v, out, where) => (s3Of(out, where).region = str(v, where))),
  "storage.s3.bucket": honour((v, out, where) => (s3Of(out, where).bucket = str(v, where))),
  "storage.s3.accesskey": honour((v, out, where) => (s3Of(out, where).accessKey = str(v, where))),
  "storage.s3.secretkey": honour((v, out, where) => (s3Of(out, where).secretKey = str(v, where))),
  "storage.s3.forcepathstyle": honour((v, out, where) => (s3Of(out, where).forcePathStyle = bool(v, where))),
  "storage.s3.rootdirectory": honour((v, out, where) => (s3Of(out, where).rootDirectory = str(v, where))),
  "storage.s3.secure": honour((v, out, where) => (s3Of(out, where).secure = bool(v, where))),
  "storage.s3.chunksize": honour((v, out, where) => (s3Of(out, where).chunkSize = bytes(v, where))),
  "storage.s3.v4auth": onlyIfInert("storage.s3.v4auth: false (signature v2) is not supported; mirror-kit signs with v4", (v) => v === true || v === "true"),
  "storage.s3.loglevel": accept(),
  "storage.s3.multipartcopychunksize": accept(),
  "storage.s3.multipartcopymaxconcurrency": accept(),
  "storage.s3.multipartcopythresholdsize": accept(),
  "storage.s3.objectacl": onlyIfInert("storage.s3.objectacl: only private objects are written", (v) => v === "private"),
  "storage.s3.encrypt": onlyIfInert("storage.s3.encrypt: server-side encryption settings are not supported; use the bucket's default encryption", (v) => v === false || v === "false"),
  "storage.s3.keyid": refuse("storage.s3.keyid (a KMS key) is not supported; use the bucket's default encryption"),
  "storage.s3.skipverify": onlyIfInert("storage.s3.skipverify: TLS verification cannot be turned off; trust the endpoint's CA with NODE_EXTRA_CA_CERTS", (v) => v === false || v === "false"),
  "storage.s3.storageclass": onlyIfInert("storage.s3.storageclass: only STANDARD is written", (v) => v === "STANDARD"),
  "storage.s3.usedualstack": onlyIfInert("storage.s3.usedualstack: dual-stack endpoints are not supported; give regionendpoint", (v) => v === false || v === "false"),
  "storage.s3.accelerate": onlyIfInert("storage.s3.accelerate: transfer acceleration is not supported", (v) => v === false || v === "false"),
  "storage.s3.sessiontoken": refuse("storage.s3.sessiontoken is not supported; give accesskey/secretkey, or leave both out for the AWS SDK's credential chain"),

  "auth.htpasswd.realm": honour((v, out, where) => (authOf(out).realm = str(v, where))),
  "auth.htpasswd.path": honour((v, out, where) => (authOf(out).path = str(v, where))),
  "auth.token": refuse("token authentication (auth.token) is not supported; use auth.htpasswd"),
  "auth.silly": refuse("auth.silly accepts any credentials; use auth.htpasswd"),

  "http.addr": honour((v, out, where) => (out.listen = normaliseAddr(str(v, where)))),
  "http.net": honour((v, _out, where) => {
    if (str(v, where) !== "tcp") throw new ConfigError(`${where}: only tcp is supported, got ${JSON.stringify(v)}`);
  }),
  "http.prefix": honour((v, _out, where) => {
    if (!["", "/"].includes(str(v, where))) throw new ConfigError(`${where}: a path prefix is not supported; serve the mirror at / (behind a proxy that strips ${JSON.stringify(v)})`);
  }),
  "http.host": accept(),
  "http.secret": accept(),
  "http.relativeurls": accept(),
  "http.draintimeout": accept("http.draintimeout: mirror-kit finishes in-flight requests for up to 10 s on SIGTERM"),
  "http.headers": honour((v, out, where) => (out.http = { ...(out.http as object), headers: headerMap(v, where) })),
  "http.http2": accept(),
  "http.h2c": accept(),
  "http.debug": accept("http.debug: mirror-kit serves /metrics on its main port, and no debug server"),
  // certificate, key, clientcas, minimumtls; anything else (letsencrypt) refused there by name.
  "http.tls": honour((v, out, where) => {
    const tls = tlsFromDistribution(v, where);
    if (tls) out.tls = tls as ConfigInput["tls"];
  }),

  "proxy.remoteurl": honour((v, out, where) => (proxyOf(out).remoteurl = str(v, where))),
  "proxy.username": honour((v, out, where) => (proxyOf(out).username = str(v, where))),
  "proxy.password": honour((v, out, where) => (proxyOf(out).password = str(v, where))),
  "proxy.ttl": honour((v, out, where) => (out.cache = { ...(out.cache as object), maxAge: goDuration(v, where) })),

  "notifications.endpoints": onlyIfInert("notifications would send events to endpoints; mirror-kit sends none", (v) => Array.isArray(v) && v.every((e) => asRecord(e)?.disabled === true)),
  "notifications.events": accept(),
  // registry:2 uses Redis as a descriptor cache; mirror-kit uses it to coordinate replicas (src/cluster/).
  "redis.addr": honour((v, out, where) => (redisOf(out).addr = str(v, where))),
  "redis.password": honour((v, out, where) => (redisOf(out).password = str(v, where))),
  "redis.db": honour((v, out, where) => (redisOf(out).db = int(v, where))),
  "redis.tls.enabled": honour((v, out, where) => (redisOf(out).tls = bool(v, where))),
  "redis.dialtimeout": honour((v, out, where) => (redisOf(out).timeout = goDuration(v, where))),
  "redis.readtimeout": accept(),
  "redis.writetimeout": accept(),
  "redis.pool": accept(),
  health: accept("health: /healthz reports mirror-kit's own health; registry:2's periodic checks are not run"),
  middleware: onlyIfInert("middleware (CloudFront/redirect/…) would change where blobs are served from; mirror-kit has none", isEmpty),
  reporting: onlyIfInert("reporting would send data to bugsnag/newrelic; mirror-kit sends none", isEmpty),
  validation: accept(),
  compatibility: accept(),
  policy: accept(),
  catalog: accept(),
};

/** Kubernetes injects REGISTRY_PORT, REGISTRY_SERVICE_HOST… for a Service named "registry". */
const SERVICE_LINK = /^REGISTRY_(?:PORT(?:_\d+_(?:TCP|UDP|SCTP)(?:_(?:PROTO|PORT|ADDR))?)?|SERVICE_(?:HOST|PORT(?:_[A-Z0-9_]+)?))$/;

/** Translate a distribution config.yml; refusals throw, notes go to `warnings`. */
export function fromDistribution(doc: Record<string, unknown>, source: string, warnings: string[]): ConfigInput {
  const out: Out = {};
  walk(doc, [], (path, value) => decide(path, value, `${source}: ${path.join(".")}`, out, warnings));
  return finish(out, source);
}

/**
 * REGISTRY_* variables, as distribution maps them: REGISTRY_HTTP_ADDR is http.addr. Each is decided
 * by the same table; one that names no setting is refused.
 */
export function fromRegistryEnv(env: Env, warnings: string[]): ConfigInput {
  const out: Out = {};
  const names = Object.keys(env).filter((k) => k.startsWith("REGISTRY_") && env[k] !== undefined).sort();
  for (const name of names) {
    // REGISTRY_HTTP_TLS_* are decided in tls-keys.ts (tlsFromEnv), called beside this.
    if (SERVICE_LINK.test(name) || name.startsWith("REGISTRY_HTTP_TLS")) continue;
    const raw = env[name] as string;
    // REGISTRY_AUTH=htpasswd and REGISTRY_STORAGE=s3 pick a scheme or driver: decided as that section.
    if (name === "REGISTRY_AUTH" || name === "REGISTRY_STORAGE") {
      const section = name === "REGISTRY_AUTH" ? "auth" : "storage";
      const choice = raw.trim().toLowerCase();
      if (choice === "htpasswd" && section === "auth") authOf(out);
      else if (choice === "s3" && section === "storage") s3Of(out, name);
      else if (choice !== "filesystem" || section !== "storage") decide([section, choice], {}, `${name}=${raw.slice(0, 40)}`, out, warnings);
      continue;
    }
    const path = name.slice("REGISTRY_".length).toLowerCase().split("_");
    // Values are YAML, as distribution reads them; scalars stay strings so ":5000" and "5000" both are addresses.
    let value: unknown = raw;
    if (/^[[{]/.test(raw.trim())) {
      try {
        value = parseYaml(raw);
      } catch {
        throw new ConfigError(`${name}: not valid YAML`);
      }
    }
    decide(path, value, name, out, warnings);
  }
  return finish(out, "REGISTRY_* environment");
}

function decide(path: string[], value: unknown, where: string, out: Out, warnings: string[]): void {
  const verdict = lookup(path);
  if (!verdict) throw new ConfigError(`${where}: not a registry:2 setting mirror-kit knows; refusing to start rather than ignore it`);
  if (verdict.kind === "refuse") throw new ConfigError(`${where}: ${verdict.why}; refusing to start`);
  if (verdict.kind === "honour") return verdict.apply(value, out, where);
  if (verdict.when && !verdict.when(value)) throw new ConfigError(`${where}: ${verdict.note}; refusing to start`);
  if (verdict.note && !verdict.when) warnings.push(`${where.split(":")[0]}: ${verdict.note}`);
}

/** The deepest table entry that is a prefix of `path`. */
function lookup(path: string[]): Verdict | undefined {
  for (let n = path.length; n > 0; n--) {
    const v = SETTINGS[path.slice(0, n).join(".")];
    if (v) return v;
  }
  return undefined;
}

/** Calls `visit` for every leaf, and for every mapping the table decides as a whole. */
function walk(value: unknown, path: string[], visit: (path: string[], value: unknown) => void): void {
  // null is "not set" in YAML, as distribution reads it.
  if (value === null || value === undefined) return;
  const rec = asRecord(value);
  if (path.length > 0 && (SETTINGS[path.join(".")] || !rec)) return visit(path, value);
  if (!rec) return;
  const entries = Object.entries(rec);
  // An empty mapping is decided too, unless it is a section the table knows (proxy: {}).
  if (entries.length === 0 && path.length > 0 && !isSection(path)) return visit(path, value);
  for (const [k, v] of entries) walk(v, [...path, k], visit);
}

function isSection(path: string[]): boolean {
  const prefix = `${path.join(".")}.`;
  return Object.keys(SETTINGS).some((k) => k.startsWith(prefix));
}

function finish(out: Out, source: string): ConfigInput {
  const proxy = out.proxy as { remoteurl?: string; username?: string; password?: string } | undefined;
  delete out.proxy;
  if (proxy) {
    if (proxy.remoteurl === undefined) {
      if (proxy.username !== undefined || proxy.password !== undefined) throw new ConfigError(`${source}: proxy.username/password need proxy.remoteurl`);
    } else {
      Object.assign(out, proxyUpstream(proxy.remoteurl, proxy.username, proxy.password, `${source}: proxy.remoteurl`));
    }
  }
  const storage = out.storage as Record<string, unknown> | string | undefined;
  if (typeof storage === "object" && storage.bucket === undefined) throw new ConfigError(`${source}: storage.s3.bucket is required (REGISTRY_STORAGE_S3_BUCKET)`);
  const auth = out.auth as { htpasswd?: { realm?: string; path?: string } } | undefined;
  if (auth) {
    const h = auth.htpasswd ?? {};
    if (!h.realm || !h.path) throw new ConfigError(`${source}: auth.htpasswd needs both realm and path (REGISTRY_AUTH_HTPASSWD_REALM, REGISTRY_AUTH_HTPASSWD_PATH)`);
  }
  return out;
}

/** A single distribution-style remote becomes a named upstream and the default route. */
function proxyUpstream(remote: string, username: string | undefined, password: string | undefined, where: string): ConfigInput {
  let url: URL;
  try {
    url = new URL(remote);
  } catch {
    // Never echo a password: a remote URL that does not parse may still carry one.
    throw new ConfigError(`${where}: expected an http:// or https:// URL, got ${JSON.stringify(redactUserinfo(remote).slice(0, 200))}`);
  }
  if (url.username || url.password) throw new ConfigError(`${where}: must not carry credentials; set the proxy username and password (REGISTRY_PROXY_USERNAME, REGISTRY_PROXY_PASSWORD)`);
  const host = url.host;
  // Docker Hub's remote is the docker.io upstream, so ?ns=docker.io and plain names both reach it.
  const name = DOCKER_HUB_HOSTS.has(host) ? "docker.io" : host;
  const upstream: Record<string, unknown> = { url: remote };
  if (username) upstream.username = username;
  if (password) upstream.password = password;
  return { defaultUpstream: name, upstreams: { [name]: upstream } };
}

function authOf(out: Out): { realm?: string; path?: string } {
  const auth = (out.auth ??= {}) as { htpasswd?: { realm?: string; path?: string } };
  return (auth.htpasswd ??= {});
}

/** The S3 storage object being built; refused beside a filesystem root (distribution takes one driver). */
function s3Of(out: Out, where: string): Record<string, unknown> {
  if (typeof out.storage === "string") throw new ConfigError(`${where}: storage.filesystem and storage.s3 are both configured; give one storage driver`);
  return (out.storage ??= { driver: "s3" }) as Record<string, unknown>;
}

function bool(v: unknown, where: string): boolean {
  if (v === true || v === "true") return true;
  if (v === false || v === "false") return false;
  throw new ConfigError(`${where}: expected true or false, got ${JSON.stringify(v)}`);
}

/** A byte count, as distribution's chunksize: a number, or digits. */
function bytes(v: unknown, where: string): number {
  const n = typeof v === "number" ? v : typeof v === "string" && /^\d+$/.test(v.trim()) ? Number(v) : Number.NaN;
  if (!Number.isSafeInteger(n) || n <= 0) throw new ConfigError(`${where}: expected a number of bytes, got ${JSON.stringify(v)}`);
  return n;
}

function redisOf(out: Out): Record<string, unknown> {
  return (out.redis ??= {}) as Record<string, unknown>;
}

/** A whole number; from REGISTRY_* variables it arrives as a string. */
function int(v: unknown, where: string): number {
  const n = typeof v === "string" && /^\d{1,9}$/.test(v.trim()) ? Number(v.trim()) : v;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) throw new ConfigError(`${where}: expected a whole number, got ${JSON.stringify(v)}`);
  return n;
}

function proxyOf(out: Out): Record<string, string> {
  return (out.proxy ??= {}) as Record<string, string>;
}

function logLevel(v: unknown, where: string): ConfigInput["logLevel"] {
  const level = LOG_LEVELS[str(v, where).toLowerCase()];
  if (!level) throw new ConfigError(`${where}: expected one of ${Object.keys(LOG_LEVELS).join(", ")}, got ${JSON.stringify(v)}`);
  return level;
}

/** distribution's text formatter is for people, json and logstash are JSON lines. */
function logFormat(v: unknown, where: string): ConfigInput["logFormat"] {
  const format = LOG_FORMATS[str(v, where).toLowerCase()];
  if (!format) throw new ConfigError(`${where}: expected one of ${Object.keys(LOG_FORMATS).join(", ")}, got ${JSON.stringify(v)}`);
  return format;
}

function headerMap(v: unknown, where: string): Record<string, string[]> {
  const rec = asRecord(v);
  if (!rec) throw new ConfigError(`${where}: expected a mapping of header name to a list of values`);
  const out: Record<string, string[]> = {};
  for (const [name, values] of Object.entries(rec)) {
    const list = Array.isArray(values) ? values : [values];
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) || !list.every((x) => typeof x === "string" && !/[\r\n]/.test(x))) {
      throw new ConfigError(`${where}.${name}: expected a header name and a list of string values`);
    }
    out[name] = list as string[];
  }
  return out;
}

/** A Go duration ("168h", "1h30m", "90s", "0") as distribution writes proxy.ttl, to mirror-kit's "Nms". */
function goDuration(v: unknown, where: string): string {
  const text = v === 0 ? "0" : str(v, where).trim();
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
  if (text === "0") return "0ms";
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join("") !== text) throw new ConfigError(`${where}: expected a duration such as 168h or 30m, got ${JSON.stringify(v)}`);
  const total = parts.reduce((sum, p) => sum + Number(p[1]) * (unit[p[2] as string] as number), 0);
  return `${Math.round(total)}ms`;
}

function str(v: unknown, where: string): string {
  if (typeof v !== "string") throw new ConfigError(`${where}: expected a string, got ${v === null ? "null" : typeof v} ${JSON.stringify(v)}`);
  return v;
}

/** distribution's http.addr may be ":5000". */
export function normaliseAddr(addr: string): string {
  return addr.startsWith(":") ? `0.0.0.0${addr}` : addr;
}

function isEmpty(v: unknown): boolean {
  return v === null || v === undefined || (Array.isArray(v) && v.length === 0) || (asRecord(v) !== undefined && Object.keys(asRecord(v) as object).length === 0);
}

function asRecord(v: unknown): Record<string, unknown> | undefined {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}
