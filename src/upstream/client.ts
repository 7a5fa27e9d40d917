// One upstream registry: HTTP through undici, the token/basic auth flow (tokens cached per scope
// in tokens.ts), realm trust, redirects (blobs live on CDNs), the circuit breaker and request metrics.
import { Buffer } from "node:buffer";
import type { Dispatcher } from "undici";
import type { UpstreamConfig } from "../config/resolve.js";
import type { MirrorKitErrorOptions } from "../errors.js";
import { parseRateLimit, parseRetryAfter } from "../observe/events.js";
import type { Logger } from "../observe/log.js";
import type { Metrics } from "../observe/metrics.js";
import type { CircuitBreaker } from "./breaker.js";
import { requestKind, type RateLimitBudget } from "./budget.js";
import { parseChallenge, type Challenge } from "./challenge.js";
import { withDeadline } from "./deadline.js";
import { redactUrl, UpstreamError } from "./errors.js";
import { LOOP_HEADER } from "./hops.js";
import { type CachedToken, parseTokenResponse, TokenCache } from "./tokens.js";

export type UpstreamResponse = Dispatcher.ResponseData;

export interface FetchOptions {
  headers?: Record<string, string>;
  /** repository:<name>:pull — the token scope this request needs. */
  scope: string;
  signal?: AbortSignal;
  /** false: neither consult nor feed the circuit breaker (a fill's own resume loop). Default true. */
  breaker?: boolean;
  /** Skip the parent mirror, straight to the upstream (a download the parent served below the floor). */
  direct?: boolean;
}

const ERROR_BODY_LIMIT = 64 * 1024;
/** The longest Retry-After passed on to a client (a day); the budget caps its own hold by rateLimit.maxRetryAfter. */
const MAX_RETRY_AFTER_S = 86_400;

export class UpstreamClient {
  private readonly tokens = new TokenCache();
  private useBasic = false;
  private warnedRealms = new Set<string>();

  constructor(
    readonly config: UpstreamConfig,
    private readonly dispatcher: Dispatcher,
    private readonly breaker: CircuitBreaker,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    /** The budget it announces and the waits it asks for (Retry-After). */
    readonly budget: RateLimitBudget,
  ) {}

  get name(): string {
    return this.config.name;
  }

  /**
   * Whether a download that is too slow from here can continue from another source (a chained
   * mirror's upstream itself, asked with FetchOptions.direct); a plain client has none.
   */
  get hasOtherSource(): boolean {
    return false;
  }

  /** True while the upstream is being skipped after a connection failure. */
  isOffline(): boolean {
    return this.breaker.isOpen();
  }

  /**
   * Run one exchange (requests, auth round trips, body read) under this upstream's total deadline;
   * pass the signal fn gets to fetch(). Expiry throws UpstreamError "timeout".
   */
  exchange<T>(what: string, fn: (signal: AbortSignal) => Promise<T>, parent?: AbortSignal): Promise<T> {
    return withDeadline(this.name, what, this.config.deadlineMs, fn, parent);
  }

  /**
   * Send a request to <url>/v2/<path>. Returns any HTTP answer (the caller judges the status);
   * throws UpstreamError("unreachable") when there is none.
   */
  async fetch(method: "GET" | "HEAD", path: string, options: FetchOptions): Promise<UpstreamResponse> {
    let res = await this.send(method, path, options, this.cachedAuth(options.scope));
    if (res.statusCode !== 401) return res;
    const challenge = parseChallenge(headerString(res.headers["www-authenticate"]));
    await discard(res);
    const auth = await this.authorize(challenge, options);
    if (auth === undefined) return this.send(method, path, options, undefined);
    res = await this.send(method, path, options, auth);
    return res;
  }

  /**
   * Every upstream request goes through here. undici's body emits "error" when destroyed, and an
   * unheard stream error would crash the process: with this listener any caller may abandon a body
   * with body.destroy(). Readers of the body still see its errors.
   */
  private async request(options: Dispatcher.RequestOptions): Promise<UpstreamResponse> {
    const res = await this.dispatcher.request(options);
    res.body.on("error", () => undefined);
    return res;
  }

  /** Where a request for /v2/<path> goes (a parent mirror adds its ?ns=). */
  protected requestUrl(path: string): URL {
    return new URL(`v2/${path}`, this.config.url);
  }

