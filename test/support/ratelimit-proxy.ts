// A small HTTP proxy in front of a real registry that behaves like Docker Hub's rate limiter:
// every manifest GET spends one unit of a budget and carries ratelimit-limit / ratelimit-remaining
// headers ("100;w=21600"); when told to, it answers 429 with a Retry-After instead of forwarding
// manifest requests (Docker Hub limits those only), or 503 with a Retry-After to every request.
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface RateLimitProxyOptions {
  limit: number;
  /** Seconds the budget window covers (the w= parameter). */
  windowSeconds?: number;
}

export class RateLimitProxy {
  remaining: number;
  /** Manifest GETs that were forwarded (spent budget). */
  manifestGets = 0;
  /**
   * When set, requests are refused with this Retry-After (seconds, or an HTTP date) and not
   * forwarded: with 429 (refuseStatus, the default) manifest requests only, with 503 every request.
   */
  refuseWithRetryAfter: number | string | undefined;
  refuseStatus: 429 | 503 = 429;
  /** Requests refused. */
  refused = 0;
  private constructor(
    private readonly server: Server,
    readonly url: string,
    private readonly opts: RateLimitProxyOptions,
  ) {
    this.remaining = opts.limit;
  }

  static async start(target: string, opts: RateLimitProxyOptions): Promise<RateLimitProxy> {
    const upstream = new URL(target);
    let proxy: RateLimitProxy | undefined;
    const server = createServer((req, res) => {
      const p = proxy as RateLimitProxy;
      const manifest = /\/manifests\//.test(req.url ?? "");
      if (p.refuseWithRetryAfter !== undefined && (manifest || p.refuseStatus === 503)) {
        p.refused++;
        const [code, message] = p.refuseStatus === 429 ? ["TOOMANYREQUESTS", "You have reached your pull rate limit."] : ["UNAVAILABLE", "Service unavailable."];
        res.writeHead(p.refuseStatus, { "retry-after": String(p.refuseWithRetryAfter), "content-type": "application/json" });
        res.end(JSON.stringify({ errors: [{ code, message }] }));
        return;
      }
      const manifestGet = req.method === "GET" && manifest;
      const out = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host } }, (up) => {
        const headers = { ...up.headers };
        if (manifestGet && up.statusCode === 200) {
          p.manifestGets++;
          p.remaining = Math.max(0, p.remaining - 1);
          const w = p.opts.windowSeconds ?? 21600;
          headers["ratelimit-limit"] = `${p.opts.limit};w=${w}`;
          headers["ratelimit-remaining"] = `${p.remaining};w=${w}`;
        }
        res.writeHead(up.statusCode ?? 502, headers);
        up.pipe(res);
      });
      out.on("error", () => res.destroy());
      req.pipe(out);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    proxy = new RateLimitProxy(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`, opts);
    return proxy;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
