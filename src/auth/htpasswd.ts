// htpasswd files as CNCF distribution reads them (auth.htpasswd): `user:bcrypt-hash` lines, blank
// lines and lines starting with "#" skipped, surrounding whitespace trimmed, the last entry of a user wins.
import { randomBytes } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import bcrypt from "bcryptjs";
import { ConfigError } from "../config/schema.js";

export interface HtpasswdTable {
  readonly users: ReadonlyMap<string, string>;
  /** A hash no password matches, as costly as the file's dearest one: unknown users pay the same. */
  readonly decoy: string;
}

const BCRYPT = /^\$2[aby]?\$(\d{2})\$[./A-Za-z0-9]{53}$/;

/** Parse htpasswd text; entries that are not bcrypt are refused (distribution could never match them). */
export async function parseHtpasswd(text: string, source: string): Promise<HtpasswdTable> {
  const users = new Map<string, string>();
  // htpasswd -B's default cost; an empty file still gets a realistic decoy.
  let maxCost = 5;
  let seen = false;
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const colon = line.indexOf(":");
    if (colon <= 0) throw new ConfigError(`${source}: line ${index + 1} is not "user:hash"`);
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    const m = BCRYPT.exec(hash);
    if (!m) {
      throw new ConfigError(`${source}: line ${index + 1} (user ${JSON.stringify(user)}) is not a bcrypt hash; registry:2 and mirror-kit accept only bcrypt entries (create them with htpasswd -B)`);
    }
    maxCost = seen ? Math.max(maxCost, Number(m[1])) : Number(m[1]);
    seen = true;
    users.set(user, hash);
  });
  // bcryptjs caps costs at 31; a decoy of the same cost makes an unknown name as slow as a known one.
  const decoy = await bcrypt.hash(randomBytes(16).toString("hex"), Math.min(Math.max(maxCost, 4), 31));
  return { users, decoy };
}

/** The file, re-read when it changes (checked at most every `recheckMs`), so adding a user needs no restart. */
export class HtpasswdFile {
  private table: HtpasswdTable | undefined;
  private mtimeMs = -1;
  private size = -1;
  private checkedAt = 0;
  private pending: Promise<HtpasswdTable> | undefined;

  constructor(
    readonly path: string,
    private readonly onReloadError: (err: Error) => void = () => undefined,
    private readonly recheckMs = 2_000,
    /** Bumped on every successful (re)load, so caches of verified credentials know to forget. */
    public generation = 0,
  ) {}

  /** Load at startup: an unreadable or invalid file stops the server, naming the file. */
  async load(): Promise<HtpasswdTable> {
    const table = await this.read();
    this.checkedAt = Date.now();
    return table;
  }

  async current(): Promise<HtpasswdTable> {
    if (!this.table) return this.load();
    if (Date.now() - this.checkedAt < this.recheckMs) return this.table;
    this.pending ??= this.recheck().finally(() => (this.pending = undefined));
    return this.pending;
  }

  private async recheck(): Promise<HtpasswdTable> {
    this.checkedAt = Date.now();
    try {
      const s = await stat(this.path);
      if (s.mtimeMs !== this.mtimeMs || s.size !== this.size) return await this.read();
    } catch (err) {
      // A file being replaced or briefly unreadable keeps the users we had: failing open is never an option.
      this.onReloadError(err as Error);
    }
    return this.table as HtpasswdTable;
  }

  private async read(): Promise<HtpasswdTable> {
    let text: string;
    let s;
    try {
      s = await stat(this.path);
      text = await readFile(this.path, "utf8");
    } catch (err) {
      throw new ConfigError(`auth.htpasswd.path: cannot read ${this.path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    const table = await parseHtpasswd(text, `auth.htpasswd.path (${this.path})`);
    this.table = table;
    this.mtimeMs = s.mtimeMs;
    this.size = s.size;
    this.generation++;
    return table;
  }
}
