// A real corporate forward proxy: Debian's tinyproxy on a free loopback port, optionally with Basic
// auth; its log is parsed into the requests it relayed (absolute-form GET/HEAD, and CONNECT tunnels).
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { requireTools } from "./preflight.js";
import { ManagedProcess } from "./process.js";
import { makeTempDir, removeTempDir } from "./scratch.js";

export interface ProxiedRequest {
  /** GET, HEAD, CONNECT, ... */
  readonly method: string;
  /** Absolute URL (http://127.0.0.1:5001/v2/...) or, for CONNECT, host:port. */
  readonly target: string;
}

export interface ForwardProxyOptions {
  /** tinyproxy's BasicAuth: the proxy answers 407 without these credentials. */
  basicAuth?: { username: string; password: string };
}

/** tinyproxy cannot bind port 0: ask the kernel for a free port and hand it over. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const REQUEST_LINE = /Request \(file descriptor \d+\): (\S+) (\S+) HTTP\//;

export class ForwardProxy {
  private constructor(
    private readonly proc: ManagedProcess,
    private readonly dir: string,
    readonly port: number,
    private readonly opts: ForwardProxyOptions,
  ) {}

  static async start(opts: ForwardProxyOptions = {}): Promise<ForwardProxy> {
    requireTools(["tinyproxy"]);
    const dir = await makeTempDir("tinyproxy");
    const port = await freePort();
    const log = join(dir, "tinyproxy.log");
    const conf = [
      `Port ${port}`,
      "Listen 127.0.0.1",
      "Timeout 120",
      `LogFile "${log}"`,
      "LogLevel Info",
      "MaxClients 200",
      "Allow 127.0.0.1",
      // No ConnectPort line: CONNECT is allowed to every port (upstreams listen on free ports).
      ...(opts.basicAuth ? [`BasicAuth ${opts.basicAuth.username} ${opts.basicAuth.password}`] : []),
    ];
    await writeFile(join(dir, "tinyproxy.conf"), `${conf.join("\n")}\n`);
    await writeFile(log, "");
    const proc = new ManagedProcess("tinyproxy", "tinyproxy", ["-d", "-c", join(dir, "tinyproxy.conf")]);
    const proxy = new ForwardProxy(proc, dir, port, opts);
    try {
      const deadline = Date.now() + 15_000;
      while (!proxy.logText().includes("Accepting connections")) {
        if (!proc.running) throw new Error(`tinyproxy exited before it was ready:\n${proc.logTail()}\n${proxy.logText()}`);
        if (Date.now() > deadline) throw new Error(`tinyproxy not ready within 15 s:\n${proxy.logText()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    } catch (err) {
      await proxy.close();
      throw err;
    }
    return proxy;
  }

  /** http://127.0.0.1:PORT (no credentials). */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The URL with the Basic credentials in it, as HTTPS_PROXY carries them. */
  get urlWithCredentials(): string {
    const auth = this.opts.basicAuth;
    if (!auth) return this.url;
    return `http://${encodeURIComponent(auth.username)}:${encodeURIComponent(auth.password)}@127.0.0.1:${this.port}`;
  }

  logText(): string {
    return readFileSync(join(this.dir, "tinyproxy.log"), "utf8");
  }

  /** Every request line the proxy logged, in order (tinyproxy logs it before contacting the target). */
  requests(): ProxiedRequest[] {
    const out: ProxiedRequest[] = [];
    for (const line of this.logText().split("\n")) {
      const m = REQUEST_LINE.exec(line);
      if (m) out.push({ method: m[1] as string, target: m[2] as string });
    }
    return out;
  }

  /** Requests whose target starts with `prefix` (an origin such as http://127.0.0.1:5001, or host:port for CONNECT). */
  to(prefix: string, method?: string): ProxiedRequest[] {
    return this.requests().filter((r) => r.target.startsWith(prefix) && (method === undefined || r.method === method));
  }

  async close(): Promise<void> {
    await this.proc.stop(5_000);
    await removeTempDir(this.dir);
  }
}
