// From a validated config to what the server runs with: built-ins merged with user upstreams,
// aliases indexed, listen address split. Every cross-field rule is checked here.
import { hostname } from "node:os";
import { BUILTIN_UPSTREAMS } from "./builtin.js";
import { parseRegistryHost, redactUserinfo } from "../oci/hosts.js";
import { ConfigError, type ParsedConfig } from "./schema.js";

export interface UpstreamConfig {
  /** The registry name clients use: docker.io, ghcr.io, ... */
  readonly name: string;
  readonly url: URL;
  readonly username?: string;
  readonly password?: string;
  /** Origins allowed to receive credentials in the token flow. */
  readonly trustedRealmOrigins: readonly string[];
  readonly aliases: readonly string[];
  readonly officialImages: boolean;
  readonly tagFreshnessMs: number;
  /** Whether clients without credentials may read it (see upstreams.*.access). */
  readonly access: "authenticated" | "anonymous";
  /** Total deadline of one exchange with this upstream (upstream.deadline). */
  readonly deadlineMs: number;
  /** PEM file of CAs added to the trusted roots for this upstream (upstreams.*.ca). */
  readonly caFile?: string;
}

/** Where upstream requests go: a forward proxy per scheme, and the hosts reached directly. */
export interface UpstreamProxy {
  /** Proxy URL (credentials included: never log it unredacted) for http:// upstreams; absent: direct. */
  readonly http?: string;
  /** For https:// upstreams (CONNECT); absent: direct. */
  readonly https?: string;
  /** NO_PROXY entries: names, host:port, addresses, CIDR ranges, "*". */
  readonly noProxy: readonly string[];
}

/** rateLimit: backing off on a low announced budget, and honouring Retry-After. */
export interface RateLimitConfig {
  readonly reserve: { readonly value: number; readonly unit: "percent" | "pulls" };
  readonly backoffFreshnessMs: number;
  readonly defaultRetryAfterMs: number;
  readonly maxRetryAfterMs: number;
}

export interface AuthConfig {
  readonly htpasswd?: { readonly realm: string; readonly path: string };
  readonly anonymousPaths: readonly string[];
  readonly anonymousPull: boolean;
}

export interface TagRule {
  readonly match: string;
  readonly freshnessMs?: number;
  readonly immutable?: boolean;
  readonly pin?: boolean;
}

/** TLS on the listener: file paths (re-read on reload) and the handshake policy. */
export interface TlsConfig {
  readonly certFile: string;
  readonly keyFile: string;
  /** Non-empty: mutual TLS, a client certificate signed by one of these CAs is required. */
  readonly clientCAFiles: readonly string[];
  readonly minVersion: "TLSv1" | "TLSv1.1" | "TLSv1.2" | "TLSv1.3";
}

/** S3-compatible object storage: every field as validated (config/schema.ts documents them). */
export interface S3Spec {
  readonly driver: "s3";
  readonly bucket: string;
  readonly region: string;
  readonly endpoint?: string;
  readonly accessKey?: string;
  readonly secretKey?: string;
  readonly forcePathStyle: boolean;
  /** Without leading or trailing slashes. */
  readonly rootDirectory: string;
  readonly secure: boolean;
  readonly chunkSize: number;
  readonly createBucket: boolean;
  readonly spool: string;
}

/** The cache's storage backend and its settings (src/store/open.ts opens it). */
export type StoreSpec = { readonly driver: "filesystem"; readonly root: string } | S3Spec;

/** The parent mirror of a chain (see config `parent`). */
export interface ParentConfig {
  readonly url: URL;
  readonly username?: string;
  readonly password?: string;
  readonly fallback: boolean;
}

/** Redis shared by the replicas of one store (config `redis`). */
export interface RedisConfig {
  readonly host: string;
  readonly port: number;
  readonly password?: string;
  readonly db: number;
  readonly tls: boolean;
  readonly keyPrefix: string;
  readonly leaseMs: number;
  readonly timeoutMs: number;
}

