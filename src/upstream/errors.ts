// Upstream failures, with the status, a redacted URL and a temporary() verdict, so the proxy can
// decide between "serve stale", "fail fast" and "pass the answer on".
import { MirrorKitError, type MirrorKitErrorOptions } from "../errors.js";
import { MirrorError, upstreamFault, type ErrorCode } from "../oci/errors.js";
import { LOOP_HEADER } from "./hops.js";

export type UpstreamFailure =
  /** No HTTP answer: refused, reset, DNS, timeout, circuit open. */
  | "unreachable"
  /** An HTTP answer that is an error. */
  | "status"
  /** An answer we cannot use (a token undici refuses to send, a malformed header): the upstream's fault, not the network's. */
  | "invalid"
  /** The exchange ran past its total deadline (a stalled or trickling upstream). */
  | "timeout";

export class UpstreamError extends MirrorKitError {
  override readonly name = "UpstreamError";
  declare readonly code: (typeof CODES)[UpstreamFailure];
  constructor(
    readonly upstream: string,
    readonly failure: UpstreamFailure,
    message: string,
    readonly status?: number,
    /** The upstream's own OCI error code, when it sent one. */
    readonly ociCode?: string,
    /** headers: the upstream's response headers worth keeping (e.g. Retry-After); never passed on blindly. */
    options?: MirrorKitErrorOptions,
  ) {
    super(CODES[failure], message, options);
  }

  /** Worth serving stale content for / retrying later: network trouble, 5xx, 429, an unusable answer. */
  temporary(): boolean {
    return this.failure !== "status" || this.status === 429 || (this.status !== undefined && this.status >= 500);
  }

  private retryAfter(): { headers: { "retry-after": string } } | undefined {
    return retryAfterOf(this.headers);
  }

  /** Translate for the client; notFound is the code for a 404 on this kind of object. */
  toMirrorError(notFound: ErrorCode): MirrorError {
    const where = `upstream ${this.upstream}`;
    if (this.failure === "unreachable") return new MirrorError("UNAVAILABLE", `${where} is unreachable: ${this.message}`);
    if (this.failure === "invalid") return upstreamFault("UNAVAILABLE", `${where} sent an unusable answer: ${this.message}`);
    // A deadline expiry: the gateway timed out waiting (504), whatever the upstream sent so far.
    if (this.failure === "timeout") return new MirrorError("UNAVAILABLE", `${where} did not answer in time: ${this.message}`, undefined, { status: 504 });
    switch (this.status) {
      case 404:
        return new MirrorError(this.ociCode === "NAME_UNKNOWN" ? "NAME_UNKNOWN" : notFound, `${where}: ${this.message}`);
      case 401:
        // The HTTP layer adds the mirror's own challenge: every 401 carries one.
        return new MirrorError("UNAUTHORIZED", `${where} requires authentication the mirror could not provide`);
      case 403:
        return new MirrorError("DENIED", `${where} denied access`);
      case 508:
        // A parent mirror saw the request come back to it (a chaining loop): passed on with its reason.
        return new MirrorError("UNAVAILABLE", `${where}: ${this.message}`, undefined, { status: 508, ...(this.headers?.[LOOP_HEADER] ? { headers: { [LOOP_HEADER]: this.headers[LOOP_HEADER] } } : {}) });
      case 429:
        return new MirrorError("TOOMANYREQUESTS", `${where} is rate limiting this mirror; try again later`, undefined, this.retryAfter());
      default:
        if (this.status !== undefined && this.status >= 400 && this.status < 500 && isOciCode(this.ociCode)) {
          return new MirrorError(this.ociCode, `${where}: ${this.message}`);
        }
        // 503 passes on as 503 (the upstream says it is down); any other failure or unexpected
        // status (500, 502, a 3xx, a 400 without a code we can pass on) is a bad gateway answer.
        if (this.status === 503) return new MirrorError("UNAVAILABLE", `${where} is unavailable: ${this.message}`, undefined, this.retryAfter());
        return upstreamFault("UNAVAILABLE", `${where} failed: ${this.message}`);
    }
  }
}

/** Only a Retry-After of whole seconds goes on to the client (set by ensureOk or a held request). */
function retryAfterOf(headers: Readonly<Record<string, string>> | undefined): { headers: { "retry-after": string } } | undefined {
  const value = headers?.["retry-after"];
  return value !== undefined && /^\d{1,9}$/.test(value) ? { headers: { "retry-after": value } } : undefined;
}

const CODES = { unreachable: "MK_UPSTREAM_UNREACHABLE", status: "MK_UPSTREAM_STATUS", invalid: "MK_UPSTREAM_INVALID", timeout: "MK_UPSTREAM_TIMEOUT" } as const;

const PASSABLE: ReadonlySet<string> = new Set(["NAME_INVALID", "DIGEST_INVALID", "TAG_INVALID", "MANIFEST_INVALID", "UNSUPPORTED"]);
function isOciCode(code: string | undefined): code is ErrorCode {
  return code !== undefined && PASSABLE.has(code);
}

/** Strip credentials and query strings (token URLs carry account names) from a URL for logs. */
export function redactUrl(url: URL | string): string {
  try {
    const u = new URL(String(url));
    u.username = "";
    u.password = "";
    u.search = "";
    return u.toString();
  } catch {
    return "<invalid url>";
  }
}
