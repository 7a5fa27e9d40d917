// A slow network link on the host: a TCP proxy on a free loopback port in front of a real server
// (a registry, a parent mirror) that paces every response at a fixed rate, so a test can act while a
// blob is still on its way (stop the far side, SIGKILL a replica) or play a link below the mirror's
// throughput floor. The server behind it still logs and counts every request.
// containers/slow-link.ts is the same for the container harness.
import net from "node:net";
import type { AddressInfo } from "node:net";

export class PacedLink {
  private readonly sockets = new Set<net.Socket>();
  /** Response bytes relayed so far (all connections). */
  relayed = 0;

  private constructor(private readonly server: net.Server) {}

  /** `target` is the far side's URL (only its host and port are used). */
  static async start(target: string, bytesPerSec: number): Promise<PacedLink> {
    const { hostname, port } = new URL(target);
    const server = net.createServer();
    const link = new PacedLink(server);
    server.on("connection", (client) => {
      const upstream = net.connect(Number(port), hostname);
      for (const s of [client, upstream]) {
        link.sockets.add(s);
        s.once("close", () => link.sockets.delete(s));
      }
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
      // The far side finished: what it sent is still delivered, then the client's side closes. An
      // error or a client that goes away closes both, as a dying host would.
      const close = () => {
        client.destroy();
        upstream.destroy();
      };
      upstream.on("end", () => client.end());
      upstream.on("close", () => {
        if (!client.writableEnded) client.end();
      });
      client.on("error", close);
      upstream.on("error", close);
      client.on("close", close);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return link;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Stop listening and cut every connection: the far side is gone. */
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