export interface MirrorConfig {
  readonly host: string;
  readonly port: number;
  /** Absent: plain HTTP. */
  readonly tls?: TlsConfig;
  /** The local folder: the cache itself with the filesystem driver; stats and status live here. */
  readonly storage: string;
  readonly store: StoreSpec;
  /** This process among replicas sharing the store (config `replica`); default the host name. */
  readonly replica: string;
  readonly logLevel: ParsedConfig["logLevel"];
  readonly logFormat: ParsedConfig["logFormat"];
  readonly defaultUpstream: UpstreamConfig;
  readonly upstreams: ReadonlyMap<string, UpstreamConfig>;
  /** Absent: every upstream is fetched directly. */
  readonly parent?: ParentConfig;
  readonly manifestMaxBytes: number;
  /** cache.rules, in order. */
  readonly tagRules: readonly TagRule[];
  /** cache.immutableTags: "semver". */
  readonly semverTagsImmutable: boolean;
  /** Served as a manifest Content-Type besides the built-in manifest types. */
  readonly manifestMediaTypes: ReadonlySet<string>;
  /** 0 = no cap. */
  readonly cacheMaxBytes: number;
  readonly evictionGraceMs: number;
  readonly connectTimeoutMs: number;
  readonly responseTimeoutMs: number;
  readonly maxResumes: number;
  /** upstream.minThroughput over upstream.throughputWindow: a slower blob body counts as failed. */
  readonly throughputFloor: { readonly bytesPerSecond: number; readonly windowMs: number };
  /** A blob download with no known length is cut off past this (upstream.maxBlobSize). */
  readonly maxBlobBytes: number;
  readonly breakerCooldownMs: number;
  readonly proxy: UpstreamProxy;
  readonly orphanFillTimeoutMs: number;
  readonly auth: AuthConfig;
  /** Added to every response (http.headers). */
  /** 0 = no limit (cache.maxAge). */
  readonly cacheMaxAgeMs: number;
  readonly responseHeaders: Readonly<Record<string, readonly string[]>>;
  /** Absent: no Redis, this replica coordinates only with itself. */
  readonly redis?: RedisConfig;
  readonly rateLimit: RateLimitConfig;
}

