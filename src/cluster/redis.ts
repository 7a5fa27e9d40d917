// The Coordinator over one Redis server (ioredis): leases are SET NX PX keys renewed by their holder
// and released with a compare-and-delete; a release is announced on one pub/sub channel.
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import type { Logger } from "../observe/log.js";
import { type Coordinator, type CoordinatorHealth, type Lease, type SharedFailure, replicaId, soloLease } from "./coordinator.js";

export interface RedisCoordinatorOptions {
  host: string;
  port: number;
  password?: string;
  db: number;
  tls: boolean;
  /** This replica's name (config replica), shown in its lease values and its Redis client name. */
  replica?: string;
  /** Every key and the channel start with it, so several mirrors can share one Redis. */
  keyPrefix: string;
  /** A lease lapses this long after its holder's last renewal (the holder renews every third of it). */
  leaseMs: number;
  /** The longest any Redis command may take before this replica goes on alone. */
  timeoutMs: number;
  log: Logger;
}

// Only the holder's token may renew or delete a lease: a holder that was paused past its lease
// must not extend or remove the lease of the replica that took over.
const RENEW = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) else return 0 end`;
/** Commands in a row timing out on a live connection that count as an outage. */
const MAX_TIMEOUTS = 3;
const RELEASE = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`;
// An INCRBY on a missing key would start the total from this replica's bytes alone (after a Redis
// restart): the caller is told it is unmeasured instead, and the evictor measures it.
// Settling after a scan, atomically: the scan's figure when nothing was added since the evictor
// read ARGV[2] (or there is no figure), else only what it freed is subtracted.
const SETTLE_USAGE = `local cur = redis.call("get", KEYS[1])
if cur == false or cur == ARGV[2] then redis.call("set", KEYS[1], ARGV[1]) return tonumber(ARGV[1]) end
return redis.call("incrby", KEYS[1], -tonumber(ARGV[3]))`;
const ADD_USAGE = `if redis.call("exists", KEYS[1]) == 1 then return redis.call("incrby", KEYS[1], ARGV[1]) else return -1 end`;

interface ReleaseMessage {
  key: string;
  failure?: SharedFailure;
}

interface NewsMessage {
  topic: string;
  /** The sending replica's id: its own messages come back to it on the channel, and are ignored. */
  from: string;
  message: unknown;
}

export class RedisCoordinator implements Coordinator {
  readonly mode = "redis";
  private readonly cmd: Redis;
  private readonly sub: Redis;
  private readonly id: string;
  private readonly channel: string;
  /** What replicas tell each other (broadcast), beside lease releases. */
  private readonly newsChannel: string;
  private readonly listeners = new Map<string, ((message: unknown) => void)[]>();
  /** Why Redis cannot be used right now; undefined while it can. */
  private down: string | undefined = "not connected yet";
  private readonly waiters = new Map<string, Set<(failure: SharedFailure | undefined) => void>>();
  private closed = false;
  /** Commands in a row that timed out on a live connection. */
  private timeouts = 0;
  /** While down on a live connection (Redis hung), a PING now and then finds when it answers again. */
  private probing: NodeJS.Timeout | undefined;

  private constructor(private readonly o: RedisCoordinatorOptions) {
    this.channel = `${o.keyPrefix}released`;
    this.newsChannel = `${o.keyPrefix}news`;
    this.id = replicaId(o.replica ?? "replica");
    const common = {
      host: o.host,
      port: o.port,
      db: o.db,
      ...(o.password !== undefined ? { password: o.password } : {}),
      ...(o.tls ? { tls: {} } : {}),
      connectTimeout: o.timeoutMs,
      lazyConnect: true,
      // Reconnect forever, at most every 2 s: Redis coming back must need no restart of ours.
      retryStrategy: (times: number) => Math.min(100 * times, 2_000),
      connectionName: `mirror-kit ${this.id}`,
    };
    // No offline queue and a command timeout: while Redis is away, a command fails at once instead
    // of holding a client's request, and the replica goes on alone.
    this.cmd = new Redis({ ...common, enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: o.timeoutMs });
    this.sub = new Redis({ ...common, maxRetriesPerRequest: null });
    this.cmd.on("ready", () => this.up());
    for (const event of ["close", "end"] as const) this.cmd.on(event, () => this.noteDown("connection closed"));
    // Connection errors come with close/reconnecting; the reason is kept for /healthz.
    this.cmd.on("error", (err: Error) => {
      if (this.cmd.status !== "ready") this.noteDown(describe(err));
    });
    this.sub.on("error", () => undefined);
    this.sub.on("message", (channel: string, text: string) => (channel === this.newsChannel ? this.onNews(text) : this.onRelease(text)));
  }

