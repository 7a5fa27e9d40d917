// A scriptable upstream for failure injection only (a lying digest, a dropped connection, a 429,
// a token realm): things a real registry cannot be made to do on cue. Never used as proof that
// the mirror works with real registries; test/integration/proxy.test.ts does that.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
}

export type Route = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export class FakeUpstream {
  readonly seen: SeenRequest[] = [];
  private routes: [RegExp, Route][] = [];
  private constructor(private readonly server: Server) {}

  static async start(): Promise<FakeUpstream> {
    const server = createServer();
    const fake = new FakeUpstream(server);
    server.on("request", (req, res) => {
      fake.seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
      const route = fake.routes.find(([re]) => re.test(req.url ?? ""));
      if (!route) {
        res.statusCode = 404;
        res.setHeader("content-type", "application/json");
        res.end('{"errors":[{"code":"NAME_UNKNOWN","message":"not here"}]}');
        return;
      }
      Promise.resolve(route[1](req, res)).catch(() => res.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return fake;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  on(path: RegExp, route: Route): this {
    this.routes.push([path, route]);
    return this;
  }

  count(method: string, includes: string): number {
    return this.seen.filter((r) => r.method === method && r.url.includes(includes)).length;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