export function resolveConfig(cfg: ParsedConfig): MirrorConfig {
  const { host, port } = parseListen(cfg.listen);
  const byName = new Map<string, UpstreamConfig>();
  const names = new Set<string>([...(cfg.builtinUpstreams ? Object.keys(BUILTIN_UPSTREAMS) : []), ...Object.keys(cfg.upstreams)]);
  for (const name of names) {
    // What is known about a public registry (its aliases, Docker Hub naming) holds whether or not
    // the built-in set is enabled; builtinUpstreams only decides which upstreams exist by default.
    if (parseRegistryHost(name) !== name || name === "localhost") {
      throw new ConfigError(`invalid configuration:\n  upstreams.${JSON.stringify(name.slice(0, 100))}: an upstream is named by its registry host in lower case (e.g. ghcr.io or registry.local:5000)`);
    }
    const builtin = Object.hasOwn(BUILTIN_UPSTREAMS, name) ? BUILTIN_UPSTREAMS[name] : undefined;
    const user = cfg.upstreams[name] ?? {};
    if (user.enabled === false) continue;
    const url = user.url ?? builtin?.url;
    if (!url) throw new ConfigError(`invalid configuration:\n  upstreams.${name}.url: required (no built-in upstream has that name)`);
    if ((user.username === undefined) !== (user.password === undefined)) {
      throw new ConfigError(`invalid configuration:\n  upstreams.${name}: username and password go together`);
    }
    const parsedUrl = new URL(url.endsWith("/") ? url : `${url}/`);
    // The built-in realm is trusted only for the built-in URL: a private registry configured under
    // the name docker.io must not hand its credentials to auth.docker.io.
    const builtinRealms = builtin && parsedUrl.href === new URL(`${builtin.url}/`).href ? builtin.tokenRealms : [];
    const realms = [...builtinRealms, ...(user.tokenRealms ?? [])].map((r, i) => {
      try {
        return new URL(r).origin;
      } catch {
        throw new ConfigError(`invalid configuration:\n  upstreams.${name}.tokenRealms.${i}: expected a URL, got ${JSON.stringify(redactUserinfo(r).slice(0, 200))}`);
      }
    });
    byName.set(name, {
      name,
      url: parsedUrl,
      ...(user.username !== undefined ? { username: user.username, password: user.password } : {}),
      trustedRealmOrigins: [parsedUrl.origin, ...realms],
      aliases: [...new Set([...(builtin?.aliases ?? []), ...(user.aliases ?? []).map((a, i) => alias(name, a, i))])],
      officialImages: user.officialImages ?? builtin?.officialImages ?? false,
      tagFreshnessMs: user.tagFreshness ?? cfg.cache.tagFreshness,
      access: user.access ?? (user.username !== undefined ? "authenticated" : "anonymous"),
      deadlineMs: cfg.upstream.deadline,
      ...(user.ca !== undefined ? { caFile: user.ca } : {}),
    });
  }
  if (!cfg.auth.htpasswd) {
    const exposed = [...byName.values()].filter((u) => u.username !== undefined && u.access === "authenticated");
    if (exposed.length > 0) {
      const names = exposed.map((u) => u.name).join(", ");
      const first = exposed[0]?.name as string;
      throw new ConfigError(
        `invalid configuration:\n  upstreams.${first}.access: ${names} ${exposed.length > 1 ? "have" : "has"} credentials, so ${exposed.length > 1 ? "their" : "its"} content may be private ` +
          `and is served to authenticated clients only (access: authenticated, the default with credentials) — but no client authentication is configured, ` +
          `so anyone who reaches the mirror could read it. Either turn on auth.htpasswd (registry:2: auth.htpasswd or REGISTRY_AUTH_HTPASSWD_REALM/PATH), ` +
          `or, if that content may be public, set upstreams.${first}.access: anonymous (environment: MIRROR_KIT_ANONYMOUS_UPSTREAMS=${names.replace(/, /g, ",")}).`,
      );
    }
  }
  const upstreams = new Map<string, UpstreamConfig>();
  for (const up of byName.values()) {
    for (const key of [up.name, ...up.aliases]) {
      const other = upstreams.get(key);
      if (other && other !== up) {
        throw new ConfigError(`invalid configuration:\n  upstreams.${up.name}.aliases: ${key} already names upstream ${other.name}`);
      }
      upstreams.set(key, up);
    }
  }
  const defaultUpstream = upstreams.get(cfg.defaultUpstream);
  if (!defaultUpstream) {
    throw new ConfigError(`invalid configuration:\n  defaultUpstream: ${JSON.stringify(cfg.defaultUpstream)} is not a configured upstream (have: ${[...byName.keys()].join(", ") || "none"})`);
  }
  return {
    host,
    port,
    ...resolveTls(cfg.tls),
    ...resolveStorage(cfg),
    ...resolveRedis(cfg.redis),
    logLevel: cfg.logLevel,
    logFormat: cfg.logFormat,
    defaultUpstream,
    upstreams,
    ...(cfg.parent
      ? {
          parent: {
            url: new URL(cfg.parent.url.endsWith("/") ? cfg.parent.url : `${cfg.parent.url}/`),
            ...(cfg.parent.username !== undefined ? { username: cfg.parent.username, password: cfg.parent.password } : {}),
            fallback: cfg.parent.fallback,
          },
        }
      : {}),
    manifestMaxBytes: cfg.cache.manifestMaxBytes,
    tagRules: cfg.cache.rules.map((r) => ({ match: r.match, ...(r.freshness !== undefined ? { freshnessMs: r.freshness } : {}), ...(r.immutable ? { immutable: true } : {}), ...(r.pin ? { pin: true } : {}) })),
    semverTagsImmutable: cfg.cache.immutableTags === "semver",
    manifestMediaTypes: new Set(cfg.cache.manifestMediaTypes),
    cacheMaxBytes: cfg.cache.maxSize,
    evictionGraceMs: cfg.cache.evictionGrace,
    connectTimeoutMs: cfg.upstream.connectTimeout,
    responseTimeoutMs: cfg.upstream.responseTimeout,
    maxResumes: cfg.upstream.maxResumes,
    throughputFloor: { bytesPerSecond: cfg.upstream.minThroughput, windowMs: cfg.upstream.throughputWindow },
    maxBlobBytes: cfg.upstream.maxBlobSize,
    breakerCooldownMs: cfg.upstream.breakerCooldown,
    proxy: resolveProxy(cfg.upstream.proxy),
    orphanFillTimeoutMs: cfg.fill.orphanTimeout,
    cacheMaxAgeMs: cfg.cache.maxAge,
    responseHeaders: cfg.http.headers,
    rateLimit: { reserve: cfg.rateLimit.reserve, backoffFreshnessMs: cfg.rateLimit.backoffFreshness, defaultRetryAfterMs: cfg.rateLimit.defaultRetryAfter, maxRetryAfterMs: cfg.rateLimit.maxRetryAfter },
    auth: { ...(cfg.auth.htpasswd ? { htpasswd: cfg.auth.htpasswd } : {}), anonymousPaths: cfg.auth.anonymousPaths, anonymousPull: cfg.auth.anonymousPull },
  };
}