  private async send(method: string, path: string, options: FetchOptions, authorization: string | undefined): Promise<UpstreamResponse> {
    const url = this.requestUrl(path);
    const useBreaker = options.breaker !== false;
    // The upstream asked us to wait (Retry-After): nothing is sent until then, so cached tags are
    // served stale and misses get 429/503 with the time left.
    const kind = requestKind(path);
    const heldMs = this.budget.heldMs(kind);
    if (heldMs > 0) {
      const status = this.budget.heldStatus(kind);
      const seconds = Math.ceil(heldMs / 1000);
      this.metrics.upstreamRequests.inc({ upstream: this.name, method, status: "held" });
      throw new UpstreamError(this.name, "status", `held for ${seconds}s more: the upstream answered ${status} with Retry-After`, status, undefined, { headers: { "retry-after": String(seconds) } });
    }
    if (useBreaker && this.breaker.isOpen()) {
      this.metrics.upstreamRequests.inc({ upstream: this.name, method, status: "skipped" });
      throw new UpstreamError(this.name, "unreachable", `skipped for ${Math.ceil(this.breaker.remainingMs() / 1000)}s after a connection failure`);
    }
    const headers: Record<string, string> = { "user-agent": "mirror-kit", ...options.headers };
    if (authorization) headers.authorization = authorization;
    const started = Date.now();
    try {
      const res = await this.request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: method as Dispatcher.HttpMethod,
        headers,
        signal: options.signal,
      });
      if (res.statusCode === 407) {
        // The forward proxy's answer, not the upstream's: said as such, never passed on as a 4xx.
        await discard(res);
        this.metrics.upstreamRequests.inc({ upstream: this.name, method, status: "407" });
        this.log.warn({ upstream: this.name, method, url: redactUrl(url) }, PROXY_AUTH_REQUIRED);
        throw new UpstreamError(this.name, "unreachable", PROXY_AUTH_REQUIRED);
      }
      // Only the registry's health counts: 5xx answers do, a repository's 401 or 404 is an answer.
      if (useBreaker) {
        if (res.statusCode >= 500) this.breaker.recordFailure("5xx");
        else this.breaker.recordSuccess();
      }
      this.metrics.upstreamRequests.inc({ upstream: this.name, method, status: String(res.statusCode) });
      this.log.debug({ upstream: this.name, method, url: redactUrl(url), status: res.statusCode }, "upstream request");
      this.report(method, started, res);
      return res;
    } catch (err) {
      this.metrics.upstreamRequests.inc({ upstream: this.name, method, status: "error" });
      if (options.signal?.aborted) throw err;
      const reason = (err as { code?: string }).code ?? (err as Error).message;
      this.metrics.events.emit("upstream", { at: started, upstream: this.name, method, ms: Date.now() - started, error: String(reason) });
      const refusal = proxyRefusal(err);
      if (refusal) {
        this.log.warn({ upstream: this.name, method, url: redactUrl(url) }, refusal);
        throw new UpstreamError(this.name, "unreachable", refusal, undefined, undefined, { cause: err });
      }
      if (!isNetworkFailure(err)) {
        // A request undici refuses to send (a token with a control character, a bad header value)
        // is about this exchange, not the upstream's health: no breaker, no "unreachable".
        this.log.warn({ upstream: this.name, method, url: redactUrl(url), err: reason }, "upstream request could not be sent");
        throw new UpstreamError(this.name, "invalid", String(reason), undefined, undefined, { cause: err });
      }
      if (useBreaker) this.breaker.recordFailure("network");
      this.log.warn({ upstream: this.name, method, url: redactUrl(url), err: reason }, "upstream unreachable");
      // Say where the missing trust goes: the code alone (UNABLE_TO_VERIFY_LEAF_SIGNATURE) names no fix.
      const why = /^UNABLE_TO_|SELF_SIGNED|CERT_UNTRUSTED/.test(String(reason)) ? `${reason}: TLS certificate not trusted (give its CA in upstreams.${this.name}.ca or NODE_EXTRA_CA_CERTS)` : String(reason);
      throw new UpstreamError(this.name, "unreachable", why, undefined, undefined, { cause: err });
    }
  }

  /** The exchange as an event: status, latency, and the rate-limit budget the upstream announced. */
  private report(method: string, started: number, res: UpstreamResponse): void {
    const limit = headerString(res.headers["ratelimit-limit"]);
    const remaining = headerString(res.headers["ratelimit-remaining"]);
    const rateLimit = parseRateLimit(limit, remaining);
    const held = this.budget.observe(res.statusCode, { limit, remaining, retryAfter: headerString(res.headers["retry-after"]) });
    const retryAfterMs = held > 0 ? held : undefined;
    // What a client is told to wait is the hold honoured here (capped, whole seconds), not the raw header.
    if (held > 0) res.headers["retry-after"] = String(Math.ceil(held / 1000));
    this.metrics.events.emit("upstream", {
      at: started,
      upstream: this.name,
      method,
      status: res.statusCode,
      ms: Date.now() - started,
      ...(res.statusCode >= 400 && res.statusCode !== 401 && res.statusCode !== 404 ? { error: `status ${res.statusCode}` } : {}),
      ...(rateLimit ? { rateLimit } : {}),
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    });
  }

  private cachedAuth(scope: string): string | undefined {
    if (this.useBasic) return this.basicHeader();
    return this.tokens.get(scope);
  }

  private basicHeader(): string | undefined {
    const { username, password } = this.config;
    if (username === undefined || password === undefined) return undefined;
    return `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
  }

  /** Answer a 401 challenge: a token for Bearer, credentials for Basic, or nothing to offer. */
  private async authorize(challenge: Challenge | undefined, options: FetchOptions): Promise<string | undefined> {
    if (challenge?.scheme === "basic") {
      this.useBasic = true;
      return this.basicHeader();
    }
    if (challenge?.scheme !== "bearer" || !challenge.params.realm) return undefined;
    const scope = options.scope;
    // The flight has its own deadline (a trickling realm releases every waiter when it expires).
    return this.tokens.obtain(
      scope,
      () => withDeadline(this.name, "token request", this.config.deadlineMs, (signal) => this.fetchToken(challenge, scope, signal)),
      options.signal,
    );
  }

  private async fetchToken(challenge: Challenge, scope: string, signal: AbortSignal): Promise<CachedToken> {
    let realm: URL;
    try {
      realm = new URL(challenge.params.realm as string);
    } catch {
      throw new UpstreamError(this.name, "status", "token realm is not a URL", 401);
    }
    if (realm.protocol !== "https:" && realm.protocol !== "http:") throw new UpstreamError(this.name, "status", "token realm is not http(s)", 401);
    if (challenge.params.service) realm.searchParams.set("service", challenge.params.service);
    realm.searchParams.set("scope", scope);
    const headers: Record<string, string> = { "user-agent": "mirror-kit" };
    // A realm the upstream's configuration does not vouch for gets no credentials: a compromised or
    // spoofed upstream could otherwise name any host and harvest them (distribution f215e513d).
    const trusted = this.config.trustedRealmOrigins.includes(realm.origin);
    const basic = this.basicHeader();
    if (basic && trusted) headers.authorization = basic;
    else if (basic && !this.warnedRealms.has(realm.origin)) {
      this.warnedRealms.add(realm.origin);
      this.log.warn({ upstream: this.name, realm: realm.origin }, "token realm not trusted for this upstream; requesting an anonymous token (add it to tokenRealms to send credentials)");
    }
    let res: UpstreamResponse;
    try {
      res = await this.request({ origin: realm.origin, path: realm.pathname + realm.search, method: "GET", headers, signal });
    } catch (err) {
      this.metrics.upstreamRequests.inc({ upstream: this.name, method: "TOKEN", status: "error" });
      throw new UpstreamError(this.name, "unreachable", `token endpoint ${redactUrl(realm)}: ${(err as { code?: string }).code ?? (err as Error).message}`, undefined, undefined, { cause: err });
    }
    this.metrics.upstreamRequests.inc({ upstream: this.name, method: "TOKEN", status: String(res.statusCode) });
    if (res.statusCode !== 200) {
      await discard(res);
      // The real status decides: an auth service that is down (5xx) or busy (429) is temporary,
      // so cached tags are still served; a refusal (4xx) is an authentication failure.
      const status = res.statusCode >= 500 || res.statusCode === 429 ? res.statusCode : 401;
      throw new UpstreamError(this.name, "status", `token endpoint answered ${res.statusCode}`, status);
    }
    let body: string;
    try {
      body = (await readLimited(res, ERROR_BODY_LIMIT)).toString("utf8");
    } catch (err) {
      throw new UpstreamError(this.name, "unreachable", `token endpoint: ${(err as Error).message}`, undefined, undefined, { cause: err });
    }
    return parseTokenResponse(this.name, body);
  }
}

const PROXY_AUTH_REQUIRED = "forward proxy answered 407 Proxy Authentication Required: give its credentials in the proxy URL (HTTPS_PROXY, HTTP_PROXY or upstream.proxy)";

/**
 * The forward proxy's refusal as undici reports it: an abort for a CONNECT ("Proxy response (407)
 * !== 200 when HTTP Tunneling"), an invalid-argument error for a 407 to a plain request. Either would
 * otherwise read as a local error about this one request.
 */
function proxyRefusal(err: unknown): string | undefined {
  const message = (err as Error | undefined)?.message ?? "";
  if (message === "Proxy Authentication Required (407)") return PROXY_AUTH_REQUIRED;
  const m = /^Proxy response \((\d{3})\) !== 200/.exec(message);
  if (!m) return undefined;
  return m[1] === "407" ? PROXY_AUTH_REQUIRED : `forward proxy refused the tunnel (CONNECT answered ${m[1]})`;
}

const NETWORK_UNDICI_CODES: ReadonlySet<string> = new Set(["UND_ERR_CONNECT_TIMEOUT", "UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT", "UND_ERR_SOCKET"]);

/**
 * A failure of the network or of the upstream's endpoint: system errors (ECONNREFUSED, ECONNRESET,
 * ENOTFOUND, ETIMEDOUT, ...), undici's timeouts and socket errors, TLS failures. Everything else
 * (undici's InvalidArgumentError, a TypeError) is local to one request and must not trip the breaker.
 */
export function isNetworkFailure(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code !== "string") return false;
  return /^E[A-Z]+$/.test(code) || NETWORK_UNDICI_CODES.has(code) || isTlsVerifyFailure(code);
}

/** OpenSSL's verification codes as Node reports them: CERT_HAS_EXPIRED, UNABLE_TO_VERIFY_LEAF_SIGNATURE, ... */
function isTlsVerifyFailure(code: string): boolean {
  return /TLS|SSL|CERT|^UNABLE_TO_/.test(code);
}

/** Throw an UpstreamError for a non-2xx answer, keeping the upstream's OCI code (body read up to 64 KiB). */
export async function ensureOk(upstream: string, res: UpstreamResponse, what: string): Promise<void> {
  if (res.statusCode >= 200 && res.statusCode < 300) return;
  let ociCode: string | undefined;
  let message = `${what}: status ${res.statusCode}`;
  try {
    const text = (await readLimited(res, ERROR_BODY_LIMIT)).toString("utf8");
    const parsed = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] };
    const first = parsed.errors?.[0];
    if (typeof first?.code === "string") ociCode = first.code;
    if (typeof first?.message === "string") message = `${what}: ${first.message.slice(0, 300)}`;
  } catch {
    // Not an OCI error body; the status says enough.
  }
  // A parent mirror's 508 (a chaining loop) names the loop in a header, which a HEAD answer keeps too.
  // Only mirror ids and arrows are kept, so nothing else an upstream sends is passed on.
  const loop = res.statusCode === 508 ? /^[0-9a-f ->]{1,300}$/.exec(headerString(res.headers[LOOP_HEADER]) ?? "")?.[0] : undefined;
  if (loop && !message.includes("chaining loop")) message = `${what}: chaining loop: ${loop} (one of these mirrors must not name the next as its parent)`;
  // The wait a 429 or 503 asks for goes on to the client as whole seconds, never the raw header.
  const wait = res.statusCode === 429 || res.statusCode === 503 ? parseRetryAfter(headerString(res.headers["retry-after"])) : undefined;
  const headers: MirrorKitErrorOptions | undefined = wait !== undefined ? { headers: { "retry-after": String(Math.min(Math.ceil(wait / 1000), MAX_RETRY_AFTER_S)) } } : loop ? { headers: { [LOOP_HEADER]: loop } } : undefined;
  throw new UpstreamError(upstream, "status", message, res.statusCode, ociCode, headers);
}

export async function readLimited(res: UpstreamResponse, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res.body) {
    const buf = chunk as Buffer;
    total += buf.byteLength;
    if (total > limit) {
      res.body.destroy();
      throw new RangeError(`body larger than ${limit} bytes`);
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}

export async function discard(res: UpstreamResponse): Promise<void> {
  try {
    await res.body.dump({ limit: ERROR_BODY_LIMIT });
  } catch {
    res.body.destroy();
  }
}

export function headerString(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
