// The mirror-kit configuration: its schema, every default, and validation that names the bad field.
// Durations are strings ("30s", "5m", "7d"); "0s" means "never" where a field says so.
import { isIP } from "node:net";
import ms from "ms";
import { z } from "zod";
import { MirrorKitError } from "../errors.js";
import { PROTOTYPE_KEYS, redactUserinfo } from "../oci/hosts.js";
import { parseSize } from "./sizes.js";

/**
 * A duration string ("30s", "5m", "7d") in milliseconds, or undefined when it is not one. A bare
 * number is refused: "30" could be seconds or days. The one parser of durations (CLI flags use it too).
 */
export function parseDuration(value: string): number | undefined {
  const parsed = /^\d+$/.test(value) ? Number.NaN : (ms as (v: string) => number | undefined)(value);
  return typeof parsed === "number" && Number.isFinite(parsed) && parsed >= 0 ? parsed : undefined;
}

/** A duration string parsed to milliseconds. */
const duration = z.string().transform((value, ctx) => {
  const parsed = parseDuration(value);
  if (parsed === undefined) {
    ctx.addIssue({ code: "custom", message: `expected a duration such as "30s", "5m" or "7d", got ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return parsed;
});

/** A duration above zero: undici reads a 0 timeout as "no timeout", so "0s" would switch the bound off. */
export const positiveDuration = duration.refine((ms) => ms > 0, 'must be more than 0 ("0s" would mean no timeout at all)');

/** A size: whole bytes, or "20GB" / "20G" / "20GiB" (all 20 × 1024³), strictly parsed (src/config/sizes.ts). */
const size = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const parsed = parseSize(value);
  if (!parsed.ok) {
    ctx.addIssue({ code: "custom", message: parsed.reason });
    return z.NEVER;
  }
  return parsed.bytes;
});

/** Below this a cap is most likely a missing unit ("20" for "20GB"): the startup log warns. */
export const SMALL_CACHE_CAP = 1024 * 1024;

const upstreamUrl = z.string().refine((value) => {
  try {
    const u = new URL(value);
    return (u.protocol === "http:" || u.protocol === "https:") && !u.username && !u.password && !u.search && !u.hash;
  } catch {
    return false;
  }
}, "expected an http:// or https:// URL without credentials, query or fragment (put credentials in username/password)");

/**
 * A forward proxy: http://[user:password@]host[:port] or https://…; without a scheme http:// is
 * meant (as curl reads it). The credentials go to the proxy only and are never logged.
 */
export const proxyUrl = z.string().transform((value, ctx) => {
  const problem = proxyUrlProblem(value);
  if (problem) {
    ctx.addIssue({ code: "custom", message: problem });
    return z.NEVER;
  }
  return normalizeProxyUrl(value);
});

/** "proxy.corp:3128" means http://proxy.corp:3128, as curl and Go read a scheme-less proxy. */
export function normalizeProxyUrl(value: string): string {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
}

/** A NO_PROXY CIDR range ("10.0.0.0/8", "fd00::/8") as address, prefix and family; undefined if the entry is not one. */
export function parseCidr(entry: string): { address: string; prefix: number; family: "ipv4" | "ipv6" } | undefined {
  const m = /^\[?([0-9a-fA-F:.]+)\]?\/(\d{1,3})$/.exec(entry);
  if (!m) return undefined;
  const address = m[1] as string;
  const prefix = Number(m[2]);
  const family = isIP(address);
  if (family === 4 && prefix <= 32) return { address, prefix, family: "ipv4" };
  if (family === 6 && prefix <= 128) return { address, prefix, family: "ipv6" };
  return undefined;
}

/** Why a NO_PROXY entry cannot be honoured, or undefined (names, host:port, addresses, CIDR ranges, "*"). */
export function noProxyEntryProblem(entry: string): string | undefined {
  if (entry.includes("/") && !parseCidr(entry)) return `expected a host, host:port, IP address or CIDR range such as 10.0.0.0/8, got ${JSON.stringify(entry.slice(0, 100))}`;
  return undefined;
}

/** Why a proxy URL is unusable (the message quotes it with credentials masked), or undefined. */
export function proxyUrlProblem(value: string): string | undefined {
  const shown = JSON.stringify(redactUserinfo(value).slice(0, 200));
  let url: URL;
  try {
    url = new URL(normalizeProxyUrl(value));
  } catch {
    return `expected a proxy URL such as http://proxy.example.com:3128, got ${shown}`;
  }
  if (url.protocol === "socks:" || url.protocol === "socks4:" || url.protocol === "socks5:" || url.protocol === "socks5h:") {
    return `SOCKS proxies are not supported (use an HTTP proxy: http:// or https://), got ${shown}`;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return `expected an http:// or https:// proxy URL, got ${shown}`;
  if (!url.hostname) return `expected a proxy URL with a host, got ${shown}`;
  return undefined;
}

export const upstreamSchema = z
  .object({
    /** Base URL of the registry (the /v2/ API lives under it). */
    url: upstreamUrl.optional(),
    /** Credentials for this upstream only: basic auth, or the token-realm flow. Never logged. */
    username: z.string().optional(),
    password: z.string().optional(),
    /** Extra token realms (origins or URLs) trusted with the credentials; the upstream's own origin always is. */
    tokenRealms: z.array(z.string()).optional(),
    /** Other names clients use for this registry (containerd's ns=, path prefixes). */
    aliases: z.array(z.string()).optional(),
    /** Docker Hub naming: one-segment names mean library/<name>. Default: true for docker.io only. */
    officialImages: z.boolean().optional(),
    /** Per-upstream override of cache.tagFreshness. */
    tagFreshness: duration.optional(),
    /** false removes a built-in upstream: requests for it are refused. */
    enabled: z.boolean().optional(),
    /**
     * Who may read this upstream's content through the mirror: "authenticated" clients only, or
     * "anonymous" ones too. Default: authenticated when the upstream has credentials (its content
     * may be private), anonymous otherwise.
     */
    access: z.enum(["authenticated", "anonymous"]).optional(),
    /**
     * PEM file of CA certificates this upstream's TLS certificate may chain to, added to Node's
     * trusted roots (and NODE_EXTRA_CA_CERTS); its token realm and redirects trust them too.
     * Read at startup; a missing file or one without a certificate refuses to start. Default: none.
     */
    ca: z.string().min(1).optional(),
  })
  .strict();

/** Where the cache lives on the local filesystem (also what the plain string form of storage means). */
const filesystemStorage = z
  .object({
    driver: z.literal("filesystem"),
    /** The cache folder. Default ./mirror-kit-data. */
    root: z.string().min(1).default("./mirror-kit-data"),
  })
  .strict();

/** S3-compatible object storage (AWS S3, Ceph RGW, MinIO, R2, GCS interoperability): src/store/s3/. */
const s3Storage = z
  .object({
    driver: z.literal("s3"),
    /** Bucket name (3-63 lower-case letters, digits, '.', '-'). Required. */
    bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, "expected a bucket name: 3-63 lower-case letters, digits, '.' or '-'"),
    /** Region. Default us-east-1 (what most S3-compatible servers expect). */
    region: z.string().min(1).default("us-east-1"),
    /** Endpoint URL or host[:port] for servers other than AWS (distribution's regionendpoint). Default: AWS's for the region. */
    endpoint: z.string().min(1).optional(),
    /** Static credentials; both or neither. Default: the AWS SDK's chain (AWS_ACCESS_KEY_ID, profiles, roles). Never logged. */
    accessKey: z.string().min(1).optional(),
    secretKey: z.string().min(1).optional(),
    /** Path-style addressing (endpoint/bucket/key) instead of virtual-hosted (bucket.endpoint/key). Default false. */
    forcePathStyle: z.boolean().default(false),
    /** Key prefix everything is stored under. Default "" (the bucket's top). */
    rootDirectory: z.string().default(""),
    /** HTTPS to an endpoint given without a scheme (and to AWS). Default true. */
    secure: z.boolean().default(true),
    /** Multipart part size, at least 5MB (S3's minimum). Default 10MB, as distribution. */
    chunkSize: size.default(10 * 1024 * 1024).refine((n) => n >= 5 * 1024 * 1024, "must be at least 5MB (S3's smallest multipart part)"),
    /** Create the bucket when it does not exist. Default true; false refuses to start instead. */
    createBucket: z.boolean().default(true),
    /** Local folder for downloads in progress (late readers read them back) and the mirror's own figures. Default ./mirror-kit-data. */
    spool: z.string().min(1).default("./mirror-kit-data"),
  })
  .strict()
  .refine((s) => (s.accessKey === undefined) === (s.secretKey === undefined), { message: "accessKey and secretKey go together", path: ["accessKey"] });

const storageDrivers = z.discriminatedUnion("driver", [filesystemStorage, s3Storage]);

/**
 * storage: a folder (string), or one object per driver; src/store/open.ts opens it. Parsed by hand
 * so a bad driver or field is named (a plain union would only say "Invalid input").
 */
export const storageSchema = z.unknown().transform((value, ctx): string | z.output<typeof storageDrivers> => {
  if (typeof value !== "string" && (typeof value !== "object" || value === null || Array.isArray(value))) {
    ctx.addIssue({ code: "custom", message: `expected a folder or an object with a driver (filesystem or s3), got ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  const parsed = typeof value === "string" ? z.string().min(1, "expected a folder, got an empty string").safeParse(value) : storageDrivers.safeParse(value);
  if (parsed.success) return parsed.data;
  for (const issue of parsed.error.issues) ctx.addIssue({ code: "custom", message: issue.message, path: issue.path });
  return z.NEVER;
});

export const configSchema = z
  .object({
    /** HOST:PORT to listen on. Default 0.0.0.0:5000; port 0 picks a free port. */
    listen: z.string().default("0.0.0.0:5000"),
    /**
     * Cache storage: a folder ("./data", the same as {driver: filesystem, root: ./data}). Default
     * ./mirror-kit-data (the container image sets /var/lib/mirror-kit).
     */
    storage: storageSchema.default("./mirror-kit-data"),
    /**
     * This process's name among replicas sharing one store: its downloads in progress live under it,
     * and only its own are removed when it starts. Default: the host name (unique per container or
     * pod); set it when several replicas on one host share a folder.
     */
    replica: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "expected 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
      .optional(),
    /** Upstream for requests with neither ?ns= nor a host prefix. Default docker.io. */
    defaultUpstream: z.string().default("docker.io"),
    /** Include the built-in public registries (docker.io, ghcr.io, quay.io, ...). Default true. */
    builtinUpstreams: z.boolean().default(true),
    /** Named upstreams; merged over the built-ins by name. */
    upstreams: z.record(z.string(), upstreamSchema).default({}),
    /**
     * Chaining: fetch every upstream through this parent mirror (a team's mirror-kit, or any mirror
     * that routes containerd's ?ns=) and from the upstream itself while the parent is down or failing
     * (no answer, 5xx). fallback: false never goes around the parent. Upstreams with credentials are
     * always fetched directly: their credentials are theirs alone. Content stays digest-checked,
     * whoever serves it. Default: none.
     */
    parent: z
      .object({
        url: upstreamUrl,
        /** The parent's own client credentials (its auth.htpasswd); never sent anywhere else. */
        username: z.string().optional(),
        password: z.string().optional(),
        /** Go to the upstream itself while the parent is down. Default true. */
        fallback: z.boolean().default(true),
      })
      .strict()
      .refine((p) => (p.username === undefined) === (p.password === undefined), "username and password go together")
      .optional(),
    /** fatal, error, warn, info, debug, trace or silent. Default info. */
    logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    /** json (one JSON object a line), pretty (human-readable), or auto: pretty on a terminal, JSON otherwise. Default auto. */
    logFormat: z.enum(["auto", "json", "pretty"]).default("auto"),
    cache: z
      .object({
        /**
         * How long a cached tag is served without asking upstream. Default 1m. Past it the tag is
         * revalidated with a HEAD (never a GET when the digest is cached). "0s" revalidates every pull.
         */
        tagFreshness: duration.default(60_000),
        /**
         * Size cap of the cache. Past it, the least recently used content is evicted down to 90% of
         * the cap, never a layer that a kept manifest references. Default 0: no cap.
         */
        maxSize: size.default(0),
        /** Content used this recently is never evicted: it may belong to a pull in progress. Default 2m. */
        evictionGrace: duration.default(120_000),
        /**
         * The longest content is served from cache after upstream last confirmed it for that repository
         * (registry:2's proxy.ttl). Past it, a digest is confirmed again with a HEAD before it is
         * served (kept, stale, when upstream is unreachable). Default "0s": no limit.
         */
        maxAge: duration.default(0),
        /** Largest manifest accepted from upstream. Default 4194304 (4 MiB), as distribution. */
        manifestMaxBytes: z.number().int().positive().default(4 * 1024 * 1024),
        /**
         * Manifest media types served as Content-Type besides the OCI and Docker ones (e.g. a vendor's
         * artifact type). Any other type an upstream declares is replaced by the body's mediaType, or
         * the manifest is refused (502). Default [].
         */
        manifestMediaTypes: z
          .array(z.string().regex(/^[a-z0-9!#$&^_.+-]{1,127}\/[a-z0-9!#$&^_.+-]{1,127}$/, "expected a lower-case media type such as application/vnd.example.manifest.v1+json"))
          .default([]),
        /**
         * Freshness rules, first match wins, over "upstream/name:tag" globs (picomatch: * within a
         * path component, ** across them), e.g. {match: "docker.io/library/*:latest", freshness: 10m},
         * {match: "ghcr.io/owner/app:stable", immutable: true}, {match: "docker.io/library/node:22",
         * pin: true}. immutable: never revalidated (until `mirror-kit refresh`); pin: also never
         * evicted, with everything it references. Default [].
         */
        rules: z
          .array(
            z
              .object({ match: z.string().min(1), freshness: duration.optional(), immutable: z.boolean().optional(), pin: z.boolean().optional() })
              .strict()
              .refine((r) => [r.freshness !== undefined, r.immutable === true, r.pin === true].filter(Boolean).length === 1, "give exactly one of freshness, immutable: true or pin: true"),
          )
          .default([]),
        /**
         * Tags treated as immutable when no rule matches: "semver" (default) for full releases such
         * as 1.2.3, v1.2.3 or 1.25.3-alpine, which are then never revalidated; "none" revalidates every tag.
         */
        immutableTags: z.enum(["semver", "none"]).default("semver"),
      })
      .strict()
      .prefault({}),
    upstream: z
      .object({
        /** TCP connect timeout. Default 5s. */
        connectTimeout: positiveDuration.default(5_000),
        /** Time to response headers, and the longest silence inside a body. Default 30s. */
        responseTimeout: positiveDuration.default(30_000),
        /**
         * Total time for one exchange with an upstream: a manifest or tag-list GET (headers and
         * body), a HEAD, a token request, a blob GET until its headers. Past it the cached copy is
         * served (STALE) when there is one, else 504. Default 10s; must be greater than zero.
         */
        deadline: positiveDuration.default(10_000),
        /**
         * Largest blob accepted when neither the answer's Content-Length, a served manifest nor a
         * HEAD gave its size: past it the download is cut off and nothing is kept. Default 20GB.
         */
        maxBlobSize: size.refine((v) => v > 0, "must be greater than zero").default(20 * 1024 ** 3),
        /**
         * Slowest pace a blob body may keep, per second ("16KB" = 16 KiB a second), judged over
         * throughputWindow of waiting on upstream (time the mirror's clients or disk hold the download
         * back does not count). Slower, the connection is cut and the download resumed with a Range
         * request: once from the upstream itself when the slow one was the parent (not with
         * parent.fallback: false), else counted in maxResumes, then failed. A client of another
         * repository sharing that download judges it by the same floor over min(throughputWindow, 5s)
         * and, below it, continues from its own repository. Default 16KB; must be greater than zero.
         */
        minThroughput: size.refine((v) => v > 0, "must be greater than zero (a trickle would hold every client of the blob)").default(16 * 1024),
        /** How long the blob pace is measured before it is judged (minThroughput). Default 30s. */
        throughputWindow: positiveDuration.default(30_000),
        /** Times a blob download that drops mid-stream is resumed with a Range request. Default 5. */
        maxResumes: z.number().int().min(0).default(5),
        /**
         * How long an upstream that failed to connect is skipped (stale content served, misses fail fast)
         * before it is tried again. Default 30s; "0s" disables the circuit breaker.
         */
        breakerCooldown: duration.default(30_000),
        /**
         * The forward proxy upstream requests go through. Each field, when given, wins over the
         * environment variable it replaces (the startup log names the override).
         */
        proxy: z
          .object({
            /** Proxy for http:// upstreams. Default: http_proxy, else HTTP_PROXY, else ALL_PROXY; unset: direct. */
            http: proxyUrl.optional(),
            /**
             * Proxy for https:// upstreams, reached with CONNECT. Default: https_proxy, else HTTPS_PROXY,
             * else ALL_PROXY, else the http proxy (as undici's EnvHttpProxyAgent); unset: direct.
             */
            https: proxyUrl.optional(),
            /**
             * Hosts reached directly: a name (covering its subdomains; a leading "." or "*." is the same),
             * host:port, an IP address, a CIDR range such as 10.0.0.0/8, or "*" for every host.
             * Default: no_proxy, else NO_PROXY; unset: none — loopback goes through the proxy too.
             */
            noProxy: z
              .array(
                z.string().superRefine((entry, ctx) => {
                  const problem = entry.trim() === "" ? "expected a host, got an empty entry" : noProxyEntryProblem(entry);
                  if (problem) ctx.addIssue({ code: "custom", message: problem });
                }),
              )
              .optional(),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    /**
     * TLS on the listener. No certificate (the default) serves plain HTTP. The certificate and key
     * files are re-read on SIGHUP and whenever they change; a bad new pair is logged and the old one kept.
     */
    tls: z
      .object({
        /** PEM certificate (chain) file. Default: none (plain HTTP). Requires key. */
        certificate: z.string().min(1).optional(),
        /** PEM private key file for the certificate. Default: none. Requires certificate. */
        key: z.string().min(1).optional(),
        /**
         * PEM CA files for mutual TLS: when given, every client must present a certificate signed by
         * one of them (distribution's clientcas). Default: [] (no client certificates asked for).
         */
        clientCAs: z.array(z.string().min(1)).default([]),
        /** Oldest TLS version accepted: tls1.0, tls1.1, tls1.2 or tls1.3 (distribution's spelling). Default tls1.2. */
        minimumVersion: z.enum(["tls1.0", "tls1.1", "tls1.2", "tls1.3"]).default("tls1.2"),
      })
      .strict()
      .prefault({}),
    http: z
      .object({
        /** Headers added to every response, as registry:2's http.headers (name: [values]). Default none. */
        headers: z.record(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, "expected an HTTP header name"), z.array(z.string().regex(/^[^\r\n]*$/, "no line breaks in header values"))).default({}),
      })
      .strict()
      .prefault({}),
    auth: z
      .object({
        /**
         * Client authentication with an htpasswd file of bcrypt entries (`htpasswd -B`), as registry:2's
         * auth.htpasswd. Default: none (no authentication). The file is re-read when it changes.
         */
        htpasswd: z.object({ realm: z.string().min(1), path: z.string().min(1) }).strict().optional(),
        /**
         * Let clients without credentials pull from upstreams whose access is "anonymous" (tags,
         * manifests, blobs, and those repositories in the catalog). Default false: with auth on,
         * every pull needs credentials.
         */
        anonymousPull: z.boolean().default(false),
        /** Paths served without authentication when auth is on. Default ["/healthz"]; [] puts it behind auth too. */
        anonymousPaths: z.array(z.string().startsWith("/")).default(["/healthz"]),
      })
      .strict()
      .prefault({}),
    redis: z
      .object({
        /**
         * HOST:PORT of a Redis server shared by every replica in front of one store (registry:2's
         * redis.addr). With it, one replica downloads a digest while the others wait for it, one
         * revalidates a tag, one evicts. Default: none (this replica coordinates only with itself).
         */
        addr: z
          .string()
          .regex(/^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, "expected HOST:PORT such as redis:6379")
          .optional(),
        /** Redis AUTH password. Default: none. Never logged. */
        password: z.string().min(1).optional(),
        /** Redis database number. Default 0. */
        db: z.number().int().min(0).default(0),
        /** Connect with TLS. Default false. */
        tls: z.boolean().default(false),
        /** Prefix of every key and channel, so several mirrors can share one Redis. Default "mirror-kit:". */
        keyPrefix: z.string().min(1).default("mirror-kit:"),
        /**
         * A download's lease: its replica renews it every third of this; when the replica dies, another
         * takes the download over this long after the last renewal. Default 15s.
         */
        lease: positiveDuration.default(15_000),
        /** The longest a Redis command may take before a replica goes on alone (and /healthz says so). Default 2s. */
        timeout: positiveDuration.default(2_000),
      })
      .strict()
      .prefault({}),
    fill: z
      .object({
        /**
         * A cache fill keeps downloading after every client has gone, for at most this long,
         * so an interrupted pull resumes from the cache. Default 10m.
         */
        orphanTimeout: duration.default(600_000),
      })
      .strict()
      .prefault({}),
    rateLimit: z
      .object({
        /**
         * When an upstream's announced budget (ratelimit-remaining, as Docker Hub sends) is at or
         * below this, tags are revalidated at most every backoffFreshness: pulls left ("10") or a
         * share of ratelimit-limit ("20%"). Default "20%".
         */
        reserve: z
          .union([z.number(), z.string()])
          .transform((value, ctx) => {
            const m = /^\s*(\d{1,9})\s*(%?)\s*$/.exec(String(value));
            if (!m || (m[2] === "%" && Number(m[1]) > 100)) {
              ctx.addIssue({ code: "custom", message: `expected pulls left such as 10, or a share of the limit such as "20%", got ${JSON.stringify(value)}` });
              return z.NEVER;
            }
            return { value: Number(m[1]), unit: m[2] === "%" ? ("percent" as const) : ("pulls" as const) };
          })
          .default({ value: 20, unit: "percent" }),
        /** A tag's freshness window while the budget is low (never shorter than its own). Default 1h. */
        backoffFreshness: positiveDuration.default(3_600_000),
        /** How long a 429 without a usable Retry-After holds that upstream's manifest requests. Default 60s. */
        defaultRetryAfter: positiveDuration.default(60_000),
        /** The longest wait a Retry-After is honoured for (a larger one is cut to this). Default 1h. */
        maxRetryAfter: positiveDuration.default(3_600_000),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type ConfigInput = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;
export type UpstreamInput = z.input<typeof upstreamSchema>;

/** A setting refused at load time; the message names the field (code MK_CONFIG_INVALID). */
export class ConfigError extends MirrorKitError {
  override readonly name = "ConfigError";
  declare readonly code: "MK_CONFIG_INVALID";
  constructor(message: string, options?: { cause?: unknown }) {
    super("MK_CONFIG_INVALID", message, options);
  }
}

/**
 * Refuse __proto__, constructor and prototype as keys anywhere in a config document: merged into a
 * plain object, such a key reaches Object.prototype (or shadows it) instead of setting a field.
 */
export function refusePrototypeKeys(value: unknown, source: string, path: readonly string[] = []): void {
  if (typeof value !== "object" || value === null) return;
  for (const key of Object.keys(value)) {
    const here = [...path, key];
    if (PROTOTYPE_KEYS.has(key)) throw new ConfigError(`invalid ${source}:\n  ${here.join(".")}: ${JSON.stringify(key)} is not allowed as a key`);
    refusePrototypeKeys((value as Record<string, unknown>)[key], source, here);
  }
}

/** Validate raw input; the error names the field path and what was expected. */
export function parseConfig(input: unknown, source = "configuration"): ParsedConfig {
  refusePrototypeKeys(input, source);
  const result = configSchema.safeParse(input ?? {});
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const path = issue.path.length ? issue.path.map(String).join(".") : "(top level)";
    return `  ${path}: ${issue.message}`;
  });
  throw new ConfigError(`invalid ${source}:\n${lines.join("\n")}`);
}