function resolveStorage(cfg: ParsedConfig): { storage: string; store: StoreSpec; replica: string } {
  const replica = cfg.replica ?? hostname();
  if (typeof cfg.storage === "string") return { storage: cfg.storage, store: { driver: "filesystem", root: cfg.storage }, replica };
  if (cfg.storage.driver === "filesystem") return { storage: cfg.storage.root, store: cfg.storage, replica };
  const { accessKey, secretKey, endpoint, ...rest } = cfg.storage;
  const store: S3Spec = { ...rest, rootDirectory: rest.rootDirectory.replace(/^\/+|\/+$/g, ""), ...(endpoint ? { endpoint } : {}), ...(accessKey !== undefined ? { accessKey, secretKey } : {}) };
  return { storage: store.spool, store, replica };
}

/** https falls back to the http proxy when only that one is set, as undici's EnvHttpProxyAgent does. */
function resolveProxy(proxy: ParsedConfig["upstream"]["proxy"]): UpstreamProxy {
  const https = proxy.https ?? proxy.http;
  return { ...(proxy.http ? { http: proxy.http } : {}), ...(https ? { https } : {}), noProxy: proxy.noProxy ?? [] };
}

const TLS_VERSIONS = { "tls1.0": "TLSv1", "tls1.1": "TLSv1.1", "tls1.2": "TLSv1.2", "tls1.3": "TLSv1.3" } as const;

function resolveTls(tls: ParsedConfig["tls"]): { tls?: TlsConfig } {
  if (tls.certificate === undefined && tls.key === undefined) {
    // Client CAs without a listener certificate would be a protection silently not applied.
    if (tls.clientCAs.length > 0) throw new ConfigError("invalid configuration:\n  tls.clientCAs: mutual TLS needs tls.certificate and tls.key");
    return {};
  }
  if (tls.certificate === undefined || tls.key === undefined) {
    throw new ConfigError(`invalid configuration:\n  tls.${tls.certificate === undefined ? "certificate" : "key"}: required with tls.${tls.certificate === undefined ? "key" : "certificate"}`);
  }
  return { tls: { certFile: tls.certificate, keyFile: tls.key, clientCAFiles: tls.clientCAs, minVersion: TLS_VERSIONS[tls.minimumVersion] } };
}

function resolveRedis(r: ParsedConfig["redis"]): { redis?: RedisConfig } {
  if (r.addr === undefined) {
    // A password or database without a server would be a setting silently not applied.
    if (r.password !== undefined) throw new ConfigError("invalid configuration:\n  redis.password: needs redis.addr");
    return {};
  }
  const { host, port } = (() => {
    try {
      return parseListen(r.addr as string);
    } catch {
      throw new ConfigError(`invalid configuration:\n  redis.addr: expected HOST:PORT with a port up to 65535, got ${JSON.stringify(r.addr)}`);
    }
  })();
  if (port === 0) throw new ConfigError(`invalid configuration:\n  redis.addr: port 0 is not a Redis port, got ${JSON.stringify(r.addr)}`);
  return { redis: { host, port, ...(r.password !== undefined ? { password: r.password } : {}), db: r.db, tls: r.tls, keyPrefix: r.keyPrefix, leaseMs: r.lease, timeoutMs: r.timeout } };
}

/** An alias is a registry host too; matched case-insensitively, as ?ns= and path prefixes are. */
function alias(upstream: string, raw: string, i: number): string {
  const host = parseRegistryHost(raw);
  if (host === undefined) {
    throw new ConfigError(`invalid configuration:\n  upstreams.${upstream}.aliases.${i}: expected a registry host such as ghcr.io, got ${JSON.stringify(raw.slice(0, 100))}`);
  }
  return host;
}

/** "0.0.0.0:5000", ":5000" (all interfaces, as distribution's http.addr), "[::1]:5000". */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port > 65535) {
    throw new ConfigError(`invalid configuration:\n  listen: expected HOST:PORT such as 0.0.0.0:5000, got ${JSON.stringify(listen)}`);
  }
  return { host: m[1] ?? (m[2] || "0.0.0.0"), port };
}
