// A real upstream: Debian's `docker-registry` (CNCF distribution 2.8.2) on a free loopback port
// with its own storage, an access log the tests count, stop/start on the same port, and proxy mode.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Agent, request } from "undici";
import { stringify } from "yaml";
import { AccessLog, SETTLE_MARKER, type AccessFilter } from "./access-log.js";
import { writeHtpasswd } from "./htpasswd.js";
import { requireTools } from "./preflight.js";
import { ManagedProcess } from "./process.js";
import { makeTempDir, removeTempDir } from "./scratch.js";

export interface RegistryOptions {
  /** Shown in failure messages, e.g. "upstream docker.io". */
  name?: string;
  /** htpasswd basic auth with this one user. */
  basicAuth?: { username: string; password: string };
  /** Bearer-token auth (the Docker Hub flow): distribution verifies JWTs signed by the test's token server. */
  tokenAuth?: { realm: string; service: string; issuer: string; rootCertBundle: string };
  /** Serve the storage of another registry (e.g. an open one to push through, beside one with auth). */
  shareStorageWith?: UpstreamRegistry;
  /** Run as a pull-through cache of `remoteurl` (distribution's own proxy mode). */
  proxy?: { remoteurl: string; username?: string; password?: string };
  /** Serve HTTPS (distribution's http.tls) with this certificate; `ca` is what the harness trusts for its own calls. */
  tls?: { cert: string; key: string; ca: string };
}

export class UpstreamRegistry {
  readonly log = new AccessLog();
  private proc: ManagedProcess | undefined;
  private settleSeq = 0;
  private harnessAgent: Agent | undefined;
  private constructor(
    readonly name: string,
    readonly dir: string,
    private readonly opts: RegistryOptions,
    private boundPort = 0,
  ) {}

  static async start(opts: RegistryOptions = {}): Promise<UpstreamRegistry> {
    requireTools(["docker-registry", "perl"]);
    const dir = await makeTempDir("registry");
    const registry = new UpstreamRegistry(opts.name ?? "registry", dir, opts);
    try {
      await mkdir(join(dir, "data"));
      if (opts.basicAuth) await writeHtpasswd(join(dir, "htpasswd"), { [opts.basicAuth.username]: opts.basicAuth.password });
      await registry.start();
    } catch (err) {
      await registry.close();
      throw err;
    }
    return registry;
  }

  get port(): number {
    if (this.boundPort === 0) throw new Error(`${this.name}: not started yet`);
    return this.boundPort;
  }

  /** host:port as clients write it in image references. */
  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  get url(): string {
    return `${this.opts.tls ? "https" : "http"}://${this.host}`;
  }

  get running(): boolean {
    return this.proc?.running ?? false;
  }

  /**
   * Starts (again). The first start binds port 0 and reads the chosen port from the log;
   * later starts reuse it, so a mirror configured with this URL sees the upstream come back.
   */
  async start(): Promise<void> {
    if (this.running) throw new Error(`${this.name}: already running`);
    const configPath = join(this.dir, "config.yml");
    await writeFile(configPath, stringify(this.config()));
    const proc = new ManagedProcess(this.name, "docker-registry", ["serve", configPath]);
    proc.onLine((line) => this.log.push(line));
    this.proc = proc;
    try {
      const m = await proc.waitForLine(/listening on 127\.0\.0\.1:(\d+)/);
      this.boundPort = Number(m[1]);
    } catch (err) {
      await proc.stop();
      throw err;
    }
  }

  /** Stops the process and keeps its storage: the upstream "goes offline". */
  async stop(): Promise<void> {
    await this.proc?.stop();
  }

  /** Stops and deletes the storage. */
  async close(): Promise<void> {
    await this.stop();
    await this.harnessAgent?.close();
    await removeTempDir(this.dir);
  }

  count(filter: AccessFilter = {}): number {
    return this.log.count(filter);
  }

  reset(): void {
    this.log.reset();
  }

  /**
   * distribution writes an access line after the response is complete, so a client can
   * see its response before the line exists. A marker request sent afterwards and seen in
   * the log means every earlier request has been logged.
   */
  async settle(): Promise<void> {
    if (!this.running || !this.proc) return;
    const marker = `${SETTLE_MARKER}${++this.settleSeq}`;
    const tls = this.opts.tls;
    if (tls) {
      this.harnessAgent ??= new Agent({ connect: { ca: await readFile(tls.ca, "utf8") } });
      const res = await request(`${this.url}/v2/?${marker}`, { headers: this.authHeader(), dispatcher: this.harnessAgent });
      await res.body.arrayBuffer();
    } else {
      const res = await fetch(`${this.url}/v2/?${marker}`, { headers: this.authHeader() });
      await res.arrayBuffer();
    }
    await this.proc.waitForLine(new RegExp(`${marker} HTTP/`), 5_000);
  }

  /** Authorization header for direct calls from fixtures, when basic auth is on. */
  authHeader(): Record<string, string> {
    const auth = this.opts.basicAuth;
    if (!auth) return {};
    return { authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString("base64")}` };
  }

  logTail(lines = 30): string {
    return this.proc?.logTail(lines) ?? "(never started)";
  }

  private config(): Record<string, unknown> {
    const config: Record<string, unknown> = {
      version: 0.1,
      log: { level: "info", formatter: "json", accesslog: { disabled: false } },
      storage: {
        filesystem: { rootdirectory: this.opts.shareStorageWith ? join(this.opts.shareStorageWith.dir, "data") : join(this.dir, "data") },
        delete: { enabled: true },
        // The purge goroutine would add unrelated work and log lines mid-test.
        maintenance: { uploadpurging: { enabled: false } },
      },
      http: { addr: `127.0.0.1:${this.boundPort}`, secret: "mirror-kit-test-secret" },
    };
    if (this.opts.basicAuth) config.auth = { htpasswd: { realm: "mirror-kit-test", path: join(this.dir, "htpasswd") } };
    if (this.opts.tokenAuth) {
      const t = this.opts.tokenAuth;
      config.auth = { token: { realm: t.realm, service: t.service, issuer: t.issuer, rootcertbundle: t.rootCertBundle } };
    }
    if (this.opts.proxy) config.proxy = this.opts.proxy;
    if (this.opts.tls) (config.http as Record<string, unknown>).tls = { certificate: this.opts.tls.cert, key: this.opts.tls.key };
    return config;
  }
}
