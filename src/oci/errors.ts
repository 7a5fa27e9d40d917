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
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
  UNAVAILABLE: 503,
  UNKNOWN: 500,
};

/** An error a registry client sees: its code is the OCI code, its status comes from the table. */
export class MirrorError extends MirrorKitError {
  override readonly name = "MirrorError";
  declare readonly code: ErrorCode;
  constructor(
    code: ErrorCode,
    message: string,
    /** Extra machine-readable detail for the OCI envelope; never credentials. */
    readonly detail?: unknown,
    options?: MirrorKitErrorOptions,
  ) {
    super(code, message, options);
  }

  get status(): number {
    return ERROR_STATUS[this.code];
  }
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
