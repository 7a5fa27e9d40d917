// Bearer tokens of one upstream: the cache per scope (bounded), one token request in flight per
// scope shared by its waiters, and how a token endpoint's JSON answer becomes a cached token.
import { raceSignal } from "./deadline.js";
import { UpstreamError } from "./errors.js";

export interface CachedToken {
  /** The Authorization header value, "Bearer …". */
  header: string;
  expiresAt: number;
}

/** Tokens are dropped this long before they expire, so none expires on its way upstream. */
const TOKEN_MARGIN_MS = 10_000;
/** Every repository name a client tries has a scope: without a bound, names alone would grow it. */
export const MAX_CACHED_TOKENS = 1_000;

export class TokenCache {
  private readonly tokens = new Map<string, CachedToken>();
  private readonly flights = new Map<string, Promise<CachedToken>>();

  constructor(private readonly max = MAX_CACHED_TOKENS) {}

  /** The header of an unexpired token for `scope`, or undefined. */
  get(scope: string): string | undefined {
    const token = this.tokens.get(scope);
    return token && token.expiresAt > Date.now() ? token.header : undefined;
  }

  /**
   * A token for `scope`: one request per scope at a time, whatever the number of callers. The
   * flight must carry its own deadline: it is shared, so one caller's abort must not fail the
   * others; a caller whose `signal` fires sooner stops waiting while the flight goes on.
   */
  async obtain(scope: string, request: () => Promise<CachedToken>, signal?: AbortSignal): Promise<string> {
    let flight = this.flights.get(scope);
    if (!flight) {
      // Cached by the flight, once: per waiter, a full cache made room again for the same scope,
      // dropping another scope's token each time.
      flight = request()
        .then((token) => {
          this.remember(scope, token);
          return token;
        })
        .finally(() => this.flights.delete(scope));
      this.flights.set(scope, flight);
    }
    return (await raceSignal(flight, signal)).header;
  }

  get size(): number {
    return this.tokens.size;
  }

  private remember(scope: string, token: CachedToken): void {
    if (this.tokens.size >= this.max) {
      const now = Date.now();
      for (const [k, t] of this.tokens) if (t.expiresAt <= now) this.tokens.delete(k);
      // Still full: forget the oldest (a Map keeps insertion order).
      for (const k of this.tokens.keys()) {
        if (this.tokens.size < this.max) break;
        this.tokens.delete(k);
      }
    }
    this.tokens.set(scope, token);
  }
}

/**
 * A token endpoint's 200 body (distribution's token spec: `token` or OAuth2's `access_token`,
 * `expires_in` seconds defaulting to 60, `issued_at`) as a cached token; anything else is a 401.
 */
export function parseTokenResponse(upstream: string, body: string, now = Date.now()): CachedToken {
  let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
  try {
    parsed = JSON.parse(body) as typeof parsed;
  } catch {
    throw new UpstreamError(upstream, "status", "token endpoint sent invalid JSON", 401);
  }
  if (parsed === null || typeof parsed !== "object") throw new UpstreamError(upstream, "status", "token endpoint sent no token", 401);
  const token = typeof parsed.token === "string" ? parsed.token : typeof parsed.access_token === "string" ? parsed.access_token : undefined;
  if (!token) throw new UpstreamError(upstream, "status", "token endpoint sent no token", 401);
  const lifetime = typeof parsed.expires_in === "number" && parsed.expires_in > 0 ? parsed.expires_in : 60;
  const issued = typeof parsed.issued_at === "string" ? Date.parse(parsed.issued_at) : Number.NaN;
  // An issued_at in the future (a skewed clock) must not stretch the token's life past its real end.
  const start = Number.isNaN(issued) ? now : Math.min(issued, now);
  return { header: `Bearer ${token}`, expiresAt: start + lifetime * 1000 - TOKEN_MARGIN_MS };
}
