// Domain errors and the one table that maps them to OCI error codes and HTTP statuses.
// Storage, upstream and proxy code throw MirrorError; only the HTTP layer reads the table.
import { MirrorKitError, type MirrorKitErrorOptions } from "../errors.js";

/** OCI distribution-spec error codes, plus distribution's UNAVAILABLE for an upstream we cannot reach. */
export type ErrorCode =
  | "BLOB_UNKNOWN"
  | "BLOB_UPLOAD_INVALID"
  | "DIGEST_INVALID"
  | "MANIFEST_UNKNOWN"
  | "MANIFEST_INVALID"
  | "NAME_INVALID"
  | "NAME_UNKNOWN"
  | "SIZE_INVALID"
  | "TAG_INVALID"
  | "RANGE_INVALID"
  | "PAGINATION_NUMBER_INVALID"
  | "UNAUTHORIZED"
  | "DENIED"
  | "UNSUPPORTED"
  | "TOOMANYREQUESTS"
  | "UNAVAILABLE"
  | "UNKNOWN";

/** The single translation table: code -> HTTP status. */
export const ERROR_STATUS: Readonly<Record<ErrorCode, number>> = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  DIGEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  MANIFEST_INVALID: 400,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  TAG_INVALID: 400,
  RANGE_INVALID: 416,
  PAGINATION_NUMBER_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
  UNAVAILABLE: 503,
  UNKNOWN: 500,
};

export interface MirrorErrorOptions extends MirrorKitErrorOptions {
  /** Replaces the table's status for this one error; only the builders below use it. */
  status?: 404 | 502 | 503 | 504 | 508;
}

/** An error a registry client sees: its code is the OCI code, its status comes from the table. */
export class MirrorError extends MirrorKitError {
  override readonly name = "MirrorError";
  declare readonly code: ErrorCode;
  private readonly statusOverride?: number;
  constructor(
    code: ErrorCode,
    message: string,
    /** Extra machine-readable detail for the OCI envelope; never credentials. */
    readonly detail?: unknown,
    options?: MirrorErrorOptions,
  ) {
    super(code, message, options);
    if (options?.status !== undefined) this.statusOverride = options.status;
  }

  get status(): number {
    return this.statusOverride ?? ERROR_STATUS[this.code];
  }

  /** The upstream's answer was wrong (a lying digest, a non-manifest, too big): not the client's fault. */
  get upstreamFault(): boolean {
    return this.statusOverride === 502;
  }
}

/**
 * Content from upstream failed its checks. The code says what was wrong (DIGEST_INVALID, SIZE_INVALID,
 * MANIFEST_INVALID); the status is 502, because a 400 would tell the client its request was bad.
 */
export function upstreamFault(code: ErrorCode, message: string, options?: MirrorKitErrorOptions): MirrorError {
  return new MirrorError(code, message, undefined, { ...options, status: 502 });
}

/** A path outside the distribution API: 404, as distribution answers (405 is for a known path's wrong method). */
export function noSuchEndpoint(): MirrorError {
  return new MirrorError("UNSUPPORTED", "no such endpoint on this registry mirror", undefined, { status: 404 });
}

export function isMirrorError(err: unknown): err is MirrorError {
  return err instanceof MirrorError;
}

/** The OCI JSON error envelope for any thrown value; unknown errors never leak their message. */
export function toOciError(err: unknown): { status: number; body: { errors: { code: ErrorCode; message: string; detail?: unknown }[] } } {
  if (isMirrorError(err)) {
    const entry: { code: ErrorCode; message: string; detail?: unknown } = { code: err.code, message: err.message };
    if (err.detail !== undefined) entry.detail = err.detail;
    return { status: err.status, body: { errors: [entry] } };
  }
  return { status: 500, body: { errors: [{ code: "UNKNOWN", message: "internal error" }] } };
}
