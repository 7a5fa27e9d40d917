// The one authentication layer in front of every route: who the client is (htpasswd Basic), the
// 401 challenge, and the brakes on guessing (per-address slowdown, bounded concurrent bcrypt work).
import { createHmac, randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import bcrypt from "bcryptjs";
import type { AuthConfig } from "../config/resolve.js";
import { MirrorError } from "../oci/errors.js";
import type { Logger } from "../observe/log.js";
import { HtpasswdFile } from "./htpasswd.js";
import { FailureSlowdown } from "./slowdown.js";

/** Who sent a request: a user from the htpasswd file, or nobody (auth off, or an open path). */
export type Principal = { readonly user: string } | null;

// bcrypt is deliberately slow (~50-100 ms per check in pure JS at cost 10): a few at once keep the
// event loop serving pulls; a queue this long means someone is guessing, and they get 429.
const MAX_CONCURRENT_CHECKS = 2;
const MAX_QUEUED_CHECKS = 64;
// Verified credentials are remembered (as an HMAC under a per-process key, never the password) so a
// pull's hundred requests pay bcrypt once; the file changing forgets them all.
const VERIFIED_TTL_MS = 5 * 60_000;
const VERIFIED_MAX = 1_000;

export class Authenticator {
  private readonly file: HtpasswdFile | undefined;
  private readonly slowdown = new FailureSlowdown();
  private readonly key = randomBytes(32);
  private readonly verified = new Map<string, { generation: number; user: string; until: number }>();
  private running = 0;
  private readonly queue: (() => void)[] = [];

  constructor(
    private readonly config: AuthConfig,
    private readonly log: Logger,
  ) {
    if (config.htpasswd) {
      this.file = new HtpasswdFile(config.htpasswd.path, (err) => log.error({ err: err.message, path: config.htpasswd?.path }, "cannot re-read the htpasswd file; keeping the users loaded before"));
    }
  }

  get enabled(): boolean {
    return this.file !== undefined;
  }

  /** Read the htpasswd file now, so a missing or invalid one stops startup instead of the first pull. */
  async start(): Promise<void> {
    if (this.file) {
      const table = await this.file.load();
      this.log.info({ users: table.users.size, path: this.file.path, realm: this.config.htpasswd?.realm }, "client authentication on (htpasswd)");
    }
  }

  /** The challenge a 401 carries, as distribution sends it. */
  get challenge(): string {
    return `Basic realm="${(this.config.htpasswd?.realm ?? "mirror-kit").replace(/["\\]/g, "")}"`;
  }

  /**
   * Authenticate a request. Resolves with the user, or null when no authentication is required;
   * throws UNAUTHORIZED (the caller adds the challenge) when it is and the credentials are missing or wrong.
   */
  async check(req: IncomingMessage, pathname: string): Promise<Principal> {
    if (!this.file || this.config.anonymousPaths.includes(pathname)) return null;
    const credentials = parseBasic(req.headers.authorization);
    if (!credentials) {
      // Pulls may go on anonymously (auth.anonymousPull); each upstream's access then decides.
      if (this.config.anonymousPull && (pathname === "/v2" || pathname.startsWith("/v2/")) && req.headers.authorization === undefined) return null;
      throw this.unauthorized("authentication required");
    }
    const address = req.socket.remoteAddress ?? "unknown";
    const cacheKey = createHmac("sha256", this.key).update(credentials.user).update("\0").update(credentials.password).digest("base64");
    const remembered = this.verified.get(cacheKey);
    if (remembered && remembered.generation === this.file.generation && remembered.until > Date.now()) {
      return { user: remembered.user };
    }
    const wait = this.slowdown.delayFor(address);
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const ok = await this.limited(async () => {
      const table = await (this.file as HtpasswdFile).current();
      // Unknown users are checked against the decoy: same cost, so timing does not tell which names exist.
      const hash = table.users.get(credentials.user) ?? table.decoy;
      return (await bcrypt.compare(credentials.password, hash)) && table.users.has(credentials.user);
    });
    if (!ok) {
      this.slowdown.failed(address);
      this.log.warn({ user: credentials.user.slice(0, 64), address }, "authentication failed");
      throw this.unauthorized("authentication required: invalid username or password");
    }
    this.slowdown.succeeded(address);
    this.remember(cacheKey, credentials.user);
    return { user: credentials.user };
  }

  /** The 401 for content an anonymous client may not read (an upstream with access: authenticated). */
  unauthorized(message: string): MirrorError {
    return new MirrorError("UNAUTHORIZED", message, undefined, { headers: { "www-authenticate": this.challenge } });
  }

  private remember(key: string, user: string): void {
    this.verified.delete(key);
    this.verified.set(key, { generation: (this.file as HtpasswdFile).generation, user, until: Date.now() + VERIFIED_TTL_MS });
    while (this.verified.size > VERIFIED_MAX) this.verified.delete(this.verified.keys().next().value as string);
  }

  private async limited<T>(work: () => Promise<T>): Promise<T> {
    if (this.running >= MAX_CONCURRENT_CHECKS) {
      if (this.queue.length >= MAX_QUEUED_CHECKS) throw new MirrorError("TOOMANYREQUESTS", "too many login attempts in progress; retry later");
      // The finishing check hands its slot over directly, so the count never overshoots.
      await new Promise<void>((resolve) => this.queue.push(resolve));
    } else {
      this.running++;
    }
    try {
      return await work();
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.running--;
    }
  }
}

/** `Authorization: Basic base64(user:password)`; the password may contain colons, the user may not. */
export function parseBasic(header: string | undefined): { user: string; password: string } | undefined {
  const m = header ? /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header) : null;
  if (!m) return undefined;
  const decoded = Buffer.from(m[1] as string, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon <= 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
