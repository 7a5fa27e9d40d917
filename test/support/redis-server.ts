// A real Redis: Debian's redis-server on a free loopback port, no persistence, its log kept;
// stop()/start() on the same port, as a restarted Redis looks to the replicas.
import { createServer } from "node:net";
import { requireTools } from "./preflight.js";
import { ManagedProcess } from "./process.js";

export class RedisServer {
  private proc: ManagedProcess | undefined;

  private constructor(readonly port: number, private readonly password?: string) {}

  static async start(opts: { password?: string } = {}): Promise<RedisServer> {
    requireTools(["redis-server"]);
    const server = new RedisServer(await freePort(), opts.password);
    await server.start();
    return server;
  }

  /** HOST:PORT, as config redis.addr takes it. */
  get addr(): string {
    return `127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.proc?.running ?? false;
  }

  async start(): Promise<void> {
    const args = ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "notice"];
    if (this.password) args.push("--requirepass", this.password);
    const proc = new ManagedProcess(`redis-server :${this.port}`, "redis-server", args);
    this.proc = proc;
    await proc.waitForLine(/Ready to accept connections/, 15_000);
  }

  /** SIGSTOP: Redis hangs, its connections stay open (resume() is SIGCONT). */
  pause(): void {
    process.kill(this.proc?.pid as number, "SIGSTOP");
  }

  resume(): void {
    process.kill(this.proc?.pid as number, "SIGCONT");
  }

  /** SIGKILL: Redis gone at once, as a crashed or unplugged server. */
  async kill(): Promise<void> {
    await this.proc?.stop(0);
  }

  async stop(): Promise<void> {
    await this.proc?.stop(5_000);
  }

  logTail(): string {
    return this.proc?.logTail() ?? "";
  }
}

/** A port the OS just gave out and released (the server binds it a moment later). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}