  /** Connect, waiting at most timeoutMs: when Redis is down, the replica starts anyway (and says so). */
  static async connect(o: RedisCoordinatorOptions): Promise<RedisCoordinator> {
    const c = new RedisCoordinator(o);
    c.sub.subscribe(c.channel, c.newsChannel).catch(() => undefined);
    const connected = c.cmd.connect().then(
      () => true,
      () => false,
    );
    const timer = new Promise<false>((resolve) => setTimeout(() => resolve(false), o.timeoutMs).unref());
    if (!(await Promise.race([connected, timer]))) {
      o.log.error({ redis: `${o.host}:${o.port}`, reason: c.down }, "redis unreachable at startup: serving what the store holds, downloads not coordinated with other replicas until it answers");
    }
    return c;
  }

  private up(): void {
    if (this.down === undefined) return;
    const was = this.down;
    this.down = undefined;
    this.o.log.info({ redis: `${this.o.host}:${this.o.port}`, was }, "redis connected: downloads, revalidation and eviction are coordinated across replicas");
  }

  private noteDown(reason: string): void {
    if (this.closed) return;
    const was = this.down;
    this.down = reason;
    if (was !== undefined) return;
    this.o.log.error({ redis: `${this.o.host}:${this.o.port}`, reason }, "redis unreachable: serving what the store holds; downloads go on uncoordinated until it is back");
    // Waiters would otherwise sleep until their poll: wake them, they go on alone.
    for (const set of this.waiters.values()) for (const w of [...set]) w(undefined);
  }

  /**
   * A command failed. A lost connection is an outage at once; a command that timed out on a live
   * connection (a loaded machine) is one only when several in a row do (a Redis that hangs).
   */
  private failed(err: unknown): void {
    if (this.cmd.status !== "ready") return this.noteDown(describe(err));
    if (++this.timeouts >= MAX_TIMEOUTS) {
      this.noteDown(`${MAX_TIMEOUTS} commands in a row took longer than ${this.o.timeoutMs} ms`);
      this.probe();
    }
  }

  /**
   * Down with the connection still up, no "ready" event will say Redis is back, and no command is
   * sent while down: PING until one answers (a lost connection comes back through "ready" instead).
   */
  private probe(): void {
    if (this.probing) return;
    this.probing = setInterval(() => {
      if (this.closed || this.down === undefined) {
        clearInterval(this.probing);
        this.probing = undefined;
        return;
      }
      if (this.cmd.status === "ready") this.cmd.ping().then(() => this.answered(), () => undefined);
    }, Math.max(200, this.o.timeoutMs));
    this.probing.unref();
  }

  /** A command succeeded: whatever was wrong is over. */
  private answered(): void {
    this.timeouts = 0;
    if (this.down !== undefined && this.cmd.status === "ready") this.up();
  }

  private key(k: string): string {
    return `${this.o.keyPrefix}${k}`;
  }

  health(): CoordinatorHealth {
    return this.down === undefined ? { ok: true, mode: "redis" } : { ok: false, mode: "redis", reason: `redis ${this.o.host}:${this.o.port} unreachable: ${this.down}` };
  }

  async tryLease(name: string): Promise<Lease | undefined> {
    if (this.down !== undefined) return soloLease();
    const key = this.key(`lease:${name}`);
    const token = `${this.id}:${randomBytes(6).toString("hex")}`;
    try {
      const ok = await this.cmd.set(key, token, "PX", this.o.leaseMs, "NX");
      this.answered();
      if (ok !== "OK") return undefined;
    } catch (err) {
      this.failed(err);
      // Down: this replica goes on alone. Slow: the SET may have landed, so behave as if another
      // replica held the lease (it lapses unrenewed if it was ours) rather than download twice.
      return this.down !== undefined ? soloLease() : undefined;
    }
    return new RedisLease(this.cmd, key, token, name, this.channel, this.o);
  }

