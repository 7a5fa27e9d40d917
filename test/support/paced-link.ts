// A slow network link in-process: a TCP proxy on a free loopback port that paces every response at a
// fixed rate, so a test can act while a large blob is still on its way. containers/slow-link.ts is
// the same for the container harness.
import net from "node:net";
import type { AddressInfo } from "node:net";

export class PacedLink {
  private readonly sockets = new Set<net.Socket>();
  /** Response bytes relayed so far (all connections). */
  relayed = 0;

  private constructor(private readonly server: net.Server) {}

  static async start(target: string, bytesPerSec: number): Promise<PacedLink> {
    const { hostname, port } = new URL(target);
    const server = net.createServer();
    const link = new PacedLink(server);
    server.on("connection", (client) => {
      const upstream = net.connect(Number(port), hostname);
      link.sockets.add(client).add(upstream);
      let next = Date.now();
      client.pipe(upstream);
      upstream.on("data", (chunk: Buffer) => {
        link.relayed += chunk.length;
        next = Math.max(next, Date.now()) + (chunk.length / bytesPerSec) * 1000;
        const drained = client.write(chunk);
        const wait = next - Date.now();
        if (!drained || wait > 0) {
          upstream.pause();
          let pending = drained ? 1 : 2;
          const go = () => {
            if (--pending === 0) upstream.resume();
          };
          if (!drained) client.once("drain", go);
          setTimeout(go, Math.max(wait, 0));
        }
      });
      // A close on either side closes the other, as a dying host would.
      const close = () => {
        client.destroy();
        upstream.destroy();
      };
      for (const s of [client, upstream]) {
        s.on("error", close);
        s.on("close", () => {
          link.sockets.delete(s);
          close();
        });
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return link;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Stop listening and cut every connection: the far side is gone. */
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
