// The one error base class: every error mirror-kit raises on purpose is a MirrorKitError with a
// stable `code` (as undici's UND_ERR_*), plus the response headers it needs when it answers HTTP.
//
// Code scheme (a code, once published, is never renamed; messages may change, codes may not):
// - OCI errors (MirrorError, what a registry client sees in the error body) use the distribution
//   spec's codes verbatim: BLOB_UNKNOWN, MANIFEST_UNKNOWN, NAME_UNKNOWN, UNAUTHORIZED, DENIED,
//   TOOMANYREQUESTS, UNAVAILABLE, PAGINATION_NUMBER_INVALID, ... (table in src/oci/errors.ts).
// - Generator errors (GenerateError) keep the codes they were published with: BAD_OPTION,
//   BAD_INPUT, USER_EDITED, NOT_FOUND, CONFLICT, PORT_IN_USE, DOCKER (src/generate/errors.ts).
// - Everything else is MK_<AREA>_<WHAT>:
//     MK_CONFIG_INVALID        a setting (flag, env, file, REGISTRY_* variable) is refused at load time
//     MK_UPSTREAM_UNREACHABLE  no HTTP answer from an upstream (refused, reset, DNS, timeout, breaker open)
//     MK_UPSTREAM_STATUS       an upstream answered with an error status
//     MK_UPSTREAM_TIMEOUT      an upstream exchange ran past its total deadline (upstream.deadline)
//     MK_UPSTREAM_INVALID      an upstream's answer cannot be used (e.g. a token undici refuses to send)
//     MK_STORE_UNUSABLE        the storage folder cannot be created or written
//     MK_LISTEN_FAILED         the listener cannot bind (port in use, no permission)
//     MK_TLS_RELOAD_FAILED     a renewed certificate/key/client CA is unusable; the running one is kept (logged)
//     MK_CERT_BAD_SAN          `mirror-kit cert --san` is neither a DNS name nor an IP address
//     MK_CERT_BAD_CA           an existing CA in the cert folder is incomplete or unusable (never overwritten)
//     MK_CERT_WRITE_FAILED     a certificate or key file cannot be written
//     MK_MIRROR_API            a running mirror's API cannot be read (status, ls, doctor)
//     MK_USAGE                 a command-line argument is unusable (exit status 2)
//     MK_INTERNAL              an invariant of our own code was broken (a bug; report it)
//   (bundle, prefetch and other commands add MK_EXPORT_*, MK_IMPORT_*, MK_PREFETCH_* in their modules)
//
// The CLI's exit status follows from the code (exitStatus below): 2 for a usage error (yargs'
// own, MK_USAGE, a refused setting MK_CONFIG_INVALID, a bad --san MK_CERT_BAD_SAN, the generator's
// BAD_OPTION), 1 for every
// runtime failure.
//
// `headers` are the response headers that belong to the error (a 401's WWW-Authenticate, a 429's
// Retry-After, a 416's Content-Range); the HTTP layer copies them onto the response in the one
// place that turns errors into responses (src/http/handler.ts). They never carry credentials.

export interface MirrorKitErrorOptions {
  cause?: unknown;
  headers?: Readonly<Record<string, string>>;
}

export class MirrorKitError extends Error {
  override readonly name: string = "MirrorKitError";
  readonly headers?: Readonly<Record<string, string>>;

  constructor(
    readonly code: string,
    message: string,
    options?: MirrorKitErrorOptions,
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    if (options?.headers) this.headers = options.headers;
  }
}

export function isMirrorKitError(err: unknown): err is MirrorKitError {
  return err instanceof MirrorKitError;
}

/** Codes that mean "the command was invoked wrongly": fix the flags, environment or config file. */
const USAGE_CODES: ReadonlySet<string> = new Set(["MK_USAGE", "MK_CONFIG_INVALID", "MK_CERT_BAD_SAN", "BAD_OPTION"]);

/** The process exit status for a failed command: 2 usage, 1 runtime (anything else, bugs included). */
export function exitStatus(err: unknown): 1 | 2 {
  return isMirrorKitError(err) && USAGE_CODES.has(err.code) ? 2 : 1;
}