  waitRelease(name: string, ms: number): Promise<SharedFailure | undefined> {
    if (this.down !== undefined) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      let set = this.waiters.get(name);
      if (!set) this.waiters.set(name, (set = new Set()));
      const done = (failure: SharedFailure | undefined) => {
        clearTimeout(timer);
        set.delete(done);
        if (set.size === 0 && this.waiters.get(name) === set) this.waiters.delete(name);
        resolve(failure);
      };
      // A holder that died releases nothing: the poll notices its lease lapsed.
      const timer = setTimeout(() => done(undefined), ms);
      timer.unref();
      set.add(done);
    });
  }

  private onRelease(text: string): void {
    let msg: ReleaseMessage;
    try {
      msg = JSON.parse(text) as ReleaseMessage;
    } catch {
      return;
    }
    const set = this.waiters.get(msg.key);
    if (set) for (const w of [...set]) w(msg.failure);
  }

  async broadcast(topic: string, message: unknown): Promise<void> {
    const news: NewsMessage = { topic, from: this.id, message };
    await this.guard(() => this.cmd.publish(this.newsChannel, JSON.stringify(news)));
  }

  onBroadcast(topic: string, handler: (message: unknown) => void): void {
    this.listeners.set(topic, [...(this.listeners.get(topic) ?? []), handler]);
  }

  private onNews(text: string): void {
    let news: NewsMessage;
    try {
      news = JSON.parse(text) as NewsMessage;
    } catch {
      return;
    }
    if (news.from === this.id) return;
    for (const h of this.listeners.get(news.topic) ?? []) h(news.message);
  }

  async addUsage(bytes: number): Promise<number | "unmeasured" | undefined> {
    const total = await this.guard(() => this.cmd.eval(ADD_USAGE, 1, this.key("usage"), String(Math.round(bytes))) as Promise<number>);
    return total === undefined ? undefined : total < 0 ? "unmeasured" : total;
  }

  async settleUsage(measured: number, seen: number | undefined, freed: number): Promise<number | undefined> {
    const args = [String(Math.round(measured)), seen === undefined ? "" : String(seen), String(Math.round(freed))];
    return this.guard(() => this.cmd.eval(SETTLE_USAGE, 1, this.key("usage"), ...args) as Promise<number>);
  }

  async get(name: string): Promise<string | undefined> {
    return (await this.guard(() => this.cmd.get(this.key(`state:${name}`)))) ?? undefined;
  }

  async put(name: string, value: string, ttlMs: number): Promise<void> {
    await this.guard(() => this.cmd.set(this.key(`state:${name}`), value, "PX", Math.max(1, Math.round(ttlMs))));
  }

  private async guard<T>(fn: () => Promise<T>): Promise<T | undefined> {
    if (this.down !== undefined) return undefined;
    try {
      const v = await fn();
      this.answered();
      return v;
    } catch (err) {
      this.failed(err);
      return undefined;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.probing);
    for (const c of [this.cmd, this.sub]) {
      // quit waits for the server; a server that is gone gets disconnect at once.
      if (c.status === "ready") await Promise.race([c.quit().catch(() => undefined), new Promise((r) => setTimeout(r, this.o.timeoutMs).unref())]);
      c.disconnect();
    }
  }
}

class RedisLease implements Lease {
  private _held = true;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly cmd: Redis,
    private readonly key: string,
    private readonly token: string,
    private readonly name: string,
    private readonly channel: string,
    private readonly o: RedisCoordinatorOptions,
  ) {
    this.timer = setInterval(() => void this.renew(), Math.max(50, Math.floor(o.leaseMs / 3)));
    this.timer.unref();
  }

  get held(): boolean {
    return this._held;
  }

  private async renew(): Promise<void> {
    try {
      const kept = (await this.cmd.eval(RENEW, 1, this.key, this.token, String(this.o.leaseMs))) as number;
      if (kept === 0 && this._held) {
        this._held = false;
        clearInterval(this.timer);
        this.o.log.warn({ lease: this.name }, "lease lost (it lapsed while this replica was unreachable): another replica may be doing the same work");
      }
    } catch {
      // Redis is away: the lease may lapse and another replica take over; this one goes on.
    }
  }

  async release(failure?: SharedFailure): Promise<void> {
    clearInterval(this.timer);
    const wasHeld = this._held;
    this._held = false;
    if (!wasHeld) return;
    try {
      await this.cmd.eval(RELEASE, 1, this.key, this.token);
      const msg: ReleaseMessage = { key: this.name, ...(failure ? { failure } : {}) };
      await this.cmd.publish(this.channel, JSON.stringify(msg));
    } catch {
      // Unreleased, it lapses after leaseMs; waiters poll for that.
    }
  }
}

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e?.code ?? e?.message ?? String(err);
}
